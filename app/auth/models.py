"""Staff users, their recovery codes and sign-in events."""

import uuid
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, enum_by_value, new_id, utcnow
from app.security.fields import MASTER, sealed


class StaffUser(UserMixin, Base):
    __tablename__ = "staff_user"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(200))
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # The TOTP seed, AES-GCM sealed under a key derived from the master key (ASVS 2.8.2).
    totp_secret_enc: Mapped[bytes | None] = sealed(MASTER)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    mfa_enrolled_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A doctor's professional details, printed on prescriptions (not PHI: public registers list them).
    qualifications: Mapped[str | None] = mapped_column(String(120))
    speciality: Mapped[str | None] = mapped_column(String(60))
    registration_number: Mapped[str | None] = mapped_column(String(40))
    registration_council: Mapped[str | None] = mapped_column(String(80))

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    @property
    def mfa_enrolled(self) -> bool:
        return self.mfa_enrolled_at is not None


class RecoveryCode(Base):
    __tablename__ = "recovery_code"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthEventKind(StrEnum):
    PASSWORD_OK = "password_ok"
    PASSWORD_FAILED = "password_failed"
    LOCKED_OUT = "locked_out"
    MFA_OK = "mfa_ok"
    MFA_FAILED = "mfa_failed"
    MFA_REPLAY = "mfa_replay"
    MFA_ENROLLED = "mfa_enrolled"
    RECOVERY_CODE_USED = "recovery_code_used"
    MFA_RESET = "mfa_reset"
    SIGNED_OUT = "signed_out"
    SESSION_EXPIRED = "session_expired"
    PASSWORD_CHANGED = "password_changed"
    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    ROLE_CHANGED = "role_changed"
    MEMBERSHIP_ADDED = "membership_added"
    MEMBERSHIP_REMOVED = "membership_removed"
    REAUTH_FAILED = "reauth_failed"
    REAUTH_OK = "reauth_ok"
    CLINIC_SWITCHED = "clinic_switched"
    ACCESS_DENIED = "access_denied"

    @property
    def failure(self) -> bool:
        return self in FAILURES

    @property
    def label(self) -> str:
        return EVENT_LABELS[self]


FAILURES = {AuthEventKind.PASSWORD_FAILED, AuthEventKind.LOCKED_OUT, AuthEventKind.MFA_FAILED,
            AuthEventKind.MFA_REPLAY, AuthEventKind.REAUTH_FAILED, AuthEventKind.ACCESS_DENIED}


EVENT_LABELS = {
    AuthEventKind.PASSWORD_OK: "Password accepted",
    AuthEventKind.PASSWORD_FAILED: "Wrong password",
    AuthEventKind.LOCKED_OUT: "Locked out (too many attempts)",
    AuthEventKind.MFA_OK: "Signed in",
    AuthEventKind.MFA_FAILED: "Wrong code",
    AuthEventKind.MFA_REPLAY: "Code reused (refused)",
    AuthEventKind.MFA_ENROLLED: "Authenticator set up",
    AuthEventKind.RECOVERY_CODE_USED: "Recovery code used",
    AuthEventKind.MFA_RESET: "Authenticator reset",
    AuthEventKind.SIGNED_OUT: "Signed out",
    AuthEventKind.SESSION_EXPIRED: "Session expired",
    AuthEventKind.PASSWORD_CHANGED: "Password changed",
    AuthEventKind.USER_CREATED: "Account created",
    AuthEventKind.USER_DISABLED: "Account disabled",
    AuthEventKind.USER_ENABLED: "Account enabled",
    AuthEventKind.ROLE_CHANGED: "Role changed",
    AuthEventKind.MEMBERSHIP_ADDED: "Given a role in this clinic",
    AuthEventKind.MEMBERSHIP_REMOVED: "Removed from this clinic",
    AuthEventKind.REAUTH_FAILED: "Wrong password on confirmation",
    AuthEventKind.REAUTH_OK: "Password confirmed (for a download)",
    AuthEventKind.CLINIC_SWITCHED: "Switched clinic",
    AuthEventKind.ACCESS_DENIED: "Access refused",
}


class AuthEvent(Base):
    """An append-only record of every sign-in and account-security event (no secrets, no PHI)."""

    __tablename__ = "auth_event"
    __table_args__ = (
        Index("ix_auth_event_email_hmac_at", "email_hmac", "at"),
        Index("ix_auth_event_user_id_at", "user_id", "at"),
        Index("ix_auth_event_ip_at", "ip", "at"),
        Index("ix_auth_event_clinic_id_at", "clinic_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[AuthEventKind] = mapped_column(enum_by_value(AuthEventKind))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    # Set for events that belong to one clinic (role changes, refusals, switching in); account-wide
    # events (sign-in, password, MFA) have none. Row-level security hides other clinics' events.
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinic.id"))
    # Keyed hash of the e-mail typed at sign-in: counts attempts per account, known or not.
    email_hmac: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[IPv4Address | IPv6Address | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(String(200))


class AppMeta(Base):
    """Deployment facts, such as whether this database holds demo data."""

    __tablename__ = "app_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
