# ruff: noqa: F811 (fixtures imported from tests/timeline are used as fixtures)
"""The timeline in Chromium: older entries load as the list scrolls into view (htmx), and the same page
works without JavaScript through its "Older" link; no script or style is refused by the CSP."""

import pytest
from playwright.sync_api import expect

from app.auth.policy import Role
from tests.e2e.conftest import sign_in_as
from tests.timeline.conftest import doctors, history, patient  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


@pytest.fixture
def long_history(factory, clinic, patient, history, doctors):
    gp, _ = doctors
    history.consents(patient, 40)
    for _ in range(19):
        history.appointment(patient, gp.id)
    return patient  # 60 events with the registration


def test_scrolling_loads_older_entries(open_page, live_server, factory, clinic, long_history, tmp_path):
    page = open_page(live_server)
    sign_in_as(page, factory.person(clinic, Role.RECEPTION, name="Ravi Desk"))
    page.goto(f"/patients/{long_history}/timeline")
    items = page.locator(".timeline-item")
    expect(items).to_have_count(25)
    page.locator(".timeline-more").scroll_into_view_if_needed()
    expect(items).to_have_count(50)
    page.locator(".timeline-more").scroll_into_view_if_needed()
    expect(items).to_have_count(60)
    expect(page.get_by_text("Start of the record")).to_be_visible()
    expect(page.locator(".timeline-more")).to_have_count(0)
    assert len(set(items.evaluate_all("els => els.map(e => e.id)"))) == 60
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)


def test_without_javascript_the_older_link_pages(open_page, live_server, factory, clinic, long_history):
    page = open_page(live_server, java_script_enabled=False)
    sign_in_as(page, factory.person(clinic, Role.RECEPTION, name="Ravi Desk"))
    page.goto(f"/patients/{long_history}/timeline")
    page.get_by_role("link", name="Older").click()
    expect(page.locator(".timeline-item")).to_have_count(25)
    page.get_by_role("link", name="Older").click()
    expect(page.locator(".timeline-item")).to_have_count(10)
    expect(page.get_by_text("Start of the record")).to_be_visible()
    page.get_by_role("link", name="Newest entries").click()
    expect(page.locator(".timeline-item")).to_have_count(25)
