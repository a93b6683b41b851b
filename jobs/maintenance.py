"""Housekeeping jobs: drop sessions past their idle or absolute limit."""

from datetime import timedelta

from flask import current_app
from rq import Queue
from sqlalchemy import delete, or_

from app.auth.models import UserSession
from app.db import utcnow
from jobs.worker import in_app_context

PURGE_EVERY = timedelta(minutes=10)
PURGE_JOB_ID = "maintenance-purge-expired-sessions"


@in_app_context
def purge_expired_sessions() -> int:
    """Delete expired session rows (they are refused on use anyway); returns how many."""
    now = utcnow()
    idle = timedelta(seconds=current_app.config["SESSION_IDLE_SECONDS"])
    longest = timedelta(seconds=current_app.config["SESSION_MAX_SECONDS"])
    with current_app.extensions["db_engine"].begin() as conn:
        result = conn.execute(delete(UserSession).where(or_(
            UserSession.last_activity_at < now - idle, UserSession.created_at < now - longest)))
    return result.rowcount


def purge_and_reschedule() -> int:
    """The periodic form: purge now, then schedule the next run."""
    from jobs.worker import flask_app, queue, redis_connection

    removed = purge_expired_sessions()
    schedule_periodic(queue(redis_connection(flask_app().config["REDIS_URL"])))
    return removed


def schedule_periodic(q: Queue) -> None:
    """Schedule the next purge under a fixed job id, so restarts never duplicate it."""
    # result_ttl=-1: the next run shares this job id; RQ must not expire the key before it runs.
    q.enqueue_in(PURGE_EVERY, purge_and_reschedule, job_id=PURGE_JOB_ID, result_ttl=-1)
