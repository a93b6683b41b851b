"""The RQ worker: `python -m jobs.worker` (with RQ's scheduler for jobs due later, JSON-serialised jobs).

Jobs run inside one app context per process; payloads are ids only, serialised as JSON (never
pickle: anyone who can write to Redis would otherwise control deserialisation).

Three queues by urgency, named after RQ_QUEUE (`clinicdesk-high`, `clinicdesk`, `clinicdesk-low`): reminders and
the periodic sweeps never wait behind a batch of PDFs; a worker takes from them in that order. A worker rides out
a Redis outage: whatever makes RQ's work loop give up, it starts a fresh one after a backoff, until asked to stop.
Periodic work is enqueued by the timer (jobs/timer.py), never by a worker.
"""

import functools
import logging
import sys
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from app import create_app
from app.queue import DEFAULT, HIGH, LOW, URGENCIES, queue_name, redis_connection  # noqa: F401 (the jobs' names)
from app.queue import queue as app_queue

log = logging.getLogger(__name__)

BACKOFF = (1, 2, 4, 8, 15)  # seconds between attempts to reach Redis again; the last one repeats

_app = None


def flask_app():
    """The worker process's app, created on first use."""
    global _app
    if _app is None:
        _app = create_app()
    return _app


def in_app_context(func):
    """Run a job function inside the worker's app context (and one database session)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with flask_app().app_context():
            return func(*args, **kwargs)
    return wrapper


def _config():
    from flask import current_app, has_app_context

    return current_app.config if has_app_context() else flask_app().config


def queue(connection: Redis, urgency: str = DEFAULT) -> Queue:
    """One of the app's queues (app/queue.py), inside or outside an app context."""
    return app_queue(connection, urgency, prefix=_config()["RQ_QUEUE"])


def queues(connection: Redis) -> list[Queue]:
    """The app's queues, most urgent first."""
    return [queue(connection, urgency) for urgency in URGENCIES]


class ClinicWorker(Worker):
    """RQ's worker, remembering whether it was asked to stop (else its loop ending is a fault to ride out)."""

    stop_asked = False

    def handle_warm_shutdown_request(self):
        self.stop_asked = True
        super().handle_warm_shutdown_request()


def work(connection: Redis, *, burst: bool) -> None:
    """Run RQ's work loop until asked to stop (or, in burst mode, once): a loop that ends because Redis went
    away is started again after a backoff, so a Redis restart never leaves the jobs without a worker."""
    failures = 0
    while True:
        worker = None
        try:
            worker = ClinicWorker(queues(connection), connection=connection, serializer=JSONSerializer)
            worker.work(with_scheduler=True, burst=burst)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("Redis unreachable (%s)", exc)
        if burst or (worker is not None and worker.stop_asked):
            return
        failures = failures + 1 if not _redis_up(connection) else 0
        wait = BACKOFF[min(failures, len(BACKOFF) - 1)]
        log.warning("the work loop ended without a stop request; starting again in %d s", wait)
        time.sleep(wait)


def _redis_up(connection: Redis) -> bool:
    try:
        return bool(connection.ping())
    except (RedisConnectionError, RedisTimeoutError):
        return False


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app = flask_app()
    work(redis_connection(app.config["REDIS_URL"]), burst="--burst" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
