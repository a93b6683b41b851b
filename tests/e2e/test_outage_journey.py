"""A receptionist registers a patient while PostgreSQL is down (the test database refuses connections and
the app's backends are terminated), in Chromium: without JavaScript the form comes back filled in with
*Send again*; with htmx the form stays as typed and the notice says to try again. Once the database is
back, one more press registers the patient: nothing typed was lost."""

import re

import pytest
from playwright.sync_api import expect

from app.auth.policy import Role
from tests.conftest import database_down
from tests.e2e.conftest import sign_in_as
from tests.e2e.test_patient_journey import fill_patient

pytestmark = pytest.mark.e2e


@pytest.fixture
def desk_page(chromium, live_server, factory):
    """Open a signed-in receptionist's page (with or without JavaScript) in a context of its own."""
    contexts = []

    def open_(javascript: bool):
        clinic = factory.clinic(name="Outage Clinic")
        reception = factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")
        context = chromium.new_context(base_url=live_server, java_script_enabled=javascript)
        contexts.append(context)
        page = context.new_page()
        sign_in_as(page, reception)
        return page

    yield open_
    for context in contexts:
        context.close()


def test_a_plain_form_comes_back_filled_in_and_is_sent_again(desk_page, admin_url):
    page = desk_page(javascript=False)
    page.goto("/patients/new")
    fill_patient(page, "Farida Begum", "1970-01-01", "9123456789")
    with database_down(admin_url):
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("heading", name="Try again in a moment")).to_be_visible()
        expect(page.get_by_text("What you entered is kept below")).to_be_visible()
        page.get_by_text("What you entered (kept)").click()
        expect(page.get_by_text("Farida Begum")).to_be_visible()
    page.get_by_role("button", name="Send again").click()
    expect(page.get_by_role("heading", name=re.compile("Farida Begum"))).to_be_visible()


def test_an_htmx_form_stays_as_typed_with_a_notice(desk_page, admin_url):
    page = desk_page(javascript=True)
    page.goto("/patients/new")
    fill_patient(page, "Farida Begum", "1970-01-01", "9123456789")
    with database_down(admin_url):
        page.get_by_role("button", name="Register").click()
        expect(page.locator("#notices")).to_contain_text("did not answer just now, so nothing was saved")
        expect(page.get_by_label("Full name")).to_have_value("Farida Begum")
        expect(page.get_by_label("Mobile phone")).to_have_value("9123456789")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name=re.compile("Farida Begum"))).to_be_visible()
