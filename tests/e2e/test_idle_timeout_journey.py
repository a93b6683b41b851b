"""The idle timeout as a user meets it: a warning, then the screen clears itself and shows sign-in.

These tests run their own copy of the app with a short idle limit (IDLE seconds, warning WARNING
seconds before the end), served on its own port, against the same database.
"""

import re
import time

import pytest
from playwright.sync_api import Page, expect

from app import create_app
from app.auth.policy import Role
from tests.e2e.conftest import serve, sign_in_as

pytestmark = pytest.mark.e2e

IDLE = 8
WARNING = 2
# Slack for the page's once-a-second timer, the status request and the navigation.
SLACK_MS = 4_000


@pytest.fixture(scope="module")
def short_idle_server(app_config):
    short = create_app({**app_config, "SESSION_IDLE_SECONDS": IDLE, "SESSION_WARNING_SECONDS": WARNING})
    try:
        with serve(short) as url:
            yield url
    finally:
        short.extensions["db_engine"].dispose()


@pytest.fixture
def signed_in_home(open_page, short_idle_server, factory) -> tuple[Page, float]:
    """A receptionist signed in and looking at the home page; also when the page finished loading."""
    clinic = factory.clinic(name="Riverside Clinic")
    person = factory.person(clinic, Role.RECEPTION, name="Kavya Rao")
    page = open_page(short_idle_server)
    sign_in_as(page, person)
    page.wait_for_load_state("load")
    # The last request that counted as activity was made before the page finished loading.
    return page, time.monotonic()


def expect_signed_out_for_inactivity(page: Page) -> None:
    expected = expect(page, "once the session ran out, the page should have left for the sign-in page")
    expected.to_have_url(re.compile(r"/auth/login\?expired=1$"), timeout=(WARNING + 1) * 1000 + SLACK_MS)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("signed out after a period without activity")).to_be_visible()
    expect(page.get_by_text("Kavya Rao")).to_have_count(0)
    expect(page.get_by_role("banner").get_by_role("button", name="Sign out")).to_have_count(0)


def test_idle_page_warns_then_signs_out_by_itself(signed_in_home):
    page, _loaded = signed_in_home
    warning = page.locator("#session-warning")
    expect(warning).to_be_hidden()

    # Doing nothing: first the warning ...
    expect(warning).to_be_visible(timeout=(IDLE - WARNING) * 1000 + SLACK_MS)
    expect(warning.get_by_role("heading", name="Still there?")).to_be_visible()
    expect(warning.get_by_role("button", name="Stay signed in")).to_be_visible()
    expect(warning).to_contain_text(re.compile(r"signed out in \d+ s"))

    # ... then, still without any interaction, the browser leaves the page for the sign-in page.
    expect_signed_out_for_inactivity(page)

    # The server ended the session too: asking for the home page again needs a new sign-in.
    page.goto("/")
    page.wait_for_url(re.compile(r"/auth/login\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_stay_signed_in_extends_the_session(signed_in_home):
    page, loaded = signed_in_home
    warning = page.locator("#session-warning")

    # The warning checks the server's clock as it opens; wait for that answer, then click.
    with page.expect_response(re.compile(r"/session/status$"), timeout=(IDLE - WARNING) * 1000 + SLACK_MS):
        expect(warning).to_be_visible(timeout=(IDLE - WARNING) * 1000 + SLACK_MS)
    with page.expect_response(re.compile(r"/session/extend$")) as extended:
        warning.get_by_role("button", name="Stay signed in").click()
    assert extended.value.ok
    expect(warning).to_be_hidden()

    # Past the original deadline the user is still signed in, on the same page, with no warning.
    past_deadline = loaded + IDLE + 1
    page.wait_for_timeout(max(0.0, past_deadline - time.monotonic()) * 1000)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Good to see you, Kavya Rao")).to_be_visible()
    expect(warning).to_be_hidden()
    # The server agrees (the status check is background polling: it does not count as activity).
    status = page.request.get("/session/status").json()
    assert status["signed_in"] and status["seconds_left"] > 0, status

    # Left alone again, the session runs out like any other.
    expect(warning).to_be_visible(timeout=IDLE * 1000 + SLACK_MS)
    expect_signed_out_for_inactivity(page)
