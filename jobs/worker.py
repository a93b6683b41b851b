"""The RQ worker: `python -m jobs.worker` (with RQ's scheduler for jobs due later, JSON-serialised jobs).

Jobs run inside one app context per process; payloads are ids only, serialised as JSON (never
pickle: anyone who can write to Redis would otherwise control deserialisation).

Three queues by urgency, named after RQ_QUEUE (`clinicdesk-high`, `clinicdesk`, `clinicdesk-low`): reminders and
the periodic sweeps never wait behind a batch of PDFs; a worker takes from them in that order.
Periodic work is enqueued by the timer (jobs/timer.py), never by a worker.
"""

import functools
import logging
import sys

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from app import create_app

HIGH, DEFAULT, LOW = "high", "default", "low"
URGENCIES = (HIGH, DEFAULT, LOW)  # the order a worker takes jobs in
BACKOFF = (1, 2, 4, 8, 15)  # seconds between attempts to reach Redis again (the timer); the last one repeats

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


def redis_connection(url: str) -> Redis:
    return Redis.from_url(url)


def _config():
    from flask import current_app, has_app_context

    return current_app.config if has_app_context() else flask_app().config


def queue_name(prefix: str, urgency: str = DEFAULT) -> str:
    """The queue's name: RQ_QUEUE itself for the default urgency, RQ_QUEUE-high and RQ_QUEUE-low for the others."""
    return prefix if urgency == DEFAULT else f"{prefix}-{urgency}"


def queue(connection: Redis, urgency: str = DEFAULT) -> Queue:
    """One of the app's queues (RQ_QUEUE and the urgency), with the JSON serializer the worker uses."""
    return Queue(queue_name(_config()["RQ_QUEUE"], urgency), connection=connection, serializer=JSONSerializer)


def queues(connection: Redis) -> list[Queue]:
    """The app's queues, most urgent first."""
    return [queue(connection, urgency) for urgency in URGENCIES]


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app = flask_app()
    connection = redis_connection(app.config["REDIS_URL"])
    worker = Worker(queues(connection), connection=connection, serializer=JSONSerializer)
    worker.work(with_scheduler=True, burst="--burst" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
