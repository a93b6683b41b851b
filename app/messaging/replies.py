"""What comes back from Twilio: delivery statuses of the messages sent, and the patients' replies.

Statuses (at least once, in any order): a row only moves forward in RANK, so a duplicate or a late
"sent" after "delivered" changes nothing. A failure keeps Twilio's error code and says in plain words
what went wrong (the front desk's "needs a call" list reads it); a WhatsApp failure that SMS may get
around (not on WhatsApp, template trouble) sends the same message by SMS (outbox.fallback).

Replies: each Twilio MessageSid is acted on once (inbound_message is unique per clinic and SID, and a
second delivery of the same SID is rolled back whole). The sender's number is matched through its
blind index to the newest message that reached it in this clinic, and that message's appointment is
the one the reply is about: a reply answers the last thing the patient received. A phone shared by a
family therefore acts for the patient messaged last, which is also the message on the screen.
Words are never stored or logged: only the intent read from them (texts.parse_reply) and the outcome.
STOP (in English or Hindi) withdraws reminder consent on every channel, whichever it came by, so no
queued message on any channel is sent (the send job checks consent at send time); START gives back the
channel it came by.
"""

import logging
import uuid
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.services import record
from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.messaging import actions, outbox, sending
from app.messaging.models import RANK, Channel, InboundMessage, Kind, Reminder, State
from app.messaging.texts import Reply, parse_reply
from app.patients.models import Patient
from app.patients.services import set_consent
from app.scheduling import booking
from app.scheduling.models import Appointment
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind as TimelineKind

log = logging.getLogger(__name__)

# Twilio's MessageStatus values a row can take; others (queued, accepted, scheduled, canceled…) are ignored.
STATUSES = {
    "sending": State.SENDING, "sent": State.SENT, "delivered": State.DELIVERED, "read": State.READ,
    "failed": State.FAILED, "undelivered": State.UNDELIVERED,
}  # fmt: skip
# What a failure means, for the front desk (Twilio's codes, in words that name no patient or number).
ERROR_TEXTS = {
    21211: "Invalid number",
    21408: "Sending to this country is not enabled",
    21610: "The patient replied STOP",
    21612: "This number cannot be reached from the clinic's sender",
    21614: "Landline: cannot receive SMS",
    30003: "Phone switched off or out of coverage",
    30004: "The number is blocked by the patient or the network",
    30005: "Unknown number or number no longer in use",
    30006: "Landline or unreachable carrier",
    30007: "Filtered by the carrier as spam",
    30008: "Not delivered (unknown error)",
    63003: "Not on WhatsApp",
    63016: "WhatsApp needs an approved template",
    63024: "Not on WhatsApp (invalid recipient)",
    63032: "WhatsApp will not deliver to this user",
}
REACHED = (State.SENT, State.DELIVERED, State.READ)  # a message the patient may be answering
FAILURES = (State.FAILED, State.UNDELIVERED)
SID_INDEX = "ix_inbound_sid"


def error_text(code: int | None) -> str:
    """Plain words for a Twilio error code."""
    if code is None:
        return "Not delivered"
    return ERROR_TEXTS.get(code, f"Not delivered (Twilio error {code})")


# --- Status callbacks --------------------------------------------------------------------------------

def apply_status(db: Session, clinic: Clinic, *, sid: str, status: str, error_code: int | None,
                 to: str = "") -> str:
    """Move the message Twilio reports on forward (never back); returns what was done, for the log."""
    state = STATUSES.get(status)
    if state is None:
        return "status ignored"
    row = db.scalar(select(Reminder).where(Reminder.clinic_id == clinic.id, Reminder.twilio_sid == sid)
                    .with_for_update()) or _in_flight(db, clinic.id, sid, to, state)
    if row is None:
        return "unknown message"
    if RANK[state] <= RANK[row.state]:
        return "no change"  # a duplicate, or a step that arrived after a later one
    now = utcnow()
    row.state, row.status_at = state, now
    if state in REACHED and row.sent_at is None:  # a row reconciled late, or a callback before the 201
        row.sent_at = now
    if state in FAILURES:
        row.error_code, row.error_text = error_code, error_text(error_code)
        appointment = db.get(Appointment, (clinic.id, row.appointment_id))
        timeline.add(db, clinic_id=clinic.id, patient_id=row.patient_id, kind=TimelineKind.MESSAGE,
                     action=state.value, ref_id=row.id, by=None, doctor_id=appointment.doctor_id, at=now)
        if row.channel is Channel.WHATSAPP and error_code in sending.NOT_ON_WHATSAPP:
            outbox.fallback(db, clinic, row)
    record(db, "reminder.status", clinic_id=clinic.id, patient_id=row.patient_id, object_type="reminder",
           object_id=row.id, reason=f"{state.value} (error {error_code})" if error_code else state.value)
    return state.value


def _in_flight(db: Session, clinic_id: uuid.UUID, sid: str, to: str, state: State) -> Reminder | None:
    """The row whose send is still waiting for Twilio's answer when the callback outruns it: the one row
    `sending` to this address without a SID (two at once to one number cannot be told apart: none).
    Claimed only for a step past `sending`, so the row leaves `sending` with its SID (the send job's
    reconcile would take a `sending` row holding a SID for a message Twilio does not have)."""
    number = e164_of(to) if to else None
    if number is None or RANK[state] <= RANK[State.SENDING]:
        return None
    channel = Channel.WHATSAPP if to.startswith("whatsapp:") else Channel.SMS
    tokens = list(keyring(db, clinic_id).tokens_all("phone", number).values())
    found = db.scalars(select(Reminder).where(
        Reminder.clinic_id == clinic_id, Reminder.to_index.in_(tokens), Reminder.channel == channel,
        Reminder.state == State.SENDING, Reminder.twilio_sid.is_(None)).limit(2).with_for_update()).all()
    if len(found) != 1:
        return None
    found[0].twilio_sid = sid  # the send job's own answer sets the same SID (sending._mark_sent)
    return found[0]


# --- Inbound replies ---------------------------------------------------------------------------------

class Replayed(Exception):
    """This MessageSid has been handled already (a retry by Twilio): the caller rolls back and answers 200."""


@dataclass(frozen=True)
class Incoming:
    """An inbound message as Twilio posts it: its SID, the sender's address and what it says (the button's
    payload when a quick-reply button was tapped, else the text)."""

    sid: str
    sender: str
    says: str | None

    @property
    def channel(self) -> Channel:
        return Channel.WHATSAPP if self.sender.startswith("whatsapp:") else Channel.SMS


def e164_of(address: str) -> str | None:
    """The E.164 number of a Twilio address ("whatsapp:+91…" or "+91…"), or None if it is not one."""
    raw = address.removeprefix("whatsapp:").strip()
    try:
        number = phonenumbers.parse(raw, "IN")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def latest_reached(db: Session, clinic_id: uuid.UUID, number: str) -> Reminder | None:
    """The newest message that reached this number in the clinic (every live key's index, mid-rotation too)."""
    tokens = list(keyring(db, clinic_id).tokens_all("phone", number).values())
    return db.scalar(select(Reminder).where(
        Reminder.clinic_id == clinic_id, Reminder.to_index.in_(tokens), Reminder.state.in_(REACHED),
        Reminder.sent_at.is_not(None)).order_by(Reminder.sent_at.desc(), Reminder.id.desc()).limit(1))


def sharing(db: Session, clinic_id: uuid.UUID, number: str, *, but: uuid.UUID) -> list[Patient]:
    """The other patients whom messages to this number were for."""
    tokens = list(keyring(db, clinic_id).tokens_all("phone", number).values())
    ids = set(db.scalars(select(Reminder.patient_id).where(Reminder.clinic_id == clinic_id,
                                                           Reminder.to_index.in_(tokens)))) - {but}
    return list(db.scalars(select(Patient).where(Patient.clinic_id == clinic_id, Patient.id.in_(ids)))) if ids else []


def handled(db: Session, clinic_id: uuid.UUID, sid: str) -> bool:
    """Whether this MessageSid has been received before."""
    return db.scalar(select(InboundMessage.id).where(InboundMessage.clinic_id == clinic_id,
                                                     InboundMessage.twilio_sid == sid)) is not None


def receive(db: Session, clinic: Clinic, incoming: Incoming) -> str:
    """Act on one reply (confirm, cancel, send a new link, stop or start messages) and record it once;
    raises Replayed when the SID was handled already. Returns the outcome."""
    if handled(db, clinic.id, incoming.sid):
        raise Replayed(incoming.sid)
    number = e164_of(incoming.sender)
    intent = parse_reply(incoming.says)
    reminder = latest_reached(db, clinic.id, number) if number else None
    appointment = patient = None
    if reminder is None:
        outcome = "unknown sender"
    elif intent is None:
        outcome = "not understood"
    else:
        appointment = db.get(Appointment, (clinic.id, reminder.appointment_id), with_for_update=True)
        patient = db.get(Patient, (clinic.id, reminder.patient_id))
        outcome = _act(db, clinic, appointment, patient, intent, incoming.channel)
        if intent is Reply.STOP:  # a family's shared phone: nobody reminded at this number gets more
            for other in sharing(db, clinic.id, number, but=patient.id):
                _consent(db, other, list(Channel), granted=False)
    ring = keyring(db, clinic.id)
    message = InboundMessage(
        clinic_id=clinic.id, id=new_id(), twilio_sid=incoming.sid, channel=incoming.channel,
        from_index=ring.token("phone", number or incoming.sender.removeprefix("whatsapp:").strip()[:40]),
        intent=intent.value if intent else None, reminder_id=reminder.id if reminder else None,
        patient_id=reminder.patient_id if reminder else None, outcome=outcome, received_at=utcnow())
    try:
        with db.begin_nested():
            db.add(message)
    except IntegrityError as exc:  # the same SID delivered twice at once: the other delivery acted
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == SID_INDEX:
            raise Replayed(incoming.sid) from exc
        raise
    if appointment is not None:
        timeline.add(db, clinic_id=clinic.id, patient_id=patient.id, kind=TimelineKind.MESSAGE, action="reply",
                     ref_id=message.id, by=None, doctor_id=appointment.doctor_id, at=message.received_at)
        record(db, "reminder.reply", clinic_id=clinic.id, patient_id=patient.id, object_type="appointment",
               object_id=appointment.id, reason=f"{intent.value}: {outcome}")
    return outcome


def _act(db: Session, clinic: Clinic, appointment: Appointment, patient: Patient, intent: Reply,
         channel: Channel) -> str:
    """Do what the reply asks for this appointment and patient; returns the outcome in a few words."""
    if intent is Reply.STOP:
        return _consent(db, patient, list(Channel), granted=False)
    if intent is Reply.START:
        return _consent(db, patient, [channel], granted=True)
    if appointment.walk_in or appointment.starts_at <= utcnow():
        return "appointment past"
    try:
        if intent is Reply.CONFIRM:
            actions.confirm(db, clinic=clinic, appointment=appointment, via="reply")
            return "confirmed"
        if intent is Reply.CANCEL:
            actions.cancel(db, clinic=clinic, appointment=appointment, reason=None, via="reply")
            return "cancelled"
    except actions.Unchanged:
        return f"already {appointment.status.value}"
    except booking.ScheduleError:
        return f"not open ({appointment.status.value})"
    return _new_link(db, clinic, appointment)


def _new_link(db: Session, clinic: Clinic, appointment: Appointment) -> str:
    """A "3": the patient's link again, by message, to choose another time on their page."""
    if appointment.status not in actions.OPEN:
        return f"not open ({appointment.status.value})"
    settings = outbox.settings_of(db, clinic.id)
    if not settings.enabled or outbox.first_channel(db, settings, appointment) is None:
        return "no channel"
    if outbox.add_message(db, clinic, appointment, Kind.RESCHEDULE_LINK) is None:
        return "link already sent"  # one per appointment version: a second "3" gets the same link
    return "link sent"


def _consent(db: Session, patient: Patient, channels: list[Channel], *, granted: bool) -> str:
    """STOP or START: the patient's consent to messages on these channels, in the consent ledger. STOP
    withdraws every channel (a patient who says stop on WhatsApp does not want the SMS either); START gives
    back only the channel it came by, the one the patient has just shown they want."""
    now = outbox.consented(db, patient.clinic_id, patient.id)
    changing = [channel for channel in channels if (channel in now) != granted]
    for channel in changing:
        set_consent(db, patient, channel.value, granted, "reply", None)
    if not changing:
        return "already given" if granted else "already withdrawn"
    return "consent given" if granted else "consent withdrawn"

