# ruff: noqa: F811  (fixtures imported from the schedule journey are redefined as arguments, as pytest means)
"""The doctor's morning in Chromium: the desk adds a walk-in, the doctor calls her from My queue, writes
the note (autosaved, still there after a reload), adds a diagnosis, records vitals with one value out
of range, signs a prescription and downloads its PDF, sets a follow-up, signs and completes the visit;
then the desk opens the patient and sees that the visit happened, and nothing of what was in it. And
the note's autosave survives a save that never reached the server.

The clinic's time zone is one in which it is now mid-morning (see the schedule journey): walk-ins and
the queue work on the clinic's today only.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, Route, expect

from tests.e2e.conftest import STEP_TIMEOUT_MS, sign_in_as
from tests.e2e.test_schedule_journey import Schedule, add_patient, schedule, settled, shot  # noqa: F401
from tests.scheduling.conftest import insert_appointment

pytestmark = pytest.mark.e2e

PATIENT = "Gowri Prasad"
DOCTOR = "Dr Meera Rao"
NOTE = {"Subjective": "Headache and giddiness for a week, worse in the mornings",
        "Objective": "Alert, no focal deficit, fundus normal",
        "Assessment": "Uncontrolled essential hypertension",
        "Plan": "Start amlodipine, cut down salt, review in a week"}
DIAGNOSIS, ICD10 = "Essential hypertension, stage 2", "I10"
DRUG = "Amlodipine"
# Failed autosaves are retried every 5 s: the retry must arrive well within this.
RETRY_TIMEOUT_MS = 15_000


@pytest.fixture
def registered_doctor(schedule: Schedule, sql) -> Schedule:
    """The schedule journey's clinic, its doctor with the registration number a prescription carries."""
    sql("UPDATE staff_user SET registration_number = 'KMC/2011/48213', registration_council = "
        "'Karnataka Medical Council', qualifications = 'MBBS, MD' WHERE id = :d", d=schedule.doctor.id)
    return schedule


def add_walk_in(page: Page, name: str) -> None:
    """At the desk: Queue, "w", find the patient, the doctor, add to the queue."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Queue"))).to_be_visible()
    settled(page)
    page.keyboard.press("w")
    expect(page.get_by_role("heading", name="Add a walk-in")).to_be_visible()
    settled(page)
    form = page.locator("#walk-in-form")
    form.get_by_label("Find the patient").press_sequentially(name.split()[0].lower(), delay=40)
    expect(form.get_by_role("radio", name=re.compile(name))).to_have_count(1)
    page.keyboard.press("Enter")
    expect(form.get_by_role("radio", name=re.compile(name))).to_be_checked()
    form.get_by_label("Doctor").select_option(label=DOCTOR)
    form.get_by_role("button", name="Add to the queue").click()
    expect(form.get_by_role("status")).to_contain_text(f"{name} is waiting.")


def call_next(room: Page) -> None:
    """The doctor's My queue, Call next: the consultation screen opens."""
    room.get_by_role("navigation", name="Main").get_by_role("link", name="My queue").click()
    expect(room.get_by_role("heading", name=re.compile(r"^My queue"))).to_be_visible()
    settled(room)
    room.get_by_role("button", name="Call next (token 1)").click()
    room.wait_for_url(re.compile(r"/encounters/[0-9a-f-]{36}$"))
    expect(room.get_by_role("heading", name=re.compile(PATIENT))).to_be_visible()
    settled(room)


def note_box(page: Page, section: str):
    return page.locator("#note-form").get_by_label(section)


def write_note(page: Page) -> None:
    """Type every section; the note saves itself a moment after the typing stops."""
    status = page.locator("#note-status")
    for section, text in NOTE.items():
        note_box(page, section).fill(text)
    expect(status).to_have_attribute("data-state", "unsaved")
    expect(status).to_contain_text("Saved at")
    expect(status).to_have_attribute("data-state", "saved")


def test_doctor_works_a_visit_and_the_desk_sees_only_that_it_happened(page: Page, open_page, live_server,
                                                                      registered_doctor, add_patient):
    staff = registered_doctor
    patient_id = add_patient(PATIENT, "98450 99887")
    sign_in_as(page, staff.reception)
    add_walk_in(page, PATIENT)

    room = open_page(live_server)
    sign_in_as(room, staff.doctor)
    call_next(room)
    consultation = room.url

    # The note saves itself, and is still there after a reload.
    write_note(room)
    room.reload()
    for section, text in NOTE.items():
        expect(note_box(room, section)).to_have_value(text)
    expect(room.locator("#note-status")).to_contain_text("Last saved")
    settled(room)

    # A diagnosis with its ICD-10 code.
    diagnoses = room.locator("#diagnoses")
    diagnoses.get_by_label("Diagnosis", exact=True).fill(DIAGNOSIS)
    diagnoses.get_by_label("ICD-10").fill(ICD10.lower())
    diagnoses.get_by_role("button", name="Add diagnosis").click()
    expect(diagnoses.get_by_role("listitem").filter(has_text=DIAGNOSIS)).to_contain_text(ICD10)
    settled(room)

    # Vitals: the blood pressure is high and flagged so; the pulse is normal and is not.
    vitals = room.locator("#vitals-panel")
    vitals.get_by_label("Systolic").fill("168")
    vitals.get_by_label("Diastolic").fill("104")
    vitals.get_by_label("Pulse").fill("78")
    vitals.get_by_role("button", name="Record vitals").click()
    expect(vitals.get_by_role("status")).to_contain_text("Vitals recorded.")
    latest = room.locator("#vitals-panel .readings")
    expect(latest.locator("dd.flagged")).to_have_count(1)
    expect(latest.locator("dd.flagged")).to_contain_text("168/104 mmHg")
    expect(latest.locator("dd.flagged .badge")).to_have_text("High")
    expect(latest.locator("dd").filter(has_text="78 /min")).not_to_have_class(re.compile("flagged"))
    settled(room)

    # A prescription: one medicine, signed; its PDF downloads.
    rx = room.locator("#prescription")
    rx.get_by_label("Medicine").fill(DRUG)
    rx.get_by_label("Strength").fill("5 mg")
    rx.get_by_label("Form").fill("tablet")
    rx.get_by_label("Dose").fill("1 tablet")
    rx.get_by_label("How often").fill("1-0-0")
    rx.get_by_label("How long").fill("30 days")
    rx.get_by_label("When").select_option("after_food")
    rx.get_by_role("button", name="Add medicine").click()
    expect(rx.locator(".rx-draft-items")).to_contain_text(DRUG)
    settled(room)
    rx.get_by_label("General advice").fill("Less salt; walk 30 minutes a day.")
    rx.get_by_role("button", name="Sign prescription").click()
    expect(rx.get_by_role("link", name="No. 1, version 1")).to_be_visible()
    expect(rx.locator(".rx-lines")).to_contain_text(f"{DRUG} 5 mg tablet")
    settled(room)
    with room.expect_download() as downloading:
        rx.get_by_role("link", name="Download PDF").click()
    pdf = Path(downloading.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000, pdf[:40]
    assert downloading.value.suggested_filename.endswith(".pdf")

    # A follow-up in a week, which the page offers to book.
    follow_up = room.locator("#follow-up")
    follow_up.get_by_role("button", name="1 week").click()
    expect(follow_up).to_contain_text("Follow-up on")
    expect(follow_up.get_by_role("link", name="Book the follow-up")).to_be_visible()
    settled(room)
    shot(room, "consultation")

    # Sign and complete (after confirming): back on My queue, the visit done.
    room.once("dialog", lambda dialog: dialog.accept())
    room.get_by_role("button", name="Sign and complete visit").click()
    try:
        room.wait_for_url("**/queue/mine")
    except Exception as exc:  # say what the page said instead of only "timeout"
        problem = room.locator("#note-status").inner_text() if room.url == consultation else room.url
        raise AssertionError(f"signing did not complete the visit: {problem}") from exc
    expect(room.get_by_text("The note is signed and the visit is complete.")).to_be_visible()
    expect(room.locator("[data-done]")).to_contain_text(PATIENT)
    expect(room.locator("[data-current]")).not_to_contain_text(PATIENT)
    expect(room.locator("[data-waiting]")).to_contain_text("Nobody waiting.")

    # The desk opens the same patient: the visit is on the timeline, none of its content anywhere.
    page.get_by_role("searchbox", name="Find a patient").press_sequentially("gowri", delay=40)
    page.locator("#global-results a.result").filter(has_text=PATIENT).click()
    page.wait_for_url(f"**/patients/{patient_id}")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text(f"Consultation with {DOCTOR}")
    expect(timeline).to_contain_text(f"Prescription issued by {DOCTOR}")
    expect(timeline).to_contain_text("Vitals recorded")
    shot(page, "patient-at-the-desk")
    html = page.content()
    for secret in [*NOTE.values(), DIAGNOSIS, ICD10, DRUG, "Less salt", "168/104", "78 /min"]:
        assert secret not in html, f"the desk's page shows {secret!r}"


def test_a_failed_autosave_is_retried_until_it_is_saved(chromium, live_server, registered_doctor, add_patient,
                                                        sql):
    staff = registered_doctor
    patient_id = add_patient(PATIENT, "98450 99887")
    insert_appointment(sql, staff.clinic_id, staff.doctor.id, patient_id, day=staff.today, status="arrived", token=1)

    # This page's console will report the save that failed on purpose; anything else still fails the test.
    context = chromium.new_context(base_url=live_server, locale="en-IN", timezone_id="Asia/Kolkata")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    errors: list[str] = []
    room = context.new_page()
    room.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    room.on("console", lambda msg: _unexpected(msg, errors))
    try:
        sign_in_as(room, staff.doctor)
        call_next(room)

        posts: list[str] = []

        def first_save_fails(route: Route) -> None:
            posts.append(route.request.method)
            if route.request.method == "POST" and posts.count("POST") == 1:
                route.abort("connectionfailed")
            else:
                route.continue_()

        room.route(re.compile(r"/encounters/[0-9a-f-]{36}/note$"), first_save_fails)
        status = room.locator("#note-status")
        note_box(room, "Subjective").fill(NOTE["Subjective"])
        expect(status).to_contain_text("Retrying")
        expect(status).to_have_attribute("data-state", "unsaved")
        expect(note_box(room, "Subjective")).to_have_value(NOTE["Subjective"])
        expect(status).to_contain_text("Saved at", timeout=RETRY_TIMEOUT_MS)
        assert posts.count("POST") == 2

        room.unroute(re.compile(r"/encounters/[0-9a-f-]{36}/note$"))
        room.reload()
        expect(note_box(room, "Subjective")).to_have_value(NOTE["Subjective"])
    finally:
        context.close()
    assert not errors, f"the page reported errors: {errors}"


def _unexpected(msg: ConsoleMessage, errors: list[str]) -> None:
    """Console errors other than the one failed note save (the browser's and htmx's report of it)."""
    if msg.type != "error":
        return
    where = msg.location.get("url", "")
    failed_save = where.endswith("/note") or msg.text.startswith(("htmx:sendError", "htmx:afterRequest"))
    if where.endswith("/favicon.ico") or failed_save:
        return
    errors.append(f"console: {msg.text} at {where}")

