"""Server-Timing (app/timing.py): off unless asked; when on, every response says how many SQL statements
it sent and how long they and the whole request took, counted on the app's own engine."""

import re

from app import create_app

TIMING = re.compile(r'^db;dur=[0-9.]+;desc="(\d+) statements", app;dur=[0-9.]+$')


def test_off_by_default(app):
    assert "Server-Timing" not in app.test_client().get("/readyz").headers


def test_on_it_counts_each_requests_statements(app_config):
    timed = create_app({**app_config, "SERVER_TIMING": True})
    try:
        client = timed.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 200
        counted = int(TIMING.match(ready.headers["Server-Timing"]).group(1))
        assert counted >= 1  # /readyz asks the database
        static = client.get("/healthz")
        assert static.status_code == 200
        assert int(TIMING.match(static.headers["Server-Timing"]).group(1)) == 0  # liveness never touches it
        again = client.get("/readyz")
        assert int(TIMING.match(again.headers["Server-Timing"]).group(1)) == counted  # per request, not running
    finally:
        timed.extensions["db_engine"].dispose()
