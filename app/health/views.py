"""Liveness and readiness probes (JSON, no PHI)."""

from flask import Blueprint, current_app, jsonify
from redis import Redis
from sqlalchemy import text

from app.auth.policy import PUBLIC, requires

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@requires(PUBLIC, background=True)
def healthz():
    """The process is up."""
    return jsonify(status="ok")


def _check_database() -> str:
    with current_app.extensions["db_engine"].connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


def _check_redis() -> str:
    url = current_app.config.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set")
    Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    return "ok"


@bp.get("/readyz")
@requires(PUBLIC, background=True)
def readyz():
    """Database and Redis both answer; 503 naming what does not."""
    checks = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            checks[name] = check()
        except Exception:
            current_app.logger.warning("readiness check %s failed", name, exc_info=True)
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503
