"""Sign-in, MFA, recovery codes, rate limits and staff account changes.

Rate limits are the one throttle (app/security/throttle.py) over the sign-in event log itself, so they
hold across app processes and fail closed; an IPv6 client counts as its /64.
"""

import base64
import secrets
import uuid
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import has_request_context, request
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth.models import AuthEvent, AuthEventKind, RecoveryCode, StaffUser
from app.clinics.models import Membership
from app.db import utcnow
from app.security.client import client_address
from app.security.crypto import master_key
from app.security.text import printable
from app.security.throttle import Limit, from_client, reached, serialise

_hasher = PasswordHasher()
# Verified for unknown e-mails so both paths cost the same (no enumeration by timing).
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

RECOVERY_CODE_COUNT = 10
ISSUER = "ClinicDesk"


# Password guesses are limited per (account, address), so a stranger elsewhere cannot lock a
# colleague out, with NIST 800-63B's ceiling of 100 failures per account a day behind it.
PASSWORD_LIMITS_ACCOUNT_IP = (Limit(10, timedelta(minutes=15)),)
PASSWORD_LIMITS_ACCOUNT = (Limit(100, timedelta(hours=24)),)
PASSWORD_LIMITS_IP = (Limit(50, timedelta(minutes=15)),)
# Codes: only someone who already knows the password gets here.
MFA_LIMITS_ACCOUNT = (Limit(5, timedelta(minutes=5)), Limit(20, timedelta(hours=1)))
MFA_LIMITS_IP = (Limit(20, timedelta(minutes=5)),)
MFA_KINDS = (AuthEventKind.MFA_FAILED, AuthEventKind.MFA_REPLAY)
# Re-entering the password inside a signed-in session (admin actions, new codes, password change).
REAUTH_LIMITS = (Limit(10, timedelta(minutes=15)),)


def hash_password(password: str) -> str:
    """argon2id with argon2-cffi's defaults (t=3, m=64 MiB, p=4)."""
    return _hasher.hash(password)


def _verify_hash(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def email_hmac(email: str) -> str:
    return master_key().keyed_hash("auth-email", email.strip().lower())


def record_event(db: Session, kind: AuthEventKind, *, user_id=None, actor_user_id=None,
                 email: str | None = None, detail: str | None = None, clinic_id=None) -> AuthEvent:
    """Append a sign-in/security event with the request's address and agent."""
    event = AuthEvent(
        kind=kind, user_id=user_id, actor_user_id=actor_user_id, clinic_id=clinic_id,
        email_hmac=email_hmac(email) if email else None, detail=detail,
        ip=client_address(),
        user_agent=printable(request.user_agent.string, 200) if has_request_context() else None,
    )
    db.add(event)
    db.flush()
    return event


def password_locked(db: Session, email: str) -> bool:
    """Too many failed passwords for this e-mail from this address, for it in a day, or from this address."""
    account = email_hmac(email)
    serialise(db, "password:" + account)
    failed, address = AuthEvent.kind == AuthEventKind.PASSWORD_FAILED, from_client(AuthEvent.ip)
    return (reached(db, AuthEvent.at, [failed, AuthEvent.email_hmac == account, address], PASSWORD_LIMITS_ACCOUNT_IP)
            or reached(db, AuthEvent.at, [failed, AuthEvent.email_hmac == account], PASSWORD_LIMITS_ACCOUNT)
            or reached(db, AuthEvent.at, [failed, address], PASSWORD_LIMITS_IP))


def mfa_locked(db: Session, user_id: uuid.UUID) -> bool:
    """Too many failed codes for this account, or from this address."""
    serialise(db, f"mfa:{user_id}")
    failed = AuthEvent.kind.in_(MFA_KINDS)
    return (reached(db, AuthEvent.at, [failed, AuthEvent.user_id == user_id], MFA_LIMITS_ACCOUNT)
            or reached(db, AuthEvent.at, [failed, from_client(AuthEvent.ip)], MFA_LIMITS_IP))


def reauth_locked(db: Session, user_id: uuid.UUID) -> bool:
    """Too many wrong passwords re-entered inside this user's sessions."""
    serialise(db, f"reauth:{user_id}")
    failed = AuthEvent.kind == AuthEventKind.REAUTH_FAILED
    return reached(db, AuthEvent.at, [failed, AuthEvent.user_id == user_id], REAUTH_LIMITS)


def check_password(db: Session, email: str, password: str) -> tuple[str, StaffUser | None]:
    """Verify e-mail and password: ('ok', user), ('invalid', None) or ('locked', None)."""
    email = email.strip().lower()
    if password_locked(db, email):
        record_event(db, AuthEventKind.LOCKED_OUT, email=email, detail="password")
        return "locked", None
    user = db.scalar(select(StaffUser).where(StaffUser.email == email))
    valid = _verify_hash(user.password_hash if user else _DUMMY_HASH, password)
    if not valid or user is None or not user.is_active:
        record_event(db, AuthEventKind.PASSWORD_FAILED, user_id=user.id if user else None, email=email,
                     detail="disabled" if user and valid else None)
        return "invalid", None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record_event(db, AuthEventKind.PASSWORD_OK, user_id=user.id, email=email)
    return "ok", user


# --- TOTP -----------------------------------------------------------------------------------

def _totp_aad(user_id: uuid.UUID) -> bytes:
    return f"staff_user|totp_secret_enc|{user_id}".encode()


def seal_totp_secret(user: StaffUser, secret: str) -> bytes:
    return master_key().seal("staff-totp", secret.encode(), _totp_aad(user.id))


def totp_secret_of(user: StaffUser) -> str:
    return master_key().unseal("staff-totp", user.totp_secret_enc, _totp_aad(user.id)).decode()


def provisioning_uri(user: StaffUser, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def matching_step(secret: str, code: str) -> int | None:
    """The time step a code belongs to (now +-1 step of drift), or None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = utcnow()
    for offset in (0, -1, 1):
        when = now + timedelta(seconds=30 * offset)
        if secrets.compare_digest(totp.at(when), code):
            return totp.timecode(when)
    return None


def claim_step(db: Session, user: StaffUser, step: int) -> bool:
    """Atomically record `step` as used; False if it (or a later one) was used already."""
    claimed = db.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id)
        .where((StaffUser.totp_last_step.is_(None)) | (StaffUser.totp_last_step < step))
        .values(totp_last_step=step)
        .returning(StaffUser.id)
    ).first()
    return claimed is not None


def check_totp(db: Session, user: StaffUser, code: str, secret: str | None = None) -> str:
    """'ok', 'invalid', 'replay' or 'locked' for a code; records the outcome."""
    if mfa_locked(db, user.id):
        record_event(db, AuthEventKind.LOCKED_OUT, user_id=user.id, detail="mfa")
        return "locked"
    if secret is None and user.totp_secret_enc is None:
        record_event(db, AuthEventKind.MFA_FAILED, user_id=user.id, detail="no authenticator")
        return "invalid"
    step = matching_step(secret or totp_secret_of(user), code)
    if step is None:
        record_event(db, AuthEventKind.MFA_FAILED, user_id=user.id)
        return "invalid"
    if not claim_step(db, user, step):
        record_event(db, AuthEventKind.MFA_REPLAY, user_id=user.id)
        return "replay"
    return "ok"


def enrol_mfa(db: Session, user: StaffUser, secret: str) -> list[str]:
    """Store the confirmed TOTP seed and issue fresh recovery codes (returned once)."""
    user.totp_secret_enc = seal_totp_secret(user, secret)
    user.mfa_enrolled_at = utcnow()
    record_event(db, AuthEventKind.MFA_ENROLLED, user_id=user.id)
    return issue_recovery_codes(db, user)


# --- Recovery codes ----------------------------------------------------------------------------

def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _code_hash(user_id: uuid.UUID, code: str) -> str:
    return master_key().keyed_hash("recovery-code", f"{user_id}|{_normalise_code(code)}")


def issue_recovery_codes(db: Session, user: StaffUser) -> list[str]:
    """Replace the user's recovery codes with 10 new 80-bit codes; only keyed hashes are kept."""
    db.query(RecoveryCode).filter(RecoveryCode.user_id == user.id).delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(10)).decode()
        codes.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
        db.add(RecoveryCode(user_id=user.id, code_hash=_code_hash(user.id, raw)))
    db.flush()
    return codes


def use_recovery_code(db: Session, user: StaffUser, code: str) -> str:
    """'ok' (and the code is spent), 'invalid' or 'locked'."""
    if mfa_locked(db, user.id):
        record_event(db, AuthEventKind.LOCKED_OUT, user_id=user.id, detail="recovery code")
        return "locked"
    spent = db.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _code_hash(user.id, code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .returning(RecoveryCode.id)
    ).first()
    if spent is None:
        record_event(db, AuthEventKind.MFA_FAILED, user_id=user.id, detail="recovery code")
        return "invalid"
    record_event(db, AuthEventKind.RECOVERY_CODE_USED, user_id=user.id)
    return "ok"


def recovery_codes_left(db: Session, user: StaffUser) -> int:
    return db.scalar(select(func.count()).select_from(RecoveryCode)
                     .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))


# --- Passwords and accounts ------------------------------------------------------------------

def verify_current_password(db: Session, user: StaffUser, password: str, *, purpose: str) -> str:
    """Re-authentication for a sensitive change: 'ok', 'invalid' or 'locked'.

    Failures are limited per user (apart from anonymous sign-in failures, so a stranger's guesses
    cannot stop an admin acting), so a hijacked session cannot be used to guess the password.
    """
    if reauth_locked(db, user.id):
        record_event(db, AuthEventKind.LOCKED_OUT, user_id=user.id, detail=("re-auth: " + purpose)[:200])
        return "locked"
    if _verify_hash(user.password_hash, password):
        return "ok"
    record_event(db, AuthEventKind.REAUTH_FAILED, user_id=user.id, actor_user_id=user.id, detail=purpose[:200])
    return "invalid"


def set_password(db: Session, user: StaffUser, password: str, *, actor: StaffUser) -> None:
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    record_event(db, AuthEventKind.PASSWORD_CHANGED, user_id=user.id, actor_user_id=actor.id)


def memberships_of(db: Session, user_id: uuid.UUID) -> list[Membership]:
    """The user's clinics and roles, by clinic name (visible through RLS by app.user_id)."""
    rows = db.scalars(select(Membership).where(Membership.user_id == user_id)).all()
    return sorted(rows, key=lambda m: m.clinic.name)



def recent_events(db: Session, user_id: uuid.UUID, limit: int = 10) -> list[AuthEvent]:
    """The user's latest sign-in and security events, newest first."""
    return list(db.scalars(select(AuthEvent).where(AuthEvent.user_id == user_id)
                           .order_by(AuthEvent.at.desc()).limit(limit)))
