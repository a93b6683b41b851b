"""What the front desk sees of reminders: the outbox transport's messages, the "needs a call" list and
one appointment's messages, in plain words.

Reading the outbox opens the sealed number and text (PHI: the page audits the patients shown); the
"needs a call" list opens each patient's name, MRN and phone; an appointment's messages open nothing.
Failures are put in plain words from Twilio's error code, or the reason the send job wrote (which
names no patient and no number).
"""

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.db import utcnow
from app.messaging.models import Channel, Kind, Reminder, State, Transport
from app.patients.forms import display_phone
from app.patients.models import Patient
from app.patients.services import staff_names
from app.scheduling.models import Appointment, Status
from app.security.fields import keyring

PAGE = 50
CALLS_LIMIT = 200
NO_MOBILE = "no mobile number"  # how the send job's reason starts when the record has no phone
# The send job's reasons for a message that missed its moment (workers down or behind): never dropped silently.
MISSED = {"too late": "Missed: not sent at its time (the reminder service was down or behind).",
          "quiet hours": "Missed: it came due in quiet hours, too close to the visit to send afterwards."}
OPEN = (Status.BOOKED, Status.CONFIRMED)
# A row whose message got through, or still may (a fallback waiting): nobody needs to call for that kind.
ALIVE = (State.PENDING, State.SENDING, State.SENT, State.DELIVERED, State.READ)
# Twilio's codes in the words a receptionist can act on (https://www.twilio.com/docs/api/errors).
FAILURES = {
    20003: "Twilio refused the clinic's login: an admin must check the Twilio settings.",
    21211: "The number is not a valid phone number: check it with the patient.",
    21408: "Twilio is not allowed to send to this country: an admin must check the Twilio settings.",
    21610: "The patient opted out (replied STOP): no messages until they reply START.",
    21614: "The number is a landline and cannot receive SMS: ask for a mobile number.",
    30003: "The phone was switched off or out of reach.",
    30004: "The patient's phone blocks these messages.",
    30005: "The number is unknown or no longer in use: check it with the patient.",
    30006: "The number is a landline or its network cannot receive SMS: ask for a mobile number.",
    30007: "The operator filtered the message as spam.",
    30008: "The operator could not deliver it (unknown error).",
    63003: "The number is not on WhatsApp.",
    63016: "The patient could not be reached on WhatsApp.",
    63024: "The number cannot receive WhatsApp messages.",
    63032: "WhatsApp would not deliver to this number.",
}
STATE_WORDS = {State.PENDING: "Waiting", State.SENDING: "Sending", State.SENT: "Sent", State.DELIVERED: "Delivered",
               State.READ: "Read", State.FAILED: "Failed", State.UNDELIVERED: "Not delivered",
               State.SKIPPED: "Not sent"}
_UNITS = {"d": ("day", "days"), "h": ("hour", "hours"), "m": ("minute", "minutes")}
_LINK = re.compile(r"(https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'])")


def kind_label(kind: str) -> str:
    """"24h" → "Reminder 24 hours before"; an offer or a new link by name."""
    if kind == Kind.OFFER:
        return "Offer of an earlier time"
    if kind == Kind.RESCHEDULE_LINK:
        return "New link (asked for by reply)"
    number, unit = kind[:-1], kind[-1:]
    if not number.isdigit() or unit not in _UNITS:
        return kind
    return f"Reminder {number} {_UNITS[unit][number != '1']} before"


def failure_words(code: int | None, text: str | None) -> str:
    """Why a message did not reach the patient, in words the desk can act on."""
    if code in FAILURES:
        return FAILURES[code]
    if text in MISSED:
        return MISSED[text]
    if text:
        return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
    return f"Not delivered (Twilio error {code})." if code else "Not delivered."


def _needs_call():
    """The rows that ask for a phone call: failed or undelivered, not sent for want of a mobile number, or missed."""
    return or_(Reminder.state.in_([State.FAILED, State.UNDELIVERED]),
               and_(Reminder.state == State.SKIPPED,
                    or_(Reminder.error_text.startswith(NO_MOBILE), Reminder.error_text.in_(list(MISSED)))))


def link_parts(text: str) -> list[tuple[str, bool]]:
    """The text cut into (piece, is_link), so a template can make the links clickable and escape the rest."""
    parts, at = [], 0
    for match in _LINK.finditer(text):
        parts += [(text[at:match.start()], False), (match.group(0), True)]
        at = match.end()
    return [part for part in [*parts, (text[at:], False)] if part[0]]


def _patients(db: Session, clinic_id: uuid.UUID, ids: set, *, phones: bool) -> dict:
    """Name and MRN (and the patient's and guardian's phones) of some patients, in one query, decrypting
    only those fields."""
    ring = keyring(db, clinic_id)
    rows = db.execute(select(Patient.id, Patient.full_name_enc, Patient.mrn_enc, Patient.phone_enc,
                             Patient.guardian_phone_enc)
                      .where(Patient.clinic_id == clinic_id, Patient.id.in_(ids))) if ids else []
    found = {}
    for pid, name, mrn, phone, guardian in rows:
        numbers = (display_phone(ring.open("patient", "phone", pid, phone)),
                   display_phone(ring.open("patient", "guardian_phone", pid, guardian))) if phones else ("", "")
        found[pid] = (ring.open("patient", "full_name", pid, name), ring.open("patient", "mrn", pid, mrn), *numbers)
    return found


# --- The outbox page -----------------------------------------------------------------------------

@dataclass
class OutboxMessage:
    """A message the outbox transport "sent", opened for the page."""

    id: uuid.UUID
    sent_at: datetime
    channel: Channel
    kind: str
    patient_id: uuid.UUID
    patient: str
    appointment_id: uuid.UUID
    to: str
    text: list[tuple[str, bool]]
    content_sid: str | None = None


def outbox_page(db: Session, clinic_id: uuid.UUID, page: int) -> tuple[list[OutboxMessage], bool]:
    """One page of the outbox, newest first, opened; and whether there is an older page."""
    rows = db.scalars(select(Reminder).where(Reminder.clinic_id == clinic_id, Reminder.transport == Transport.OUTBOX,
                                             Reminder.sent_at.is_not(None))
                      .order_by(Reminder.sent_at.desc(), Reminder.id.desc())
                      .limit(PAGE + 1).offset((page - 1) * PAGE)).all()
    ring = keyring(db, clinic_id)
    people = _patients(db, clinic_id, {r.patient_id for r in rows[:PAGE]}, phones=False)
    shown = []
    for row in rows[:PAGE]:
        body = ring.open("reminder", "body", row.id, row.body_enc) or ""
        sid = None
        if row.channel is Channel.WHATSAPP:  # JSON: the template's ContentSid, variables and the words read
            sealed = json.loads(body)
            body, sid = sealed.get("text") or "", sealed.get("content_sid")
        to = ring.open("reminder", "to", row.id, row.to_enc)
        shown.append(OutboxMessage(row.id, row.sent_at, row.channel, row.kind, row.patient_id,
                                   people.get(row.patient_id, ("", ""))[0], row.appointment_id,
                                   display_phone(to) if to else "", link_parts(body), sid))
    return shown, len(rows) > PAGE


# --- Needs a call --------------------------------------------------------------------------------

@dataclass
class Failure:
    channel: Channel
    kind: str
    words: str
    at: datetime | None


@dataclass
class Call:
    """An upcoming appointment whose messages did not reach the patient: someone should phone."""

    reminder_id: uuid.UUID  # the latest failure: the "done" button's address
    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    starts_at: datetime
    doctor_id: uuid.UUID
    doctor: str = ""
    patient: str = ""
    mrn: str = ""
    phone: str = ""
    guardian_phone: str = ""  # to call when the patient has no phone of their own (a child)
    failures: list[Failure] = field(default_factory=list)


def calls(db: Session, clinic_id: uuid.UUID, *, now: datetime | None = None) -> list[Call]:
    """Upcoming open appointments with a failure not yet acknowledged, and no message of that kind that
    got through or is still on its way (a WhatsApp failure already sent again by SMS needs no call)."""
    alive = aliased(Reminder)
    got_through = exists().where(alive.clinic_id == Reminder.clinic_id,
                                 alive.appointment_id == Reminder.appointment_id, alive.kind == Reminder.kind,
                                 alive.state.in_(ALIVE))
    rows = db.execute(
        select(Reminder, Appointment.starts_at, Appointment.doctor_id)
        .join(Appointment, and_(Appointment.clinic_id == Reminder.clinic_id, Appointment.id == Reminder.appointment_id))
        .where(Reminder.clinic_id == clinic_id, Reminder.acknowledged_at.is_(None), _needs_call(), ~got_through,
               Appointment.status.in_(OPEN), Appointment.starts_at > (now or utcnow()))
        .order_by(Appointment.starts_at, Reminder.appointment_id, Reminder.status_at.desc().nulls_last())
        .limit(CALLS_LIMIT)).all()
    found: dict[uuid.UUID, Call] = {}
    for row, starts_at, doctor_id in rows:
        call = found.setdefault(row.appointment_id, Call(row.id, row.appointment_id, row.patient_id, starts_at,
                                                         doctor_id))
        call.failures.append(Failure(row.channel, row.kind, failure_words(row.error_code, row.error_text),
                                     row.status_at))
    doctors = staff_names(db, {c.doctor_id for c in found.values()})
    people = _patients(db, clinic_id, {c.patient_id for c in found.values()}, phones=True)
    for call in found.values():
        call.doctor = doctors.get(call.doctor_id, "a doctor")
        call.patient, call.mrn, call.phone, call.guardian_phone = people.get(call.patient_id, ("", "", "", ""))
    return list(found.values())


def acknowledge(db: Session, reminder: Reminder, *, by: uuid.UUID) -> int:
    """Someone has phoned: every failure of this appointment leaves the list; how many rows that was."""
    result = db.execute(update(Reminder).where(
        Reminder.clinic_id == reminder.clinic_id, Reminder.appointment_id == reminder.appointment_id,
        Reminder.acknowledged_at.is_(None), _needs_call()).values(acknowledged_at=utcnow(), acknowledged_by=by))
    return result.rowcount


# --- On the appointment page ---------------------------------------------------------------------

@dataclass
class ReminderRow:
    """One message of an appointment as its page lists it (nothing sealed is opened)."""

    id: uuid.UUID
    label: str
    channel: Channel
    state: State
    state_words: str
    at: datetime
    note: str | None
    needs_call: bool


def reminder_rows(db: Session, appointment: Appointment) -> list[ReminderRow]:
    """The appointment's messages in due order: what, on which channel, what became of it and why."""
    rows = db.scalars(select(Reminder).where(Reminder.clinic_id == appointment.clinic_id,
                                             Reminder.appointment_id == appointment.id)
                      .order_by(Reminder.due_at, Reminder.created_at)).all()
    return [_row(r) for r in rows]


def _row(r: Reminder) -> ReminderRow:
    failed = r.state in (State.FAILED, State.UNDELIVERED)
    skipped_for_number = r.state is State.SKIPPED and (r.error_text or "").startswith(NO_MOBILE)
    missed = r.state is State.SKIPPED and r.error_text in MISSED
    if failed or skipped_for_number or missed:
        note = failure_words(r.error_code, r.error_text)
    elif r.state is State.SKIPPED:
        note = failure_words(None, r.error_text) if r.error_text else None
    else:
        note = None  # a "will retry" text on a pending row is the worker's business
    at = r.status_at or r.sent_at or r.due_at
    return ReminderRow(r.id, kind_label(r.kind), r.channel, r.state, "Missed" if missed else STATE_WORDS[r.state], at,
                       note, (failed or skipped_for_number or missed) and r.acknowledged_at is None)
