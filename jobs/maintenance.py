"""Housekeeping jobs: drop sessions past their idle or absolute limit (every 10 minutes: jobs/timer.py)."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_

from app.db import utcnow
from app.security.models import UserSession
from jobs.worker import in_app_context


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
