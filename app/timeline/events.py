"""Writing the timeline feed: every service that changes something a patient's timeline shows calls `add`
in the same transaction, so the feed never disagrees with the record."""

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from app.db import new_id, utcnow
from app.timeline.models import Kind, TimelineEvent


def add(db: Session, *, clinic_id: uuid.UUID, patient_id: uuid.UUID, kind: Kind, action: str,
        ref_id: uuid.UUID | None, by: uuid.UUID | None, doctor_id: uuid.UUID | None = None,
        at: datetime | None = None) -> TimelineEvent:
    """Append one item to the patient's timeline (no PHI: the details stay in the source row)."""
    event = TimelineEvent(clinic_id=clinic_id, id=new_id(), patient_id=patient_id, at=at or utcnow(),
                          kind=kind.value, action=action, doctor_id=doctor_id, ref_id=ref_id, by=by)
    db.add(event)
    return event
