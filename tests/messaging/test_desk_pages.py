# ruff: noqa: F811  (fixtures imported from tests/scheduling/conftest.py are redefined as arguments, as pytest means)
"""The front desk's reminder pages over HTTP: the outbox (opened, linked, paged, audited), "needs a call"
(which failures ask for a phone call, in plain words, and marking one done) and an appointment's messages.

Outbox rows are written here as the send job writes them (sealed with the clinic's key), so each page is
tested on exactly the states it must tell apart.
"""

import json
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from flask import g, render_template

from app import formats
from app.auth.policy import Role
from app.clinics.models import Clinic
from app.db import get_session, new_id, set_tenant, utcnow
from app.messaging.desk import reminder_rows
from app.messaging.models import Channel, Reminder, State, Transport
from app.scheduling.models import Appointment
from app.security.fields import keyring
from tests.conftest import patient_id
from tests.scheduling.conftest import (  # noqa: F401
    HTMX,
    audit_since,
    doctor,
    high_water,
    insert_appointment,
    setup,
    today,
    working_day,
)

ZONE = ZoneInfo("Asia/Kolkata")
PHONE = "+919800012345"
SHOWN_PHONE = "+91 98000 12345"
LINK = "http://127.0.0.1:5000/p/Qx7vT2mR9kLp4sWz8nYb3c"


def add_reminder(app, clinic_id, appointment_id, patient, *, kind="24h", channel=Channel.SMS, state=State.SENT,
                 transport=Transport.OUTBOX, body=None, code=None, text=None, at=None, acknowledged=False):
    """An outbox row as the send job leaves it: sealed number and text once sent, Twilio's code on failure."""
    at = at or utcnow()
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        ring = keyring(db, clinic_id)
        row = Reminder(clinic_id=clinic_id, id=new_id(), appointment_id=appointment_id, appointment_version=1,
                       patient_id=uuid.UUID(str(patient)), kind=kind, channel=channel, due_at=at, state=state,
                       attempts=1, language="en", key_version=ring.active.version, created_at=at, error_code=code,
                       error_text=text, status_at=at, acknowledged_at=utcnow() if acknowledged else None)
        if state not in (State.PENDING, State.SKIPPED):
            row.transport, row.sending_at, row.sent_at = transport, at, at
        if body is not None:
            row.to_index = ring.token("phone", PHONE)
            row.to_enc = ring.seal("reminder", "to", row.id, PHONE)
            row.body_enc = ring.seal("reminder", "body", row.id, body)
        db.add(row)
        db.commit()
        return row.id


def html(response) -> str:
    return response.get_data(as_text=True)


def starts(day, hhmm="10:00") -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=ZONE)


@pytest.fixture
def patient(register):
    return patient_id(register(full_name="Meena Kumari", phone=PHONE))


@pytest.fixture
def booked(sql, clinic, setup, patient):
    """An appointment the day after tomorrow at 10:00 with Dr Meera Rao."""
    day = working_day(2)
    return insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day, starts_at=starts(day),
                              type_id=setup.type_id)


@pytest.fixture
def admin_desk(factory, clinic, new_browser):
    browser = new_browser()
    browser.sign_in(factory.person(clinic, Role.ADMIN, name="Asha Admin"))
    return browser


# --- Who may --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.DOCTOR, Role.NURSE, Role.BILLING, Role.AUDITOR])
def test_roles_without_reminders_view_are_refused(role, factory, clinic, new_browser, app, booked, patient):
    row = add_reminder(app, clinic.id, booked, patient, state=State.FAILED, code=21211)
    browser = new_browser()
    browser.sign_in(factory.person(clinic, role))
    for url in ("/reminders/outbox", "/reminders/calls"):
        assert browser.get(url).status_code == 403, url
    assert browser.post(f"/reminders/calls/{row}/done", page="/").status_code == 403


# --- The outbox -----------------------------------------------------------------------------------------

def test_outbox_shows_what_was_sent_opened_with_links(desk, app, clinic, booked, patient, sql):
    earlier = utcnow() - timedelta(hours=1)
    sms = f"Sunrise Clinic: your appointment is on Tue 24 Nov at 10:00 am. <b>Bold</b>: {LINK}"
    add_reminder(app, clinic.id, booked, patient, body=sms, at=earlier)
    whatsapp = json.dumps({"text": f"Reminder from Sunrise Clinic.\nDetails and changes: {LINK}.",
                           "content_sid": "HX" + "ab" * 16, "variables": {"1": "Sunrise Clinic"}})
    add_reminder(app, clinic.id, booked, patient, kind="2h", channel=Channel.WHATSAPP, body=whatsapp)
    add_reminder(app, clinic.id, booked, patient, kind="3d", transport=Transport.TWILIO, body="sent for real")
    mark = high_water(sql)
    page = html(desk.get("/reminders/outbox"))
    assert page.index("Reminder from Sunrise Clinic.") < page.index("Sunrise Clinic: your appointment")  # newest first
    assert page.count(f'<a href="{LINK}"') == 2 and f"{LINK}</a>." in page  # the full stop is not in the link
    assert "&lt;b&gt;Bold&lt;/b&gt;" in page and "<b>Bold</b>" not in page
    assert page.count(SHOWN_PHONE) == 2 and "Meena Kumari" in page and "sent for real" not in page
    assert "Reminder 24 hours before" in page and "Reminder 2 hours before" in page
    assert f"/schedule/appointments/{booked}" in page and "HX" + "ab" * 16 in page
    assert audit_since(sql, mark) == [("reminders.outbox", "allowed", None, [patient], "page 1", False)]


def test_outbox_pages_fifty_at_a_time(desk, app, clinic, setup, patient, sql):
    day = working_day(3)
    first = utcnow() - timedelta(days=1)
    for n in range(51):  # one appointment each: a row per (appointment, kind, channel)
        appointment = insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day,
                                         starts_at=starts(day) + timedelta(minutes=15 * (n % 16)) + timedelta(
                                             days=n // 16), type_id=setup.type_id, status="cancelled")
        add_reminder(app, clinic.id, appointment, patient, body=f"message number {n:02d} {LINK}",
                     at=first + timedelta(minutes=n))
    page = html(desk.get("/reminders/outbox"))
    assert "message number 50" in page and "message number 01" in page and "message number 00" not in page
    assert 'href="/reminders/outbox?page=2" rel="next"' in page and 'rel="prev"' not in page
    older = html(desk.get("/reminders/outbox?page=2"))
    assert "message number 00" in older and "message number 01" not in older
    assert 'href="/reminders/outbox" rel="prev"' in older and 'rel="next"' not in older
    assert "message number 50" in html(desk.get("/reminders/outbox?page=nonsense"))
    fragment = desk.get("/reminders/outbox?page=2", headers=HTMX)
    assert "<html" not in html(fragment) and 'id="outbox_list"' in html(fragment)
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_empty_outbox_says_so_and_warns_when_twilio_is_on(desk, sql, clinic):
    assert "No messages yet." in html(desk.get("/reminders/outbox"))
    sql("INSERT INTO reminder_settings (clinic_id, enabled, channels, offsets_minutes, quiet_start, quiet_end, "
        "transport, key_version, updated_at) VALUES (:c, true, 'sms', '1440', '21:00', '08:00', 'twilio', 1, now())",
        c=clinic.id)
    assert "now sends its messages through Twilio" in html(desk.get("/reminders/outbox"))


# --- Needs a call ---------------------------------------------------------------------------------------

def test_needs_a_call_lists_failures_in_plain_words(desk, app, clinic, booked, patient, sql):
    add_reminder(app, clinic.id, booked, patient, state=State.FAILED, code=21614, text="Landline: cannot receive SMS")
    mark = high_water(sql)
    page = unescape(html(desk.get("/reminders/calls")))
    assert "Meena Kumari" in page and SHOWN_PHONE in page and 'href="tel:+919800012345"' in page
    assert "with Dr Meera Rao" in page and f"/schedule/appointments/{booked}" in page
    assert "The number is a landline and cannot receive SMS: ask for a mobile number." in page
    assert audit_since(sql, mark) == [("reminders.calls", "allowed", None, [patient], None, False)]


def test_what_does_not_need_a_call(desk, app, clinic, setup, patient, register, sql):
    day = working_day(2)

    def appointment(hhmm, status="booked", on=day):
        return insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=on, starts_at=starts(on, hhmm),
                                  type_id=setup.type_id, status=status)

    # WhatsApp failed, then the same reminder went by SMS: the patient has it.
    fell_back = appointment("09:00")
    add_reminder(app, clinic.id, fell_back, patient, channel=Channel.WHATSAPP, state=State.FAILED, code=63016)
    add_reminder(app, clinic.id, fell_back, patient, channel=Channel.SMS, state=State.SENT)
    # WhatsApp failed and the SMS is still waiting to go.
    waiting = appointment("09:15")
    add_reminder(app, clinic.id, waiting, patient, channel=Channel.WHATSAPP, state=State.FAILED, code=63003)
    add_reminder(app, clinic.id, waiting, patient, channel=Channel.SMS, state=State.PENDING)
    # Cancelled, already called, or already over.
    add_reminder(app, clinic.id, appointment("09:30", "cancelled"), patient, state=State.FAILED, code=21211)
    add_reminder(app, clinic.id, appointment("09:45"), patient, state=State.UNDELIVERED, code=30003,
                 acknowledged=True)
    yesterday = today() - timedelta(days=1)  # at the clinic (working_day may have skipped a holiday)
    add_reminder(app, clinic.id, appointment("10:00", on=yesterday), patient, state=State.FAILED, code=21211)
    # Skipped for another reason than a missing number.
    add_reminder(app, clinic.id, appointment("10:15"), patient, state=State.SKIPPED, text="consent withdrawn")
    assert "Nobody to call" in html(desk.get("/reminders/calls"))
    # But when the SMS after a WhatsApp failure fails too, someone must call.
    add_reminder(app, clinic.id, waiting, patient, kind="2h", channel=Channel.SMS, state=State.UNDELIVERED,
                 code=30005)
    sql("UPDATE reminder SET state = 'undelivered', error_code = 30006 WHERE appointment_id = :a "
        "AND channel = 'sms' AND kind = '24h'", a=waiting)
    page = unescape(html(desk.get("/reminders/calls")))
    assert page.count('<tr id="call-') == 1 and f'id="call-{waiting}"' in page
    assert "The number is not on WhatsApp." in page and "The number is a landline or its network" in page
    assert "The number is unknown or no longer in use" in page


def test_no_mobile_number_needs_a_call(desk, app, clinic, setup, register, sql):
    nobody = patient_id(register(full_name="Ramesh Nophone", phone=None, dob="2016-02-03", guardian_name="Suresh",
                                 guardian_relation="Father", guardian_phone="9800054321"))
    day = working_day(2)
    appointment = insert_appointment(sql, clinic.id, setup.doctor_id, nobody, day=day, starts_at=starts(day, "11:00"),
                                     type_id=setup.type_id)
    add_reminder(app, clinic.id, appointment, nobody, state=State.FAILED,
                 text="no mobile number on the patient's record")
    page = unescape(html(desk.get("/reminders/calls")))
    assert "Ramesh Nophone" in page and "No mobile number" in page
    assert 'href="tel:+919800054321">+91 98000 54321</a> <span class="hint">(guardian)</span>' in page
    assert "No mobile number on the patient's record." in page


def test_marking_a_call_done_acknowledges_the_appointments_failures(desk, reception, app, clinic, booked, patient,
                                                                    sql):
    first = add_reminder(app, clinic.id, booked, patient, channel=Channel.WHATSAPP, state=State.FAILED, code=63016,
                         at=utcnow() - timedelta(hours=2))
    latest = add_reminder(app, clinic.id, booked, patient, state=State.FAILED, code=21211)
    page = html(desk.get("/reminders/calls"))
    assert f"/reminders/calls/{latest}/done" in page and f"/reminders/calls/{first}/done" not in page  # one button
    mark = high_water(sql)
    response = desk.post(f"/reminders/calls/{latest}/done")
    assert response.status_code == 303 and response.headers["Location"].endswith("/reminders/calls")
    assert sql("SELECT count(*) FROM reminder WHERE acknowledged_at IS NOT NULL AND acknowledged_by = :u",
               u=reception.id)[0][0] == 2
    assert audit_since(sql, mark) == [("reminders.call_done", "allowed", patient, None,
                                       "2 message(s) acknowledged", False)]
    page = html(desk.get("/reminders/calls"))
    assert "Done: that appointment has left the list." in page and "Nobody to call" in page
    # Done twice (a second tab): nothing more to do, said so.
    again = desk.post(f"/reminders/calls/{latest}/done")
    assert again.status_code == 303 and "already done" in html(desk.get("/reminders/calls"))


def test_marking_done_with_htmx_swaps_the_list(desk, app, clinic, setup, patient, sql):
    day = working_day(2)
    rows = []
    for hhmm in ("09:00", "09:30"):
        appointment = insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day,
                                         starts_at=starts(day, hhmm), type_id=setup.type_id)
        rows.append((appointment, add_reminder(app, clinic.id, appointment, patient, state=State.FAILED, code=21610)))
    desk.get("/reminders/calls")
    mark = high_water(sql)
    response = desk.post(f"/reminders/calls/{rows[0][1]}/done", headers=HTMX)
    body = html(response)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"] and "<html" not in body
    assert f'id="call-{rows[0][0]}"' not in body and f'id="call-{rows[1][0]}"' in body
    assert "opted out (replied STOP)" in body
    assert [e[0] for e in audit_since(sql, mark)] == ["reminders.call_done", "reminders.calls"]


def test_done_for_an_unknown_or_another_clinics_reminder_is_404(desk, app, factory, other_clinic, sql):
    assert desk.post(f"/reminders/calls/{uuid.uuid4()}/done", page="/reminders/calls").status_code == 404
    assert sql("SELECT action, outcome FROM audit_event WHERE action = 'reminders.call_done'") == [
        ("reminders.call_done", "denied")]


def test_the_calls_list_is_the_clinics_own(desk, app, clinic, booked, patient, factory, other_clinic, new_browser):
    row = add_reminder(app, clinic.id, booked, patient, state=State.FAILED, code=21211)
    other = new_browser()
    other.sign_in(factory.person(other_clinic, Role.RECEPTION))
    assert "Nobody to call" in html(other.get("/reminders/calls"))
    assert other.post(f"/reminders/calls/{row}/done", page="/reminders/calls").status_code == 404


# --- An appointment's messages ----------------------------------------------------------------------------

def test_an_appointments_messages_in_plain_words(app, clinic, booked, patient):
    soon = utcnow() + timedelta(hours=1)
    add_reminder(app, clinic.id, booked, patient, kind="3d", channel=Channel.WHATSAPP, state=State.FAILED,
                 code=63016, at=utcnow() - timedelta(hours=1))
    add_reminder(app, clinic.id, booked, patient, kind="3d", channel=Channel.SMS, state=State.DELIVERED,
                 body="sealed words " + LINK)
    add_reminder(app, clinic.id, booked, patient, kind="2h", state=State.PENDING, at=soon)
    add_reminder(app, clinic.id, booked, patient, kind="offer", state=State.SKIPPED, text="offered time gone", at=soon)
    with app.test_request_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        g.clinic = db.get(Clinic, clinic.id)
        appointment = db.get(Appointment, (clinic.id, booked))
        rows = reminder_rows(db, appointment)
        part = unescape(render_template("messaging/_reminders.html", a=appointment, reminders=rows))
    assert [(r.label, r.channel, r.state_words, r.note, r.needs_call) for r in rows] == [
        ("Reminder 3 days before", Channel.WHATSAPP, "Failed", "The patient could not be reached on WhatsApp.", True),
        ("Reminder 3 days before", Channel.SMS, "Delivered", None, False),
        ("Reminder 2 hours before", Channel.SMS, "Waiting", None, False),
        ("Offer of an earlier time", Channel.SMS, "Not sent", "Offered time gone.", False),
    ]
    assert "Needs a call" in part and "WhatsApp" in part and "Offered time gone." in part
    assert "sealed words" not in part and PHONE not in part and LINK not in part
    assert formats.moment(soon, ZONE.key) in part


def test_an_appointment_without_messages(app, clinic, booked):
    with app.test_request_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        g.clinic = db.get(Clinic, clinic.id)
        appointment = db.get(Appointment, (clinic.id, booked))
        part = render_template("messaging/_reminders.html", a=appointment, reminders=reminder_rows(db, appointment))
    assert "No messages for this appointment." in part and re.search(r"<h3[^>]*>Reminders</h3>", part)


def test_times_are_shown_in_the_clinics_zone(desk, app, clinic, booked, patient):
    at = datetime(2030, 1, 6, 3, 30, tzinfo=UTC)  # 09:00 in Bengaluru
    add_reminder(app, clinic.id, booked, patient, body=f"text {LINK}", at=at)
    assert "06 Jan 2030, 09:00" in html(desk.get("/reminders/outbox"))
