"""Each key page of the benchmark's mix sends the same number of SQL statements whatever the data: every
page is asked for with a little data, then again after more of what it shows was added (appointments
and doctors' columns, matching patients, timeline entries of every kind, bill lines, note revisions),
and the two counts must be equal. A statement run per row (an N+1) makes the second count larger, and
the failure names the statements that grew.

Counted as the bench counts them (bench/measure.py): every statement a request sends through the app's
engine, its one audit INSERT per PHI read included, its COMMITs apart. Each request is made once before
it is counted, so both counts are of the same warm process (the day board's cache is emptied before a
fresh rendering is counted, and the cached one is counted as well).
"""

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from app.auth.policy import Role
from app.billing import issuing, payments, services
from app.billing.models import PaymentMode, PriceItem
from app.clinical.models import ChartKind
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.patients.models import Patient
from app.scheduling import board_cache
from bench.load import BOARD_POLL_RE, NEXT_RE, QUEUE_POLL_RE, VERSION_RE
from tests.billing.conftest import add_item, bill_id, gst_ready, prices  # noqa: F401
from tests.clinical.test_encounters import NOTE, doctor_browser, seen  # noqa: F401
from tests.conftest import patient_id
from tests.perf.conftest import assert_flat
from tests.scheduling.conftest import (  # noqa: F401
    HTMX,
    add_sessions,
    add_type,
    book_data,
    doctor,
    insert_appointment,
    setup,
    today,
    working_day,
)
from tests.timeline.conftest import T0, History
from tests.timeline.test_message_items import Messages

# ruff: noqa: F811 (fixtures imported from the other suites are used as fixtures)

IST = ZoneInfo("Asia/Kolkata")
NAMES = ["Asha Rao", "Bharat Iyer", "Chitra Nair", "Deepak Menon", "Esha Pillai", "Farhan Shaikh", "Gita Kulkarni",
         "Harish Reddy", "Indu Joshi", "Jatin Verma"]
# A doctor's day on the boards: every status a card can have (walk-ins carry tokens, slots carry times).
DAY_PLAN = [("booked", 0), ("confirmed", 1), ("arrived", 2), ("in_consultation", 3), ("completed", 4),
            ("cancelled", 5), ("no_show", 6), ("arrived", None), ("completed", None), ("booked", 7)]


def fill_day(sql, clinic_id, doctor_id, patients: list[str], day, type_id, tokens: Iterator[int]) -> None:
    """A doctor's day of appointments in every status (and two walk-ins), for these patients in turn (the
    day's tokens, which are the clinic's, taken from `tokens`)."""
    nine = datetime.combine(day, datetime.min.time(), IST) + timedelta(hours=9)
    for n, (status, slot) in enumerate(DAY_PLAN):
        token = next(tokens) if status in ("arrived", "in_consultation", "completed") else None
        insert_appointment(sql, clinic_id, doctor_id, patients[n % len(patients)], day=day, status=status,
                           type_id=type_id, token=token,
                           starts_at=None if slot is None else nine + timedelta(minutes=15 * slot))


def more_doctors(factory, sql, clinic, count: int) -> list[uuid.UUID]:
    """`count` more doctors working every day (more columns on the boards)."""
    ids = [factory.person(clinic, Role.DOCTOR, name=f"Dr {NAMES[n].split()[0]} Extra").id for n in range(count)]
    for doctor_id in ids:
        add_sessions(sql, clinic.id, doctor_id, room=None)
    return ids


# --- Day board, queue board and their polls -------------------------------------------------------------

def board_pages(desk, count, day) -> dict:
    """The day board (page, htmx fragment, from the cache), its poll (changed, unchanged), the queue board
    and its poll (changed, unchanged): each asked for once, then counted."""
    url = f"/schedule/?day={day.isoformat()}"
    found = {}

    def fresh(name, call, status=200):
        call()
        board_cache.boards.clear()
        found[name], response = count(call, status)
        return response

    page = fresh("day board", lambda: desk.get(url))
    fresh("day board (htmx)", lambda: desk.get(url, headers=HTMX))
    found["day board (cached)"], _ = count(lambda: desk.get(url))
    poll = unescape(BOARD_POLL_RE.search(page.get_data(as_text=True)).group(1))
    fresh("board poll (changed)", lambda: desk.get(f"/schedule/board?day={day.isoformat()}&v=old", headers=HTMX))
    fresh("board poll (unchanged)", lambda: desk.get(poll, headers=HTMX), 204)
    queue = fresh("queue board", lambda: desk.get("/queue/"))
    queue_poll = unescape(QUEUE_POLL_RE.search(queue.get_data(as_text=True)).group(1))
    fresh("queue poll (changed)", lambda: desk.get("/queue/poll?v=old", headers=HTMX))
    fresh("queue poll (unchanged)", lambda: desk.get(queue_poll, headers=HTMX), 204)
    return found


def test_the_boards_and_their_polls_cost_the_same_for_a_busy_day(desk, setup, register, sql, clinic, factory, count):
    day = today()
    patients = [patient_id(register(full_name=name)) for name in NAMES]
    tokens = itertools.count(1)
    fill_day(sql, clinic.id, setup.doctor_id, patients[:2], day, setup.type_id, tokens)
    small = board_pages(desk, count, day)
    for doctor_id in more_doctors(factory, sql, clinic, 4):
        fill_day(sql, clinic.id, doctor_id, patients, day, setup.long_type_id, tokens)
    fill_day(sql, clinic.id, setup.doctor_id, patients[2:], day + timedelta(days=1), setup.type_id,
             itertools.count(1))
    more = board_pages(desk, count, day)
    html = desk.get(f"/schedule/?day={day.isoformat()}").get_data(as_text=True)
    assert html.count('class="doctor-col"') == 5 and all(name in html for name in NAMES)
    assert "Harish Reddy" in desk.get("/queue/").get_data(as_text=True)
    assert_flat(small, more)


# --- Patient search as you type -----------------------------------------------------------------------------

def search_pages(desk, count) -> dict:
    found = {}
    for name, query in (("search by name", "Sharma"), ("search by phone", "98450 11111"),
                        ("search by name, one letter more", "Sharm")):
        call = lambda q=query: desk.post("/patients/search", {"q": q}, headers=HTMX)  # noqa: E731
        call()
        found[name], _ = count(call)
    return found


def test_search_costs_the_same_for_two_and_twenty_matches(desk, register, count):
    # A family shares one phone; the first two members match both searches.
    family = {"phone": "9845011111", "confirm_new": "y"}
    for n in range(2):
        register(full_name=f"{NAMES[n].split()[0]} Sharma", **family)
    register(full_name="Kiran Patel")
    small = search_pages(desk, count)
    for n in range(2, 24):
        register(full_name=f"{NAMES[n % len(NAMES)].split()[0]} Sharma {chr(65 + n)}", **family)
    more = search_pages(desk, count)
    html = desk.post("/patients/search", {"q": "Sharma"}, headers=HTMX).get_data(as_text=True)
    assert html.count("/patients/") >= 20
    assert_flat(small, more)


# --- Patient page with its timeline, and the timeline's next page ---------------------------------------------

def _bill(app, clinic, patient: str, items: list[uuid.UUID], at: datetime) -> None:
    """An invoice of these items issued at `at` and paid a minute later (each with its timeline event)."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c, day = db.get(Clinic, clinic.id), at.astimezone(IST).date()
        bill = services.new_draft(db, clinic=c, patient=db.get(Patient, (clinic.id, uuid.UUID(patient))),
                                  appointment=None, by=None, day=day)
        for item_id in items:
            services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, item_id)), quantity=Decimal(1),
                              discount=None, by=None, day=day)
        [invoice] = issuing.issue(db, clinic=c, bill=bill, by=None, day=day, now=at)
        payments.take_payment(db, invoice, mode=PaymentMode.UPI, amount=invoice.rounded_total,
                              reference="412345678901", by=None, day=day, now=at + timedelta(minutes=1))
        db.commit()


def add_rounds(app, clinic, sql, history: History, patient: str, doctor_id, prices, rounds: range) -> None:
    """Visits an hour apart from T0, each leaving 15 timeline entries of every kind."""
    for n in rounds:
        at = T0 + timedelta(hours=n)
        history.appointment(patient, doctor_id, at=at)
        encounter = history.encounter(patient, doctor_id, assessment="stable", diagnoses=["Hypertension"],
                                      at=at + timedelta(minutes=5), addendum="Reviewed the reports")
        history.prescription(patient, doctor_id, encounter, drugs=["Amlodipine", "Paracetamol"],
                             at=at + timedelta(minutes=10))
        history.vitals(patient, {"systolic": 150, "diastolic": 95, "pulse": 80}, doctor_id=doctor_id,
                       at=at + timedelta(minutes=11))
        history.chart(patient, ChartKind.ALLERGY, {"substance": f"Sulfa {n}", "reaction": "rash", "severity": "mild"},
                      at=at + timedelta(minutes=12), doctor_id=doctor_id)
        history.chart(patient, ChartKind.PROBLEM, {"condition": f"Asthma {n}", "code": "J45", "since": "2019",
                                                   "note": ""}, at=at + timedelta(minutes=13), doctor_id=doctor_id)
        history.consents(patient, 2, at=at + timedelta(minutes=14))
        history.record_change(patient, "phone,address_line", at=at + timedelta(minutes=17))
        appointment = sql("SELECT id FROM appointment WHERE patient_id = :p AND starts_at = :at", p=patient, at=at)
        messages = Messages(app, clinic, patient, appointment[0][0])
        minute = n * 60 + 20
        messages.reminder("sent", minute=minute)
        messages.reply(minute=minute + 1, intent="confirm", outcome="confirmed")
        _bill(app, clinic, patient, [prices.consultation, prices.medicine, prices.lab], at + timedelta(minutes=25))


def first_pages(browsers: dict, count, patient: str) -> dict:
    """The patient page with the timeline's first page, per role."""
    found, url = {}, f"/patients/{patient}"
    for role, browser in browsers.items():
        browser.get(url)
        found[f"patient page ({role})"], _ = count(lambda b=browser: b.get(url))
    return found


def next_pages(browsers: dict, count, patient: str) -> dict:
    """The timeline's next page as htmx asks for it when the first is scrolled to its end, per role."""
    found = {}
    for role, browser in browsers.items():
        page = browser.get(f"/patients/{patient}").get_data(as_text=True)
        next_url = unescape(NEXT_RE.search(page).group(1))
        browser.get(next_url, headers=HTMX)
        found[f"timeline next page ({role})"], _ = count(lambda b=browser, u=next_url: b.get(u, headers=HTMX))
    return found


def test_the_patient_page_and_the_next_timeline_page_cost_the_same_for_a_short_and_a_long_history(
        app, clinic, sql, desk, sign_in_doctor, reception, prices, count):
    """With one visit the first page holds 17 entries, with three the next page 22 (one visit whole in it),
    with fourteen both are full (25): every kind of entry is on each page, so a statement per entry (or
    per anything else the page shows) makes a count differ."""
    doctor_browser, doctor_id = sign_in_doctor
    patient = patient_id(desk.post("/patients/new", {
        "full_name": "Kavya Iyer", "sex": "F", "dob": "1990-03-15", "phone": "9845012345", "state_code": "29",
        "address_line": "4 Residency Road", "city": "Bengaluru", "pin_code": "560025", "language": "en",
        "consent_treatment": "y"}, page="/patients/new").headers["Location"])
    history = History(app, clinic, reception.id)
    browsers = {"desk": desk, "doctor": doctor_browser}
    add_rounds(app, clinic, sql, history, patient, doctor_id, prices, range(1))
    small = first_pages(browsers, count, patient)
    add_rounds(app, clinic, sql, history, patient, doctor_id, prices, range(1, 3))
    small.update(next_pages(browsers, count, patient))
    add_rounds(app, clinic, sql, history, patient, doctor_id, prices, range(3, 14))
    more = {**first_pages(browsers, count, patient), **next_pages(browsers, count, patient)}
    assert sql("SELECT count(DISTINCT kind), count(*) FROM timeline_event WHERE patient_id = :p", p=patient)[0] == (
        10, 2 + 14 * 15)
    assert_flat(small, more)


@pytest.fixture
def sign_in_doctor(factory, clinic, new_browser):
    person = factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")
    browser = new_browser()
    browser.sign_in(person)
    return browser, person.id


# --- Booking and check-in -------------------------------------------------------------------------------------

def test_booking_and_check_in_cost_the_same_on_a_busy_day(desk, setup, register, sql, clinic, factory, count):
    day = working_day(1)
    # today's patients to check in, at 16:00 in the clinic's today: clear of fill_day's 09:00-11:00 at any hour
    # (an hour from now met those at 07:45 IST, and crossed into tomorrow late in the evening)
    four_pm = datetime.combine(today(), datetime.min.time(), IST) + timedelta(hours=16)
    patients = [patient_id(register(full_name=name)) for name in NAMES]
    arriving = [insert_appointment(sql, clinic.id, setup.doctor_id, patients[n], day=today(), type_id=setup.type_id,
                                   starts_at=four_pm + timedelta(minutes=15 * n)) for n in range(4)]
    found: list[dict] = [{}, {}]

    def measure(into: dict, step: int) -> None:
        """Book the patient into a free slot and check a booked patient in (each once before, uncounted)."""
        for n, counted in ((0, False), (1, True)):
            slot = f"{day.isoformat()}T12:{15 * (2 * step + n):02d}"  # after the day's other appointments
            desk.get(f"/schedule/book?doctor_id={setup.doctor_id}&start={slot}")
            call = lambda s=slot: desk.post("/schedule/book", book_data(setup, s, patients[step]))  # noqa: E731
            booked, _ = count(call, 303)
            desk.get(f"/schedule/?day={today().isoformat()}")
            appointment = arriving[2 * step + n]
            checked, _ = count(lambda a=appointment: desk.post(f"/schedule/appointments/{a}/status",
                                                               {"action": "check_in"}), 303)
            if counted:
                into.update({"booking": booked, "check-in": checked})

    measure(found[0], 0)
    doctors = more_doctors(factory, sql, clinic, 4)
    later, tokens = itertools.count(1), itertools.count(10)
    for doctor_id in [setup.doctor_id, *doctors]:
        fill_day(sql, clinic.id, doctor_id, patients, today(), setup.type_id, tokens)
        fill_day(sql, clinic.id, doctor_id, patients, day, setup.type_id, later)
    for offset in (1, 2, 3, 8):  # the patient's other visits, the doctors' other days
        fill_day(sql, clinic.id, setup.doctor_id, patients[1:2] + patients[3:], day + timedelta(days=offset),
                 setup.type_id, itertools.count(1))
    for n in range(6):
        add_type(sql, clinic.id, f"Procedure {n}", 30)
    measure(found[1], 1)
    assert sql("SELECT count(*) FROM appointment WHERE status = 'arrived' AND day = :d", d=today())[0][0] == 14
    assert_flat(*found)


# --- Invoice: draft, add a line, view, issue, view ---------------------------------------------------------------

def bill_pages(desk, count, patient: str, items: list[uuid.UUID], lines_before: int) -> dict:
    """A bill drafted, `lines_before` lines added (uncounted), one more added, viewed, issued, viewed."""
    found = {}
    desk.get("/billing")
    found["bill: draft"], response = count(lambda: desk.post("/bills/new", {"patient_id": patient}), 303)
    url = f"/bills/{bill_id(response.headers['Location'])}"
    desk.get(url)
    for item_id in items[:lines_before]:
        assert desk.post(f"{url}/lines", {"item_id": str(item_id), "quantity": "2"}).status_code == 303
    found["bill: add line"], _ = count(lambda: desk.post(f"{url}/lines", {"item_id": str(items[lines_before]),
                                                                          "quantity": "1"}), 303)
    desk.get(url)
    found["bill: view draft"], page = count(lambda: desk.get(url))
    version = VERSION_RE.search(page.get_data(as_text=True)).group(1)
    found["bill: issue"], _ = count(lambda: desk.post(f"{url}/issue", {"version": version}), 303)
    desk.get(url)
    found["bill: view issued"], page = count(lambda: desk.get(url))
    return found


def test_a_bill_costs_the_same_with_one_line_and_with_twelve(desk, register, sql, clinic, prices, count):
    patient = patient_id(register(full_name="Kavya Iyer"))
    items = [prices.consultation, prices.lab, prices.medicine, prices.cosmetic]
    items += [add_item(sql, clinic.id, f"LAB{n}", f"Lab test {n}", "999316", f"{100 + n}.00") for n in range(10)]
    bill_pages(desk, count, patient, items, 0)  # once before, uncounted
    small = bill_pages(desk, count, patient, items, 0)
    for _ in range(5):  # the patient's earlier bills
        bill_pages(desk, count, patient, items, 3)
    more = bill_pages(desk, count, patient, items, 11)
    assert sql("SELECT count(*) FROM bill_line l JOIN bill b ON b.id = l.bill_id "
               "WHERE b.number = (SELECT max(number) FROM bill)")[0][0] == 12
    assert_flat(small, more)


# --- Consultation note autosave -------------------------------------------------------------------------------

def test_a_note_save_costs_the_same_after_two_revisions_and_after_thirty(seen, doctor_browser, count):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    version = 1

    def save(text: str) -> object:
        nonlocal version
        found, response = count(lambda: doctor_browser.post(f"{page}/note", {**NOTE, "plan": text,
                                                                             "version": str(version)},
                                                            headers=HTMX))
        version = int(VERSION_RE.search(response.get_data(as_text=True)).group(1))
        return found

    doctor_browser.get(page)
    save("Steam")
    small = {"note save": save("Steam, fluids")}
    for n in range(28):
        save(f"Steam, fluids, review on day {n}")
    for text, code in (("Hypertension", "I10"), ("Type 2 diabetes", "E11"), ("Asthma", "J45")):
        assert doctor_browser.post(f"{page}/diagnoses", {"text": text, "code": code}, headers=HTMX).status_code == 200
    save("Steam, fluids, paracetamol")  # the first save since the diagnoses also reads what they changed
    more = {"note save": save("Steam, fluids, paracetamol, rest")}
    assert_flat(small, more)
