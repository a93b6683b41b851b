"""The job queues, and the one way app/ enqueues a job: by its dotted path, after the transaction commits.

`enqueue_after_commit(db, "jobs.invoices.render_bill_pdf", clinic_id, bill_id, urgency=LOW, job_id=...)` keeps
the job until `db`'s transaction commits and enqueues it then; a rollback (of the transaction, or of the
savepoint it was asked for in) drops it. app/ names jobs by path and never imports jobs/. If Redis is down the
commit stands and the failure is logged: every job enqueued this way has a periodic sweep (jobs/timer.py) that
finds its rows in the database and enqueues them later.

Three queues by urgency, named after RQ_QUEUE (`clinicdesk-high`, `clinicdesk`, `clinicdesk-low`), with the JSON
serializer the worker uses (jobs/worker.py).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app, has_app_context
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

HIGH, DEFAULT, LOW = "high", "default", "low"
URGENCIES = (HIGH, DEFAULT, LOW)  # the order a worker takes jobs in
WAITING = ("queued", "scheduled", "deferred")
_KEY = "enqueue_after_commit"


def redis_connection(url: str) -> Redis:
    return Redis.from_url(url)


def queue_name(prefix: str, urgency: str = DEFAULT) -> str:
    """The queue's name: RQ_QUEUE itself for the default urgency, RQ_QUEUE-high and RQ_QUEUE-low for the others."""
    return prefix if urgency == DEFAULT else f"{prefix}-{urgency}"


def queue(connection: Redis, urgency: str = DEFAULT, prefix: str | None = None) -> Queue:
    """One of the app's queues (RQ_QUEUE, or `prefix`, and the urgency), with the worker's JSON serializer."""
    name = queue_name(prefix or current_app.config["RQ_QUEUE"], urgency)
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue(q: Queue, path: str, *args, at: datetime | None = None, job_id: str | None = None,
            **options) -> Job:
    """Enqueue the job now, or schedule it for `at` (UTC: RQ reads naive times as local); a job already
    waiting under `job_id` is left as it is (returned). A started one may be a dead worker's: run it again."""
    existing = q.fetch_job(job_id) if job_id else None
    if existing is not None and existing.get_status(refresh=True) in WAITING:
        return existing
    if at is not None and at.astimezone(UTC) > datetime.now(UTC) + timedelta(seconds=1):
        return q.enqueue_at(at.astimezone(UTC), path, *args, job_id=job_id, **options)
    return q.enqueue(path, *args, job_id=job_id, **options)


@dataclass(frozen=True)
class _Pending:
    owner: SessionTransaction | None  # the transaction (or savepoint) it was asked for in
    path: str
    args: tuple
    urgency: str
    options: dict = field(default_factory=dict)


def enqueue_after_commit(db: Session, path: str, *args, urgency: str = DEFAULT, **options) -> None:
    """Enqueue the job at `path` (see `enqueue` for `at`, `job_id`; RQ's options) once `db` commits."""
    owner = db.get_nested_transaction() or db.get_transaction()
    db.info.setdefault(_KEY, []).append(_Pending(owner, path, args, urgency, options))


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: its jobs wait for the transaction's commit
        return
    pending = session.info.pop(_KEY, None)
    if pending:
        _enqueue_all(pending)


def _enqueue_all(pending: list[_Pending]) -> None:
    if not has_app_context():
        log.warning("%d jobs not enqueued outside an app context; the sweeps will", len(pending))
        return
    try:
        connection = redis_connection(current_app.config["REDIS_URL"])
        for job in pending:
            enqueue(queue(connection, job.urgency), job.path, *job.args, **job.options)
    except Exception:  # Redis down: the page must not fail; the sweeps find the rows in the database
        log.exception("could not enqueue %d jobs after commit; the sweeps will", len(pending))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A savepoint rolled back: drop the jobs asked for inside it (a whole transaction's go when it ends)."""
    pending = session.info.get(_KEY)
    if pending and previous_transaction.nested:
        session.info[_KEY] = [job for job in pending if not _inside(job.owner, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed (a commit has taken its jobs already)
        session.info.pop(_KEY, None)


def _inside(owner: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    """Whether a job asked for in `owner` was asked for inside `savepoint` (None: before the session began)."""
    while owner is not None and owner is not savepoint:
        owner = owner.parent
    return owner is savepoint
