"""Audit trail helpers: an auditor, the CLI (registration and the worker come from tests/conftest.py)."""

from pathlib import Path

import pytest
from redis import Redis

from app.audit.cli import audit
from app.auth.policy import Role
from tests.conftest import run_worker

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture
def auditor(factory, clinic):
    return factory.person(clinic, Role.AUDITOR, name="Anita Auditor")


@pytest.fixture
def as_auditor(new_browser, auditor):
    browser = new_browser()
    browser.sign_in(auditor)
    return browser


@pytest.fixture
def run_job(app, app_config):
    """Queue a job function and run it in a real burst worker; returns the job's return value."""
    from jobs.worker import queue

    def go(func, *args):
        connection = Redis.from_url(app_config["REDIS_URL"])
        try:
            with app.app_context():
                job = queue(connection).enqueue(func, *args)
            result = run_worker(app_config)
            assert result.returncode == 0, result.stderr[-3000:]
            job.refresh()
            assert job.get_status() == "finished", result.stderr[-3000:]
            return job.return_value()
        finally:
            connection.close()
    return go


@pytest.fixture
def cli(app):
    """Run `flask audit ...` in-process; returns the click result."""
    def go(*args):
        return app.test_cli_runner().invoke(audit, list(args))
    return go
