"""The timer: `python -m jobs.timer` enqueues the periodic jobs, each at a fixed interval. One process is enough;
more (or restarts) never enqueue a run twice.

Each interval is cut into slots counted from the epoch: the run of a slot is enqueued once, whoever claims it first
in Redis (SET NX), by dotted path on the high-urgency queue. A run killed mid-way, a worker restarting every few
seconds or the timer restarting does not move the next slot: the periodic jobs keep their pace as long as this
process runs. While the previous run of a job still waits in its queue (no worker up), the next is not added to it.
"""

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.job import JobStatus

from jobs.worker import BACKOFF, HIGH, flask_app, queue, redis_connection

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks at the clock


@dataclass(frozen=True)
class Every:
    interval: timedelta
    path: str  # the job function, by dotted path

    @property
    def seconds(self) -> int:
        return int(self.interval.total_seconds())


PERIODIC: list[Every] = []


def every(interval: timedelta, path: str) -> Every:
    """Run the job function at `path` every `interval` (the one way periodic work is declared)."""
    job = Every(interval, path)
    PERIODIC.append(job)
    return job


every(timedelta(seconds=60), "jobs.reminders.sweep")  # the outbox, rebuilt from the database
every(timedelta(seconds=60), "jobs.invoices.sweep_pdfs")  # documents' PDFs left pending
every(timedelta(seconds=10), "jobs.audit.chain_all_clinics")  # link the audit chain
every(timedelta(minutes=5), "jobs.audit.sign_all_checkpoints")  # sign each clinic's chain head
every(timedelta(minutes=10), "jobs.maintenance.purge_expired_sessions")


def slot_of(job: Every, at: datetime) -> int:
    return int(at.timestamp()) // job.seconds


def _waiting(q: Queue, job_id: bytes | None) -> bool:
    """Whether the job's previous run is still queued (nobody has started it)."""
    job = q.fetch_job(job_id.decode()) if job_id else None
    return job is not None and job.get_status() in (JobStatus.QUEUED, JobStatus.DEFERRED)


def tick(connection: Redis, at: datetime | None = None) -> list[str]:
    """Enqueue every periodic job whose slot at `at` has not been claimed yet; returns the job ids enqueued."""
    at = at or datetime.now(UTC)
    q = queue(connection, HIGH)
    enqueued = []
    for job in PERIODIC:
        slot = slot_of(job, at)
        key = f"{q.name}:every:{job.path}"
        if not connection.set(f"{key}:{slot}", 1, nx=True, ex=job.seconds * 2 + 60):
            continue
        if _waiting(q, connection.get(f"{key}:last")):
            log.warning("%s: the previous run still waits for a worker; slot %d left out", job.path, slot)
            continue
        job_id = f"every-{job.path.replace('.', '_')}-{slot}"
        q.enqueue(job.path, job_id=job_id, description=f"{job.path} (every {job.seconds} s)",
                  result_ttl=job.seconds * 10, failure_ttl=7 * 86400)
        connection.set(f"{key}:last", job_id, ex=job.seconds * 10)
        enqueued.append(job_id)
    return enqueued


def run(connection: Redis) -> None:
    """Tick every second until stopped; Redis going away is waited out with a backoff."""
    failures = 0
    while True:
        try:
            tick(connection)
            failures = 0
            time.sleep(TICK)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            wait = BACKOFF[min(failures, len(BACKOFF) - 1)]
            log.warning("Redis unreachable (%s); trying again in %d s", exc, wait)
            failures += 1
            time.sleep(wait)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s timer %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app = flask_app()
    with contextlib.suppress(KeyboardInterrupt):
        run(redis_connection(app.config["REDIS_URL"]))


if __name__ == "__main__":
    main()
