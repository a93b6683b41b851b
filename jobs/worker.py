"""The RQ worker: `python -m jobs.worker` (with the scheduler, JSON-serialised jobs).

Jobs run inside one app context per process; payloads are ids only, serialised as JSON (never
pickle: anyone who can write to Redis would otherwise control deserialisation).
"""

import functools
import logging
import sys

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from app import create_app

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


def queue(connection: Redis) -> Queue:
    """The app's queue (RQ_QUEUE), with the JSON serializer the worker uses."""
    from flask import current_app, has_app_context

    config = current_app.config if has_app_context() else flask_app().config
    return Queue(config["RQ_QUEUE"], connection=connection, serializer=JSONSerializer)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app = flask_app()
    connection = redis_connection(app.config["REDIS_URL"])
    from jobs.maintenance import schedule_periodic

    schedule_periodic(queue(connection))
    __import__("jobs.audit").audit.schedule_periodic(queue(connection))  # link and sign the audit chain
    __import__("jobs.invoices").invoices.schedule_sweep(queue(connection))  # documents' PDFs left pending
    __import__("jobs.reminders").reminders.schedule_sweep(queue(connection))  # the outbox, rebuilt from the database
    worker = Worker([queue(connection)], connection=connection, serializer=JSONSerializer)
    worker.work(with_scheduler=True, burst="--burst" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
