"""Demo schedule: opening hours, appointment types, doctors' weekly sessions and a leave, and a week of
appointments around the seed day (past ones completed or missed, today's in the queue, future ones booked).

Rows are written the way the booking code writes them (sealed reason, history entry per change),
with a fixed random seed so every demo looks the same.
"""

import random
import uuid
from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.counters import next_number
from app.db import new_id, utcnow
from app.scheduling import services
from app.scheduling.booking import add_history
from app.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicHours,
    DoctorSession,
    ExceptionKind,
    SessionException,
    Status,
)
from app.security.fields import keyring

TYPES = [("Consultation", 15, "teal", "Consultation fee"), ("New patient", 20, "indigo", "Consultation fee"),
         ("Follow-up", 10, "blue", None), ("Procedure", 30, "purple", "Minor procedure"),
         ("Vaccination", 10, "green", "Vaccine administration")]
REASONS = ["fever and cough", "BP review", "diabetes follow-up", "back pain", "skin rash", "vaccination due",
           "headache", "knee pain", "thyroid report review", "cold and sore throat", None, None]
HOURS = {weekday: (time(9), time(20)) for weekday in range(6)} | {6: (time(9), time(13))}


def _t(text: str) -> time:
    return time.fromisoformat(text)


def seed_schedule(db: Session, clinic: Clinic, doctors: dict[str, uuid.UUID], sessions: list[tuple],
                  patients: list[uuid.UUID], desk: uuid.UUID, rng: random.Random) -> int:
    """Hours, types, sessions (doctor key, weekdays, starts, ends, slot minutes, room) and a week of bookings."""
    for weekday, (opens, closes) in HOURS.items():
        db.add(ClinicHours(clinic_id=clinic.id, weekday=weekday, opens=opens, closes=closes))
    types = [AppointmentType(clinic_id=clinic.id, id=new_id(), name=n, duration_minutes=m, colour=c, billable_item=b,
                             active=True) for n, m, c, b in TYPES]
    db.add_all(types)
    for key, weekdays, starts, ends, minutes, room in sessions:
        for weekday in weekdays:
            db.add(DoctorSession(clinic_id=clinic.id, id=new_id(), doctor_id=doctors[key], weekday=weekday,
                                 starts=_t(starts), ends=_t(ends), slot_minutes=minutes, room=room, updated_by=desk))
    first_doctor = next(iter(doctors.values()))
    leave_day = services.today(clinic) + timedelta(days=9)
    db.add(SessionException(clinic_id=clinic.id, id=new_id(), doctor_id=first_doctor, kind=ExceptionKind.LEAVE,
                            first_day=leave_day, last_day=leave_day, note="Conference", created_by=desk))
    db.flush()
    return _seed_week(db, clinic, list(doctors.values()), types, patients, desk, rng)


def _seed_week(db: Session, clinic: Clinic, doctor_ids: list[uuid.UUID], types: list[AppointmentType],
               patients: list[uuid.UUID], desk: uuid.UUID, rng: random.Random) -> int:
    today = services.today(clinic)
    days = [today + timedelta(days=offset) for offset in range(-2, 5)]
    available = services.availability(db, clinic, days, doctor_ids)
    now = utcnow()
    count = 0
    for day in days:
        for doctor_id in doctor_ids:
            taken_until = None
            for slot in available[(doctor_id, day)].slots():
                if (taken_until and slot.starts < taken_until) or rng.random() > 0.55:
                    continue
                type_ = rng.choice(types[:3]) if rng.random() < 0.85 else rng.choice(types[3:])
                ends = slot.starts + timedelta(minutes=type_.duration_minutes)
                if not available[(doctor_id, day)].contains(slot.starts, ends):
                    continue
                _add(db, clinic, doctor_id, rng.choice(patients), type_, slot.starts, ends, slot.room, desk, now, rng)
                taken_until = ends
                count += 1
    _start_queue(db, clinic, today, desk)
    return count


def _add(db: Session, clinic: Clinic, doctor_id, patient_id, type_, starts: datetime, ends: datetime, room,
         desk: uuid.UUID, now: datetime, rng: random.Random) -> None:
    ring = keyring(db, clinic.id)
    booked_at = min(now, starts) - timedelta(days=rng.randint(1, 6), minutes=rng.randint(0, 600))
    a = Appointment(clinic_id=clinic.id, id=new_id(), patient_id=patient_id, doctor_id=doctor_id, type_id=type_.id,
                    walk_in=False, day=starts.date(), starts_at=starts, ends_at=ends, status=Status.BOOKED, room=room,
                    overbooked=False, key_version=ring.active.version, version=1, created_at=booked_at,
                    created_by=desk, updated_at=booked_at, updated_by=desk)
    a.reason_enc = ring.seal("appointment", "reason", a.id, rng.choice(REASONS))
    db.add(a)
    db.flush()
    add_history(db, a, "booked", desk, before=None, at=booked_at)
    if rng.random() < 0.5:
        _step(db, a, "confirm", Status.CONFIRMED, desk, at=booked_at + timedelta(hours=2))
    if ends <= now:  # over: most came, some did not, a few cancelled beforehand
        roll = rng.random()
        if roll < 0.08:
            _step(db, a, "no_show", Status.NO_SHOW, desk, at=ends)
        elif roll < 0.14:
            _step(db, a, "cancel", Status.CANCELLED, desk, "patient travelling", at=starts - timedelta(hours=20))
        else:
            a.token = next_number(db, clinic.id, f"token:{a.day.isoformat()}")
            a.arrived_at, a.started_at, a.finished_at = starts - timedelta(minutes=10), starts, ends
            for action, status, at in (("check_in", Status.ARRIVED, a.arrived_at),
                                       ("start", Status.IN_CONSULTATION, starts), ("complete", Status.COMPLETED, ends)):
                _step(db, a, action, status, desk, at=at)
    db.flush()


def _step(db: Session, a: Appointment, action: str, status: Status, by: uuid.UUID, detail: str | None = None,
          at: datetime | None = None):
    before, a.status = a.status, status
    a.version += 1
    add_history(db, a, action, by, before=before, detail=detail, at=at)


def _start_queue(db: Session, clinic: Clinic, today: date, desk: uuid.UUID) -> None:
    """Each doctor's next two patients today have arrived, so every queue (and each doctor's own) has
    someone waiting to be called in."""
    now = utcnow()
    upcoming = [a for a in services.day_appointments(db, clinic.id, today)
                if a.status in (Status.BOOKED, Status.CONFIRMED) and a.starts_at and a.starts_at > now]
    per_doctor: dict = {}
    for a in sorted(upcoming, key=lambda a: a.starts_at):
        per_doctor.setdefault(a.doctor_id, []).append(a)
    for a in sorted((a for queue in per_doctor.values() for a in queue[:2]), key=lambda a: a.starts_at):
        a.token = next_number(db, clinic.id, f"token:{today.isoformat()}")
        a.arrived_at = now - timedelta(minutes=5)
        _step(db, a, "check_in", Status.ARRIVED, desk)
    db.flush()
