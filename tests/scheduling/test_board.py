"""The day board, week view, day sheet and queue as the desk reads them: one audit record per render
naming the patients shown, polling that answers 204 and is not activity, and a fixed number of
queries however busy the day."""

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from app import formats
from app.auth.policy import Role
from app.security.sessions import token_hash
from tests.conftest import patient_id
from tests.scheduling.conftest import (
    HTMX,
    add_sessions,
    appointment_id,
    audit_since,
    book,
    high_water,
    insert_appointment,
    slot,
    today,
    working_day,
)

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def day_with_patients(desk, setup, register) -> tuple:
    """Two patients booked on the working day, a third booked the next day."""
    day = working_day()
    names = ["Hari Prasad", "Ira Bose", "Jai Kumar"]
    patients = [patient_id(register(full_name=name)) for name in names]
    ids = [appointment_id(book(desk, setup, slot(day, "09:00"), patients[0]).headers["Location"]),
           appointment_id(book(desk, setup, slot(day, "09:30"), patients[1], reason="knee pain").headers["Location"]),
           appointment_id(book(desk, setup, slot(working_day(2), "09:00"), patients[2]).headers["Location"])]
    return day, patients, ids


def shown(sql, mark) -> list[tuple]:
    return [(a, p, sorted(ids) if ids else None) for a, _o, p, ids, *_ in audit_since(sql, mark)]


@pytest.mark.parametrize("htmx", [True, False])
def test_each_schedule_page_writes_one_record_naming_the_patients_it_shows(desk, setup, day_with_patients, sql,
                                                                           htmx):
    day, patients, ids = day_with_patients
    headers = HTMX if htmx else {}
    both = sorted(patients[:2])
    pages = [
        (f"/schedule/?day={day}", "schedule.day", None, both),
        (f"/schedule/sheet/{setup.doctor_id}?day={day}", "schedule.print", None, both),
        (f"/schedule/appointments/{ids[1]}", "appointment.view", patients[1], None),
        (f"/schedule/week?doctor_id={setup.doctor_id}&day={day}", "schedule.week", None,
         sorted(patients) if (working_day(2) - day).days < 7 - day.weekday() else both),
    ]
    for url, action, patient, listed in pages:
        mark = high_water(sql)
        response = desk.get(url, headers=headers)
        assert response.status_code == 200, url
        assert shown(sql, mark) == [(action, patient, listed)], url
        html = response.get_data(as_text=True)
        assert "Ira Bose" in html and ("<html" in html) is not htmx
    html = desk.get(f"/schedule/sheet/{setup.doctor_id}?day={day}").get_data(as_text=True)
    assert "knee pain" in html and "Hari Prasad" in html and "Jai Kumar" not in html


def test_a_patient_booked_twice_is_listed_once(desk, setup, day_with_patients, sql):
    day, patients, _ids = day_with_patients
    assert book(desk, setup, slot(day, "11:00"), patients[0]).status_code == 303
    mark = high_water(sql)
    desk.get(f"/schedule/?day={day}")
    assert shown(sql, mark) == [("schedule.day", None, sorted(patients[:2]))]


def test_the_queue_names_the_patients_waiting(desk, setup, sql, register, clinic):
    patient = patient_id(register(full_name="Kiran Walk"))
    insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(), status="arrived", token=1)
    mark = high_water(sql)
    assert "Kiran Walk" in desk.get("/queue/").get_data(as_text=True)
    assert shown(sql, mark) == [("queue.view", None, [patient])]


def test_the_day_board_as_a_page_and_as_a_fragment(desk, day_with_patients):
    day, _patients, _ids = day_with_patients
    page = desk.get(f"/schedule/?day={day}")
    fragment = desk.get(f"/schedule/?day={day}", headers=HTMX)
    assert "HX-Request" in page.headers["Vary"] and "HX-Request" in fragment.headers["Vary"]
    assert "<html" in page.get_data(as_text=True) and 'id="panel"' in page.get_data(as_text=True)
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="board"') and "<html" not in html and "Ira Bose" in html


# --- Polling ----------------------------------------------------------------------------------------

def poll_url(html: str) -> str:
    return re.search(r'hx-get="(/schedule/board\?[^"]+)"', html).group(1).replace("&amp;", "&")


def settled_poll(desk, page_url: str):
    """The board's own poll URL and one poll of it, taken inside one 5-minute step of the stamp."""
    while True:
        step = int(time.time() // 300)
        url = poll_url(desk.get(page_url, headers=HTMX).get_data(as_text=True))
        response = desk.get(url, headers=HTMX)
        if int(time.time() // 300) == step:
            return url, response


def last_activity(sql, browser) -> datetime:
    return sql("SELECT last_activity_at FROM user_session WHERE id = :i", i=token_hash(browser.cookie()))[0][0]


def test_polling_answers_204_until_something_changes_and_is_not_activity(desk, setup, register, sql):
    day = working_day()
    url, unchanged = settled_poll(desk, f"/schedule/?day={day}")
    assert unchanged.status_code == 204 and unchanged.get_data() == b""
    sql("UPDATE user_session SET last_activity_at = now() - interval '10 minutes' WHERE id = :i",
        i=token_hash(desk.cookie()))
    idle_since = last_activity(sql, desk)
    mark = high_water(sql)
    assert desk.get(url, headers=HTMX).status_code == 204
    assert last_activity(sql, desk) == idle_since and audit_since(sql, mark) == []
    other = register(full_name="Lata Newcomer")  # another desk's work, not this one's
    sql("UPDATE user_session SET last_activity_at = now() - interval '10 minutes' WHERE id = :i",
        i=token_hash(desk.cookie()))
    idle_since = last_activity(sql, desk)
    second_desk = desk  # the booking below is this desk's own activity; measure only the poll
    assert book(second_desk, setup, slot(day, "10:00"), patient_id(other)).status_code == 303
    sql("UPDATE user_session SET last_activity_at = :t WHERE id = :i", t=idle_since, i=token_hash(desk.cookie()))
    mark = high_water(sql)
    changed = desk.get(url, headers=HTMX)
    assert changed.status_code == 200 and "Lata Newcomer" in changed.get_data(as_text=True)
    assert changed.get_data(as_text=True).lstrip().startswith('<div id="board"')
    assert poll_url(changed.get_data(as_text=True)) != url  # the next poll asks about the new state
    assert [a for a, *_ in audit_since(sql, mark)] == ["schedule.day"]
    assert last_activity(sql, desk) == idle_since  # polling, even with news, is not the user at work


def test_a_204_poll_writes_nothing(app, desk, setup):
    """The poll that finds nothing new runs reads only: no session row UPDATE, no audit INSERT, no write."""
    url, unchanged = settled_poll(desk, f"/schedule/?day={working_day()}")
    assert unchanged.status_code == 204
    engine, statements = app.extensions["db_engine"], []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert desk.get(url, headers=HTMX).status_code == 204
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    writes = [s for s in statements if s.split(" ", 1)[0].upper() in {"UPDATE", "INSERT", "DELETE"}
              or "synchronous_commit" in s]
    assert statements and writes == []


def test_a_poll_without_htmx_gets_the_whole_page(desk, setup):
    response = desk.get(f"/schedule/board?day={working_day()}&v=stale")
    assert response.status_code == 200 and "<html" in response.get_data(as_text=True)


def test_an_expired_session_polling_is_sent_to_sign_in(desk, setup, sql):
    sql("UPDATE user_session SET last_activity_at = now() - interval '16 minutes' WHERE id = :i",
        i=token_hash(desk.cookie()))
    response = desk.get(f"/schedule/board?day={working_day()}&v=x", headers=HTMX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/auth/login"


# --- Query count ------------------------------------------------------------------------------------

@pytest.fixture
def count_queries(app):
    engine = app.extensions["db_engine"]

    def count(call) -> int:
        statements = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            response = call()
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert response.status_code == 200
        return len(statements)
    return count


def test_the_board_costs_the_same_queries_for_a_quiet_and_a_busy_day(desk, setup, register, sql, clinic, factory,
                                                                     count_queries):
    quiet, busy = working_day(), working_day(2)
    patients = [patient_id(register(full_name=f"Busy Patient{i}")) for i in range(4)]
    for hour in (9, 10):
        insert_appointment(sql, clinic.id, setup.doctor_id, patients[0], day=quiet, type_id=setup.type_id,
                           starts_at=datetime.combine(quiet, datetime.min.time(), IST) + timedelta(hours=hour))
    doctors = [setup.doctor_id] + [factory.person(clinic, Role.DOCTOR, name=f"Dr Extra{i}").id for i in range(4)]
    for doctor in doctors[1:]:
        add_sessions(sql, clinic.id, doctor, room=None)
    nine = datetime.combine(busy, datetime.min.time(), IST) + timedelta(hours=9)
    for n in range(40):
        doctor, position = doctors[n % 5], n // 5
        insert_appointment(sql, clinic.id, doctor, patients[n % 4], day=busy, type_id=setup.type_id,
                           starts_at=nine + timedelta(minutes=15 * position),
                           status=["booked", "confirmed", "cancelled", "booked"][n % 4])
    quiet_count = count_queries(lambda: desk.get(f"/schedule/?day={quiet}"))
    busy_count = count_queries(lambda: desk.get(f"/schedule/?day={busy}"))
    html = desk.get(f"/schedule/?day={busy}").get_data(as_text=True)
    assert html.count('class="appt ') == 40 and html.count('class="doctor-col"') == 5
    assert busy_count == quiet_count, (quiet_count, busy_count)
    later = working_day(21)
    insert_appointment(sql, clinic.id, doctors[1], patients[0], day=later, type_id=setup.type_id,
                       starts_at=datetime.combine(later, datetime.min.time(), IST) + timedelta(hours=9))
    week_quiet = count_queries(lambda: desk.get(f"/schedule/week?doctor_id={doctors[1]}&day={later}"))
    week_busy = count_queries(lambda: desk.get(f"/schedule/week?doctor_id={setup.doctor_id}&day={busy}"))
    assert week_busy == week_quiet


def test_times_on_the_board_are_the_clinics_even_for_a_utc_server(desk, setup, register, sql, clinic):
    """Stored instants are UTC; the board and the appointment page show India time."""
    day = working_day()
    aid = appointment_id(book(desk, setup, slot(day, "09:45"), patient_id(register())).headers["Location"])
    (stored,) = sql("SELECT starts_at FROM appointment")[0]
    assert stored.astimezone(UTC) == datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=4, minutes=15)
    assert "09:45\u201310:00" in desk.get(f"/schedule/?day={day}").get_data(as_text=True)
    assert f"{formats.day(day)}, 09:45" in desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)


def test_a_disabled_doctor_keeps_their_appointments_but_offers_no_slot(desk, setup, register, sql, doctor):
    day = working_day()
    kept = patient_id(register(full_name="Mohan Kept"))
    assert book(desk, setup, slot(day, "09:00"), kept).status_code == 303
    sql("UPDATE staff_user SET disabled_at = now() WHERE id = :d", d=doctor.id)
    html = desk.get(f"/schedule/?day={day}").get_data(as_text=True)
    assert "Dr Meera Rao" in html and "Mohan Kept" in html and "Free · book" not in html
    assert "Not scheduled" in html
    assert book(desk, setup, slot(day, "10:00"), kept).status_code == 422
    assert "No doctor is scheduled" in desk.get(f"/schedule/?day={working_day(2)}").get_data(as_text=True)


def test_appointments_of_someone_no_longer_a_doctor_stay_on_the_board_and_queue(desk, setup, register, sql, clinic,
                                                                                doctor):
    waiting = patient_id(register(full_name="Nila Waiting"))
    insert_appointment(sql, clinic.id, setup.doctor_id, waiting, day=today(), status="arrived", token=1)
    sql("UPDATE membership SET role = 'admin' WHERE user_id = :d", d=doctor.id)
    mark = high_water(sql)
    board = desk.get(f"/schedule/?day={today()}")
    queue = desk.get("/queue/")
    assert board.status_code == queue.status_code == 200
    for response in (board, queue):
        assert "Dr Meera Rao" in response.get_data(as_text=True)
        assert "Nila Waiting" in response.get_data(as_text=True)
    assert [(a, ids) for a, _p, ids in shown(sql, mark)] == [("schedule.day", [waiting]), ("queue.view", [waiting])]


@pytest.mark.parametrize("change", [
    "INSERT INTO doctor_exception (clinic_id, id, doctor_id, kind, first_day, last_day, starts, ends, created_at) "
    "VALUES (:c, gen_random_uuid(), :doctor, 'leave', :d, :d, '09:00', '11:00', now())",
    "INSERT INTO clinic_day (clinic_id, day, is_open, note, created_at) VALUES (:c, :d, false, 'Flooded', now())",
    "UPDATE clinic_hours SET closes = '12:00' WHERE clinic_id = :c AND weekday = extract(isodow FROM :d) - 1",
    "UPDATE doctor_session SET ends = '12:00' WHERE clinic_id = :c AND doctor_id = :doctor",
])
def test_a_change_of_availability_reaches_polling_desks(desk, setup, sql, clinic, change):
    day = working_day()
    url, unchanged = settled_poll(desk, f"/schedule/?day={day}")
    assert unchanged.status_code == 204
    sql(change, c=clinic.id, d=day, doctor=setup.doctor_id)
    changed = desk.get(url, headers=HTMX)
    assert changed.status_code == 200
    assert changed.get_data(as_text=True).count("Free · book") < 16


def test_a_booking_committed_while_the_board_is_read_reaches_the_next_poll(app, desk, setup, register, sql, clinic):
    day = working_day()
    patient = patient_id(register(full_name="Racing Booking"))
    committed = []

    def meanwhile(conn, cursor, statement, parameters, context, executemany):
        if not committed and statement.lstrip().startswith("SELECT appointment.clinic_id"):
            committed.append(insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day,
                                                type_id=setup.type_id,
                                                starts_at=datetime.combine(day, datetime.min.time(), IST)
                                                + timedelta(hours=11)))

    engine = app.extensions["db_engine"]
    event.listen(engine, "after_cursor_execute", meanwhile)
    try:
        html = desk.get(f"/schedule/?day={day}", headers=HTMX).get_data(as_text=True)
    finally:
        event.remove(engine, "after_cursor_execute", meanwhile)
    assert committed and "Racing Booking" not in html  # read just before the booking landed
    poll = desk.get(poll_url(html), headers=HTMX)
    assert poll.status_code == 200 and "Racing Booking" in poll.get_data(as_text=True)


def test_a_walk_in_committed_while_the_queue_is_read_reaches_the_next_poll(app, desk, setup, register, sql, clinic):
    patient = patient_id(register(full_name="Racing Walkin"))
    committed = []

    def meanwhile(conn, cursor, statement, parameters, context, executemany):
        if not committed and statement.lstrip().startswith("SELECT appointment.clinic_id"):
            committed.append(insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(),
                                                status="arrived", token=1))

    engine = app.extensions["db_engine"]
    event.listen(engine, "after_cursor_execute", meanwhile)
    try:
        html = desk.get("/queue/", headers=HTMX).get_data(as_text=True)
    finally:
        event.remove(engine, "after_cursor_execute", meanwhile)
    assert committed and "Racing Walkin" not in html
    poll = re.search(r'hx-get="(/queue/poll\?v=[^"]+)"', html).group(1).replace("&amp;", "&")
    response = desk.get(poll, headers=HTMX)
    assert response.status_code == 200 and "Racing Walkin" in response.get_data(as_text=True)


@pytest.mark.parametrize("change", ["UPDATE membership SET role = 'nurse' WHERE user_id = :d",
                                    "DELETE FROM membership WHERE user_id = :d"])
def test_a_former_doctors_appointment_week_and_sheet_stay_reachable(desk, setup, register, sql, doctor, change):
    day = working_day()
    patient = patient_id(register(full_name="Omar Former"))
    aid = appointment_id(book(desk, setup, slot(day, "09:00"), patient).headers["Location"])
    sql(change, d=doctor.id)
    for url, action in [(f"/schedule/appointments/{aid}", "appointment.view"),
                        (f"/schedule/week?doctor_id={doctor.id}&day={day}", "schedule.week"),
                        (f"/schedule/sheet/{doctor.id}?day={day}", "schedule.print")]:
        mark = high_water(sql)
        response = desk.get(url)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        assert "Omar Former" in html and "Dr Meera Rao" in html, url
        assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [(action, "allowed")], url


# --- Malformed days -------------------------------------------------------------------------------------

@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2026-13-40", "9999-99-99"])
def test_a_day_out_of_range_shows_today_instead_of_failing(desk, setup, day):
    shown = today()
    pages = [(f"/schedule/?day={day}", shown.strftime("%A %d %B %Y")),
             (f"/schedule/board?day={day}&v=x", shown.strftime("%A %d %B %Y")),
             (f"/schedule/week?doctor_id={setup.doctor_id}&day={day}", f'id="day-{shown.isoformat()}"'),
             (f"/schedule/week?day={day}", f'id="day-{shown.isoformat()}"'),
             (f"/schedule/sheet/{setup.doctor_id}?day={day}", shown.strftime("%A %d %B %Y"))]
    for url, expected in pages:
        response = desk.get(url)
        assert response.status_code == 200, url
        assert expected in response.get_data(as_text=True), url


# --- A change whose clock is earlier than the latest ------------------------------------------------------

def test_a_change_whose_clock_is_earlier_than_the_latest_still_reaches_polling_desks(desk, setup, day_with_patients,
                                                                                     sql):
    """Two transactions: the one that read the clock first may commit last. The poll must still see it."""
    day, _patients, ids = day_with_patients
    for _ in range(3):  # the stamp also moves every 5 minutes: all of it inside one step
        step = int(time.time() // 300)
        url, unchanged = settled_poll(desk, f"/schedule/?day={day}")
        sql("UPDATE appointment SET status = 'confirmed', version = version + 1, "
            "updated_at = (SELECT max(updated_at) FROM appointment) - interval '1 minute' WHERE id = :a", a=ids[0])
        changed = desk.get(url, headers=HTMX)
        if int(time.time() // 300) == step:
            break
    assert unchanged.status_code == 204
    assert changed.status_code == 200
    card = changed.get_data(as_text=True).split(f'id="appt-{ids[0]}"')[1].split("</article>")[0]
    assert "status-confirmed" in card
