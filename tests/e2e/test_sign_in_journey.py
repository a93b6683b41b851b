"""Signing in and out in Chromium, and a new person's first sign-in from enrolment to their own password."""

import re

import pyotp
import pytest
from playwright.sync_api import Page, expect

from app.auth.policy import Role
from tests.e2e.conftest import next_step_code, sign_in, sign_in_as, sign_out

pytestmark = pytest.mark.e2e


def test_sign_in_with_password_and_code_then_sign_out(page: Page, factory):
    clinic = factory.clinic(name="Lakeside Family Clinic")
    person = factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")

    sign_in(page, person.email, person.password, person.code())

    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Good to see you, Ravi Shankar")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("You are working in Lakeside Family Clinic")
    header = page.get_by_role("banner")
    expect(header).to_contain_text("Lakeside Family Clinic")
    expect(header.get_by_role("link", name="Ravi Shankar")).to_be_visible()

    sign_out(page)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("banner").get_by_role("button", name="Sign out")).to_have_count(0)

    # The Back button does not bring the signed-in page (or its data) back ...
    page.go_back()
    page.wait_for_url(re.compile(r"/auth/login\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Good to see you")).to_have_count(0)

    # ... and neither does asking for the home page.
    page.goto("/")
    page.wait_for_url(re.compile(r"/auth/login\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Ravi Shankar")).to_have_count(0)


def test_new_person_is_enrolled_and_signs_in_with_their_own_password(open_page, live_server, factory):
    clinic = factory.clinic(name="Hillview Clinic")
    admin = factory.person(clinic, Role.ADMIN, name="Asha Admin")
    page = open_page(live_server)

    # The clinic admin adds a receptionist and reads out the temporary password.
    sign_in_as(page, admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Staff", exact=True).click()
    expect(page.get_by_role("heading", name="Staff of Hillview Clinic")).to_be_visible()
    page.get_by_role("link", name="Add a person").click()
    expect(page.get_by_role("heading", name="Add a person to Hillview Clinic")).to_be_visible()
    page.get_by_label("Full name").fill("Meera Nair")
    page.get_by_label("E-mail").fill("Meera.Nair@example.in")
    page.get_by_label("Role").select_option(label=Role.RECEPTION.label)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", name="Meera Nair can now sign in")).to_be_visible()
    temporary = page.get_by_test_id("temp-password").inner_text().strip()
    assert len(temporary) >= 12
    sign_out(page)

    # Meera's first sign-in: the temporary password, then setting up the authenticator app.
    page.get_by_label("E-mail").fill("meera.nair@example.in")
    page.get_by_label("Password", exact=True).fill(temporary)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/auth/enrol")
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    shown = page.get_by_test_id("totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4})+", shown.strip()), shown
    secret = shown.replace(" ", "").strip()
    page.get_by_role("textbox", name="Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    codes = page.get_by_test_id("recovery-codes").locator("li")
    expect(codes).to_have_count(10)
    assert len(set(codes.all_inner_texts())) == 10
    page.get_by_role("link", name=re.compile("continue")).click()

    # The temporary password must be replaced before anything else.
    page.wait_for_url("**/account/password")
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    expect(page.get_by_text("You signed in with a temporary password.")).to_be_visible()
    new_password = "monsoon arrives early in kochi"
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Repeat the new password").fill(new_password)
    page.get_by_role("button", name="Change password").click()

    page.wait_for_url("**/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("Your password was changed.")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("meera.nair@example.in")
    sign_out(page)

    # From now on: her own password and the authenticator app (the next code: each code works once).
    sign_in(page, "meera.nair@example.in", new_password, next_step_code(secret))
    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Good to see you, Meera Nair")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("You are working in Hillview Clinic")
    expect(page.get_by_role("main")).to_contain_text(Role.RECEPTION.label)
