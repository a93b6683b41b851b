"""What a patient may do to their own appointment, from their link or by a WhatsApp reply: confirm,
cancel (with a reason), or move it to another of the same doctor's free slots.

Each goes through the same booking services as the front desk (the same transitions, the same
availability check and the same database guard against double booking), recorded in the
appointment's history as done by the patient (no staff member) and how. Each flushes and leaves the
commit, the audit record and the response to the caller.
"""

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.db import utcnow
from app.patients.models import Patient
from app.scheduling import booking, services
from app.scheduling.models import Appointment, AppointmentType, Status

# A patient moving their own appointment picks a time at least this far ahead (the desk may book sooner).
NOTICE = timedelta(hours=1)
VIA = {"link": "the patient, by their link", "reply": "the patient, by a WhatsApp reply"}
OPEN = (Status.BOOKED, Status.CONFIRMED)


class Unchanged(booking.ScheduleError):
    """The change was already made (a replayed form, a second reply): nothing to do, nothing done."""


def _check_open(appointment: Appointment) -> None:
    if appointment.walk_in or appointment.status not in OPEN:
        raise booking.ScheduleError(f"This appointment is {appointment.status.label.lower()}; it can no longer "
                                    "be changed here. Please call the clinic.")


def confirm(db: Session, *, clinic: Clinic, appointment: Appointment, via: str) -> Appointment:
    """The patient says they will come."""
    if appointment.status is Status.CONFIRMED:
        raise Unchanged("This appointment is already confirmed.")
    _check_open(appointment)
    booking.change_status(db, clinic=clinic, appointment=appointment, action="confirm", by=None, reason=VIA[via])
    return appointment


def cancel(db: Session, *, clinic: Clinic, appointment: Appointment, reason: str | None, via: str) -> Appointment:
    """The patient cancels; the freed time goes to the waitlist (booking's cancel hook)."""
    if appointment.status is Status.CANCELLED:
        raise Unchanged("This appointment is already cancelled.")
    _check_open(appointment)
    reason = " ".join((reason or "").split())[:200]
    booking.change_status(db, clinic=clinic, appointment=appointment, action="cancel", by=None,
                          reason=f"{reason} ({VIA[via]})" if reason else f"cancelled by {VIA[via]}")
    return appointment


def free_slots(db: Session, clinic: Clinic, doctor_id, day) -> list:
    """The doctor's free slots that day a patient may move to: the desk's free slots, an hour's notice."""
    soonest = utcnow() + NOTICE
    return [slot for slot in services.free_slots(db, clinic, doctor_id, day) if slot.starts >= soonest]


def reschedule(db: Session, *, clinic: Clinic, appointment: Appointment, patient: Patient,
               starts: datetime) -> Appointment:
    """Move the appointment to another free slot of the same doctor, same type; returns the new one.
    Raises booking.SlotTaken when someone else took the slot first."""
    if appointment.status is Status.RESCHEDULED:
        raise Unchanged("This appointment has already been moved.")
    _check_open(appointment)
    type_ = db.get(AppointmentType, (clinic.id, appointment.type_id)) if appointment.type_id else None
    if type_ is None:
        raise booking.ScheduleError("This appointment cannot be moved online. Please call the clinic.")
    if starts < utcnow() + NOTICE:
        raise booking.ScheduleError("Choose a time at least an hour from now, or call the clinic.")
    if not any(slot.starts == starts for slot in free_slots(db, clinic, appointment.doctor_id,
                                                             services.local_day(clinic, starts))):
        raise booking.SlotTaken()
    return booking.reschedule(db, clinic=clinic, appointment=appointment, patient=patient,
                              doctor_id=appointment.doctor_id, starts=starts, type_=type_, by=None)
