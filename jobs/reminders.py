"""Reminder jobs: send one outbox row; sweep the outbox (every minute: jobs/timer.py). On the high-urgency queue.

- `send_reminder(clinic_id, reminder_id)` is app/messaging/sending.py's `send` in the worker's app
  context; `send_reminders(clinic_id, ids)` sends a batch (rows due at once, as the sweep finds them).
  Exactly once is the database's doing (row lock, states, reconcile), not Redis's: running the job twice,
  from two workers, or from the scheduler and the sweep at once, sends one message.
- Jobs are scheduled with RQ's scheduler at the row's due time, timezone-aware (UTC), under the id
  `rem-<row id>`; 429, 5xx and timeouts are retried by RQ with backoff (RETRY_INTERVALS).
- `sweep()` rebuilds the queue from the database, so losing Redis loses nothing: rows due within the
  next minute, rows left `sending` by a worker that died, and appointments starting soon that have no
  reminders planned (consent given after booking, reminders turned on later). It also forgets link
  attempts older than a day (the per-address limit needs ten minutes of them).
"""

import logging
import uuid
from datetime import datetime, timedelta

from redis import Redis
from rq import Queue, Retry
from sqlalchemy import delete, exists, or_, select

from app.clinics.models import Clinic
from app.db import get_session, set_tenant, utcnow
from app.messaging import outbox, sending
from app.messaging.models import LinkAttempt, Reminder, State
from app.messaging.outbox import RETRY_INTERVALS, job_id
from app.queue import enqueue
from app.scheduling.models import Appointment
from jobs.worker import in_app_context

log = logging.getLogger(__name__)

LOOKAHEAD = timedelta(seconds=60)
BACKOFF_LOST = timedelta(minutes=15)  # longer than the longest backoff interval
PLAN_AHEAD = timedelta(days=15)  # the longest reminder offset allowed (14 days) and a margin
BATCH = 5000


def _queue(connection: Redis | None = None) -> Queue:
    from flask import current_app, has_app_context

    from jobs.worker import HIGH, flask_app, queue, redis_connection

    config = current_app.config if has_app_context() else flask_app().config
    return queue(connection or redis_connection(config["REDIS_URL"]), HIGH)


def enqueue_many(items, *, connection: Redis | None = None, q: Queue | None = None) -> None:
    """Queue (clinic id, row id, due time) triples now, as the outbox queues them after a commit
    (app/messaging/outbox.py `send_jobs`: rows due later each at its time, rows due now in batches)."""
    q = q or _queue(connection)
    for path, args, options in outbox.send_jobs(items):
        enqueue(q, path, *args, **options)


@in_app_context
def send_reminder(clinic_id: str, reminder_id: str) -> str:
    """Send one outbox row (or decide it must not go); raises for RQ to retry when Twilio was busy."""
    db = get_session()
    try:
        outcome = sending.send(db, uuid.UUID(clinic_id), uuid.UUID(reminder_id))
    except Exception:
        db.rollback()
        raise
    finally:
        set_tenant(db, clinic_id=None, user_id=None)
    log.info("reminder %s: %s", reminder_id, outcome)
    return outcome


@in_app_context
def send_reminders(clinic_id: str, reminder_ids: list[str]) -> dict:
    """Send several rows of one clinic in turn; a row Twilio was too busy for gets a job of its own,
    retried with backoff, so one slow message never holds up the rest."""
    db = get_session()
    outcomes: dict[str, int] = {}
    for reminder_id in reminder_ids:
        try:
            outcome = sending.send(db, uuid.UUID(clinic_id), uuid.UUID(reminder_id)).split(":")[0].split(" (")[0]
        except sending.TryLater:
            db.rollback()
            _queue().enqueue_in(timedelta(seconds=RETRY_INTERVALS[0]), send_reminder, clinic_id, reminder_id,
                                job_id=job_id(reminder_id), retry=Retry(max=len(RETRY_INTERVALS) - 1,
                                                                         interval=RETRY_INTERVALS[1:]))
            outcome = "retry"
        except Exception:
            db.rollback()
            log.exception("reminder %s could not be sent; the sweep will try again", reminder_id)
            outcome = "error"
        finally:
            set_tenant(db, clinic_id=None, user_id=None)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    log.info("reminders of clinic %s: %s", clinic_id, outcomes)
    return outcomes


# --- The sweep -----------------------------------------------------------------------------------

def _due_rows(db, clinic_id: uuid.UUID, now: datetime) -> list[tuple]:
    """Rows due within the next minute, and rows left `sending` by a request that never came back."""
    # A row Twilio was too busy for waits out RQ's backoff; the sweep takes it only if that job was lost.
    not_backing_off = or_(Reminder.error_text.is_(None), ~Reminder.error_text.like("will retry%"),
                          Reminder.status_at.is_(None), Reminder.status_at <= now - BACKOFF_LOST)
    pending = db.execute(select(Reminder.id, Reminder.due_at).where(
        Reminder.clinic_id == clinic_id, Reminder.state == State.PENDING, Reminder.due_at <= now + LOOKAHEAD,
        not_backing_off).order_by(Reminder.due_at).limit(BATCH)).all()
    stuck = db.execute(select(Reminder.id, Reminder.due_at).where(
        Reminder.clinic_id == clinic_id, Reminder.state == State.SENDING,
        Reminder.sending_at < now - sending.IN_FLIGHT).limit(BATCH)).all()
    return ([(str(clinic_id), str(row_id), due) for row_id, due in pending]
            + [(str(clinic_id), str(row_id), None) for row_id, _ in stuck])


def plan_missing(db, clinic: Clinic, now: datetime) -> int:
    """Plan reminders for open appointments starting soon that have none (each planned once)."""
    appointments = db.scalars(select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.status.in_(outbox.OPEN), Appointment.walk_in.is_(False),
        Appointment.starts_at > now, Appointment.starts_at <= now + PLAN_AHEAD,
        ~exists().where(Reminder.clinic_id == clinic.id, Reminder.appointment_id == Appointment.id))
        .limit(BATCH)).all()
    return sum(len(outbox.plan_for(db, clinic, appointment, now=now)) for appointment in appointments)


@in_app_context
def sweep() -> int:
    """Re-queue every clinic's due and stuck rows and plan what is missing; returns rows queued."""
    from jobs.audit import clinic_ids

    db = get_session()
    now = utcnow()
    queued: list[tuple] = []
    for clinic_id in clinic_ids(db):
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        try:
            if outbox.settings_of(db, clinic_id).enabled:
                plan_missing(db, db.get(Clinic, clinic_id), now)
            queued += _due_rows(db, clinic_id, now)
            db.commit()  # plans queue their own rows after this commit
        except Exception:
            db.rollback()
            log.exception("reminder sweep failed for clinic %s", clinic_id)
    set_tenant(db, clinic_id=None, user_id=None)
    db.execute(delete(LinkAttempt).where(LinkAttempt.at < now - timedelta(days=1)))
    db.commit()
    enqueue_many(queued)
    if queued:
        log.info("reminder sweep: %d rows queued", len(queued))
    return len(queued)
