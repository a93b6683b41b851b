"""Demo reminders: every open appointment ahead gets its reminders planned as a booking plans them; those
whose moment passed before the seed are in the outbox as sent then (with a working patient link), the
rest wait for the worker, which sends them through the outbox transport as they fall due."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.messaging import outbox, sending
from app.messaging.models import Reminder
from app.scheduling.models import Appointment


def seed_reminders(db: Session, clinic: Clinic, now: datetime) -> int:
    """Plan the reminders of the clinic's open appointments ahead, as of when each was booked; returns
    how many went out before now."""
    ahead = db.scalars(select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.status.in_(outbox.OPEN), Appointment.walk_in.is_(False),
        Appointment.starts_at > now).order_by(Appointment.starts_at)).all()
    for appointment in ahead:
        outbox.plan_for(db, clinic, appointment, now=appointment.created_at)
    went_out = 0
    for row in db.scalars(select(Reminder).where(Reminder.clinic_id == clinic.id, Reminder.due_at <= now)):
        went_out += sending.sent_to_outbox(db, clinic, row, row.due_at)
    db.flush()
    return went_out
