"""Break-the-glass: emergency access to a patient's clinical record outside a care relationship.

The user states a reason; access lasts a fixed time box; the opening is a flagged audit record;
the clinic's admins see it on their home page until one of them reviews it. The clinical pages
call `active_grant` to decide, and `open_grant` when the user breaks the glass.
"""

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.services import record
from app.db import utcnow
from app.patients.models import BreakGlass
from app.security.text import printable

TIME_BOX = timedelta(minutes=60)
MIN_REASON = 10


class ReasonRequired(ValueError):
    """Break-the-glass needs a stated reason of at least MIN_REASON characters."""


def open_grant(db: Session, *, clinic_id: uuid.UUID, user_id: uuid.UUID, patient_id: uuid.UUID,
               reason: str, duration: timedelta = TIME_BOX) -> BreakGlass:
    """Grant time-boxed access and write the flagged audit record the admins will review."""
    reason = " ".join(printable(reason or "", 1000).split())
    if len(reason) < MIN_REASON:
        raise ReasonRequired(f"State why you need this record (at least {MIN_REASON} characters).")
    now = utcnow()
    grant = BreakGlass(clinic_id=clinic_id, user_id=user_id, patient_id=patient_id, reason=reason[:300],
                       started_at=now, expires_at=now + duration)
    db.add(grant)
    db.flush()
    record(db, "break_glass.open", clinic_id=clinic_id, patient_id=patient_id, object_type="break_glass",
           object_id=grant.id, reason=reason, flagged=True)
    return grant


def active_grant(db: Session, *, clinic_id: uuid.UUID, user_id: uuid.UUID, patient_id: uuid.UUID) -> BreakGlass | None:
    """The user's unexpired break-the-glass grant for this patient, if any."""
    return db.scalar(select(BreakGlass).where(
        BreakGlass.clinic_id == clinic_id, BreakGlass.user_id == user_id, BreakGlass.patient_id == patient_id,
        BreakGlass.expires_at > utcnow()).order_by(BreakGlass.expires_at.desc()).limit(1))


def awaiting_review(db: Session, clinic_id: uuid.UUID) -> list[BreakGlass]:
    """Grants no admin has reviewed yet, newest first (the admins' notification)."""
    return list(db.scalars(select(BreakGlass).where(BreakGlass.clinic_id == clinic_id,
                                                    BreakGlass.reviewed_at.is_(None))
                           .order_by(BreakGlass.started_at.desc())))


def review(db: Session, grant: BreakGlass, *, by: uuid.UUID) -> None:
    """An admin has looked at the grant and its reason; recorded, never deleted."""
    grant.reviewed_at, grant.reviewed_by = utcnow(), by
    record(db, "break_glass.review", clinic_id=grant.clinic_id, patient_id=grant.patient_id,
           object_type="break_glass", object_id=grant.id)
    db.flush()
