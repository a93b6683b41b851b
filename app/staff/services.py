"""Staff accounts in a clinic: add, change role, disable, enable, reset MFA."""

import secrets
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import AuthEvent, AuthEventKind, RecoveryCode, StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, record_event
from app.clinics.models import Clinic, Membership
from app.db import set_tenant, utcnow
from app.security.sessions import end_sessions_of


def staff_of(db: Session, clinic_id: uuid.UUID) -> list[tuple[Membership, StaffUser, object]]:
    """The clinic's staff with their last completed sign-in, in one query."""
    last = (select(AuthEvent.user_id, func.max(AuthEvent.at).label("at"))
            .where(AuthEvent.kind == AuthEventKind.MFA_OK).group_by(AuthEvent.user_id).subquery())
    rows = db.execute(
        select(Membership, StaffUser, last.c.at)
        .join(StaffUser, StaffUser.id == Membership.user_id)
        .outerjoin(last, last.c.user_id == StaffUser.id)
        .where(Membership.clinic_id == clinic_id)
        .order_by(StaffUser.full_name)
    ).all()
    return [tuple(r) for r in rows]


def clinics_of(db: Session, user_id: uuid.UUID) -> dict[uuid.UUID, Role]:
    """Every clinic a person works at, with their role there.

    Read through the person's own-memberships policy (app.user_id set to them for this one query),
    for authorization decisions only; the session's tenant is restored afterwards.
    """
    saved = db.info.get("clinic_id"), db.info.get("user_id")
    set_tenant(db, clinic_id=None, user_id=user_id)
    try:
        rows = db.execute(select(Membership.clinic_id, Membership.role).where(Membership.user_id == user_id)).all()
    finally:
        set_tenant(db, clinic_id=saved[0], user_id=saved[1])
    return dict(rows)


def may_manage_account(db: Session, actor_id: uuid.UUID, target_id: uuid.UUID) -> bool:
    """Account-wide changes (disable, enable, reset MFA) need the actor to be admin wherever the person works."""
    target = clinics_of(db, target_id)
    actor = clinics_of(db, actor_id)
    return bool(target) and all(actor.get(clinic) == Role.ADMIN for clinic in target)


class AccountElsewhere(Exception):
    """The e-mail belongs to an account of a clinic the admin does not administer."""


def temporary_password() -> str:
    """A 16-character one-time password for a new account (changed at first sign-in)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def add_staff(db: Session, *, clinic: Clinic, email: str, full_name: str, role: Role,
              actor: StaffUser) -> tuple[StaffUser, str | None]:
    """Give a person a role in the clinic; a new account gets a temporary password (returned once).

    An existing account is added only by an admin of every clinic it already belongs to, so no
    clinic can pull another clinic's staff (or an account it pre-registered) into its own.
    """
    email = email.strip().lower()
    user = db.scalar(select(StaffUser).where(StaffUser.email == email))
    password = None
    if user is not None and not may_manage_account(db, actor.id, user.id):
        raise AccountElsewhere(email)
    if user is None:
        password = temporary_password()
        user = StaffUser(email=email, full_name=full_name.strip(), password_hash=hash_password(password),
                         must_change_password=True)
        db.add(user)
        db.flush()
        record_event(db, AuthEventKind.USER_CREATED, user_id=user.id, actor_user_id=actor.id, clinic_id=clinic.id)
    db.add(Membership(clinic_id=clinic.id, user_id=user.id, role=role))
    record_event(db, AuthEventKind.MEMBERSHIP_ADDED, user_id=user.id, actor_user_id=actor.id, clinic_id=clinic.id,
                 detail=role.value)
    db.flush()
    return user, password


def remove_from_clinic(db: Session, membership: Membership, actor: StaffUser) -> None:
    """Take away the person's role in this clinic; their other clinics are untouched."""
    record_event(db, AuthEventKind.MEMBERSHIP_REMOVED, user_id=membership.user_id, actor_user_id=actor.id,
                 clinic_id=membership.clinic_id, detail=membership.role.value)
    db.delete(membership)
    db.flush()


def is_member(db: Session, clinic_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether the user already has a role in the clinic."""
    return db.get(Membership, (clinic_id, user_id)) is not None


def change_role(db: Session, membership: Membership, role: Role, actor: StaffUser) -> None:
    """Change a person's role in this clinic; it applies from their next request."""
    membership.role = role
    record_event(db, AuthEventKind.ROLE_CHANGED, user_id=membership.user_id, actor_user_id=actor.id,
                 clinic_id=membership.clinic_id,
                 detail=f"{membership.clinic.name[:150]}: {role.value}")


def set_disabled(db: Session, user: StaffUser, disabled: bool, actor: StaffUser) -> None:
    """Disable (ending every session at once) or re-enable an account."""
    user.disabled_at = utcnow() if disabled else None
    kind = AuthEventKind.USER_DISABLED if disabled else AuthEventKind.USER_ENABLED
    record_event(db, kind, user_id=user.id, actor_user_id=actor.id)
    if disabled:
        end_sessions_of(user.id)


def disable(db: Session, user: StaffUser, actor: StaffUser) -> None:
    """Disable an account and end its sessions."""
    set_disabled(db, user, True, actor)


def enable(db: Session, user: StaffUser, actor: StaffUser) -> None:
    """Re-enable a disabled account."""
    set_disabled(db, user, False, actor)


def reset_mfa(db: Session, user: StaffUser, actor: StaffUser) -> None:
    """Remove the authenticator and recovery codes; the user enrols again at next sign-in."""
    user.totp_secret_enc = None
    user.totp_last_step = None
    user.mfa_enrolled_at = None
    db.query(RecoveryCode).filter(RecoveryCode.user_id == user.id).delete()
    record_event(db, AuthEventKind.MFA_RESET, user_id=user.id, actor_user_id=actor.id)
    end_sessions_of(user.id)


PROFESSIONAL = ("qualifications", "speciality", "registration_number", "registration_council")


def set_professional(db: Session, user: StaffUser, data: dict) -> None:
    """Save a doctor's professional details (registration numbers are kept upper-case)."""
    for name in PROFESSIONAL:
        value = (data.get(name) or "").strip() or None
        setattr(user, name, value.upper() if value and name == "registration_number" else value)
    db.flush()
