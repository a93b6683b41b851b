# ruff: noqa: F811  (fixtures imported from the billing set-up are redefined as arguments, as pytest means)
"""A reminder's whole day in Chromium: the desk books a patient for later today; a real RQ worker sends
the reminder through Twilio (a local fake) on WhatsApp, with the clinic, date, time and a link and no
name; the patient opens the link on a phone, sees the appointment without the token in the address bar
and moves it to another free time; the desk's board follows by itself; the patient comes, is checked
in, the doctor calls and completes the visit, and the desk bills it.

Check-in, the queue and billing work on the clinic's today, and only free times still ahead can be
booked or chosen, so the clinic's time zone is one in which it is now mid-morning (as in the schedule
journey): "a few hours from now" is always inside the doctor's 08:00-18:00 session.
"""

import json
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from app import formats
from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.messaging import texts
from app.patients import services as patients
from app.patients.forms import to_e164
from app.scheduling.slots import holiday_name
from jobs import reminders
from jobs.worker import HIGH, queue_name
from tests.billing.conftest import consultation_type, gst_ready, prices  # noqa: F401
from tests.e2e.conftest import sign_in_as
from tests.e2e.test_schedule_journey import POLL_TIMEOUT_MS, midmorning_zone, open_schedule, settled
from tests.fakes.twilio import FakeTwilio
from tests.messaging.booked import CONTENT_SID, WHATSAPP_FROM, burst, make_due, rows, use_twilio, worker_environment
from tests.scheduling.conftest import add_sessions, open_clinic

pytestmark = pytest.mark.e2e

CLINIC = "Basavanagudi Clinic"
DOCTOR = "Dr Meera Rao"
PATIENT = "Lakshmi Narayanan"
PHONE = "98450 12301"
BOOK_AHEAD = timedelta(hours=3)  # the 24-hour reminder has passed: only the 2-hour one is planned
MOVE_BY = timedelta(hours=1)
PHONE_SIZE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
              "has_touch": True}


@pytest.fixture
def clinic(factory):
    """The clinic (GST set-up and prices come from the billing fixtures) in a zone where it is mid-morning."""
    return factory.clinic(CLINIC, state_code="29", timezone=midmorning_zone())


@pytest.fixture
def doctor(factory, clinic, sql):
    """The doctor, working 08:00-18:00 in 15-minute slots every day; the clinic open today even on a holiday."""
    open_clinic(sql, clinic.id, "08:00", "20:00")
    today = datetime.now(ZoneInfo(clinic.timezone)).date()
    if holiday_name("29", today):  # open on the public holiday, as a clinic may decide
        sql("INSERT INTO clinic_day (clinic_id, day, is_open, note, created_at) VALUES (:c, :d, true, 'Open', now())",
            c=clinic.id, d=today)
    person = factory.person(clinic, Role.DOCTOR, name=DOCTOR)
    add_sessions(sql, clinic.id, person.id, starts="08:00", ends="18:00", minutes=15)
    consultation_type(sql, clinic.id)  # the only type: bookings bill the consultation (CONSULT)
    return person


@pytest.fixture
def reception(factory, clinic):
    return factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")


@pytest.fixture
def patient(app, clinic, reception) -> str:
    """A patient with a mobile number who has consented to WhatsApp reminders (in English)."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=reception.id)
        data = patients.PatientData(full_name=PATIENT, sex="F", dob=date(1968, 3, 12), phone=to_e164(PHONE),
                                    address_line="4 Residency Road", city="Bengaluru", pin_code="560025",
                                    state_code="29", language="en")
        added = patients.register(db, clinic_id=clinic.id, data=data, by=reception.id,
                                  consents={"treatment": True, "whatsapp": True})
        db.commit()
        return str(added.id)


@pytest.fixture
def fake(app, live_server, monkeypatch):
    """Twilio, faked on a local port; links and callbacks point at the live server."""
    with FakeTwilio() as server:
        monkeypatch.setitem(app.config, "TWILIO_API_BASE", server.url)
        monkeypatch.setitem(app.config, "PUBLIC_URL", live_server)
        yield server


@pytest.fixture
def jobs_queue(app, app_config, monkeypatch):
    """The app's job queue; the sweep run here uses the test app, as a worker uses its own. Emptied
    afterwards, with this test's scheduled reminders, so no later worker picks up a job of this test."""
    monkeypatch.setattr("jobs.worker._app", app)
    connection = Redis.from_url(app_config["REDIS_URL"])
    queue = Queue(queue_name(app_config["RQ_QUEUE"], HIGH), connection=connection, serializer=JSONSerializer)
    yield queue
    for job_id in queue.scheduled_job_registry.get_job_ids():
        if job_id.startswith("rem-"):
            queue.scheduled_job_registry.remove(job_id, delete_job=True)
    queue.empty()
    connection.close()


def first_slot_after(tz: str, ahead: timedelta) -> datetime:
    """The first 15-minute slot (clinic time) at least `ahead` from now."""
    moment = (datetime.now(ZoneInfo(tz)) + ahead).replace(second=0, microsecond=0)
    return moment + timedelta(minutes=(-moment.minute) % 15)


def held(page: Page, name: str):
    """The patient's card among the board's booked slots (not the cancelled, no-show or moved ones)."""
    return page.locator("#board ol.slots [data-card]").filter(has_text=name)


def book_on_the_board(page: Page, doctor_id, starts: datetime) -> None:
    """The desk clicks the free slot, finds the patient, and books."""
    page.locator(f"#slot-{doctor_id}-{starts.strftime('%H%M')}").click()
    form = page.locator("#panel #book-form")
    expect(form.locator(".slot-summary")).to_contain_text(f"{DOCTOR} · {formats.day(starts, 'EEEE dd MMM y')} · "
                                                          f"{starts.strftime('%H:%M')}")
    form.get_by_label("Find the patient").press_sequentially("laksh", delay=40)
    expect(form.get_by_role("radio", name=re.compile(PATIENT))).to_have_count(1)
    page.keyboard.press("Enter")
    expect(form.get_by_role("radio", name=re.compile(PATIENT))).to_be_checked()
    form.get_by_label("Reason for the visit").fill("follow-up of blood pressure")
    form.get_by_role("button", name="Book", exact=True).click()
    booked = page.locator("#panel").get_by_role("status")
    expect(booked).to_contain_text("Booked.")
    expect(booked).to_contain_text(f"{PATIENT} with {DOCTOR}")


def send_the_reminder_now(sql, jobs_queue, app_config, fake, live_server, appointment_id) -> None:
    """Make the planned reminder due now (a test cannot wait for it) and let a real worker send it."""
    planned = rows(sql, appointment_id)
    assert [(r.kind, r.channel, r.state) for r in planned] == [("2h", "whatsapp", "pending")]
    reminder_id = planned[0].id
    # Booking scheduled its send job for the reminder's moment, an hour from now: that job is dropped
    # and the row made due, so the sweep queues it at once (as it does for any row due in Redis's absence).
    job = jobs_queue.fetch_job(reminders.job_id(reminder_id))
    assert job is not None and job.get_status() == "scheduled"
    job.delete()
    make_due(sql, reminder_id)
    assert reminders.sweep() == 1
    result = burst(worker_environment(app_config, fake, PUBLIC_URL=live_server))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r.state for r in rows(sql, appointment_id)] == ["sent"]


def test_a_reminder_leads_to_a_moved_visit_that_is_seen_and_billed(
        page: Page, open_page, live_server, app_config, sql, app, clinic, doctor, reception, patient, prices,
        fake, jobs_queue, tmp_path):
    use_twilio(app, clinic.id, sms=False)

    # Morning at the desk: the patient rings and is booked for later today.
    sign_in_as(page, reception)
    open_schedule(page)
    starts = first_slot_after(clinic.timezone, BOOK_AHEAD)
    book_on_the_board(page, doctor.id, starts)
    expect(held(page, PATIENT)).to_contain_text(starts.strftime("%H:%M"))
    (appointment_id,) = [r.id for r in sql("SELECT id FROM appointment WHERE patient_id = :p", p=patient)]

    # Two hours before, a worker sends one WhatsApp message: the approved template with the clinic,
    # date, time and the patient's link, and nothing that names the patient.
    send_the_reminder_now(sql, jobs_queue, app_config, fake, live_server, appointment_id)
    assert len(fake.messages) == 1
    message = fake.messages[0]
    assert (message["To"], message["From"]) == ("whatsapp:" + to_e164(PHONE), WHATSAPP_FROM)
    assert message["ContentSid"] == CONTENT_SID and "Body" not in message
    variables = json.loads(message["ContentVariables"])
    assert {k: variables[k] for k in "123"} == {"1": CLINIC, "2": texts.format_date(starts, "en"),
                                                 "3": texts.format_time(starts, "en")}
    link = variables["4"]
    assert re.fullmatch(re.escape(live_server) + r"/p/[A-Za-z0-9_-]{20,}", link), link
    for part in PATIENT.split():
        assert part.lower() not in message["ContentVariables"].lower()

    # The patient taps the link on her phone: the token is swapped for a session and leaves the address.
    phone = open_page(live_server, **PHONE_SIZE)
    phone.goto(link)
    expect(phone).to_have_url(f"{live_server}/p/visit")
    token = link.rsplit("/", 1)[1]
    assert token not in phone.url
    expect(phone.get_by_role("heading", name="Your appointment")).to_be_visible()
    expect(phone.locator(".v-clinic")).to_have_text(CLINIC)
    facts = phone.locator(".v-facts")
    expect(facts).to_contain_text(DOCTOR)
    expect(facts.locator(".v-date")).to_have_text(f"{texts.format_date(starts, 'en')} {starts.year}")
    expect(facts.locator(".v-time")).to_have_text(texts.format_time(starts, "en"))
    expect(phone.get_by_text(PATIENT)).to_have_count(0)
    phone.screenshot(path=str(tmp_path / "patient-page.png"), full_page=True)

    # She cannot come then: she moves to a time an hour later the same day.
    moved = starts + MOVE_BY
    phone.get_by_role("link", name="Change the time").click()
    expect(phone.get_by_role("heading", name="Choose a new time")).to_be_visible()
    expect(phone.get_by_role("heading", name=f"Free times on {texts.format_date(starts, 'en')}")).to_be_visible()
    phone.screenshot(path=str(tmp_path / "patient-reschedule.png"), full_page=True)
    phone.get_by_role("button", name=texts.format_time(moved, "en"), exact=True).click()
    expect(phone).to_have_url(f"{live_server}/p/visit")
    expect(phone.get_by_role("status")).to_have_text("Your appointment is moved to the new time.")
    expect(phone.locator(".v-facts .v-time")).to_have_text(texts.format_time(moved, "en"))
    phone.screenshot(path=str(tmp_path / "patient-moved.png"), full_page=True)
    # The link in the message was for the old appointment: it opens nothing now.
    assert phone.request.get(link, max_redirects=0).status == 404

    # The desk's board follows by itself: the new time held, the old one kept as moved.
    expect(held(page, PATIENT)).to_contain_text(moved.strftime("%H:%M"), timeout=POLL_TIMEOUT_MS)
    expect(held(page, PATIENT)).to_have_count(1)
    not_held = page.locator("#board .not-held [data-card]").filter(has_text=PATIENT)
    expect(not_held).to_contain_text(starts.strftime("%H:%M"))
    expect(not_held).to_contain_text("Rescheduled")
    settled(page)

    # She arrives and is checked in.
    held(page, PATIENT).get_by_role("button", name="Check in").click()
    expect(page.locator("#panel #appointment-panel")).to_contain_text("Arrived · token 1")
    expect(held(page, PATIENT)).to_contain_text("Arrived · token 1")

    # The doctor calls her from My queue, sees her, and marks the visit done.
    room = open_page(live_server)
    sign_in_as(room, doctor)
    my_queue = room.get_by_role("navigation", name="Main").get_by_role("link", name="My queue")
    my_queue.click()
    expect(room.get_by_role("heading", name=re.compile(r"^My queue"))).to_be_visible()
    settled(room)
    room.get_by_role("button", name="Call next (token 1)").click()
    room.wait_for_url(re.compile(r"/encounters/[0-9a-f-]{36}$"))
    expect(room.get_by_role("heading", name=re.compile(PATIENT))).to_be_visible()
    my_queue.click()
    current = room.locator("[data-current]")
    expect(current).to_contain_text(PATIENT)
    settled(room)
    current.get_by_role("button", name="Done").click()
    expect(room.locator("[data-done]")).to_contain_text(PATIENT)
    expect(current).not_to_contain_text(PATIENT)

    # The desk bills the visit: its consultation, issued as a bill of supply (it is exempt).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    visits = page.locator("section", has=page.get_by_role("heading", name="Visits to bill today"))
    expect(visits).to_contain_text(PATIENT)
    visits.get_by_role("row").filter(has_text=PATIENT).get_by_role("button", name="Bill").click()
    expect(page.get_by_role("heading", name="Draft bill")).to_be_visible()
    expect(page.get_by_role("button", name="Remove General consultation")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Issue ")).click()
    expect(page.get_by_role("heading", name=re.compile(r"\d\d-\d\d.0*1$"))).to_be_visible()
    expect(page.locator("main")).to_contain_text("500.00")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    expect(visits).to_contain_text("Every completed visit today is billed.")
    assert sql("SELECT status FROM appointment WHERE id = :a", a=appointment_id)[0][0] == "rescheduled"
