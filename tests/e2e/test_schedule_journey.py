"""The front desk's scheduling journeys in Chromium: book with the keyboard (an existing patient, then a
new one registered inline), check in, add a walk-in, a second desk and the doctor's queue seeing the
changes without a reload, the shortcuts help, and booking without JavaScript.

Check-in, walk-ins and the queue only work on the clinic's today, and only free slots still ahead can
be booked. So the test clinic's time zone is one a clinic may choose in which it is now mid-morning,
inside the doctor's 09:00-13:00 session, whatever the hour the tests run at.
"""

import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Locator, Page, expect

from app import formats
from app.auth.policy import Role
from app.clinics.forms import TIMEZONES
from app.db import get_session, set_tenant
from app.patients import services as patients
from app.patients.forms import to_e164
from app.scheduling.slots import holiday_name
from tests.conftest import Person
from tests.e2e.conftest import sign_in_as
from tests.scheduling.conftest import add_sessions, add_type, open_clinic

pytestmark = pytest.mark.e2e

# The boards poll every 10 s: another desk sees a change within one poll and its request.
POLL_TIMEOUT_MS = 15_000
# Set E2E_SCREENSHOTS to a folder to keep screenshots of the board, the queue and the booking form.
SHOTS = os.environ.get("E2E_SCREENSHOTS")


def midmorning_zone(now: datetime | None = None) -> str:
    """The selectable time zone in which it is now closest to 10:30."""
    now = now or datetime.now(UTC)

    def distance(tz: str) -> int:
        local = now.astimezone(ZoneInfo(tz))
        return abs(local.hour * 60 + local.minute - (10 * 60 + 30))

    return min(TIMEZONES, key=distance)


@dataclass
class Schedule:
    """A clinic open today, its doctor's 09:00-13:00 session, and the staff who work there."""

    clinic_id: uuid.UUID
    today: date
    doctor: Person
    reception: Person
    colleague: Person


@pytest.fixture
def schedule(factory, sql) -> Schedule:
    tz = midmorning_zone()
    clinic = factory.clinic(name="Basavanagudi Clinic", state_code="29", timezone=tz)
    today = datetime.now(ZoneInfo(tz)).date()
    open_clinic(sql, clinic.id)
    for day in (today, today + timedelta(days=1)):
        if holiday_name("29", day):  # open on the public holiday, as a clinic may decide
            sql("INSERT INTO clinic_day (clinic_id, day, is_open, note, created_at) "
                "VALUES (:c, :d, true, 'Open', now())", c=clinic.id, d=day)
    doctor = factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")
    add_sessions(sql, clinic.id, doctor.id, starts="09:00", ends="13:00", minutes=15)
    add_type(sql, clinic.id, "Consultation", 15, "teal")
    reception = factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")
    colleague = factory.person(clinic, Role.RECEPTION, name="Kavya Menon")
    return Schedule(clinic.id, today, doctor, reception, colleague)


@pytest.fixture
def add_patient(app, schedule):
    """Register a patient directly through the registry's service (as the receptionist)."""
    def add(full_name: str, phone: str, sex: str = "F", born: date = date(1958, 3, 12)) -> uuid.UUID:
        with app.app_context():
            db = get_session()
            set_tenant(db, clinic_id=schedule.clinic_id, user_id=schedule.reception.id)
            data = patients.PatientData(full_name=full_name, sex=sex, dob=born, phone=to_e164(phone))
            patient = patients.register(db, clinic_id=schedule.clinic_id, data=data, by=schedule.reception.id,
                                        consents={"treatment": True})
            db.commit()
            return patient.id
    return add


def settled(page: Page) -> None:
    """Wait until the page has loaded and htmx has set up what it last swapped in: until then a new
    link or form would do a plain page load, as it does without JavaScript."""
    page.wait_for_load_state()
    expect(page.locator(".htmx-added, .htmx-settling, .htmx-swapping")).to_have_count(0)


def open_schedule(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedule").click()
    expect(page.get_by_role("heading", name="Schedule", exact=True)).to_be_visible()
    settled(page)


def mark_page(page: Page) -> None:
    """Leave a marker in the window: it survives htmx swaps and is gone after any page load."""
    page.evaluate("window.journeyMarker = 'no reload'")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.journeyMarker") == "no reload", "the page was reloaded"


def card(page: Page, name: str) -> Locator:
    return page.locator("#board [data-card]").filter(has_text=name)


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        # caret="initial": hiding the caret leaves style="" on inputs, which htmx then copies (CSP).
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True, caret="initial")


def test_desk_books_with_the_keyboard_checks_in_and_another_desk_follows(page: Page, open_page, live_server,
                                                                          schedule, add_patient):
    add_patient("Lakshmi Narayanan", "98450 12301")
    add_patient("Lalitha Rao", "98450 12302")
    add_patient("Latha Rao", "98450 12303")

    # A second receptionist keeps the day board open at her desk.
    other = open_page(live_server)
    sign_in_as(other, schedule.colleague)
    open_schedule(other)
    mark_page(other)

    sign_in_as(page, schedule.reception)
    open_schedule(page)
    mark_page(page)

    # "n" books the first free slot: the booking form opens in the side panel, search focused.
    page.keyboard.press("n")
    panel = page.locator("#panel")
    form = panel.locator("#book-form")
    expect(form.locator(".slot-summary")).to_contain_text("Dr Meera Rao")
    slot_time = form.locator(".slot-summary strong").nth(1).inner_text()
    search = form.get_by_label("Find the patient")
    expect(search).to_be_focused()

    # Part of the name, Enter: the first match is chosen and the focus moves on to the type. The
    # desk types on faster than the search answers: Enter takes the first match of what was typed
    # ("la rao"), never the first of the matches still showing for "la" (Lakshmi).
    search.press_sequentially("la", delay=40)
    expect(form.get_by_role("radio")).to_have_count(3)
    search.press_sequentially(" rao", delay=20)
    page.keyboard.press("Enter")
    expect(form.get_by_label("Type")).to_be_focused()
    expect(form.get_by_role("radio")).to_have_count(2)
    expect(form.get_by_role("radio", name=re.compile("Lalitha Rao"))).to_be_checked()
    page.keyboard.press("Tab")
    expect(form.get_by_label("Reason for the visit")).to_be_focused()
    page.keyboard.type("fever for two days")
    shot(page, "day-board-with-panel")
    page.keyboard.press("Enter")

    booked = panel.get_by_role("status")
    expect(booked).to_contain_text("Booked.")
    expect(booked).to_contain_text("Lalitha Rao with Dr Meera Rao")
    lalitha = card(page, "Lalitha Rao")
    expect(lalitha).to_contain_text(slot_time)
    expect(lalitha).to_contain_text("Booked")
    assert_not_reloaded(page)

    # The other desk's board shows the booking by itself ...
    expect(card(other, "Lalitha Rao")).to_be_visible(timeout=POLL_TIMEOUT_MS)
    assert_not_reloaded(other)
    # ... and she moves on to the queue board, where nobody is waiting yet.
    other.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()
    expect(other.get_by_text("Nobody has checked in yet today.")).to_be_visible()
    settled(other)
    mark_page(other)

    # Escape closes the panel; "j" focuses the appointment, "c" checks the patient in.
    page.keyboard.press("Escape")
    expect(panel).to_be_empty()
    settled(page)
    page.keyboard.press("j")
    expect(lalitha.locator("a.card-link")).to_be_focused()
    page.keyboard.press("c")
    expect(panel.locator("#appointment-panel")).to_contain_text("Arrived · token 1")
    expect(card(page, "Lalitha Rao")).to_contain_text("Arrived · token 1")
    assert_not_reloaded(page)

    # The other desk's queue shows her waiting with her token, without a reload.
    waiting = other.get_by_role("region", name="Dr Meera Rao").locator("[data-waiting] li")
    expect(waiting).to_contain_text("Lalitha Rao", timeout=POLL_TIMEOUT_MS)
    expect(waiting.locator(".token")).to_have_text("1")
    assert_not_reloaded(other)


def test_desk_books_a_new_patient_registered_in_the_panel(page: Page, schedule):
    sign_in_as(page, schedule.reception)
    open_schedule(page)

    # "?" shows the shortcuts; Escape closes them.
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Check in the focused appointment")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    # "]" goes to the next day; "n" opens its first free slot.
    page.keyboard.press("]")
    tomorrow = schedule.today + timedelta(days=1)
    expect(page.get_by_role("heading", name=tomorrow.strftime("%A %d %B %Y"))).to_be_visible()
    settled(page)
    mark_page(page)
    page.keyboard.press("n")
    form = page.locator("#panel #book-form")
    expect(form.locator(".slot-summary")).to_contain_text(
        f"Dr Meera Rao · {formats.day(tomorrow, 'EEEE dd MMM y')} · 09:00")

    form.get_by_text("New patient? Register them here").click()
    form.get_by_label("New patient: register now").check()
    form.get_by_label("Full name").fill("Farida Begum")
    form.get_by_label("Sex").select_option("F")
    form.get_by_label("or age in years").fill("54")
    form.get_by_label("Mobile phone").fill("91234 56789")
    form.get_by_role("button", name="Book").click()

    booked = page.locator("#panel").get_by_role("status")
    expect(booked).to_contain_text("Booked.")
    expect(booked).to_contain_text("Farida Begum with Dr Meera Rao")
    expect(card(page, "Farida Begum")).to_contain_text("09:00")
    assert_not_reloaded(page)

    # She is in the registry now: the patient search finds her.
    page.keyboard.press("/")
    page.get_by_role("searchbox", name="Find a patient").press_sequentially("farida", delay=40)
    results = page.locator("#global-results a.result")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Farida Begum")
    expect(results.first).to_contain_text("MRN-000001")
    page.keyboard.press("Escape")

    # "d" goes to the date: a typed date opens on Enter, not at its first digit.
    settled(page)
    page.locator("main").click(position={"x": 5, "y": 5})  # away from the search box
    page.keyboard.press("d")
    date_box = page.get_by_label("Day", exact=True)
    expect(date_box).to_be_focused()
    page.keyboard.type("1")
    expect(page.get_by_role("button", name="Go")).to_be_visible()
    assert_not_reloaded(page)
    typed = date_box.input_value()  # which part the digit changed depends on the browser's date format
    assert typed, "the typed date is not a date"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/schedule/?day={typed}")
    expect(date_box).to_have_value(typed)


def test_walk_in_joins_the_queue_and_the_doctor_calls_next(page: Page, open_page, live_server, schedule,
                                                           add_patient):
    add_patient("Gowri Prasad", "98450 99887")

    sign_in_as(page, schedule.reception)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()
    expect(page.get_by_text("Nobody has checked in yet today.")).to_be_visible()
    settled(page)

    # "w" adds a walk-in: find the patient, Enter chooses her, the doctor is the next field.
    page.keyboard.press("w")
    expect(page.get_by_role("heading", name="Add a walk-in")).to_be_visible()
    settled(page)
    form = page.locator("#walk-in-form")
    form.get_by_label("Find the patient").press_sequentially("gowri", delay=40)
    page.keyboard.press("Enter")
    doctor = form.get_by_label("Doctor")
    expect(doctor).to_be_focused()
    expect(form.get_by_role("radio", name=re.compile("Gowri Prasad"))).to_be_checked()
    doctor.select_option(label="Dr Meera Rao")
    form.get_by_role("button", name="Add to the queue").click()
    added = form.get_by_role("status")
    expect(added).to_contain_text("Token 1")
    expect(added).to_contain_text("Gowri Prasad is waiting.")

    # The desk's queue board.
    added.get_by_role("link", name="Queue").click()
    queue = page.get_by_role("region", name="Dr Meera Rao")
    expect(queue.locator("[data-waiting]")).to_contain_text("Gowri Prasad")
    expect(queue.locator("[data-current]")).not_to_contain_text("Gowri Prasad")
    settled(page)
    mark_page(page)
    shot(page, "queue-board")

    # The doctor, in her room, calls the next patient from her own queue.
    room = open_page(live_server)
    sign_in_as(room, schedule.doctor)
    room.get_by_role("navigation", name="Main").get_by_role("link", name="My queue").click()
    expect(room.get_by_role("heading", name=re.compile(r"^My queue"))).to_be_visible()
    settled(room)
    mark_page(room)
    room.get_by_role("button", name="Call next (token 1)").click()
    # Calling her own next patient takes the doctor straight to the consultation screen.
    expect(room.get_by_role("heading", name=re.compile("Gowri Prasad"))).to_be_visible()
    expect(room).to_have_url(re.compile(r"/encounters/[0-9a-f-]{36}$"))

    # The desk's board follows by itself.
    expect(queue.locator("[data-current]")).to_contain_text("Gowri Prasad", timeout=POLL_TIMEOUT_MS)
    expect(queue.locator("[data-waiting]")).to_contain_text("Nobody waiting.")
    assert_not_reloaded(page)


def test_booking_without_javascript(open_page, live_server, schedule, add_patient):
    add_patient("Suresh Kumar", "98450 55501", sex="M")
    page = open_page(live_server, java_script_enabled=False)
    sign_in_as(page, schedule.reception)
    open_schedule(page)

    expect(page.get_by_role("heading", name=schedule.today.strftime("%A %d %B %Y"))).to_be_visible()
    page.get_by_role("link", name="Next day →").click()
    tomorrow = schedule.today + timedelta(days=1)
    expect(page.get_by_role("heading", name=tomorrow.strftime("%A %d %B %Y"))).to_be_visible()

    page.get_by_role("link", name="Free · book").first.click()
    expect(page.get_by_role("heading", name="Book an appointment")).to_be_visible()
    expect(page.locator(".slot-summary")).to_contain_text("09:00")
    page.get_by_label("Find the patient").fill("suresh")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("radio", name=re.compile("Suresh Kumar")).check()
    page.get_by_label("Reason for the visit").fill("follow-up")
    shot(page, "booking-form")
    page.get_by_role("button", name="Book", exact=True).click()

    expect(page.get_by_role("heading", name="Appointment")).to_be_visible()
    expect(page.get_by_text("The appointment is booked.")).to_be_visible()
    panel = page.locator("#appointment-panel")
    expect(panel).to_contain_text("Suresh Kumar")
    expect(panel).to_contain_text(re.compile(rf"{formats.day(tomorrow)}, 09:00.09:15"))
    expect(panel).to_contain_text("follow-up")
