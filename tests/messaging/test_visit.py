# ruff: noqa: F811  (fixtures imported from tests/scheduling/conftest.py are redefined as arguments, as pytest means)
"""The patient's link and page over HTTP, against the real migrated database: a link opens a narrow
session on a token-free address and changes nothing; guessed, expired and revoked links and a missing
session all get the same page; confirm, cancel and reschedule are POSTs that a replay cannot repeat;
the session reaches no staff page and no other appointment; an address opening too many links waits.
"""

import re
import secrets
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.db import get_session, set_tenant
from app.messaging import links, visits
from app.scheduling.models import Appointment
from tests.conftest import CSRF_RE, patient_id
from tests.scheduling.conftest import appointment_id, book, doctor, setup, slot, working_day  # noqa: F401

IST = ZoneInfo("Asia/Kolkata")
PATIENT = "Kavya Iyer"


def issue_link(app, clinic_id, appointment: str) -> str:
    """A link to the appointment as a reminder would carry it (the raw token)."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        token = links.issue(db, db.get(Appointment, (clinic_id, uuid.UUID(appointment))))
        db.commit()
        return token


@pytest.fixture
def day():
    return working_day(2)


@pytest.fixture
def booked(desk, register, setup, day) -> dict:
    """A patient (Hindi-speaking, WhatsApp consent) booked at 10:00 on a working day, by the desk."""
    pid = patient_id(register(full_name=PATIENT, language="en", consent_whatsapp="y"))
    response = book(desk, setup, slot(day, "10:00"), pid)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return {"patient": pid, "appointment": appointment_id(response.headers["Location"])}


@pytest.fixture
def link(app, clinic, booked) -> str:
    return issue_link(app, clinic.id, booked["appointment"])


@pytest.fixture
def patient(new_browser):
    """The patient's phone: a browser that is not signed in to anything."""
    return new_browser()


def opened(browser, token: str, **kw):
    """Open the link and land on the patient's page; returns that page's response."""
    response = browser.get(f"/p/{token}", **kw)
    assert response.status_code == 303 and response.headers["Location"] == "/p/visit", response.status_code
    return browser.get("/p/visit")


def form(browser, url: str, html: str, **data):
    """Submit the patient page's form for `url` with its hidden fields (as the browser would)."""
    chunk = html[html.index(f'method="post" action="{url}"'):]
    chunk = chunk[:chunk.index("</form>")]
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', chunk))
    return browser.client.post(url, data={**fields, **data})


def state(sql, appointment: str) -> tuple:
    return sql("SELECT status, version, updated_at FROM appointment WHERE id = :i", i=appointment)[0]


def counts(sql) -> tuple:
    return tuple(sql(f"SELECT count(*) FROM {t}")[0][0] for t in
                 ("appointment", "appointment_event", "timeline_event", "reminder", "waitlist_entry"))


# --- Opening a link -------------------------------------------------------------------------------

def test_a_link_swaps_for_a_session_and_a_token_free_page(app, patient, link, booked, clinic, sql, day):
    response = patient.get(f"/p/{link}")
    assert response.status_code == 303 and response.headers["Location"] == "/p/visit"
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"cd_visit={clinic.id}.") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/p" in cookie and "Expires=" in cookie and "Secure" not in cookie  # HTTPS is off in tests
    assert link not in cookie
    page = patient.get("/p/visit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and link not in html
    # Past the link, same-origin: the page's forms then carry its origin (no-referrer would send `Origin: null`).
    assert page.headers["Referrer-Policy"] == "same-origin" and page.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert 'name="referrer"' not in html  # no <meta> overriding the header (tests/e2e/test_reminder_day_journey.py)
    assert "Sunrise Clinic" in html and "Dr Meera Rao" in html and "10:00 am" in html
    assert f"{day.day} " in html and str(day.year) in html and "Booked" in html
    assert "https://www.google.com/maps/search/?api=1&amp;query=1+MG+Road%2C+Bengaluru+560001" in html
    assert PATIENT not in html and "<script" not in html and "style=" not in html
    # Staff chrome is absent: no navigation, no search, no sign-in session made for the patient's cookie.
    assert "Find a patient" not in html and "Sign out" not in html
    # The session: one row, the secret's hash only, expiring within two hours.
    secret = cookie.split(";")[0].split(".", 1)[1]
    (hashed, expires, appointment), = sql("SELECT secret_hash, expires_at, appointment_id::text FROM patient_visit")
    assert secret not in hashed and appointment == booked["appointment"]
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert sql("SELECT last_opened_at IS NOT NULL FROM patient_link") == [(True,)]
    audit = sql("SELECT action, user_id, patient_id::text, object_id::text, clinic_id FROM audit_event "
                "WHERE action IN ('link.open', 'appointment.view') ORDER BY seq DESC LIMIT 2")
    assert sorted(audit) == [("appointment.view", None, booked["patient"], booked["appointment"], clinic.id),
                             ("link.open", None, booked["patient"], booked["appointment"], clinic.id)]


def test_the_visit_ends_with_the_link_if_that_is_sooner(app, patient, sql, link):
    sql("UPDATE patient_link SET expires_at = now() + interval '20 minutes'")
    patient.get(f"/p/{link}")
    assert sql("SELECT expires_at - now() < interval '21 minutes' FROM patient_visit") == [(True,)]


def test_opening_the_link_and_the_pages_changes_nothing(patient, link, booked, sql, setup):
    before, totals = state(sql, booked["appointment"]), counts(sql)
    for _ in range(2):  # a link previewer, then the patient
        opened(patient, link)
    patient.get("/p/visit/reschedule")
    patient.get("/p/visit?lang=hi")
    assert state(sql, booked["appointment"]) == before and counts(sql) == totals
    assert sql("SELECT count(*) FROM patient_link WHERE revoked_at IS NULL") == [(1,)]


def test_guessed_expired_and_revoked_links_and_no_session_get_the_same_page(app, new_browser, link, sql, clinic,
                                                                           booked, desk, setup, register, day):
    other = patient_id(register(full_name="Arjun Rao"))
    second = appointment_id(book(desk, setup, slot(day, "11:00"), other).headers["Location"])
    revoked, expired = issue_link(app, clinic.id, second), link
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        links.revoke(db, db.get(Appointment, (clinic.id, uuid.UUID(second))), "cancelled")
        db.commit()
    sql("UPDATE patient_link SET expires_at = now() - interval '1 second' WHERE appointment_id = :a",
        a=booked["appointment"])
    guessed = secrets.token_urlsafe(16)
    bodies = set()
    for url in (f"/p/{guessed}", f"/p/{expired}", f"/p/{revoked}", f"/p/{'x' * 200}", "/p/visit",
                "/p/visit/reschedule"):
        response = new_browser().get(url)
        assert response.status_code == 404, url
        assert "Set-Cookie" not in response.headers and response.headers["Cache-Control"] == "no-store"
        bodies.add(response.get_data())
    assert len(bodies) == 1
    html = bodies.pop().decode()
    assert "This link has expired or is not valid" in html and "यह लिंक पुराना हो गया है" in html
    assert "Sunrise Clinic" not in html
    assert sql("SELECT count(*) FROM patient_visit") == [(0,)]
    assert sql("SELECT good, count(*) FROM link_attempt GROUP BY good") == [(False, 4)]


def test_an_ended_or_expired_visit_is_no_session(patient, link, sql):
    opened(patient, link)
    sql("UPDATE patient_visit SET expires_at = now() - interval '1 second'")
    assert patient.get("/p/visit").status_code == 404
    sql("UPDATE patient_visit SET expires_at = now() + interval '1 hour', ended_at = now()")
    assert patient.get("/p/visit").status_code == 404


def test_an_address_opening_too_many_links_waits(patient, new_browser, link, sql):
    away = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(visits.OPENS_PER_WINDOW + 5):  # good links do not count: many patients share a carrier's address
        assert patient.get(f"/p/{link}", environ_base=away).status_code == 303
    sql("DELETE FROM link_attempt")
    for _ in range(visits.OPENS_PER_WINDOW):
        assert patient.get(f"/p/{secrets.token_urlsafe(16)}", environ_base=away).status_code == 404
    limited = patient.get(f"/p/{link}", environ_base={"REMOTE_ADDR": "203.0.113.7"})  # even a good link now
    assert limited.status_code == 429 and "Set-Cookie" not in limited.headers
    assert "Too many tries" in limited.get_data(as_text=True)
    assert sql("SELECT count(*) FROM link_attempt") == [(visits.OPENS_PER_WINDOW,)]  # refusals are not counted
    assert new_browser().get(f"/p/{link}").status_code == 303  # another address is not held up
    sql("UPDATE link_attempt SET at = at - interval '11 minutes' WHERE ip = '203.0.113.7'")
    assert patient.get(f"/p/{link}", environ_base=away).status_code == 303


def test_failed_opens_from_one_ipv6_64_share_one_bucket(patient, new_browser, link, sql):
    """One subscriber holds a whole /64: every address in it is one client; another /64 is not held up."""
    for n in range(visits.OPENS_PER_WINDOW):
        here = {"REMOTE_ADDR": f"2001:db8:5:7::{n + 1:x}"}
        assert patient.get(f"/p/{secrets.token_urlsafe(16)}", environ_base=here).status_code == 404
    assert sql("SELECT DISTINCT ip FROM link_attempt") == [("2001:db8:5:7::/64",)]
    neighbour = new_browser().get(f"/p/{link}", environ_base={"REMOTE_ADDR": "2001:db8:5:7:ab:cd:ef:99"})
    assert neighbour.status_code == 429
    elsewhere = new_browser().get(f"/p/{link}", environ_base={"REMOTE_ADDR": "2001:db8:5:8::1"})
    assert elsewhere.status_code == 303


# --- What the session reaches ----------------------------------------------------------------------

def test_the_patient_session_reaches_no_staff_page(patient, link, booked):
    opened(patient, link)
    for url in ("/", "/schedule/", f"/schedule/appointments/{booked['appointment']}", f"/patients/{booked['patient']}",
                "/reminders/outbox", "/patients/"):
        response = patient.get(url)
        assert response.status_code in (302, 303) and "/auth/login" in response.headers["Location"], url
    assert patient.client.post("/patients/search", data={"q": "Kavya", "csrf_token": patient.token}
                               ).status_code in (302, 303)


def test_the_session_names_one_appointment_and_no_address_names_another(app, patient, new_browser, link, booked,
                                                                       clinic, other_clinic, desk, setup, register,
                                                                       day):
    other = patient_id(register(full_name="Arjun Rao"))
    theirs = appointment_id(book(desk, setup, slot(day, "12:00"), other).headers["Location"])
    opened(patient, link)
    html = patient.get("/p/visit").get_data(as_text=True)
    assert "10:00 am" in html and "12:00 pm" not in html
    # No patient route takes an appointment, patient or clinic id: there is nothing to change in a URL.
    arguments = {a for r in app.url_map.iter_rules() if r.endpoint.startswith("messaging_visit.") for a in r.arguments}
    assert arguments == {"token", "offer_id"}
    # A cookie with another clinic, or another secret, is no session; a staff cookie is not a patient's.
    value = patient.client.get_cookie(visits.COOKIE, path="/p").value
    _, secret = value.split(".", 1)
    for forged in (f"{other_clinic.id}.{secret}", f"{clinic.id}.{secrets.token_urlsafe(32)}", secret, "x.y", ""):
        stranger = new_browser()
        stranger.client.set_cookie(visits.COOKIE, forged, path="/p")
        assert stranger.get("/p/visit").status_code == 404, forged
    desk.client.set_cookie(visits.COOKIE, "", path="/p")
    assert desk.get("/p/visit").status_code == 404
    assert theirs not in html


# --- Changes ----------------------------------------------------------------------------------------

def test_confirm_once_and_a_replay_changes_nothing(patient, link, booked, sql, desk):
    html = opened(patient, link).get_data(as_text=True)
    response = form(patient, "/p/visit/confirm", html)
    assert response.status_code == 303 and response.headers["Location"] == "/p/visit"
    assert response.headers["Referrer-Policy"] == "same-origin"
    page = patient.get("/p/visit").get_data(as_text=True)
    assert "Your appointment is confirmed." in page and "Confirmed" in page
    assert 'action="/p/visit/confirm"' not in page  # nothing left to confirm
    status, version, _ = state(sql, booked["appointment"])
    assert (status, version) == ("confirmed", 2)
    assert sql("SELECT action, by, detail_enc IS NOT NULL FROM appointment_event ORDER BY at")[-1:] == [
        ("confirm", None, True)]  # by no staff member, saying how: "the patient, by their link"
    totals = counts(sql)
    replay = form(patient, "/p/visit/confirm", html)  # the same form again: a double tap, the back button
    assert replay.status_code == 409 and "Already done" in replay.get_data(as_text=True)
    assert state(sql, booked["appointment"])[:2] == ("confirmed", 2) and counts(sql) == totals
    # The front desk sees it at once.
    assert "Confirmed" in desk.get(f"/schedule/appointments/{booked['appointment']}").get_data(as_text=True)
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'appointment.confirm' AND user_id IS NULL") == [(1,)]


def test_a_form_without_its_csrf_token_changes_nothing(patient, link, booked, sql):
    html = opened(patient, link).get_data(as_text=True)
    before = state(sql, booked["appointment"])
    response = form(patient, "/p/visit/confirm", html, csrf_token="forged")
    assert response.status_code == 400 and "This page was open too long" in response.get_data(as_text=True)
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert state(sql, booked["appointment"]) == before


def test_cancel_with_a_reason_ends_the_link(patient, new_browser, link, booked, sql):
    html = opened(patient, link).get_data(as_text=True)
    long = form(patient, "/p/visit/cancel", html, reason="x" * 201)
    assert long.status_code == 422
    text = long.get_data(as_text=True)
    assert "Keep the reason to 200 characters." in text and 'value="' + "x" * 201 + '"' in text
    assert state(sql, booked["appointment"])[0] == "booked"
    response = form(patient, "/p/visit/cancel", html, reason="Going out of town")
    assert response.status_code == 303
    page = patient.get("/p/visit").get_data(as_text=True)
    assert "Your appointment is cancelled." in page and "Cancelled" in page
    assert "To book another time, please call the clinic." in page
    assert 'action="/p/visit/cancel"' not in page
    assert state(sql, booked["appointment"])[0] == "cancelled"
    assert "Going out of town" not in str(sql("SELECT reason FROM audit_event"))  # the reason is sealed, not audited
    assert sql("SELECT revoked_reason FROM patient_link") == [("cancelled",)]
    assert new_browser().get(f"/p/{link}").status_code == 404
    assert form(patient, "/p/visit/cancel", html).status_code == 409  # a replay


def test_reschedule_to_a_free_time_and_the_visit_follows(patient, new_browser, link, booked, sql, day, desk):
    opened(patient, link)
    picker = patient.get(f"/p/visit/reschedule?day={day.isoformat()}")
    html = picker.get_data(as_text=True)
    assert picker.status_code == 200 and "Choose a new time" in html and "Now:" in html
    starts = datetime.combine(day, time(11, 30), IST).isoformat()
    assert f'value="{starts}"' in html and "11:30 am" in html
    taken = datetime.combine(day, time(10, 0), IST).isoformat()
    assert f'value="{taken}"' not in html  # the patient's own time is not free
    response = form(patient, "/p/visit/reschedule", html, starts=starts)
    assert response.status_code == 303
    page = patient.get("/p/visit").get_data(as_text=True)
    assert "Your appointment is moved to the new time." in page and "11:30 am" in page and "10:00 am" not in page
    rows = sql("SELECT id::text, status, rescheduled_from::text FROM appointment ORDER BY created_at")
    assert [(s, f) for _, s, f in rows] == [("rescheduled", None), ("booked", booked["appointment"])]
    assert sql("SELECT appointment_id::text FROM patient_visit") == [(rows[1][0],)]
    assert sql("SELECT revoked_reason FROM patient_link") == [("rescheduled",)]
    assert new_browser().get(f"/p/{link}").status_code == 404  # the old link is revoked
    totals = counts(sql)
    replay = form(patient, "/p/visit/reschedule", html, starts=starts)  # a form from before the move
    assert replay.status_code == 409 and "Already done" in replay.get_data(as_text=True)
    assert counts(sql) == totals
    assert "11:30" in desk.get(f"/schedule/appointments/{rows[1][0]}").get_data(as_text=True)


def test_reschedule_refusals_keep_the_picker(patient, link, booked, sql, day, desk, register, setup):
    html = opened(patient, link).get_data(as_text=True)
    opened_picker = patient.get(f"/p/visit/reschedule?day={day.isoformat()}").get_data(as_text=True)
    bad = form(patient, "/p/visit/reschedule", opened_picker, starts="tomorrow at ten")
    assert bad.status_code == 422 and "Choose one of the free times." in bad.get_data(as_text=True)
    far = patient.get(f"/p/visit/reschedule?day={(day + timedelta(days=90)).isoformat()}")
    assert far.status_code == 422 and "Choose a day from today up to 60 days ahead." in far.get_data(as_text=True)
    # Someone else books the time while the patient looks at it.
    starts = datetime.combine(day, time(11, 30), IST).isoformat()
    book(desk, setup, slot(day, "11:30"), patient_id(register(full_name="Arjun Rao")))
    raced = form(patient, "/p/visit/reschedule", opened_picker, starts=starts)
    text = raced.get_data(as_text=True)
    assert raced.status_code == 409 and "Someone has just taken that time." in text and "Choose a new time" in text
    assert state(sql, booked["appointment"])[:2] == ("booked", 1)
    assert 'action="/p/visit/confirm"' in html


def test_the_page_speaks_the_patients_language_and_switches(patient, link, booked, sql):
    sql("UPDATE patient SET language = 'hi'")
    html = opened(patient, link).get_data(as_text=True)
    assert '<html lang="hi">' in html and "आपका अपॉइंटमेंट" in html and "पुष्टि करें" in html
    assert "सुबह 10:00" in html and "बुक है" in html and 'hreflang="en"' in html
    english = patient.get("/p/visit?lang=en")
    assert "cd_lang=en" in english.headers["Set-Cookie"] and "Path=/p" in english.headers["Set-Cookie"]
    assert '<html lang="en">' in english.get_data(as_text=True)
    again = patient.get("/p/visit").get_data(as_text=True)  # the choice is kept
    assert "Confirm" in again and "10:00 am" in again
    response = form(patient, "/p/visit/confirm", patient.get("/p/visit?lang=hi").get_data(as_text=True))
    assert response.status_code == 303
    assert "धन्यवाद। आपके अपॉइंटमेंट की पुष्टि हो गई है।" in patient.get("/p/visit").get_data(as_text=True)


def test_the_pages_work_without_javascript_and_load_only_their_own_sheets(patient, link):
    html = opened(patient, link).get_data(as_text=True)
    assert "<script" not in html and "hx-" not in html
    assert re.findall(r'<link rel="stylesheet" href="([^"?]+)', html) == ["/static/fonts.css", "/static/visit.css"]
    assert all(f'action="{url}"' in html and 'method="post"' in html
               for url in ("/p/visit/confirm", "/p/visit/cancel", "/p/visit/waitlist"))
    assert len(CSRF_RE.findall(html)) == 3


def test_an_appointment_that_has_begun_cannot_be_changed_even_by_a_kept_form(patient, link, booked, sql):
    html = opened(patient, link).get_data(as_text=True)
    sql("UPDATE appointment SET starts_at = now() - interval '10 minutes', ends_at = now() + interval '5 minutes'")
    page = patient.get("/p/visit").get_data(as_text=True)
    assert 'method="post"' not in page and "Booked" in page
    for url in ("/p/visit/confirm", "/p/visit/cancel", "/p/visit/waitlist"):
        response = form(patient, url, html)
        assert response.status_code == 409 and "can no longer be changed here" in response.get_data(as_text=True)
    assert state(sql, booked["appointment"])[:2] == ("booked", 1)
    assert sql("SELECT count(*) FROM waitlist_entry") == [(0,)]
