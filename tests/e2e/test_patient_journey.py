"""The receptionist's registry journey in Chromium: register (with a duplicate warning), find a patient
by typing part of the name with the keyboard, change the phone, and see the record's history."""

import re

import pytest
from playwright.sync_api import Page, expect

from app.auth.policy import Role
from tests.e2e.conftest import sign_in_as

pytestmark = pytest.mark.e2e


def fill_patient(page: Page, name: str, dob: str, phone: str) -> None:
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Sex").select_option("F")
    page.get_by_label("Date of birth").fill(dob)
    page.get_by_label("Mobile phone").fill(phone)


def test_receptionist_registers_finds_edits_and_sees_history(page: Page, factory):
    clinic = factory.clinic(name="Jayanagar Clinic")
    reception = factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")
    sign_in_as(page, reception)

    # Register a first patient.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.get_by_role("link", name="Register a patient").click()
    fill_patient(page, "Lakshmi Narayanan", "1958-03-12", "98450 12301")
    page.get_by_label("WhatsApp reminders").check()
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name=re.compile("Lakshmi Narayanan"))).to_be_visible()
    expect(page.get_by_text("MRN-000001").first).to_be_visible()

    # A family member with the same phone: the duplicate warning appears in place, input kept.
    page.goto("/patients/new")
    fill_patient(page, "Venkatesh Narayanan", "1955-07-30", "9845012301")
    page.get_by_role("button", name="Register").click()
    warning = page.get_by_role("alert").filter(has_text="Is this one of these patients?")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Lakshmi Narayanan")
    expect(page.get_by_label("Full name")).to_have_value("Venkatesh Narayanan")
    page.get_by_label("None of these is the patient").check()
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name=re.compile("Venkatesh Narayanan"))).to_be_visible()

    # Find Lakshmi from anywhere: "/" focuses the search, type part of the name, arrow down, Enter.
    page.goto("/")
    page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Find a patient")
    expect(search).to_be_focused()
    search.press_sequentially("laks", delay=40)
    results = page.locator("#global-results a.result")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Lakshmi Narayanan")
    page.keyboard.press("ArrowDown")
    expect(results.first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Lakshmi Narayanan"))).to_be_visible()

    # The shared number finds both of the family.
    page.keyboard.press("/")
    page.get_by_role("searchbox", name="Find a patient").press_sequentially("12301", delay=40)
    expect(page.locator("#global-results a.result")).to_have_count(2)

    # Change her phone; the page and its history show before and after.
    page.get_by_role("link", name="Edit details").click()
    page.get_by_label("Mobile phone").fill("99000 11122")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("+91 99000 11122")
    history = page.get_by_role("region", name="Record history")
    expect(history).to_contain_text("+919845012301")
    expect(history).to_contain_text("+919900011122")
    expect(history).to_contain_text("Ravi Shankar")


def test_search_page_without_javascript_still_finds_patients(chromium, live_server, factory):
    clinic = factory.clinic(name="No Script Clinic")
    reception = factory.person(clinic, Role.RECEPTION, name="Plain Desk")
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/auth/login")
        page.get_by_label("E-mail").fill(reception.email)
        page.get_by_label("Password", exact=True).fill(reception.password)
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("textbox", name="Authentication code").fill(reception.code())
        page.get_by_role("button", name="Verify and sign in").click()
        page.goto("/patients/new")
        fill_patient(page, "Farida Begum", "1970-01-01", "9123456789")
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("heading", name=re.compile("Farida Begum"))).to_be_visible()
        page.goto("/patients/")
        page.get_by_label("Name, phone or its last digits, MRN or ABHA number").fill("farida")
        page.get_by_role("main").get_by_role("button", name="Search").click()
        expect(page.locator("#results a.result")).to_contain_text("Farida Begum")
    finally:
        context.close()


def test_auditor_finds_who_looked_at_a_patient(page: Page, open_page, live_server, factory):
    clinic = factory.clinic(name="Malleshwaram Clinic")
    reception = factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")
    auditor = factory.person(clinic, Role.AUDITOR, name="Lakshmi Iyer")

    # The receptionist registers a patient, then opens the record again later.
    sign_in_as(page, reception)
    page.goto("/patients/new")
    fill_patient(page, "Gowri Prasad", "1981-04-14", "9845099887")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name=re.compile("Gowri Prasad"))).to_be_visible()
    page.reload()

    # The auditor, in another browser, asks who looked at MRN-000001.
    audit_page = open_page(live_server)
    sign_in_as(audit_page, auditor)
    audit_page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    audit_page.get_by_role("button", name="Verify now").click()
    expect(audit_page.get_by_role("heading", name="Trail intact")).to_be_visible()
    audit_page.get_by_label("Patient MRN").fill("MRN-000001")
    audit_page.get_by_role("button", name="Show who looked").click()
    expect(audit_page.get_by_role("heading", name="Who looked at MRN-000001")).to_be_visible()
    rows = audit_page.locator("#events tr")
    viewed = rows.filter(has_text="Viewed a patient").filter(has_text="Ravi Shankar")
    expect(viewed).to_have_count(2)
    expect(rows.filter(has_text="Ravi Shankar").filter(has_text="MRN-000001").first).to_be_visible()
    # the auditor sees who and when, never the patient's name
    expect(audit_page.get_by_role("main")).not_to_contain_text("Gowri")
