"""Sending one outbox row, exactly once: what the send job does with a reminder id.

1. Lock the row (SKIP LOCKED: another worker has it, so leave it). A row past `sending` is done.
2. A row left `sending` by a worker that died, or a request that timed out, is reconciled with Twilio
   first (the messages Twilio holds for that number since then); only a message Twilio does not have
   is sent again. A row `sending` for less than IN_FLIGHT may still be in flight: left alone.
3. Re-read everything at send time: the appointment (cancelled, moved, completed → skipped), the
   clinic's settings, the patient's consent for this channel (withdrawn → skipped, the next consented
   channel gets the message), the moment (too late → skipped, never sent late), the number.
4. Outbox transport: the message is stored, sealed, and the row is `sent`, in one commit.
   Twilio: the row is committed `sending` before the request (so a crash leaves evidence), then `sent`
   with Twilio's SID; a permanent error makes it `failed` with Twilio's code (the front desk's "needs a
   call" list; WhatsApp failures fall back to SMS); a 429, 5xx or unreachable Twilio puts it back to
   `pending` and raises `TryLater` so RQ retries with backoff.
"""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.db import set_tenant, utcnow
from app.messaging import links, outbox, plan, texts
from app.messaging import twilio_client as tw
from app.messaging.models import (
    FINAL,
    RANK,
    Channel,
    Kind,
    Reminder,
    ReminderSettings,
    SlotOffer,
    State,
    Transport,
)
from app.patients.models import Patient
from app.scheduling.models import Appointment
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind as TimelineKind

log = logging.getLogger(__name__)

IN_FLIGHT = timedelta(seconds=60)  # longer than the HTTP timeout: a younger `sending` row may be mid-request
HTTP_TIMEOUT = 10.0
OFFER_LEAD = timedelta(hours=1)  # an offered time closer than this is no longer worth offering
# Codes after which WhatsApp will not reach this patient but SMS may.
NOT_ON_WHATSAPP = {63003, 63016, 63024, 63032}


class TryLater(Exception):
    """Twilio was busy or unreachable: RQ runs the job again after a backoff."""


@dataclass
class Message:
    to: str  # E.164
    text: str  # what the patient reads
    content_sid: str | None = None
    variables: dict | None = None


def send(db: Session, clinic_id: uuid.UUID, reminder_id: uuid.UUID, *, now: datetime | None = None) -> str:
    """Send one outbox row if it is still due; commits; returns what happened (for logs and tests)."""
    now = now or utcnow()
    set_tenant(db, clinic_id=clinic_id, user_id=None)
    row = db.scalar(select(Reminder).where(Reminder.clinic_id == clinic_id, Reminder.id == reminder_id)
                    .with_for_update(skip_locked=True))
    if row is None or row.state in FINAL or row.state is State.SENT:
        db.rollback()
        return "nothing to do"
    clinic = db.get(Clinic, clinic_id)
    settings = outbox.settings_of(db, clinic_id)
    if row.state is State.SENDING:
        outcome = _reconcile(db, row, settings, now)
        if outcome:
            return outcome
    reason = _why_not(db, clinic, settings, row, now)
    if reason:
        return _skip(db, clinic, row, reason, now)
    later = _after_quiet_hours(db, clinic, settings, row, now)
    if later:
        return later
    message = _compose(db, clinic, settings, row)
    if message is None:
        return _fail(db, clinic, row, None, "no mobile number on the patient's record", now)
    if settings.transport is Transport.OUTBOX:
        return _store(db, row, message, now)
    return _twilio(db, clinic, settings, row, message, now)


# --- Checks at send time -------------------------------------------------------------------------

def _why_not(db: Session, clinic: Clinic, settings: ReminderSettings, row: Reminder, now: datetime) -> str | None:
    """Why this message must not go now, or None."""
    appointment = db.get(Appointment, (clinic.id, row.appointment_id))
    if appointment.status not in outbox.OPEN:
        return f"appointment {appointment.status.label.lower()}"
    if not settings.enabled:
        return "reminders turned off"
    if row.channel not in outbox.consented(db, clinic.id, row.patient_id):
        return "consent withdrawn"
    if row.channel not in outbox.channels_of(settings):
        return f"{row.channel.label} turned off"
    if settings.transport is Transport.TWILIO and not _can_send(settings, row.channel):
        return f"{row.channel.label} not set up"
    if row.kind == Kind.OFFER:
        offer = db.get(SlotOffer, (clinic.id, row.offer_id))
        if offer.taken_at is not None or offer.starts_at - OFFER_LEAD < now:
            return "offered time gone"
        return None
    if row.kind == Kind.RESCHEDULE_LINK:
        return "too late" if appointment.starts_at <= now else None
    return "too late" if plan.is_stale(row.due_at, appointment.starts_at, now) else None


def _after_quiet_hours(db: Session, clinic: Clinic, settings: ReminderSettings, row: Reminder,
                       now: datetime) -> str | None:
    """A message that comes due in quiet hours (a fallback after a late callback, a retry, a sweep after an
    outage) waits for their end if that is still 30 min before the visit, else it is dropped."""
    ends = plan.quiet_until(outbox.schedule_of(settings, clinic), now)
    if ends is None or row.kind == Kind.RESCHEDULE_LINK:  # a link the patient has just asked for goes now
        return None
    if row.kind == Kind.OFFER:
        latest = db.get(SlotOffer, (clinic.id, row.offer_id)).starts_at - OFFER_LEAD
    else:
        latest = db.get(Appointment, (clinic.id, row.appointment_id)).starts_at - plan.MIN_LEAD
    if ends > latest:
        return _skip(db, clinic, row, "quiet hours", now)
    row.due_at = ends
    outbox.queue_after_commit(db, clinic.id, [(row.id, ends)])
    db.commit()
    return "waits for the end of quiet hours"


def _skip(db: Session, clinic: Clinic, row: Reminder, reason: str, now: datetime) -> str:
    row.state, row.error_text, row.status_at = State.SKIPPED, reason, now
    if reason == "consent withdrawn" or reason.startswith(row.channel.label):  # another channel may still do
        outbox.fallback(db, clinic, row)
    db.commit()
    return f"skipped: {reason}"


def _fail(db: Session, clinic: Clinic, row: Reminder, code: int | None, text: str, now: datetime, *,
          try_sms: bool = False) -> str:
    row.state, row.error_code, row.error_text, row.status_at = State.FAILED, code, text[:200], now
    _on_timeline(db, row, now)
    if row.channel is Channel.WHATSAPP and (try_sms or code in NOT_ON_WHATSAPP):
        outbox.fallback(db, clinic, row)
    db.commit()
    log.info("reminder %s failed: %s", row.id, code or text)
    return f"failed: {code or text}"


# --- Composing -----------------------------------------------------------------------------------

def _compose(db: Session, clinic: Clinic, settings: ReminderSettings, row: Reminder) -> Message | None:
    """The message as this patient reads it, with a new link (None: no number to send to)."""
    appointment = db.get(Appointment, (clinic.id, row.appointment_id))
    patient = db.get(Patient, (clinic.id, row.patient_id))
    ring = keyring(db, clinic.id)
    phone = ring.open("patient", "phone", patient.id, patient.phone_enc)
    if not phone:
        return None
    language = texts.language_of(patient.language)
    starts = appointment.starts_at
    if row.kind == Kind.OFFER:
        starts = db.get(SlotOffer, (clinic.id, row.offer_id)).starts_at
    link = links.url_of(links.issue(db, appointment))
    reminder = texts.Reminder(clinic.name, starts.astimezone(ZoneInfo(clinic.timezone)), link, language)
    template = outbox.template_of(db, clinic.id, language)
    row.language = language
    if row.kind == Kind.RESCHEDULE_LINK:
        return Message(phone, texts.fill(texts.RELINK_TEXTS[language], reminder))
    offer = row.kind == Kind.OFFER
    if row.channel is Channel.SMS:
        return Message(phone, texts.fill(template.offer_sms_text if offer else template.sms_text, reminder))
    words = texts.OFFER_SMS_TEXTS[language] if offer else None
    text = texts.fill(words, reminder) if words else texts.whatsapp_text(texts.WHATSAPP_TEMPLATES[language], reminder)
    sid = template.offer_content_sid if offer else template.whatsapp_content_sid
    return Message(phone, text, sid, texts.whatsapp_variables(reminder))


def _seal(db: Session, row: Reminder, message: Message) -> None:
    ring = keyring(db, row.clinic_id)
    row.to_index = ring.token("phone", message.to)
    row.to_enc = ring.seal("reminder", "to", row.id, message.to)
    body = message.text if row.channel is Channel.SMS else json.dumps(
        {"text": message.text, "content_sid": message.content_sid, "variables": message.variables},
        ensure_ascii=False)
    row.body_enc = ring.seal("reminder", "body", row.id, body)
    row.key_version = ring.active.version


def _store(db: Session, row: Reminder, message: Message, now: datetime) -> str:
    """The outbox transport: the message is kept for the outbox page, and that is its sending."""
    _keep(db, row, message, now)
    db.commit()
    return "sent (outbox)"


def _keep(db: Session, row: Reminder, message: Message, at: datetime) -> None:
    _seal(db, row, message)
    row.transport, row.state, row.attempts = Transport.OUTBOX, State.SENT, row.attempts + 1
    row.sending_at = row.sent_at = row.status_at = at
    _on_timeline(db, row, at)


def _on_timeline(db: Session, row: Reminder, at: datetime) -> None:
    """The patient's timeline shows each message sent or failed (the words stay in the outbox row)."""
    appointment = db.get(Appointment, (row.clinic_id, row.appointment_id))
    timeline.add(db, clinic_id=row.clinic_id, patient_id=row.patient_id, kind=TimelineKind.MESSAGE,
                 action=row.state.value, ref_id=row.id, by=None, doctor_id=appointment.doctor_id, at=at)


def sent_to_outbox(db: Session, clinic: Clinic, row: Reminder, at: datetime) -> bool:
    """Compose and keep a message in the outbox as sent at `at`, without committing (the demo's history of
    reminders that went out before it was seeded); False when the patient has no number."""
    message = _compose(db, clinic, outbox.settings_of(db, clinic.id), row)
    if message is None:
        return False
    _keep(db, row, message, at)
    return True


# --- Twilio --------------------------------------------------------------------------------------

def _client(db: Session, settings: ReminderSettings):
    token = keyring(db, settings.clinic_id).open("reminder_settings", "auth_token", settings.clinic_id,
                                                 settings.auth_token_enc)
    return tw.make_client(settings.account_sid or "", token or "", api_base=current_app.config["TWILIO_API_BASE"],
                          timeout=HTTP_TIMEOUT)


def _can_send(settings: ReminderSettings, channel: Channel) -> bool:
    """Whether the clinic's Twilio settings have a sender for this channel."""
    if not (settings.account_sid and settings.auth_token_enc):
        return False
    if channel is Channel.WHATSAPP:
        return bool(settings.whatsapp_from)
    return bool(settings.sms_from or settings.messaging_service_sid)


def _address(row: Reminder, number: str) -> str:
    return f"whatsapp:{number}" if row.channel is Channel.WHATSAPP else number


def _sender(settings: ReminderSettings, row: Reminder) -> str | None:
    if row.channel is Channel.WHATSAPP:
        return settings.whatsapp_from
    return None if settings.messaging_service_sid and not settings.sms_from else settings.sms_from


def _validity(row: Reminder, appointment: Appointment, now: datetime) -> int:
    """Seconds Twilio may keep trying: never past the appointment (Twilio's limits: 1 to 36,000 s)."""
    return max(60, min(36_000, int((appointment.starts_at - now).total_seconds())))


def _twilio(db: Session, clinic: Clinic, settings: ReminderSettings, row: Reminder, message: Message,
            now: datetime) -> str:
    if row.channel is Channel.WHATSAPP and row.kind != Kind.RESCHEDULE_LINK and not message.content_sid:
        return _fail(db, clinic, row, None, "no approved WhatsApp template set for this language", now,
                     try_sms=True)
    appointment = db.get(Appointment, (clinic.id, row.appointment_id))
    validity = _validity(row, appointment, now)
    _seal(db, row, message)
    row.transport, row.state, row.attempts = Transport.TWILIO, State.SENDING, row.attempts + 1
    row.sending_at, row.error_code, row.error_text = now, None, None
    reminder_id, channel = row.id, row.channel
    client = _client(db, settings)
    db.commit()  # `sending` is on disk before Twilio hears of it
    use_template = channel is Channel.WHATSAPP and row.kind != Kind.RESCHEDULE_LINK
    try:
        sent = tw.send(client, to=_address(row, message.to), from_=_sender(settings, row),
                       status_callback=callback_url(clinic.id), messaging_service_sid=settings.messaging_service_sid,
                       body=None if use_template else message.text,
                       content_sid=message.content_sid if use_template else None,
                       content_variables=json.dumps(message.variables) if use_template else None,
                       validity_seconds=validity)
    except tw.Ambiguous as exc:
        _note(db, clinic.id, reminder_id, exc)
        raise TryLater(str(exc)) from exc
    except tw.Retryable as exc:
        _back_to_pending(db, clinic.id, reminder_id, exc)
        raise TryLater(str(exc)) from exc
    except tw.Permanent as exc:
        row = _relock(db, clinic.id, reminder_id)
        return _fail(db, clinic, row, exc.code, exc.reason, utcnow())
    return _mark_sent(db, clinic.id, reminder_id, sent.sid)


def callback_url(clinic_id: uuid.UUID) -> str:
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/twilio/{clinic_id}/status"


def _relock(db: Session, clinic_id: uuid.UUID, reminder_id: uuid.UUID) -> Reminder:
    set_tenant(db, clinic_id=clinic_id, user_id=None)
    return db.scalar(select(Reminder).where(Reminder.clinic_id == clinic_id, Reminder.id == reminder_id)
                     .with_for_update().execution_options(populate_existing=True))


def _mark_sent(db: Session, clinic_id: uuid.UUID, reminder_id: uuid.UUID, sid: str) -> str:
    row = _relock(db, clinic_id, reminder_id)
    guessed = db.scalar(select(Reminder).where(Reminder.clinic_id == clinic_id, Reminder.twilio_sid == sid,
                                               Reminder.id != reminder_id).with_for_update())
    if guessed is not None:  # a reconcile took this message for another row: Twilio's answer here decides
        guessed.twilio_sid, guessed.state, guessed.sent_at = None, State.SENDING, None
        db.flush()
    row.twilio_sid = sid
    if RANK[row.state] < RANK[State.SENT]:  # a status callback may have moved it further already
        row.state, row.sent_at, row.status_at = State.SENT, utcnow(), utcnow()
        _on_timeline(db, row, row.sent_at)
    db.commit()
    return f"sent ({sid})"


def _back_to_pending(db: Session, clinic_id: uuid.UUID, reminder_id: uuid.UUID, exc: tw.SendError) -> None:
    row = _relock(db, clinic_id, reminder_id)
    row.state, row.error_code, row.error_text = State.PENDING, exc.code, f"will retry: {exc.reason}"[:200]
    row.status_at = utcnow()
    db.commit()


def _note(db: Session, clinic_id: uuid.UUID, reminder_id: uuid.UUID, exc: tw.SendError) -> None:
    row = _relock(db, clinic_id, reminder_id)
    row.error_text = f"checking with Twilio: {exc.reason}"[:200]
    db.commit()


def _own(db: Session, row: Reminder, candidates: list[tw.Sent]) -> tw.Sent | None:
    """This row's message among Twilio's: the one carrying the row's own link (each message has a new one).
    A message whose text Twilio does not return (a template it renders later) counts only when it is the
    only candidate; otherwise none does, and the row is sent again rather than take another's message."""
    sealed = keyring(db, row.clinic_id).open("reminder", "body", row.id, row.body_enc) or ""
    text = sealed if row.channel is Channel.SMS else json.loads(sealed).get("text", "")
    link = next((word for word in text.split() if links.PATH in word), None)
    if link:
        carrying = [m for m in candidates if m.body and link in m.body]
        if carrying:
            return carrying[0]
    blank = [m for m in candidates if not m.body]
    return blank[0] if len(blank) == 1 and len(candidates) == 1 else None


def _reconcile(db: Session, row: Reminder, settings: ReminderSettings, now: datetime) -> str | None:
    """A row left `sending`: done if Twilio has the message, else None (send it again)."""
    if row.sending_at and now - row.sending_at < IN_FLIGHT:
        db.rollback()
        return "still in flight"
    if row.transport is not Transport.TWILIO or row.to_enc is None or not _can_send(settings, row.channel):
        return None  # nothing to ask Twilio (the send-time checks then skip a row whose channel is not set up)
    number = keyring(db, row.clinic_id).open("reminder", "to", row.id, row.to_enc)
    try:
        found = tw.find_sent(_client(db, settings), to=_address(row, number),
                             since=row.sending_at - timedelta(seconds=5))
    except tw.SendError as exc:
        db.rollback()
        raise TryLater(f"could not check with Twilio: {exc.reason}") from exc
    taken = set(db.scalars(select(Reminder.twilio_sid).where(
        Reminder.clinic_id == row.clinic_id, Reminder.twilio_sid.in_([m.sid for m in found]))))
    mine = _own(db, row, [m for m in found if m.sid not in taken])
    if mine is None:
        return None
    row.twilio_sid, row.state, row.sent_at, row.status_at = mine.sid, State.SENT, now, now
    row.error_text = None
    _on_timeline(db, row, now)
    db.commit()
    return f"reconciled ({mine.sid})"
