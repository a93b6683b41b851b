"""Audit trail helpers: a receptionist registering patients over HTTP, a burst RQ worker, the CLI."""

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from app.audit.cli import audit
from app.auth.policy import Role

ROOT = Path(__file__).resolve().parents[2]
_phones = itertools.count(9_700_000_001)


def patient_form(**overrides) -> dict:
    values = {"full_name": "Sunita Devi Sharma", "sex": "F", "dob": "1980-05-04", "phone": str(next(_phones)),
              "state_code": "29", "language": "hi", "consent_treatment": "y"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def patient_id(url: str) -> str:
    return re.search(r"/patients/([0-9a-f-]{36})", url).group(1)


@pytest.fixture
def reception(factory, clinic):
    return factory.person(clinic, Role.RECEPTION, name="Ravi Reception")


@pytest.fixture
def desk(new_browser, reception):
    """A browser signed in as the clinic's receptionist."""
    browser = new_browser()
    browser.sign_in(reception)
    return browser


def register_with(browser, **overrides) -> str:
    """Register a patient over HTTP as this browser's user; returns the patient's URL."""
    response = browser.post("/patients/new", patient_form(**overrides), page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return response.headers["Location"]


@pytest.fixture
def register(desk):
    return lambda **overrides: register_with(desk, **overrides)


@pytest.fixture
def auditor(factory, clinic):
    return factory.person(clinic, Role.AUDITOR, name="Anita Auditor")


@pytest.fixture
def as_auditor(new_browser, auditor):
    browser = new_browser()
    browser.sign_in(auditor)
    return browser


def run_worker(app_config: dict) -> subprocess.CompletedProcess:
    """A real RQ worker process in burst mode (it runs what is queued, then exits)."""
    env = {**os.environ,
           "DATABASE_URL": app_config["DATABASE_URL"], "APP_DB_PASSWORD": app_config["APP_DB_PASSWORD"],
           "REDIS_URL": app_config["REDIS_URL"], "SECRET_KEY": app_config["SECRET_KEY"],
           "MASTER_KEY": app_config["MASTER_KEY"], "INSTANCE_PATH": app_config["INSTANCE_PATH"],
           "RQ_QUEUE": app_config["RQ_QUEUE"]}
    env.pop("DATABASE_APP_URL", None)
    return subprocess.run([sys.executable, "-m", "jobs.worker", "--burst"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


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
