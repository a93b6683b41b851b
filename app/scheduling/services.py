"""Reading the schedule: clinic days, doctors' availability, the day board, the week view, the queue.

Every function takes the clinic and loads what it needs in a fixed number of queries, whatever the
number of doctors or appointments (the board of a busy clinic is one screen, not one query per slot).
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.clinics.models import Clinic, Membership
from app.db import utcnow
from app.patients.services import PatientLabel, labels_of, staff_names  # noqa: F401 (re-exported)
from app.scheduling import slots as sl
from app.scheduling.models import (
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


def doctors(db: Session, clinic_id: uuid.UUID, *, include_disabled: bool = False) -> list[Doctor]:
    """The clinic's doctors (active accounts unless asked), by name."""
    query = (select(StaffUser.id, StaffUser.full_name).join(Membership, Membership.user_id == StaffUser.id)
             .where(Membership.clinic_id == clinic_id, Membership.role == Role.DOCTOR).order_by(StaffUser.full_name))
    if not include_disabled:
        query = query.where(StaffUser.disabled_at.is_(None))
    return [Doctor(i, n) for i, n in db.execute(query)]


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


def board_stamp(db: Session, clinic: Clinic, day: date) -> str:
    """Changes whenever the board would: an appointment of the day changed, or a 5-minute step passed
    (slots move into the past). Polling desks get 204 while it stays the same."""
    count, latest = db.execute(select(func.count(), func.max(Appointment.updated_at))
                               .where(Appointment.clinic_id == clinic.id, Appointment.day == day)).one()
    step = int(utcnow().timestamp() // 300)
    return f"{count}.{latest.timestamp() if latest else 0}.{step}"


def _cards(db: Session, clinic: Clinic, appointments: list[Appointment]) -> list[Card]:
    labels = labels_of(db, clinic.id, {a.patient_id for a in appointments})
    types = {t.id: t for t in appointment_types(db, clinic.id, active_only=False)}
    return [Card(a, labels[a.patient_id], types.get(a.type_id)) for a in appointments]


def day_appointments(db: Session, clinic_id: uuid.UUID, day: date, doctor_ids=None) -> list[Appointment]:
    query = select(Appointment).where(Appointment.clinic_id == clinic_id, Appointment.day == day)
    if doctor_ids is not None:
        query = query.where(Appointment.doctor_id.in_(doctor_ids))
    return list(db.scalars(query.order_by(Appointment.starts_at.nulls_first(), Appointment.token)))


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
    for slot in day.slots():
        if not any(c.appointment.starts_at < slot.ends and slot.starts < c.appointment.ends_at
                   for c in held if not c.appointment.walk_in):
            column.rows.append(Row(slot.starts, slot=slot, past=slot.starts < now))
    column.rows.sort(key=lambda r: (r.starts, r.card is None))
    return column


def board(db: Session, clinic: Clinic, day: date, doctor_ids: list[uuid.UUID] | None = None) -> Board:
    """The day board: a column per doctor working that day (or with appointments that day)."""
    status = clinic_days(db, clinic, [day])
    all_doctors = doctors(db, clinic.id, include_disabled=True)
    if doctor_ids is not None:
        all_doctors = [d for d in all_doctors if d.id in doctor_ids]
    days = availability(db, clinic, [day], [d.id for d in all_doctors], status)
    cards = _cards(db, clinic, day_appointments(db, clinic.id, day, doctor_ids))
    by_doctor = defaultdict(list)
    for card in cards:
        by_doctor[card.appointment.doctor_id].append(card)
    now = utcnow()
    columns = [_column(d, days[(d.id, day)], by_doctor[d.id], now) for d in all_doctors
               if days[(d.id, day)].blocks or by_doctor[d.id]]
    return Board(day, status[day], columns, board_stamp(db, clinic, day), [c.appointment.patient_id for c in cards])


def week(db: Session, clinic: Clinic, doctor: Doctor, day: date) -> tuple[list[date], dict[date, Column], list]:
    """One doctor's week (Monday to Sunday around `day`): a column per day, and the patients shown."""
    monday = day - timedelta(days=day.weekday())
    days = [monday + timedelta(days=i) for i in range(7)]
    statuses = clinic_days(db, clinic, days)
    avail = availability(db, clinic, days, [doctor.id], statuses)
    appointments = db.scalars(select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.doctor_id == doctor.id,
        Appointment.day.between(days[0], days[-1])).order_by(Appointment.starts_at.nulls_first(), Appointment.token))
    cards = _cards(db, clinic, list(appointments))
    now = utcnow()
    columns = {d: _column(doctor, avail[(doctor.id, d)], [c for c in cards if c.appointment.day == d], now)
               for d in days}
    return days, columns, statuses, [c.appointment.patient_id for c in cards]


# --- The queue --------------------------------------------------------------------------------------

@dataclass
class Queue:
    doctor: Doctor
    waiting: list[Card] = field(default_factory=list)
    current: list[Card] = field(default_factory=list)
    done: list[Card] = field(default_factory=list)


QUEUE_STATUSES = (Status.ARRIVED, Status.IN_CONSULTATION, Status.COMPLETED)


def queues(db: Session, clinic: Clinic, day: date, doctor_ids: list[uuid.UUID] | None = None) -> list[Queue]:
    """Per doctor: waiting (by token), in consultation, done, for the day."""
    query = select(Appointment).where(Appointment.clinic_id == clinic.id, Appointment.day == day,
                                      Appointment.status.in_(QUEUE_STATUSES))
    if doctor_ids is not None:
        query = query.where(Appointment.doctor_id.in_(doctor_ids))
    cards = _cards(db, clinic, list(db.scalars(query.order_by(Appointment.token))))
    result = {d.id: Queue(d) for d in doctors(db, clinic.id, include_disabled=True)
              if doctor_ids is None or d.id in doctor_ids}
    for card in cards:
        queue = result[card.appointment.doctor_id]
        {Status.ARRIVED: queue.waiting, Status.IN_CONSULTATION: queue.current,
         Status.COMPLETED: queue.done}[card.appointment.status].append(card)
    for queue in result.values():
        queue.done.sort(key=lambda c: c.appointment.finished_at or c.appointment.updated_at, reverse=True)
    return [q for q in result.values() if doctor_ids is not None or q.waiting or q.current or q.done]


def queue_stamp(db: Session, clinic: Clinic, day: date) -> str:
    """Changes when the queue does, and every minute (the minutes waited move on)."""
    count, latest = db.execute(select(func.count(), func.max(Appointment.updated_at)).where(
        Appointment.clinic_id == clinic.id, Appointment.day == day, Appointment.status.in_(QUEUE_STATUSES))).one()
    return f"{count}.{latest.timestamp() if latest else 0}.{int(utcnow().timestamp() // 60)}"


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


def upcoming_outside_availability(db: Session, clinic: Clinic, doctor_ids: list[uuid.UUID] | None = None,
                                  *, horizon_days: int = 400) -> list[Appointment]:
    """Future appointments that no longer fall inside their doctor's availability (none hidden)."""
    now = utcnow()
    query = select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.starts_at >= now,
        Appointment.starts_at < now + timedelta(days=horizon_days),
        Appointment.status.in_((Status.BOOKED, Status.CONFIRMED)), Appointment.overbooked.is_(False))
    if doctor_ids is not None:
        query = query.where(Appointment.doctor_id.in_(doctor_ids))
    appointments = list(db.scalars(query.order_by(Appointment.starts_at)))
    if not appointments:
        return []
    days = sorted({a.day for a in appointments})
    doctor_set = sorted({a.doctor_id for a in appointments})
    avail = {}
    # A day range per query keeps it to a few queries, not one per day.
    for first in range(0, len(days), 62):
        chunk = days[first:first + 62]
        span = [chunk[0] + timedelta(days=i) for i in range((chunk[-1] - chunk[0]).days + 1)]
        avail.update(availability(db, clinic, span, doctor_set))
    return [a for a in appointments if not avail[(a.doctor_id, a.day)].contains(a.starts_at, a.ends_at)]



def labels_of_one(db: Session, appointment: Appointment) -> PatientLabel:
    return labels_of(db, appointment.clinic_id, [appointment.patient_id])[appointment.patient_id]


def type_of(db: Session, appointment: Appointment) -> AppointmentType | None:
    return db.get(AppointmentType, (appointment.clinic_id, appointment.type_id)) if appointment.type_id else None
