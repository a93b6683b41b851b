"""Audit trail helpers: an auditor, the CLI (registration and the worker come from tests/conftest.py)."""

import html
from html.parser import HTMLParser
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


class EventTable(HTMLParser):
    """The rows of an events table (cell text) with `width` cells, and its 'Older events' link."""

    def __init__(self, text: str, width: int):
        super().__init__()
        self.all_rows: list[list[str]] = []
        self.older: str | None = None
        self._cell: list[str] | None = None
        self._link: dict | None = None
        self.feed(text)
        # event rows have `width` cells; the header row has none, "No events." and the link row one
        self.rows = [r for r in self.all_rows if len(r) == width]

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.all_rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a":
            self._link = dict(attrs)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.all_rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "a":
            self._link = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None and data.strip() == "Older events":
            self.older = html.unescape(self._link["href"])
