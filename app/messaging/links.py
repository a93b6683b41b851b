"""Patient links: a 128-bit random token per message, stored as its SHA-256 only, good for one
appointment until a day after it ends, revoked when the appointment is moved or cancelled.

`issue` is called when a message is composed (the raw token goes into that message and nowhere
else); `find` is how a link is opened, before any clinic is known: `link_route` (outside row-level
security) says which clinic, then the link row, under that clinic's RLS, says whether it is still good.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import new_id, set_tenant, utcnow
from app.messaging.models import LinkRoute, PatientLink
from app.scheduling.models import Appointment

TOKEN_BYTES = 16  # 128 bits, 22 characters of URL-safe base64
KEEP_AFTER_END = timedelta(days=1)
PATH = "/p/"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def url_of(token: str) -> str:
    """The link as a message carries it: the app's public address, /p/, the token."""
    return current_app.config["PUBLIC_URL"].rstrip("/") + PATH + token


def expiry_of(appointment: Appointment):
    """A link works until a day after the appointment ends (a walk-in has no link)."""
    return appointment.ends_at + KEEP_AFTER_END


def issue(db: Session, appointment: Appointment) -> str:
    """A new link to this appointment; returns the raw token (never stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = token_hash(token)
    db.add(PatientLink(clinic_id=appointment.clinic_id, id=new_id(), appointment_id=appointment.id,
                       token_hash=digest, expires_at=expiry_of(appointment), created_at=utcnow()))
    db.add(LinkRoute(token_hash=digest, clinic=appointment.clinic_id))
    db.flush()
    return token


def revoke(db: Session, appointment: Appointment, reason: str) -> int:
    """Revoke every live link to this appointment ("rescheduled", "cancelled"); returns how many."""
    result = db.execute(update(PatientLink).where(
        PatientLink.clinic_id == appointment.clinic_id, PatientLink.appointment_id == appointment.id,
        PatientLink.revoked_at.is_(None)).values(revoked_at=utcnow(), revoked_reason=reason))
    return result.rowcount


@dataclass(frozen=True)
class Found:
    link: PatientLink
    appointment: Appointment


def find(db: Session, token: str) -> Found | None:
    """The live link a token opens, with the tenant set to its clinic; None when unknown, expired or
    revoked (the caller answers all three the same way)."""
    if not token or len(token) > 64:
        return None
    digest = token_hash(token)
    clinic_id: uuid.UUID | None = db.scalar(select(LinkRoute.clinic).where(LinkRoute.token_hash == digest))
    if clinic_id is None:
        return None
    set_tenant(db, clinic_id=clinic_id, user_id=None)
    link = db.scalar(select(PatientLink).where(PatientLink.clinic_id == clinic_id, PatientLink.token_hash == digest))
    if link is None or link.revoked_at is not None or link.expires_at <= utcnow():
        return None
    appointment = db.get(Appointment, (clinic_id, link.appointment_id))
    return Found(link, appointment) if appointment is not None else None
