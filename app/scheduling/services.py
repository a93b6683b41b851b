"""Reading the schedule: clinic days, doctors' availability, the day board, the week view, the queue.

Every function takes the clinic and loads what it needs in a fixed number of queries, whatever the
number of doctors or appointments (the board of a busy clinic is one screen, not one query per slot).
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.clinics.models import Clinic, Membership
from app.db import utcnow
from app.patients.services import PatientLabel, labels_of, staff_names
from app.scheduling import slots as sl
from app.scheduling.models import (
    HOLDS_SLOT,
    Appointment,
    AppointmentType,
    ClinicDay,
    ClinicHours,
    DoctorSession,
    ExceptionKind,
    SessionException,
    Status,
)
from app.security.fields import keyring


def zone(clinic: Clinic) -> ZoneInfo:
    return ZoneInfo(clinic.timezone)


def today(clinic: Clinic) -> date:
    """Today's date where the clinic is."""
    return utcnow().astimezone(zone(clinic)).date()


def local_day(clinic: Clinic, moment: datetime) -> date:
    return moment.astimezone(zone(clinic)).date()


# --- Clinic days and availability -----------------------------------------------------------------

def weekly_hours(db: Session, clinic_id: uuid.UUID) -> dict[int, tuple[time, time]]:
    rows = db.scalars(select(ClinicHours).where(ClinicHours.clinic_id == clinic_id))
    return {r.weekday: (r.opens, r.closes) for r in rows}


def clinic_days(db: Session, clinic: Clinic, days: list[date]) -> dict[date, sl.ClinicDayStatus]:
    """Open or closed, and why, for each of `days` (two queries)."""
    hours = weekly_hours(db, clinic.id)
    overrides = {o.day: sl.Override(o.is_open, o.note) for o in db.scalars(
        select(ClinicDay).where(ClinicDay.clinic_id == clinic.id, ClinicDay.day.between(min(days), max(days))))}
    return {d: sl.clinic_day(d, hours, overrides.get(d), clinic.state_code) for d in days}


@dataclass(frozen=True)
class Doctor:
    id: uuid.UUID
    name: str
    active: bool = True  # False: the account is disabled, or no longer a doctor here (appointments stay)


def doctors(db: Session, clinic_id: uuid.UUID, *, include_disabled: bool = False) -> list[Doctor]:
    """The clinic's doctors (active accounts unless asked), by name."""
    query = (select(StaffUser.id, StaffUser.full_name, StaffUser.disabled_at.is_(None))
             .join(Membership, Membership.user_id == StaffUser.id)
             .where(Membership.clinic_id == clinic_id, Membership.role == Role.DOCTOR).order_by(StaffUser.full_name))
    if not include_disabled:
        query = query.where(StaffUser.disabled_at.is_(None))
    return [Doctor(i, n, active) for i, n, active in db.execute(query)]


def find_doctor(db: Session, clinic_id: uuid.UUID, doctor_id: uuid.UUID | None) -> Doctor | None:
    """One of the clinic's doctors, or someone who was (their appointments stay reachable); else None."""
    if doctor_id is None:
        return None
    found = next((d for d in doctors(db, clinic_id, include_disabled=True) if d.id == doctor_id), None)
    if found is None and db.scalar(select(Appointment.id).where(Appointment.clinic_id == clinic_id,
                                                                Appointment.doctor_id == doctor_id).limit(1)):
        found = Doctor(doctor_id, staff_names(db, {doctor_id}).get(doctor_id, "Former doctor"), active=False)
    return found


def _and_former_doctors(db: Session, known: list[Doctor], appointments: list[Appointment]) -> list[Doctor]:
    """`known` plus whoever holds some of `appointments` without being one of the clinic's doctors any
    more (a changed role): their appointments must not vanish from the board or the queue."""
    missing = {a.doctor_id for a in appointments} - {d.id for d in known}
    names = staff_names(db, missing)
    return known + sorted((Doctor(i, names.get(i, "Former doctor"), active=False) for i in missing),
                          key=lambda d: d.name)


def availability(db: Session, clinic: Clinic, days: list[date], doctor_ids: list[uuid.UUID],
                 statuses: dict[date, sl.ClinicDayStatus] | None = None) -> dict[tuple[uuid.UUID, date], sl.DoctorDay]:
    """Each doctor's bookable blocks on each day (three queries for any number of days and doctors)."""
    statuses = statuses or clinic_days(db, clinic, days)
    sessions = defaultdict(list)
    for s in db.scalars(select(DoctorSession).where(DoctorSession.clinic_id == clinic.id,
                                                    DoctorSession.doctor_id.in_(doctor_ids))):
        sessions[s.doctor_id].append(sl.WeeklySession(s.weekday, s.starts, s.ends, s.slot_minutes, s.room))
    leaves, extras = defaultdict(list), defaultdict(list)
    for e in db.scalars(select(SessionException).where(
            SessionException.clinic_id == clinic.id, SessionException.doctor_id.in_(doctor_ids),
            SessionException.first_day <= max(days), SessionException.last_day >= min(days))):
        if e.kind == ExceptionKind.LEAVE:
            leaves[e.doctor_id].append(sl.Leave(e.first_day, e.last_day, e.starts, e.ends))
        else:
            extras[(e.doctor_id, e.first_day)].append(
                sl.WeeklySession(e.first_day.weekday(), e.starts, e.ends, e.slot_minutes, e.room))
    return {(doc, d): sl.doctor_day(d, clinic.timezone, statuses[d], sessions[doc], leaves[doc], extras[(doc, d)])
            for doc in doctor_ids for d in days}


def doctor_day(db: Session, clinic: Clinic, doctor_id: uuid.UUID, day: date) -> sl.DoctorDay:
    return availability(db, clinic, [day], [doctor_id])[(doctor_id, day)]


# --- The day board ----------------------------------------------------------------------------------

@dataclass
class Card:
    """An appointment as the board shows it."""

    appointment: Appointment
    patient: PatientLabel
    type: AppointmentType | None
    outside: bool = False  # not inside the doctor's availability (hours changed after booking, or overbooked)


@dataclass
class Row:
    """One line of a doctor's column: a free slot, or an appointment."""

    starts: datetime
    slot: sl.Slot | None = None
    card: Card | None = None
    past: bool = False


@dataclass
class Column:
    doctor: Doctor
    day: sl.DoctorDay
    rows: list[Row] = field(default_factory=list)
    walk_ins: list[Card] = field(default_factory=list)
    not_held: list[Card] = field(default_factory=list)  # cancelled, no-show, moved

    @property
    def free(self) -> int:
        return sum(1 for r in self.rows if r.slot and not r.past)

    @property
    def cards(self) -> list[Card]:
        """Every appointment in the column: walk-ins, booked ones in time order, then those not held."""
        return self.walk_ins + [r.card for r in self.rows if r.card] + self.not_held


@dataclass
class Board:
    day: date
    status: sl.ClinicDayStatus
    columns: list[Column]
    stamp: str
    patient_ids: list[uuid.UUID]


def appointment_types(db: Session, clinic_id: uuid.UUID, *, active_only: bool = True) -> list[AppointmentType]:
    query = select(AppointmentType).where(AppointmentType.clinic_id == clinic_id).order_by(AppointmentType.name)
    if active_only:
        query = query.where(AppointmentType.active)
    return list(db.scalars(query))


# Whatever the day board shows besides appointments: the clinic's hours and overrides for the day, the
# doctors' sessions for its weekday and their leave and extra sessions covering it (rows as text, hashed).
_AVAILABILITY_DIGEST = text(
    "SELECT md5(concat_ws('|',"
    " (SELECT string_agg(h::text, ',') FROM clinic_hours h WHERE h.clinic_id = :c AND h.weekday = :w),"
    " (SELECT string_agg(o::text, ',') FROM clinic_day o WHERE o.clinic_id = :c AND o.day = :d),"
    " (SELECT string_agg(s::text, ',' ORDER BY s.id) FROM doctor_session s WHERE s.clinic_id = :c AND s.weekday = :w),"
    " (SELECT string_agg(e::text, ',' ORDER BY e.id) FROM doctor_exception e"
    "   WHERE e.clinic_id = :c AND :d BETWEEN e.first_day AND e.last_day)))")


def board_stamp(db: Session, clinic: Clinic, day: date) -> str:
    """Changes whenever the board would: an appointment of the day changed, the day's availability
    changed (hours, closure, sessions, leave), or a 5-minute step passed (slots move into the past).
    Polling desks get 204 while it stays the same."""
    changes = _changes(db, clinic, day)
    availability_digest = db.scalar(_AVAILABILITY_DIGEST, {"c": clinic.id, "d": day, "w": day.weekday()})
    step = int(utcnow().timestamp() // 300)
    return f"{changes}.{availability_digest[:12]}.{step}"


def _changes(db: Session, clinic: Clinic, day: date) -> str:
    """The day's appointments: how many, and the sum of their versions (every committed change raises one;
    the latest `updated_at` alone can miss a change whose clock was earlier but whose commit was later)."""
    count, versions = db.execute(select(func.count(), func.coalesce(func.sum(Appointment.version), 0))
                                 .where(Appointment.clinic_id == clinic.id, Appointment.day == day)).one()
    return f"{count}.{versions}"


def _shown(cards: list[Card]) -> list[uuid.UUID]:
    """The patients on these cards, each once, in the order shown (for the page's audit record)."""
    return list(dict.fromkeys(c.appointment.patient_id for c in cards))


def _cards(db: Session, clinic: Clinic, appointments: list[Appointment], contact_only: bool) -> list[Card]:
    labels = labels_of(db, clinic.id, {a.patient_id for a in appointments}, contact_only=contact_only)
    types = {t.id: t for t in appointment_types(db, clinic.id, active_only=False)}
    return [Card(a, labels[a.patient_id], types.get(a.type_id)) for a in appointments]


def day_appointments(db: Session, clinic_id: uuid.UUID, day: date, doctor_ids=None) -> list[Appointment]:
    query = select(Appointment).where(Appointment.clinic_id == clinic_id, Appointment.day == day)
    if doctor_ids is not None:
        query = query.where(Appointment.doctor_id.in_(doctor_ids))
    return list(db.scalars(query.order_by(Appointment.starts_at.nulls_first(), Appointment.token)))


def _merged(spans: list[tuple[datetime, datetime]]) -> list[list[datetime]]:
    """Sorted time spans with the overlapping ones joined."""
    merged: list[list[datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _column(doctor: Doctor, day: sl.DoctorDay, cards: list[Card], now: datetime) -> Column:
    column = Column(doctor, day)
    held = [c for c in cards if c.appointment.holds_slot]
    for card in cards:
        a = card.appointment
        if a.walk_in and a.status not in (Status.CANCELLED,):
            column.walk_ins.append(card)
        elif not a.holds_slot:
            column.not_held.append(card)
        else:
            card.outside = a.overbooked or not day.contains(a.starts_at, a.ends_at)
            column.rows.append(Row(a.starts_at, card=card, past=a.ends_at <= now))
    # One sweep over the merged busy times, not every slot against every appointment.
    busy = _merged(sorted((c.appointment.starts_at, c.appointment.ends_at) for c in held if not c.appointment.walk_in))
    at = 0
    for slot in sorted(day.slots(), key=lambda s: s.starts):
        while at < len(busy) and busy[at][1] <= slot.starts:
            at += 1
        if at == len(busy) or slot.ends <= busy[at][0]:
            column.rows.append(Row(slot.starts, slot=slot, past=slot.starts < now))
    column.rows.sort(key=lambda r: (r.starts, r.card is None))
    return column


def board(db: Session, clinic: Clinic, day: date, doctor_ids: list[uuid.UUID] | None = None, *,
          contact_only: bool = False) -> Board:
    """The day board: a column per doctor working that day (or with appointments that day). A doctor
    whose account is disabled keeps their appointments on the board but offers no free slot."""
    # The stamp first: a change committed while the board is read makes the next poll fetch it again.
    stamp = board_stamp(db, clinic, day)
    status = clinic_days(db, clinic, [day])
    appointments = day_appointments(db, clinic.id, day, doctor_ids)
    all_doctors = _and_former_doctors(db, doctors(db, clinic.id, include_disabled=True), appointments)
    if doctor_ids is not None:
        all_doctors = [d for d in all_doctors if d.id in doctor_ids]
    days = availability(db, clinic, [day], [d.id for d in all_doctors if d.active], status)
    cards = _cards(db, clinic, appointments, contact_only)
    by_doctor = defaultdict(list)
    for card in cards:
        by_doctor[card.appointment.doctor_id].append(card)
    now = utcnow()
    working = {d.id: days.get((d.id, day)) or sl.DoctorDay() for d in all_doctors}
    columns = [_column(d, working[d.id], by_doctor[d.id], now) for d in all_doctors
               if working[d.id].blocks or by_doctor[d.id]]
    return Board(day, status[day], columns, stamp, _shown([card for column in columns for card in column.cards]))


def week(db: Session, clinic: Clinic, doctor: Doctor, day: date, *,
         contact_only: bool = False) -> tuple[list[date], dict[date, Column], list]:
    """One doctor's week (Monday to Sunday around `day`): a column per day, and the patients shown."""
    monday = day - timedelta(days=day.weekday())
    days = [monday + timedelta(days=i) for i in range(7)]
    statuses = clinic_days(db, clinic, days)
    avail = availability(db, clinic, days, [doctor.id], statuses)
    appointments = db.scalars(select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.doctor_id == doctor.id,
        Appointment.day.between(days[0], days[-1])).order_by(Appointment.starts_at.nulls_first(), Appointment.token))
    cards = _cards(db, clinic, list(appointments), contact_only)
    now = utcnow()
    columns = {d: _column(doctor, avail[(doctor.id, d)] if doctor.active else sl.DoctorDay(),
                          [c for c in cards if c.appointment.day == d], now) for d in days}
    return days, columns, statuses, _shown(cards)


# --- The queue --------------------------------------------------------------------------------------

@dataclass
class Queue:
    doctor: Doctor
    waiting: list[Card] = field(default_factory=list)
    current: list[Card] = field(default_factory=list)
    done: list[Card] = field(default_factory=list)


QUEUE_STATUSES = (Status.ARRIVED, Status.IN_CONSULTATION, Status.COMPLETED)


def queues(db: Session, clinic: Clinic, day: date, doctor_ids: list[uuid.UUID] | None = None, *,
           contact_only: bool = False) -> list[Queue]:
    """Per doctor: waiting (by token), in consultation, done, for the day."""
    query = select(Appointment).where(Appointment.clinic_id == clinic.id, Appointment.day == day,
                                      Appointment.status.in_(QUEUE_STATUSES))
    if doctor_ids is not None:
        query = query.where(Appointment.doctor_id.in_(doctor_ids))
    appointments = list(db.scalars(query.order_by(Appointment.token)))
    cards = _cards(db, clinic, appointments, contact_only)
    result = {d.id: Queue(d) for d in _and_former_doctors(db, doctors(db, clinic.id, include_disabled=True),
                                                          appointments)
              if doctor_ids is None or d.id in doctor_ids}
    for card in cards:
        queue = result[card.appointment.doctor_id]
        {Status.ARRIVED: queue.waiting, Status.IN_CONSULTATION: queue.current,
         Status.COMPLETED: queue.done}[card.appointment.status].append(card)
    for queue in result.values():
        queue.done.sort(key=lambda c: c.appointment.finished_at or c.appointment.updated_at, reverse=True)
    return [q for q in result.values() if doctor_ids is not None or q.waiting or q.current or q.done]


def queue_stamp(db: Session, clinic: Clinic, day: date) -> str:
    """Changes when the day's appointments do, and every minute (the minutes waited move on)."""
    return f"{_changes(db, clinic, day)}.{int(utcnow().timestamp() // 60)}"


# --- One appointment ----------------------------------------------------------------------------------

def reason_of(db: Session, appointment: Appointment) -> str | None:
    ring = keyring(db, appointment.clinic_id)
    return ring.open("appointment", "reason", appointment.id, appointment.reason_enc)


def successor(db: Session, appointment: Appointment) -> Appointment | None:
    """The appointment this one was rescheduled to."""
    return db.scalar(select(Appointment).where(Appointment.clinic_id == appointment.clinic_id,
                                               Appointment.rescheduled_from == appointment.id))


def patient_appointments(db: Session, clinic_id: uuid.UUID, patient_id: uuid.UUID, *, limit: int = 20):
    """A patient's latest appointments (for the patient's page), newest first."""
    return list(db.scalars(select(Appointment).where(Appointment.clinic_id == clinic_id,
                                                     Appointment.patient_id == patient_id)
                           .order_by(Appointment.day.desc(), Appointment.starts_at.desc().nulls_last())
                           .limit(limit)))


def lock_availability(db: Session, clinic_id: uuid.UUID, doctor_id: uuid.UUID | None = None) -> None:
    """Serialise a booking against a change of the availability it is checked against (until commit).

    With a doctor: this doctor's bookings and setup changes wait for each other; without one (opening
    hours, closures), the change waits for every booking in the clinic and they for it.
    """
    clinic_key = func.hashtextextended(f"availability:{clinic_id}", 0)
    if doctor_id is None:
        db.execute(select(func.pg_advisory_xact_lock(clinic_key)))
        return
    db.execute(select(func.pg_advisory_xact_lock_shared(clinic_key)))
    db.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"availability:{clinic_id}:{doctor_id}", 0))))


def upcoming_outside_availability(db: Session, clinic: Clinic,
                                  doctor_ids: list[uuid.UUID] | None = None) -> list[Appointment]:
    """Future appointments that no longer fall inside their doctor's availability (none hidden)."""
    now = utcnow()
    # Only the columns the check needs: a busy clinic has thousands of future bookings.
    query = select(Appointment.id, Appointment.doctor_id, Appointment.day, Appointment.starts_at,
                   Appointment.ends_at).where(
        Appointment.clinic_id == clinic.id, Appointment.starts_at >= now,
        Appointment.status.in_((Status.BOOKED, Status.CONFIRMED)), Appointment.overbooked.is_(False))
    if doctor_ids is not None:
        query = query.where(Appointment.doctor_id.in_(doctor_ids))
    rows = db.execute(query).all()
    if not rows:
        return []
    days = sorted({r.day for r in rows})
    doctor_set = sorted({r.doctor_id for r in rows})
    avail = {}
    # A day range per query keeps it to a few queries, not one per day.
    for first in range(0, len(days), 62):
        chunk = days[first:first + 62]
        span = [chunk[0] + timedelta(days=i) for i in range((chunk[-1] - chunk[0]).days + 1)]
        avail.update(availability(db, clinic, span, doctor_set))
    outside = [r.id for r in rows if not avail[(r.doctor_id, r.day)].contains(r.starts_at, r.ends_at)]
    if not outside:
        return []
    return list(db.scalars(select(Appointment).where(Appointment.clinic_id == clinic.id, Appointment.id.in_(outside))
                           .order_by(Appointment.starts_at)))


def free_slots(db: Session, clinic: Clinic, doctor_id: uuid.UUID, day: date) -> list[sl.Slot]:
    """The doctor's free slots on the day that have not begun (no patient's data is opened)."""
    available = availability(db, clinic, [day], [doctor_id])[(doctor_id, day)]
    held = db.execute(select(Appointment.starts_at, Appointment.ends_at).where(
        Appointment.clinic_id == clinic.id, Appointment.doctor_id == doctor_id, Appointment.day == day,
        Appointment.starts_at.is_not(None), Appointment.status.in_(HOLDS_SLOT))).all()
    busy = _merged(sorted((s, e) for s, e in held))
    now = utcnow()
    return [slot for slot in available.slots()
            if slot.starts >= now and not any(b[0] < slot.ends and slot.starts < b[1] for b in busy)]


def labels_of_one(db: Session, appointment: Appointment, *, contact_only: bool = False) -> PatientLabel:
    return labels_of(db, appointment.clinic_id, [appointment.patient_id],
                     contact_only=contact_only)[appointment.patient_id]


def type_of(db: Session, appointment: Appointment) -> AppointmentType | None:
    return db.get(AppointmentType, (appointment.clinic_id, appointment.type_id)) if appointment.type_id else None
