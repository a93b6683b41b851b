"""The outbox: which messages an appointment gets, written as rows in the booking's own transaction,
and queued for the worker only once that transaction has committed.

- `plan_for` writes one pending row per reminder the clinic's schedule gives (app/messaging/plan.py),
  on the first channel, in the clinic's order, the patient has consented to. The unique index
  (appointment, version, kind, channel, offer) and ON CONFLICT DO NOTHING let the booking and the
  periodic sweep both plan the same appointment without doubling anything; a kind already planned in
  any version or channel is not planned again.
- `add_message` writes an immediate message (a waitlist offer, the link a "3" reply asks for);
  `fallback` the same message on the next consented channel after the first failed.
- The booking listeners (`booked`, `moved`, `status_changed`), connected to app/scheduling/signals.py, keep
  the outbox and links in step with the schedule, in the change's own transaction. The send job re-checks
  everything anyway: these only save it work and revoke links at once.
- `queue_after_commit` enqueues the send jobs (jobs/reminders.py, by dotted path: app/queue.py) after
  COMMIT; if Redis is down the rows simply wait for the sweep, which rebuilds the queue from this table.
"""

import uuid
from datetime import datetime, time, timedelta

from rq import Retry
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.messaging import links, plan, texts
from app.messaging.models import Channel, Reminder, ReminderSettings, ReminderTemplate, State, Transport
from app.patients.models import ConsentEvent
from app.queue import HIGH, enqueue_after_commit
from app.scheduling import signals
from app.scheduling.models import Appointment, Status
from app.security.fields import keyring

OPEN = (Status.BOOKED, Status.CONFIRMED)
DEFAULT_OFFSETS = "1440,120"
SEND_ONE, SEND_MANY = "jobs.reminders.send_reminder", "jobs.reminders.send_reminders"
RETRY_INTERVALS = [15, 60, 180, 600]  # RQ's backoff when Twilio is busy (429, 5xx, timeouts)
BATCH_SIZE = 50  # rows per job when many are due at once


# --- Settings and templates ----------------------------------------------------------------------

def settings_of(db: Session, clinic_id: uuid.UUID) -> ReminderSettings:
    """The clinic's settings, or the defaults (not added to the session): on, WhatsApp then SMS,
    24 h and 2 h before, quiet 21:00 to 08:00, the outbox transport."""
    return db.get(ReminderSettings, clinic_id) or ReminderSettings(
        clinic_id=clinic_id, enabled=True, channels="whatsapp,sms", offsets_minutes=DEFAULT_OFFSETS,
        quiet_start=time(21, 0), quiet_end=time(8, 0), transport=Transport.OUTBOX, key_version=1)


def channels_of(settings: ReminderSettings) -> list[Channel]:
    return [Channel(name) for name in settings.channels.split(",")]


def schedule_of(settings: ReminderSettings, clinic: Clinic) -> plan.Schedule:
    offsets = tuple(timedelta(minutes=int(m)) for m in settings.offsets_minutes.split(","))
    return plan.Schedule(offsets=offsets, quiet_start=settings.quiet_start, quiet_end=settings.quiet_end,
                         timezone=clinic.timezone)


def template_of(db: Session, clinic_id: uuid.UUID, language: str) -> ReminderTemplate:
    """The clinic's templates in a language, or the built-in texts (not added to the session)."""
    language = texts.language_of(language)
    return db.get(ReminderTemplate, (clinic_id, language)) or ReminderTemplate(
        clinic_id=clinic_id, language=language, sms_text=texts.SMS_TEXTS[language],
        offer_sms_text=texts.OFFER_SMS_TEXTS[language])


def consented(db: Session, clinic_id: uuid.UUID, patient_id: uuid.UUID) -> set[Channel]:
    """The channels the patient's consent covers now (the latest ledger entry per purpose)."""
    rows = db.execute(select(ConsentEvent.purpose, ConsentEvent.granted)
                      .where(ConsentEvent.clinic_id == clinic_id, ConsentEvent.patient_id == patient_id,
                             ConsentEvent.purpose.in_([c.value for c in Channel]))
                      .order_by(ConsentEvent.at, ConsentEvent.id)).all()
    latest = dict(rows)
    return {Channel(purpose) for purpose, granted in latest.items() if granted}


def first_channel(db: Session, settings: ReminderSettings, appointment: Appointment,
                  after: Channel | None = None) -> Channel | None:
    """The first channel in the clinic's order the patient consents to (after `after`, for a fallback)."""
    order = channels_of(settings)
    if after is not None:
        order = order[order.index(after) + 1:] if after in order else []
    allowed = consented(db, appointment.clinic_id, appointment.patient_id)
    return next((c for c in order if c in allowed), None)


# --- Writing rows --------------------------------------------------------------------------------

def _insert(db: Session, appointment: Appointment, *, kind: str, channel: Channel, due_at: datetime,
            offer_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """One pending row; None when that (appointment, version, kind, channel, offer) exists already."""
    statement = insert(Reminder).values(
        clinic_id=appointment.clinic_id, id=new_id(), appointment_id=appointment.id,
        appointment_version=appointment.version, patient_id=appointment.patient_id, kind=kind,
        channel=channel.value, offer_id=offer_id, due_at=due_at, state=State.PENDING.value, attempts=0,
        key_version=keyring(db, appointment.clinic_id).active.version, created_at=utcnow(),
    ).on_conflict_do_nothing().returning(Reminder.id)
    return db.scalar(statement)


def plan_for(db: Session, clinic: Clinic, appointment: Appointment, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Write the appointment's scheduled reminders not yet planned; returns the new rows' ids (queued
    after commit)."""
    settings = settings_of(db, clinic.id)
    if appointment.walk_in or appointment.status not in OPEN or not settings.enabled:
        return []
    channel = first_channel(db, settings, appointment)
    if channel is None:
        return []
    planned = set(db.scalars(select(Reminder.kind).where(Reminder.clinic_id == clinic.id,
                                                         Reminder.appointment_id == appointment.id)))
    new = []
    for item in plan.plan(schedule_of(settings, clinic), appointment.starts_at, now or utcnow()):
        if item.kind not in planned:
            row_id = _insert(db, appointment, kind=item.kind, channel=channel, due_at=item.due_at)
            if row_id is not None:
                new.append((row_id, item.due_at))
    queue_after_commit(db, clinic.id, new)
    return [row_id for row_id, _ in new]


def add_message(db: Session, clinic: Clinic, appointment: Appointment, kind: str, *,
                offer_id: uuid.UUID | None = None, channel: Channel | None = None) -> uuid.UUID | None:
    """An immediate message (a waitlist offer, a new link asked for by reply) on `channel`, or on the
    first consented channel; None when the patient has consented to none, or it exists already."""
    settings = settings_of(db, clinic.id)
    if not settings.enabled:
        return None
    if channel is None or channel not in consented(db, clinic.id, appointment.patient_id):
        channel = first_channel(db, settings, appointment)
    if channel is None:
        return None
    now = utcnow()
    row_id = _insert(db, appointment, kind=kind, channel=channel, due_at=now, offer_id=offer_id)
    if row_id is not None:
        queue_after_commit(db, clinic.id, [(row_id, now)])
    return row_id


def fallback(db: Session, clinic: Clinic, reminder: Reminder) -> uuid.UUID | None:
    """The same message on the next consented channel after this one failed or may not be used."""
    appointment = db.get(Appointment, (clinic.id, reminder.appointment_id))
    channel = first_channel(db, settings_of(db, clinic.id), appointment, after=reminder.channel)
    if channel is None:
        return None
    now = utcnow()
    due = max(reminder.due_at, now)
    statement = insert(Reminder).values(
        clinic_id=clinic.id, id=new_id(), appointment_id=reminder.appointment_id,
        appointment_version=reminder.appointment_version, patient_id=reminder.patient_id, kind=reminder.kind,
        channel=channel.value, offer_id=reminder.offer_id, due_at=due, state=State.PENDING.value, attempts=0,
        key_version=keyring(db, clinic.id).active.version, created_at=now,
    ).on_conflict_do_nothing().returning(Reminder.id)
    row_id = db.scalar(statement)
    if row_id is not None:
        queue_after_commit(db, clinic.id, [(row_id, due)])
    return row_id


def skip_pending(db: Session, appointment: Appointment, reason: str) -> int:
    """Mark the appointment's messages not yet sent as skipped, saying why."""
    result = db.execute(update(Reminder).where(
        Reminder.clinic_id == appointment.clinic_id, Reminder.appointment_id == appointment.id,
        Reminder.state == State.PENDING).values(state=State.SKIPPED, error_text=reason, status_at=utcnow()))
    return result.rowcount


# --- Listening to the schedule (app/scheduling/signals.py, sent by app/scheduling/booking.py) ----------

@signals.appointment_booked.connect
def booked(db: Session, clinic: Clinic, appointment: Appointment) -> None:
    """A new appointment: plan its reminders."""
    plan_for(db, clinic, appointment)


@signals.appointment_moved.connect
def moved(db: Session, clinic: Clinic, old: Appointment, new: Appointment) -> None:
    """Rescheduled: the old time's links and messages end, its time may go to the waitlist."""
    links.revoke(db, old, "rescheduled")
    skip_pending(db, old, "appointment rescheduled")
    from app.messaging import waitlist

    waitlist.leave(db, old, "rescheduled")
    waitlist.offer_freed(db, clinic, old)


@signals.appointment_status_changed.connect
def status_changed(db: Session, clinic: Clinic, appointment: Appointment, action: str) -> None:
    """A status change that ends the appointment's reminders (cancel, no-show, arrival…)."""
    if action == "cancel":
        links.revoke(db, appointment, "cancelled")
        skip_pending(db, appointment, "appointment cancelled")
        from app.messaging import waitlist

        waitlist.leave(db, appointment, "cancelled")
        waitlist.offer_freed(db, clinic, appointment)
    elif appointment.status not in OPEN:
        skip_pending(db, appointment, f"appointment {appointment.status.label.lower()}")


# --- Queueing after commit ----------------------------------------------------------------------

def send_jobs(items) -> list[tuple[str, tuple, dict]]:
    """The send jobs (path, args, options) for (clinic id, row id, due time) triples: each row due later
    under its own job at its due time (id `rem-<row id>`, retried with backoff), rows due now in batches
    of one clinic (one job, up to BATCH_SIZE ids; a job per row would fork a work-horse per message)."""
    now: dict[str, list[str]] = {}
    jobs = []
    soon = utcnow() + timedelta(seconds=1)
    for clinic_id, row_id, due_at in items:
        if due_at is not None and due_at > soon:
            jobs.append((SEND_ONE, (str(clinic_id), str(row_id)), send_options(row_id, at=due_at)))
        else:
            now.setdefault(str(clinic_id), []).append(str(row_id))
    for clinic_id, ids in now.items():
        jobs += [_batch(clinic_id, ids[first:first + BATCH_SIZE]) for first in range(0, len(ids), BATCH_SIZE)]
    return jobs


def _batch(clinic_id: str, ids: list[str]) -> tuple[str, tuple, dict]:
    if len(ids) == 1:
        return SEND_ONE, (clinic_id, ids[0]), send_options(ids[0])
    return SEND_MANY, (clinic_id, ids), {"result_ttl": 600, "failure_ttl": 7 * 86400,
                                         "description": f"{len(ids)} reminders"}


def job_id(row_id) -> str:
    return f"rem-{row_id}"


def send_options(row_id, *, at: datetime | None = None) -> dict:
    """One row's send job: its id (queued once), RQ's retries with backoff, and when (None: now)."""
    return {"job_id": job_id(row_id), "retry": Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            "description": f"reminder {row_id}", "result_ttl": 600, "failure_ttl": 7 * 86400, "at": at}


def queue_after_commit(db: Session, clinic_id: uuid.UUID, rows: list[tuple[uuid.UUID, datetime]]) -> None:
    """Enqueue send jobs for these rows once the current transaction commits (the sweep, if Redis is down)."""
    for path, args, options in send_jobs((clinic_id, row_id, due) for row_id, due in rows):
        enqueue_after_commit(db, path, *args, urgency=HIGH, **options)
