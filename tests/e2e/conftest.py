"""Browser journeys: the real app on a live local server, driven by the system Chromium.

The app runs in a background thread (werkzeug's threaded server on a free port) against the same
PostgreSQL and Redis as the other tests; data the factory creates is committed, so the browser
sees it, and the usual `_clean_tables` truncation runs after each test. Chromium is the system
browser (`/usr/bin/chromium`, never a downloaded one), started once per run; every test gets its
own browser context (fresh cookies) and page, closed at teardown.
"""

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect, sync_playwright
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import Person

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# How long a step (a navigation, an element appearing) may take before the test fails.
STEP_TIMEOUT_MS = 10_000

expect.set_options(timeout=STEP_TIMEOUT_MS)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (errors are still logged)."""

    def log_request(self, code="-", size="-"):
        pass


@contextlib.contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and a free port in a daemon thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[str]:
    """Base URL of the test app (default idle timeout) served over real HTTP."""
    with serve(app) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(chromium, request, tmp_path):
    """Open a page in a fresh browser context (own cookies) at a server's base URL.

    Extra keyword arguments are browser context options (for instance `java_script_enabled=False`).
    Closes every context at teardown and fails the test if a page had a JavaScript error or a
    console error (for instance a script or style refused by the Content-Security-Policy). When the
    test failed, a screenshot and the HTML of each page are kept in the test's tmp_path.
    """
    opened: list[tuple[BrowserContext, Page, list[str]]] = []

    def open_(base_url: str, **options) -> Page:
        context = chromium.new_context(**{"base_url": base_url, "locale": "en-IN", "timezone_id": "Asia/Kolkata",
                                          **options})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        page.on("console", lambda msg: _note_console_error(msg, errors))
        opened.append((context, page, errors))
        return page

    yield open_
    problems = []
    for n, (context, page, errors) in enumerate(opened):
        if getattr(request.node, "rep_call_failed", False):
            _keep_evidence(page, tmp_path / f"page{n}")
        problems.extend(errors)
        context.close()
    assert not problems, f"the page reported errors: {problems}"


def _note_console_error(msg: ConsoleMessage, errors: list[str]) -> None:
    # The browser asks for /favicon.ico on its own; the app has none, and that is no page error.
    if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
        errors.append(f"console: {msg.text} at {msg.location.get('url')}")


@pytest.fixture
def page(open_page, live_server) -> Page:
    """A page in a fresh browser context on the live test app."""
    return open_page(live_server)


def _keep_evidence(page: Page, stem) -> None:
    """Save a screenshot and the HTML of the page the user was looking at when the test failed."""
    with contextlib.suppress(Exception):  # best effort: never mask the real failure
        page.screenshot(path=f"{stem}.png", full_page=True)
        Path(f"{stem}.html").write_text(page.content())
        print(f"e2e evidence: {stem}.png, {stem}.html (at {page.url})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call_failed = report.failed
    return report


# --- What a user does ------------------------------------------------------------------------------

def sign_in(page: Page, email: str, password: str, code: str) -> None:
    """Sign in through the forms: e-mail and password, then the authenticator code."""
    page.goto("/auth/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/auth/mfa")
    page.get_by_role("textbox", name="Authentication code").fill(code)
    page.get_by_role("button", name="Verify and sign in").click()


def sign_in_as(page: Page, person: Person) -> None:
    """Sign in as a factory-made person and wait for the home page."""
    sign_in(page, person.email, person.password, person.code())
    expect(page.get_by_role("heading", name=f"Good to see you, {person.full_name}")).to_be_visible()


def sign_out(page: Page) -> None:
    """The header's "Sign out" button; the user lands on the sign-in page."""
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/auth/login?signed_out=1")
    expect(page.get_by_text("You have signed out.")).to_be_visible()


def next_step_code(secret: str) -> str:
    """The authenticator's code for the next 30 s step (the server allows +-1 step of drift).

    A code is accepted once per step and user; this one is for a second sign-in right after a first.
    """
    return pyotp.TOTP(secret).at(time.time() + 30)
