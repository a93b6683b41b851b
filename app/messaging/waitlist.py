"""The waitlist: patients with an appointment who asked to hear of an earlier time with the same
doctor, and the offers made to them when a time frees up.

A time freed by a cancellation or a move, still free and more than an hour ahead, is offered to up to
five patients on that doctor's waitlist whose appointments are later, earliest joined first: each gets
a message with their own link (the outbox row, kind "offer", is the record of whom it was offered
to). The first to take it gets it: the offer row is locked while it is taken and the booking's own
checks (free slot, the exclusion constraint) stand behind that; the others are told it has gone.
Each function flushes and leaves the commit and the audit record to the caller.
"""

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.messaging import actions, outbox
from app.messaging.models import Kind, Reminder, SlotOffer, WaitlistEntry
from app.patients.models import Patient
from app.scheduling import booking, services
from app.scheduling.models import Appointment

OFFER_AHEAD = timedelta(hours=1)  # a time sooner than this is left to the front desk's phone
OFFER_TO = 5


class Gone(booking.ScheduleError):
    """The offered time was taken by someone else first, or has passed."""

    def __init__(self):
        super().__init__("That time has gone.")


def _active(appointment: Appointment):
    return (WaitlistEntry.clinic_id == appointment.clinic_id, WaitlistEntry.appointment_id == appointment.id,
            WaitlistEntry.ended_at.is_(None))


def is_waiting(db: Session, appointment: Appointment) -> bool:
    """Whether the appointment is on its doctor's waitlist now."""
    return db.scalar(select(WaitlistEntry.id).where(*_active(appointment))) is not None


def join(db: Session, appointment: Appointment) -> bool:
    """Put the appointment on its doctor's waitlist; False when it is on it already."""
    if appointment.walk_in or appointment.status not in actions.OPEN or appointment.starts_at <= utcnow():
        raise booking.ScheduleError("Only an upcoming booked appointment can wait for an earlier time.")
    # The partial unique index (one active entry per appointment) settles two joins at once.
    statement = insert(WaitlistEntry).values(
        clinic_id=appointment.clinic_id, id=new_id(), appointment_id=appointment.id,
        patient_id=appointment.patient_id, doctor_id=appointment.doctor_id, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["clinic_id", "appointment_id"],
                             index_where=WaitlistEntry.ended_at.is_(None)).returning(WaitlistEntry.id)
    return db.scalar(statement) is not None


def leave(db: Session, appointment: Appointment, reason: str) -> bool:
    """Take the appointment off the waitlist ("left", "cancelled", "took offer"); False when it was not on it."""
    result = db.execute(update(WaitlistEntry).where(*_active(appointment))
                        .values(ended_at=utcnow(), ended_reason=reason[:20]))
    return result.rowcount > 0


def _still_free(db: Session, clinic: Clinic, freed: Appointment) -> bool:
    day = services.local_day(clinic, freed.starts_at)
    return any(slot.starts == freed.starts_at for slot in services.free_slots(db, clinic, freed.doctor_id, day))


def offer_freed(db: Session, clinic: Clinic, freed: Appointment) -> SlotOffer | None:
    """Offer the time a cancelled or moved appointment held to the doctor's waitlist; None when the
    time is too soon, no longer free, or nobody is waiting for an earlier one."""
    if freed.walk_in or freed.starts_at - utcnow() <= OFFER_AHEAD or not _still_free(db, clinic, freed):
        return None
    waiting = db.execute(
        select(WaitlistEntry, Appointment)
        .join(Appointment, (Appointment.clinic_id == WaitlistEntry.clinic_id)
              & (Appointment.id == WaitlistEntry.appointment_id))
        .where(WaitlistEntry.clinic_id == clinic.id, WaitlistEntry.doctor_id == freed.doctor_id,
               WaitlistEntry.ended_at.is_(None), Appointment.id != freed.id,
               Appointment.status.in_(actions.OPEN), Appointment.starts_at > freed.starts_at)
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id).limit(OFFER_TO)).all()
    if not waiting:
        return None
    offer = SlotOffer(clinic_id=clinic.id, id=new_id(), doctor_id=freed.doctor_id, starts_at=freed.starts_at,
                      ends_at=freed.ends_at, freed_by=freed.id, created_at=utcnow())
    db.add(offer)
    db.flush()
    for _, appointment in waiting:
        outbox.add_message(db, clinic, appointment, Kind.OFFER, offer_id=offer.id)
    return offer


def _offered_to(appointment: Appointment):
    """Offers a message went out for to this appointment, still open and earlier than it."""
    return (select(SlotOffer)
            .join(Reminder, (Reminder.clinic_id == SlotOffer.clinic_id) & (Reminder.offer_id == SlotOffer.id))
            .where(SlotOffer.clinic_id == appointment.clinic_id, Reminder.appointment_id == appointment.id,
                   Reminder.kind == Kind.OFFER, SlotOffer.taken_at.is_(None), SlotOffer.starts_at > utcnow(),
                   SlotOffer.starts_at < appointment.starts_at))


def open_offers(db: Session, appointment: Appointment) -> list[SlotOffer]:
    """The earlier times offered to this appointment that nobody has taken yet (while it waits)."""
    if appointment.walk_in or appointment.status not in actions.OPEN or not is_waiting(db, appointment):
        return []
    return list(db.scalars(_offered_to(appointment).distinct().order_by(SlotOffer.starts_at)))


def take(db: Session, clinic: Clinic, appointment: Appointment, offer_id) -> Appointment:
    """Move the appointment to an offered time; returns the new appointment. Raises Gone when someone
    took it first (or it was never offered to this appointment, or has passed)."""
    offer = db.scalar(_offered_to(appointment).where(SlotOffer.id == offer_id).limit(1))
    if offer is None or not is_waiting(db, appointment):
        raise Gone()
    # Lock the offer: a second patient taking it at the same moment waits here, then finds it taken.
    db.refresh(offer, with_for_update=True)
    if offer.taken_at is not None:
        raise Gone()
    leave(db, appointment, "took offer")  # before the move, whose hook would end it as "rescheduled"
    patient = db.get(Patient, (clinic.id, appointment.patient_id))
    try:
        new = actions.reschedule(db, clinic=clinic, appointment=appointment, patient=patient, starts=offer.starts_at)
    except booking.SlotTaken as exc:  # booked by the desk, or offered twice after a second cancellation
        raise Gone() from exc
    offer.taken_at, offer.taken_by = utcnow(), new.id
    db.flush()
    return new
