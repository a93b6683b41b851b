"""Clinic records."""

from sqlalchemy import Date, cast, func, update
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.scheduling.models import Appointment
from app.scheduling.services import lock_availability, upcoming_outside_availability


def update_clinic(db: Session, clinic: Clinic, values: dict) -> int:
    """Apply validated settings to the clinic; returns how many booked appointments now fall outside
    their doctor's availability (a new time zone or state moves hours and holidays under them)."""
    lock_availability(db, clinic.id)
    before = {a.id for a in upcoming_outside_availability(db, clinic)}
    old_zone = clinic.timezone
    for key in ("name", "legal_name", "address_line", "city", "pin_code", "state_code", "timezone"):
        setattr(clinic, key, values[key].strip() if isinstance(values[key], str) else values[key])
    clinic.gstin = values.get("gstin") or None
    if clinic.timezone != old_zone:
        _redate_appointments(db, clinic)
    db.flush()
    return len([a for a in upcoming_outside_availability(db, clinic) if a.id not in before])


def _redate_appointments(db: Session, clinic: Clinic) -> None:
    """Each booked appointment's day is its date in the clinic's (new) time zone."""
    db.execute(update(Appointment).where(Appointment.clinic_id == clinic.id, Appointment.starts_at.is_not(None))
               .values(day=cast(func.timezone(clinic.timezone, Appointment.starts_at), Date)))
