"""Changing the schedule: book, reschedule, walk-ins, status changes and the queue's "call next".

Each function flushes and leaves the commit to its caller, writes the appointment's history, and
raises `ScheduleError` (a message for the desk) when the change is not allowed. The database refuses
two overlapping appointments of one doctor (exclusion constraint); that refusal becomes `SlotTaken`.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import formats
from app.clinics.models import Clinic
from app.counters import next_number
from app.db import new_id, utcnow
from app.patients.models import Patient
from app.scheduling import services, signals
from app.scheduling import slots as sl
from app.scheduling.models import (
    HOLDS_SLOT,
    NO_OVERLAP_CONSTRAINT,
    Appointment,
    AppointmentEvent,
    AppointmentType,
    Status,
)
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

# No appointment is longer than this (the appointment type's check constraint): an overlap query may
# bound the index range it scans to start times after `starts - LONGEST`.
LONGEST = timedelta(minutes=480)


TAKEN_SINCE = "That time has been booked for someone else since; book a new slot instead."


class ScheduleError(Exception):
    """A change the desk asked for that is not allowed; the message says why, in plain words. One that
    overbooking would get past says so only to a role that may overbook (`for_role`)."""

    overbookable = False

    def for_role(self, can_overbook: bool) -> str:
        return f"{self} Or overbook with a reason." if self.overbookable and can_overbook else str(self)


class NotAvailable(ScheduleError):
    overbookable = True

    def __init__(self):
        super().__init__("The doctor is not available for the whole of that time. Choose a free slot.")


class SlotTaken(ScheduleError):
    overbookable = True

    def __init__(self):
        super().__init__("Someone else has just booked this doctor at this time. Nothing was saved; "
                         "choose another slot.")


class DoesNotFit(SlotTaken):
    """The visit is longer than the free time before the doctor's next appointment."""

    def __init__(self, minutes: int, next_at: str):
        ScheduleError.__init__(self, f"A {minutes}-minute visit does not fit here: the doctor's next appointment "
                               f"starts at {next_at}. Choose another slot or a shorter visit type.")


class MayNotOverbook(ScheduleError):
    def __init__(self):
        super().__init__("Your role may not overbook.")


class OverbookNeedsReason(ScheduleError):
    def __init__(self):
        super().__init__("Say why this patient must be overbooked.")


class PatientBusy(ScheduleError):
    """The patient already has an appointment at that time (`overlaps`): the desk may go ahead once it says so."""

    def __init__(self, overlaps: list):
        super().__init__("The patient already has an appointment at that time.")
        self.overlaps = overlaps


# status -> the statuses it may change to, with the action's name.
TRANSITIONS: dict[Status, dict[str, Status]] = {
    Status.BOOKED: {"confirm": Status.CONFIRMED, "check_in": Status.ARRIVED, "cancel": Status.CANCELLED,
                    "no_show": Status.NO_SHOW},
    Status.CONFIRMED: {"check_in": Status.ARRIVED, "cancel": Status.CANCELLED, "no_show": Status.NO_SHOW},
    Status.ARRIVED: {"start": Status.IN_CONSULTATION, "cancel": Status.CANCELLED},
    Status.IN_CONSULTATION: {"complete": Status.COMPLETED, "back_to_waiting": Status.ARRIVED},
    Status.NO_SHOW: {"undo_no_show": Status.BOOKED},
}
ACTION_LABELS = {
    "confirm": "Confirm", "check_in": "Check in", "start": "Start consultation", "complete": "Mark done",
    "back_to_waiting": "Back to waiting", "cancel": "Cancel appointment", "no_show": "No-show",
    "undo_no_show": "Undo no-show",
}
SAME_DAY_ONLY = {"check_in", "start", "complete", "back_to_waiting"}
CHECKED_IN = (Status.ARRIVED, Status.IN_CONSULTATION, Status.COMPLETED)


def add_history(db: Session, appointment: Appointment, action: str, by: uuid.UUID, *, before: Status | None,
                detail: str | None = None, at: datetime | None = None) -> None:
    """Append one entry to the appointment's history (the stated reason, if any, sealed); `at` only for
    history written after the fact (demo data), otherwise now."""
    ring = keyring(db, appointment.clinic_id)
    event = AppointmentEvent(clinic_id=appointment.clinic_id, id=new_id(), appointment_id=appointment.id,
                             action=action, from_status=before.value if before else None,
                             to_status=appointment.status.value, key_version=ring.active.version,
                             at=at or utcnow(), by=by)
    event.detail_enc = ring.seal("appointment_event", "detail", event.id, detail or None)
    db.add(event)
    timeline.add(db, clinic_id=appointment.clinic_id, patient_id=appointment.patient_id, kind=Kind.APPOINTMENT,
                 action=action, ref_id=event.id, by=by, doctor_id=appointment.doctor_id, at=event.at)


def _touch(appointment: Appointment, by: uuid.UUID) -> None:
    appointment.version += 1
    appointment.updated_at = utcnow()
    appointment.updated_by = by


def _insert(db: Session, appointment: Appointment) -> None:
    """Insert inside a savepoint so the database's no-overlap refusal becomes SlotTaken."""
    try:
        with db.begin_nested():
            db.add(appointment)
            db.flush()
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == NO_OVERLAP_CONSTRAINT:
            raise SlotTaken() from exc
        raise


def overlapping(db: Session, clinic_id: uuid.UUID, starts: datetime, ends: datetime, *,
                doctor_id: uuid.UUID | None = None, patient_id: uuid.UUID | None = None,
                overbooked_only: bool = False, exclude: uuid.UUID | None = None,
                limit: int | None = None) -> list[Appointment]:
    """The appointments still holding their time that overlap this time, earliest first: a doctor's, a
    patient's (with any doctor), only the overbooked ones, or all but one (`exclude`)."""
    query = select(Appointment).where(
        Appointment.clinic_id == clinic_id, Appointment.status.in_(HOLDS_SLOT), Appointment.starts_at < ends,
        Appointment.ends_at > starts, Appointment.starts_at > starts - LONGEST)
    for column, value in ((Appointment.doctor_id, doctor_id), (Appointment.patient_id, patient_id)):
        if value is not None:
            query = query.where(column == value)
    if overbooked_only:
        query = query.where(Appointment.overbooked)
    if exclude is not None:
        query = query.where(Appointment.id != exclude)
    return list(db.scalars(query.order_by(Appointment.starts_at).limit(limit)))


def overbook_reason(asked: bool, reason: str | None, *, can_overbook: bool) -> str | None:
    """The stated reason of an overbooking asked for (None when none was); refuses one the role may not make,
    or one without a reason. The desk's booking and moving both ask here."""
    if not asked:
        return None
    if not can_overbook:
        raise MayNotOverbook()
    if not reason:
        raise OverbookNeedsReason()
    return reason


def check_patient_free(db: Session, clinic_id: uuid.UUID, patient_id: uuid.UUID, starts: datetime, ends: datetime,
                       *, confirmed: bool, exclude: uuid.UUID | None = None) -> None:
    """Refuse a time at which the patient already has an appointment (with any doctor; `exclude` the one being
    moved), unless the desk confirmed it is meant."""
    overlaps = overlapping(db, clinic_id, starts, ends, patient_id=patient_id, exclude=exclude)
    if overlaps and not confirmed:
        raise PatientBusy(overlaps)


def check_slot(db: Session, clinic: Clinic, doctor_id: uuid.UUID, starts: datetime, ends: datetime, *,
               overbook: bool) -> sl.DoctorDay:
    """Refuse a time in the past or outside the doctor's availability (unless overbooking); returns the
    doctor's day."""
    if starts < utcnow() - timedelta(minutes=5):
        raise ScheduleError("That time has already passed; choose a later slot.")
    services.lock_availability(db, clinic.id, doctor_id)  # an admin's change to the hours waits for this
    day = services.doctor_day(db, clinic, doctor_id, services.local_day(clinic, starts))
    if not overbook and not day.contains(starts, ends):
        raise NotAvailable()
    if not overbook:
        _refuse_overlap(db, clinic, doctor_id, starts, ends)
    return day


def _refuse_overlap(db: Session, clinic: Clinic, doctor_id: uuid.UUID, starts: datetime, ends: datetime) -> None:
    """Refuse a time the doctor's appointments already hold: one starting inside it means the visit is too long
    for the gap; one holding its start (overbooked ones stand outside the exclusion constraint) means taken."""
    first = next(iter(overlapping(db, clinic.id, starts, ends, doctor_id=doctor_id, limit=1)), None)
    if first is None:
        return
    if first.starts_at > starts:
        raise DoesNotFit((ends - starts).seconds // 60, formats.clock(first.starts_at, clinic.timezone))
    raise SlotTaken()


def book(db: Session, *, clinic: Clinic, patient: Patient, doctor_id: uuid.UUID, starts: datetime,
         type_: AppointmentType, reason: str | None, by: uuid.UUID, overbook_reason: str | None = None,
         rescheduled_from: Appointment | None = None) -> Appointment:
    """Book the patient with the doctor from `starts` for the type's duration."""
    ends = starts + timedelta(minutes=type_.duration_minutes)
    day = check_slot(db, clinic, doctor_id, starts, ends, overbook=bool(overbook_reason))
    ring = keyring(db, clinic.id)
    now = utcnow()
    appointment = Appointment(
        clinic_id=clinic.id, id=new_id(), patient_id=patient.id, doctor_id=doctor_id, type_id=type_.id,
        walk_in=False, day=services.local_day(clinic, starts), starts_at=starts, ends_at=ends, status=Status.BOOKED,
        overbooked=bool(overbook_reason), key_version=ring.active.version, version=1, created_at=now, created_by=by,
        updated_at=now, updated_by=by, rescheduled_from=rescheduled_from.id if rescheduled_from else None)
    appointment.room = next((b.room for b in day.blocks if b.starts <= starts < b.ends), None)
    appointment.reason_enc = ring.seal("appointment", "reason", appointment.id, reason or None)
    _insert(db, appointment)
    add_history(db, appointment, "rescheduled_here" if rescheduled_from else "booked", by, before=None)
    if overbook_reason:
        add_history(db, appointment, "overbooked", by, before=Status.BOOKED, detail=overbook_reason)
    db.flush()
    signals.appointment_booked.send(db, clinic=clinic, appointment=appointment)
    return appointment


def reschedule(db: Session, *, clinic: Clinic, appointment: Appointment, patient: Patient, doctor_id: uuid.UUID,
               starts: datetime, type_: AppointmentType, by: uuid.UUID,
               overbook_reason: str | None = None) -> Appointment:
    """Move a booked appointment: the old one becomes 'rescheduled', linked to the new one."""
    if appointment.status not in (Status.BOOKED, Status.CONFIRMED) or appointment.walk_in:
        raise ScheduleError(f"An appointment that is {appointment.status.label.lower()} cannot be rescheduled.")
    before = appointment.status
    appointment.status = Status.RESCHEDULED
    _touch(appointment, by)
    add_history(db, appointment, "rescheduled", by, before=before)
    db.flush()  # frees the old time first, so moving within an overlapping time works
    new = book(db, clinic=clinic, patient=patient, doctor_id=doctor_id, starts=starts, type_=type_,
               reason=services.reason_of(db, appointment), by=by, overbook_reason=overbook_reason,
               rescheduled_from=appointment)
    signals.appointment_moved.send(db, clinic=clinic, old=appointment, new=new)
    return new


def add_walk_in(db: Session, *, clinic: Clinic, patient: Patient, doctor_id: uuid.UUID,
                type_: AppointmentType | None, reason: str | None, by: uuid.UUID) -> Appointment:
    """A patient without a slot joins the doctor's queue today with the next token."""
    day = services.today(clinic)
    waiting = db.scalar(select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.patient_id == patient.id, Appointment.doctor_id == doctor_id,
        Appointment.day == day, Appointment.status.in_((Status.ARRIVED, Status.IN_CONSULTATION))).limit(1))
    if waiting is not None:
        raise ScheduleError(f"This patient is already in the doctor's queue today (token {waiting.token}).")
    ring = keyring(db, clinic.id)
    now = utcnow()
    appointment = Appointment(
        clinic_id=clinic.id, id=new_id(), patient_id=patient.id, doctor_id=doctor_id,
        type_id=type_.id if type_ else None, walk_in=True, day=day, status=Status.ARRIVED,
        token=next_number(db, clinic.id, f"token:{day.isoformat()}"), arrived_at=now,
        key_version=ring.active.version, version=1, created_at=now, created_by=by, updated_at=now, updated_by=by)
    appointment.reason_enc = ring.seal("appointment", "reason", appointment.id, reason or None)
    db.add(appointment)
    db.flush()
    add_history(db, appointment, "walked_in", by, before=None)
    db.flush()
    return appointment


def allowed_actions(clinic: Clinic, appointment: Appointment) -> list[str]:
    """The actions the appointment's status allows now (the view checks the user's permission)."""
    is_today = appointment.day == services.today(clinic)
    actions = []
    for action in TRANSITIONS.get(appointment.status, {}):
        if action in SAME_DAY_ONLY and not is_today:
            continue
        if action == "no_show" and (appointment.walk_in or appointment.starts_at > utcnow()):
            continue
        actions.append(action)
    return actions


def change_status(db: Session, *, clinic: Clinic, appointment: Appointment, action: str, by: uuid.UUID,
                  reason: str | None = None) -> Appointment:
    """Apply one status change, with its timestamp and history; refuse what the status does not allow."""
    target = TRANSITIONS.get(appointment.status, {}).get(action)
    if target is None or action not in allowed_actions(clinic, appointment):
        raise ScheduleError(_refusal(appointment, action))
    if action == "cancel" and not (reason or "").strip():
        raise ScheduleError("Say why the appointment is cancelled.")
    # Overbooked appointments stand outside the exclusion constraint, so an ordinary one checks for them here.
    if action == "undo_no_show" and not appointment.overbooked and overlapping(
            db, clinic.id, appointment.starts_at, appointment.ends_at, doctor_id=appointment.doctor_id,
            overbooked_only=True, limit=1):
        raise ScheduleError(TAKEN_SINCE)
    before = appointment.status
    now = utcnow()
    appointment.status = target
    if action == "check_in":
        appointment.arrived_at = now
        appointment.token = appointment.token or next_number(db, clinic.id, f"token:{appointment.day.isoformat()}")
    elif action == "start":
        appointment.started_at = now
    elif action == "complete":
        appointment.finished_at = now
    elif action == "back_to_waiting":
        appointment.started_at = None
    _touch(appointment, by)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:  # undoing a no-show whose time someone else has booked since
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == NO_OVERLAP_CONSTRAINT:
            raise ScheduleError(TAKEN_SINCE) from exc
        raise
    add_history(db, appointment, action, by, before=before, detail=reason)
    db.flush()
    signals.appointment_status_changed.send(db, clinic=clinic, appointment=appointment, action=action)
    return appointment


def _refusal(appointment: Appointment, action: str) -> str:
    if action not in ACTION_LABELS:
        return "Choose one of the actions shown for this appointment."
    label = ACTION_LABELS[action].lower()
    if action == "check_in" and appointment.status in CHECKED_IN:  # a second press, or another desk's
        token = f" (token {appointment.token})" if appointment.token else ""
        return f"This patient has already checked in{token}."
    if action in SAME_DAY_ONLY and action in TRANSITIONS.get(appointment.status, {}):
        return f"You can {label} only on the day of the appointment."
    if action == "no_show" and action in TRANSITIONS.get(appointment.status, {}):
        return "An appointment can be marked as a no-show only once its time has come."
    return f"An appointment that is {appointment.status.label.lower()} cannot be changed that way ({label})."


def call_next(db: Session, *, clinic: Clinic, doctor_id: uuid.UUID, by: uuid.UUID,
              token: int | None = None) -> tuple[list[Appointment], Appointment | None]:
    """Finish the doctor's current consultation, if any, and bring in the longest-waiting patient.

    `token` is the patient the desk saw at the head of the queue (the button says "call next (token 4)"):
    when given, a second press for the same token (a double click, two desks at once) changes nothing
    and says so, instead of finishing the patient the first press has just called in. Returns the
    consultations finished and the appointment called in (None: nobody was waiting).
    """
    day = services.today(clinic)
    of_doctor = (Appointment.clinic_id == clinic.id, Appointment.doctor_id == doctor_id, Appointment.day == day)
    current = db.scalars(select(Appointment).where(*of_doctor, Appointment.status == Status.IN_CONSULTATION)
                         .order_by(Appointment.token).with_for_update()).all()
    if token is not None:
        waiting = db.scalar(select(Appointment).where(*of_doctor, Appointment.token == token).with_for_update())
        if waiting is None or waiting.status != Status.ARRIVED:
            raise ScheduleError(f"Token {token} has already been called in; the queue below is up to date.")
    else:
        # SKIP LOCKED: presses without a token never wait for each other nor call the same patient twice.
        waiting = db.scalar(select(Appointment).where(*of_doctor, Appointment.status == Status.ARRIVED)
                            .order_by(Appointment.token).limit(1).with_for_update(skip_locked=True))
    for appointment in current:
        change_status(db, clinic=clinic, appointment=appointment, action="complete", by=by)
    if waiting is None:
        return list(current), None
    return list(current), change_status(db, clinic=clinic, appointment=waiting, action="start", by=by)


def history(db: Session, appointment: Appointment) -> list[tuple[AppointmentEvent, str | None]]:
    """The appointment's events, oldest first, with their stated reasons opened."""
    ring = keyring(db, appointment.clinic_id)
    events = db.scalars(select(AppointmentEvent).where(AppointmentEvent.clinic_id == appointment.clinic_id,
                                                       AppointmentEvent.appointment_id == appointment.id)
                        .order_by(AppointmentEvent.at, AppointmentEvent.id))
    return [(e, ring.open("appointment_event", "detail", e.id, e.detail_enc)) for e in events]
