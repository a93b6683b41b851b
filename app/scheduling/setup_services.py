"""Schedule setup changes: opening hours, day decisions, and the guard that never lets a change
silently leave booked appointments outside their doctor's availability."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time, timedelta

from flask import g
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.scheduling import services
from app.scheduling.models import Appointment, ClinicDay, ClinicHours
from app.scheduling.slots import public_holidays


@dataclass(frozen=True)
class Conflict:
    """Booked appointments a change would leave outside availability, and the form that asked for it."""

    form_id: str
    appointments: list[Appointment]


def change_availability(db: Session, change: Callable[[], object], *, confirmed: bool,
                        doctor_ids: list[uuid.UUID] | None = None) -> tuple[bool, list[Appointment]]:
    """Apply `change` and return (applied, the booked appointments it newly leaves outside availability).
    Unless the admin has confirmed seeing them, a change that leaves any is rolled back. Bookings wait
    meanwhile, so none slips in between the two looks."""
    if doctor_ids is not None and len(doctor_ids) == 1:
        services.lock_availability(db, g.clinic.id, doctor_ids[0])
    else:
        services.lock_availability(db, g.clinic.id)
    before = {a.id for a in services.upcoming_outside_availability(db, g.clinic, doctor_ids)}
    change()
    db.flush()
    newly = [a for a in services.upcoming_outside_availability(db, g.clinic, doctor_ids) if a.id not in before]
    if newly and not confirmed:
        db.rollback()
        return False, newly
    return True, newly


def set_hours(db: Session, clinic_id: uuid.UUID, hours: dict[int, tuple[time, time]]) -> None:
    """Replace the weekly opening hours (a weekday missing from `hours` is closed)."""
    rows = {r.weekday: r for r in db.scalars(select(ClinicHours).where(ClinicHours.clinic_id == clinic_id))}
    for weekday, row in rows.items():
        if weekday not in hours:
            db.delete(row)
    for weekday, (opens, closes) in hours.items():
        row = rows.get(weekday) or ClinicHours(clinic_id=clinic_id, weekday=weekday)
        row.opens, row.closes = opens, closes
        db.add(row)


def set_day(db: Session, clinic_id: uuid.UUID, day: date, is_open: bool, note: str, by: uuid.UUID) -> None:
    """Close the clinic on `day`, or open it on a holiday (replacing an earlier decision for that day)."""
    row = db.get(ClinicDay, (clinic_id, day)) or ClinicDay(clinic_id=clinic_id, day=day)
    row.is_open, row.note, row.created_by, row.created_at = is_open, note, by, utcnow()
    db.add(row)


def upcoming_holidays(state_code: str | None, today: date) -> list[tuple[date, str]]:
    """The state's public holidays from today through the next 12 months."""
    end = today + timedelta(days=365)
    found = {}
    for year in range(today.year, end.year + 1):
        found.update(public_holidays(state_code, year))
    return sorted((d, name) for d, name in found.items() if today <= d <= end)
