"""The bench clinics: eight clinics in eight states, their staff, opening hours, appointment types, doctors'
weekly sessions, leave and closures. Created through the app's own models and runtime role (row-level
security on), as the demo seed does; the bulk rows (patients, appointments) come after, by COPY.

Every account signs in with the bench password and a TOTP secret derived from the master key, so the
benchmark can sign in again on a reused database without any file besides the master key.
"""

import base64
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, seal_totp_secret
from app.clinics.models import Clinic, Membership
from app.clinics.states import gstin_check_char
from app.db import set_tenant
from app.scheduling import slots as sl
from app.scheduling.models import (
    AppointmentType,
    ClinicDay,
    ClinicHours,
    DoctorSession,
    ExceptionKind,
    SessionException,
)
from app.security.crypto import master_key
from app.security.fields import keyring
from bench.names import Place, staff_name

TZ = "Asia/Kolkata"
DOMAIN = "bench.clinicdesk.in"
DESKS_OF_BIG_CLINIC = 16


@dataclass(frozen=True)
class Spec:
    key: str
    name: str
    address_line: str
    place: Place
    doctors: int
    load: float  # appointments per doctor on a full working day, before scaling to the asked size
    slot_choices: tuple[int, ...]
    sunday: bool = False
    desks: int = 2


SPECS = [
    Spec("jayanagar", "Jayanagar Multispeciality Clinic", "22, 11th Main Road, Jayanagar 4th Block",
         Place("ka", "Bengaluru", "5600", "29"), 20, 20, (10, 15, 15, 20), desks=DESKS_OF_BIG_CLINIC),
    Spec("kothrud", "Kothrud Family Health Centre", "45, Karve Road, near Kothrud Depot",
         Place("mh", "Pune", "4110", "27"), 14, 30, (10, 10, 15), sunday=True),
    Spec("mylapore", "Mylapore Health Clinic", "8, Luz Church Road, Mylapore", Place("tn", "Chennai", "6000", "33"),
         12, 30, (10, 10, 15)),
    Spec("banjara", "Banjara Hills Polyclinic", "Road No. 12, Banjara Hills", Place("ts", "Hyderabad", "5000", "36"),
         12, 28, (10, 15)),
    Spec("lajpat", "Lajpat Nagar Medical Centre", "A-14, Ring Road, Lajpat Nagar IV",
         Place("dl", "New Delhi", "1100", "07"), 10, 30, (10, 10, 15), sunday=True),
    Spec("edappally", "Edappally Family Clinic", "NH 66, near Edappally Church", Place("kl", "Kochi", "6820", "32"),
         8, 26, (10, 15)),
    Spec("saltlake", "Salt Lake City Clinic", "CF-231, Sector I, Salt Lake", Place("wb", "Kolkata", "7000", "19"),
         7, 28, (10, 15)),
    Spec("navrangpura", "Navrangpura Care Clinic", "3, Swastik Char Rasta, Navrangpura",
         Place("gj", "Ahmedabad", "3800", "24"), 7, 28, (10, 15), sunday=True),
]
# (name, minutes, colour, billable item): a 1-slot and a 2-slot type exists for every slot length.
TYPES = [("Follow-up", 10, "blue", None), ("Vaccination", 10, "green", "Vaccine administration"),
         ("Consultation", 15, "teal", "Consultation fee"), ("New patient", 20, "indigo", "Consultation fee"),
         ("Procedure", 30, "purple", "Minor procedure"), ("Health check", 40, "amber", "Health check package")]
WEEK_HOURS = {weekday: (time(8), time(21)) for weekday in range(6)}
SUNDAY_HOURS = {6: (time(9), time(13))}


@dataclass
class Doctor:
    id: uuid.UUID
    sessions: list[sl.WeeklySession]
    leaves: list[sl.Leave] = field(default_factory=list)


@dataclass
class ClinicPlan:
    """One clinic as the generator needs it: ids, hours, doctors and their availability, types."""

    index: int
    id: uuid.UUID
    spec: Spec
    hours: dict[int, tuple[time, time]]
    closures: dict[date, sl.Override]
    doctors: list[Doctor]
    desks: list[uuid.UUID]
    types: dict[int, list[uuid.UUID]]  # minutes -> type ids
    patients: int = 0

    def doctor_day(self, doctor: Doctor, day: date) -> sl.DoctorDay:
        status = sl.clinic_day(day, self.hours, self.closures.get(day), self.spec.place.state_code)
        return sl.doctor_day(day, TZ, status, doctor.sessions, doctor.leaves, [])


def uuid7(ms: int, rng: random.Random | int) -> uuid.UUID:
    """A UUIDv7 for a moment (like app.db.new_id, but at a given time), its 74 random bits from a seeded
    generator (or given)."""
    rand = rng if isinstance(rng, int) else rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def email(kind: str, spec: Spec, number: int | None = None) -> str:
    return f"{kind}{number:02d}.{spec.key}@{DOMAIN}" if number else f"{kind}.{spec.key}@{DOMAIN}"


def password() -> str:
    """Every bench account's password (derived from the master key; needs an app context)."""
    return "bench-" + master_key().keyed_hash("bench-password", DOMAIN)[:20]


def totp_secret(address: str) -> str:
    """A bench account's TOTP secret (derived from the master key; needs an app context)."""
    raw = bytes.fromhex(master_key().keyed_hash("bench-totp", address))[:20]
    return base64.b32encode(raw).decode()


def _gstin(rng: random.Random, state_code: str) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pan = "".join(rng.choice(letters) for _ in range(5)) + f"{rng.randrange(10000):04d}" + rng.choice(letters)
    first14 = f"{state_code}{pan}1Z"
    return first14 + gstin_check_char(first14)


def _sessions(rng: random.Random, spec: Spec, big: bool) -> list[sl.WeeklySession]:
    minutes = rng.choice(spec.slot_choices)
    room = f"Room {rng.randint(1, 12)}"
    morning = rng.choice((time(9), time(9, 30), time(10)))
    evening = rng.choice((time(16), time(17), time(17, 30)))
    evening_days = range(6) if big else sorted(rng.sample(range(6), rng.randint(3, 6)))
    out = [sl.WeeklySession(w, morning, _plus(morning, 240), minutes, room) for w in range(6)]
    out += [sl.WeeklySession(w, evening, _plus(evening, 210), minutes, room) for w in evening_days]
    if spec.sunday and rng.random() < 0.3:
        out.append(sl.WeeklySession(6, time(9, 30), time(12, 30), minutes, room))
    return out


def _leaves(rng: random.Random, first: date, last: date, keep_free: date | None) -> list[sl.Leave]:
    """Two or three spells of leave a year and now and then an afternoon off."""
    leaves, day = [], first
    while day < last:
        day += timedelta(days=rng.randint(60, 200))
        span = rng.randint(0, 4)
        if keep_free is None or not day <= keep_free <= day + timedelta(days=span):
            if rng.random() < 0.25:
                leaves.append(sl.Leave(day, day, time(16), time(21)))
            else:
                leaves.append(sl.Leave(day, day + timedelta(days=span)))
    return [leave for leave in leaves if leave.first_day <= last]


def _add_person(db: Session, clinic: Clinic, address: str, name: str, role: Role, password_hash: str,
                rng: random.Random, ms: int) -> uuid.UUID:
    user = StaffUser(id=uuid7(ms, rng), email=address, full_name=name, password_hash=password_hash)
    user.totp_secret_enc = seal_totp_secret(user, totp_secret(address))
    user.mfa_enrolled_at = user.password_changed_at = user.created_at = _at(ms)
    db.add(user)
    db.flush()
    db.add(Membership(clinic_id=clinic.id, user_id=user.id, role=role))
    return user.id


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _plus(moment: time, minutes: int) -> time:
    return (datetime.combine(date.min, moment) + timedelta(minutes=minutes)).time()


def create(db: Session, rng: random.Random, *, first: date, last: date, bench_day: date, ms: int) -> list[ClinicPlan]:
    """Create every clinic with its staff and schedule set-up; returns the plans the generator fills."""
    password_hash = hash_password(password())  # one argon2 hash for every bench account: set-up stays fast
    plans = []
    for index, spec in enumerate(SPECS):
        big = index == 0
        clinic = Clinic(id=uuid7(ms, rng), name=spec.name, legal_name=f"{spec.name} LLP",
                        address_line=spec.address_line, city=spec.place.city, pin_code=f"{spec.place.pin_prefix}11",
                        state_code=spec.place.state_code, gstin=_gstin(rng, spec.place.state_code), timezone=TZ)
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        db.add(clinic)
        db.flush()
        keyring(db, clinic.id)  # the clinic's first data key, made the way the app makes it
        _add_person(db, clinic, email("admin", spec), staff_name(rng, spec.place.region, doctor=False)[0],
                    Role.ADMIN, password_hash, rng, ms)
        desks = [_add_person(db, clinic, email("desk", spec, n), staff_name(rng, spec.place.region, doctor=False)[0],
                             Role.RECEPTION, password_hash, rng, ms) for n in range(1, spec.desks + 1)]
        doctors = []
        for n in range(1, spec.doctors + 1):
            doctor_id = _add_person(db, clinic, email("doctor", spec, n),
                                    staff_name(rng, spec.place.region, doctor=True)[0], Role.DOCTOR, password_hash,
                                    rng, ms)
            doctors.append(Doctor(doctor_id, _sessions(rng, spec, big),
                                  _leaves(rng, first, last, bench_day if big else None)))
        plan = ClinicPlan(index, clinic.id, spec, WEEK_HOURS | (SUNDAY_HOURS if spec.sunday else {}),
                          _closures(rng, first, last, bench_day), doctors, desks, {})
        _write_schedule(db, plan, desks[0], rng, ms)
        plans.append(plan)
    db.flush()
    return plans


def _closures(rng: random.Random, first: date, last: date, bench_day: date) -> dict[date, sl.Override]:
    span = max((last - first).days, 1)
    days = {first + timedelta(days=rng.randrange(span)) for _ in range(span // 365)}
    return {day: sl.Override(False, "Closed for annual maintenance") for day in days if day != bench_day}


def _write_schedule(db: Session, plan: ClinicPlan, desk: uuid.UUID, rng: random.Random, ms: int) -> None:
    cid = plan.id
    db.add_all(ClinicHours(clinic_id=cid, weekday=w, opens=o, closes=c) for w, (o, c) in plan.hours.items())
    db.add_all(ClinicDay(clinic_id=cid, day=d, is_open=o.is_open, note=o.note, created_by=desk, created_at=_at(ms))
               for d, o in plan.closures.items())
    for name, minutes, colour, item in TYPES:
        type_id = uuid7(ms, rng)
        plan.types.setdefault(minutes, []).append(type_id)
        db.add(AppointmentType(clinic_id=cid, id=type_id, name=name, duration_minutes=minutes, colour=colour,
                               billable_item=item, active=True, created_at=_at(ms)))
    for doctor in plan.doctors:
        db.add_all(DoctorSession(clinic_id=cid, id=uuid7(ms, rng), doctor_id=doctor.id, weekday=s.weekday,
                                 starts=s.starts, ends=s.ends, slot_minutes=s.slot_minutes, room=s.room,
                                 updated_at=_at(ms), updated_by=desk) for s in doctor.sessions)
        db.add_all(SessionException(clinic_id=cid, id=uuid7(ms, rng), doctor_id=doctor.id, kind=ExceptionKind.LEAVE,
                                    first_day=leave.first_day, last_day=leave.last_day, starts=leave.starts,
                                    ends=leave.ends, note="Leave", created_by=desk, created_at=_at(ms))
                   for leave in doctor.leaves)
    db.flush()
