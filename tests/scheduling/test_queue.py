"""Walk-ins get a token at once and join the doctor's queue; "call next" finishes the current
consultation and brings in the lowest waiting token; the queue board refreshes itself."""

import html
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.auth.policy import Role
from tests.conftest import patient_form, patient_id
from tests.scheduling.conftest import HTMX, at_once, audit_since, high_water, insert_appointment, today


def walk_in(browser, setup, patient: str, *, htmx: bool = False, **extra):
    data = {"patient_id": patient, "doctor_id": str(setup.doctor_id), "type_id": "", "reason": "", "intent": "add",
            **extra}
    return browser.post("/queue/walk-in", data, page="/queue/walk-in", headers=HTMX if htmx else {})


@pytest.fixture
def patients(register) -> list[str]:
    return [patient_id(register(full_name=name)) for name in ("Anil Rao", "Bela Sen", "Chetan Gill", "Dia Roy")]


def queue_of(sql) -> list[tuple]:
    return sql("SELECT token, status FROM appointment ORDER BY token")


def waiting_tokens(html: str) -> list[str]:
    waiting = html.split("data-waiting>")[1].split("</ol>")[0]
    return re.findall(r'<span class="token">(\d+)</span>', waiting)


def test_a_walk_in_gets_a_token_at_once_and_waits_in_the_queue(desk, setup, patients, sql, reception):
    mark = high_water(sql)
    response = walk_in(desk, setup, patients[0], type_id=str(setup.type_id), reason="cough")
    assert response.status_code == 303 and response.headers["Location"] == "/queue/"
    assert sql("SELECT walk_in, status, token, starts_at, arrived_at IS NOT NULL, day FROM appointment") == [
        (True, "arrived", 1, None, True, today())]
    assert sql("SELECT action, from_status, to_status, by FROM appointment_event") == [
        ("walked_in", None, "arrived", reception.id)]
    assert [(a, p) for a, _o, p, *_ in audit_since(sql, mark)][-1] == ("appointment.walk_in", patients[0])
    page = desk.get("/queue/").get_data(as_text=True)
    assert "Walk-in added: token 1." in page and "Anil Rao" in page and "walk-in · waiting 0 min" in page
    assert waiting_tokens(page) == ["1"] and "Call next (token 1)" in page
    board = desk.get(f"/schedule/?day={today()}").get_data(as_text=True)
    assert "Walk-ins" in board and "Anil Rao" in board and "Arrived · token 1" in board


def test_a_walk_in_with_htmx(desk, setup, patients, sql):
    response = walk_in(desk, setup, patients[0], htmx=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "board-changed"
    html = response.get_data(as_text=True)
    assert "<html" not in html and "<strong>Token 1</strong> · Anil Rao is waiting." in html
    assert queue_of(sql) == [(1, "arrived")]


def test_the_walk_in_form_as_a_page_and_a_fragment(desk, setup, patients):
    page = desk.get(f"/queue/walk-in?patient_id={patients[0]}")
    fragment = desk.get(f"/queue/walk-in?patient_id={patients[0]}", headers=HTMX)
    assert "<html" in page.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    for response in (page, fragment):
        assert response.status_code == 200 and "Anil Rao" in response.get_data(as_text=True)
        assert "Dr Meera Rao" in response.get_data(as_text=True)


@pytest.mark.parametrize("htmx", [True, False])
def test_searching_for_the_walk_in_patient(desk, setup, patients, htmx):
    desk.get("/queue/walk-in")
    response = desk.post("/queue/walk-in", {"q": "bela", "intent": "search"}, headers=HTMX if htmx else {})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'value="{patients[1]}"' in html and "Bela Sen" in html and "Anil Rao" not in html
    assert ("<html" in html) is not htmx


def test_a_new_patient_can_walk_in(desk, setup, sql):
    form = patient_form(full_name="Esha Walkin", dob="2001-01-01")
    data = {**{f"new-{k}": v for k, v in form.items()}, "new_patient": "y"}
    response = walk_in(desk, setup, "", **data)
    assert response.status_code == 303
    assert sql("SELECT count(*) FROM patient")[0][0] == 1 and queue_of(sql) == [(1, "arrived")]


def test_a_walk_in_without_a_doctor_comes_back(desk, setup, patients, sql):
    response = walk_in(desk, setup, patients[0], doctor_id="", reason="back pain")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Check the highlighted fields." in html and 'value="back pain"' in html
    assert queue_of(sql) == []


@pytest.fixture
def queue(desk, setup, patients, sql, clinic):
    """Three walk-ins (tokens 1-3) and a booked patient checked in (token 4)."""
    for patient in patients[:3]:
        assert walk_in(desk, setup, patient).status_code == 303
    booked = insert_appointment(sql, clinic.id, setup.doctor_id, patients[3], day=today(),
                                starts_at=datetime.now(UTC) + timedelta(hours=1), type_id=setup.type_id)
    desk.post(f"/schedule/appointments/{booked}/status", {"action": "check_in"})
    assert queue_of(sql)[-1] == (4, "arrived")
    return patients


def call_next(browser, setup, *, htmx: bool = False, **extra):
    return browser.post(f"/queue/{setup.doctor_id}/next", extra, page="/queue/walk-in",
                        headers=HTMX if htmx else {})


def test_call_next_brings_in_the_lowest_token_and_finishes_the_current_one(desk, setup, queue, sql):
    mark = high_water(sql)
    response = call_next(desk, setup)
    assert response.status_code == 303 and response.headers["Location"] == "/queue/"
    assert queue_of(sql) == [(1, "in_consultation"), (2, "arrived"), (3, "arrived"), (4, "arrived")]
    assert [(a, p) for a, _o, p, *_ in audit_since(sql, mark)] == [("appointment.start", queue[0])]
    page = desk.get("/queue/").get_data(as_text=True)
    assert "Token 1 called in to Dr Meera Rao." in page and waiting_tokens(page) == ["2", "3", "4"]
    assert "Done, call next (token 2)" in page
    mark = high_water(sql)
    assert call_next(desk, setup).status_code == 303
    assert queue_of(sql)[:2] == [(1, "completed"), (2, "in_consultation")]
    assert [(a, p) for a, _o, p, *_ in audit_since(sql, mark)] == [("appointment.complete", queue[0]),
                                                                   ("appointment.start", queue[1])]
    assert sql("SELECT action, from_status, to_status FROM appointment_event WHERE appointment_id = "
               "(SELECT id FROM appointment WHERE token = 1) ORDER BY at") == [
        ("walked_in", None, "arrived"), ("start", "arrived", "in_consultation"),
        ("complete", "in_consultation", "completed")]


def test_when_nobody_is_left_call_next_only_finishes(desk, setup, patients, sql):
    walk_in(desk, setup, patients[0])
    call_next(desk, setup)
    mark = high_water(sql)
    response = call_next(desk, setup)
    assert response.status_code == 303
    assert queue_of(sql) == [(1, "completed")]
    assert [a for a, *_ in audit_since(sql, mark)] == ["appointment.complete"]
    page = desk.get("/queue/").get_data(as_text=True)
    assert "Nobody is waiting for Dr Meera Rao." in page and "Nobody waiting." in page


def test_call_next_with_htmx_answers_with_the_queue(desk, setup, queue, sql):
    response = call_next(desk, setup, htmx=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "board-changed"
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="queues"') and "<html" not in html
    current = html.split("data-current>")[1].split("</ul>")[0]
    assert "Anil Rao" in current and waiting_tokens(html) == ["2", "3", "4"]


def test_two_desks_calling_the_same_token_at_once_call_it_in_once(desks, setup, queue, sql):
    """The button names the token it calls; a double click or a second desk changes nothing."""
    first, second = desks(2)
    responses = at_once([lambda: call_next(first, setup, token="1"), lambda: call_next(second, setup, token="1")])
    assert [r.status_code for r in responses] == [303, 303]
    messages = sorted(b.get("/queue/").get_data(as_text=True) for b in (first, second))
    assert sum("Token 1 called in to Dr Meera Rao." in m for m in messages) == 1
    assert sum("Token 1 has already been called in; the queue below is up to date." in m for m in messages) == 1
    assert queue_of(sql) == [(1, "in_consultation"), (2, "arrived"), (3, "arrived"), (4, "arrived")]
    assert sql("SELECT count(*) FROM appointment_event WHERE action = 'start'")[0][0] == 1
    # The doctor is done with token 1: the next press names token 2.
    assert call_next(first, setup, token="2").status_code == 303
    assert queue_of(sql)[:2] == [(1, "completed"), (2, "in_consultation")]


def test_a_stale_press_with_htmx_gets_the_fresh_queue(desk, setup, queue, sql):
    call_next(desk, setup, token="1")
    response = call_next(desk, setup, htmx=True, token="1")
    assert response.status_code == 409 and waiting_tokens(response.get_data(as_text=True)) == ["2", "3", "4"]
    assert queue_of(sql)[0] == (1, "in_consultation")


def test_presses_without_a_token_racing_never_call_or_finish_a_patient_twice(desks, setup, queue, sql):
    call_next(desks(1)[0], setup)  # token 1 is with the doctor
    browsers = desks(3)
    responses = at_once([lambda b=b: call_next(b, setup) for b in browsers])
    assert [r.status_code for r in responses] == [303] * 3
    # Which presses overlapped decides who is finished; no patient is ever called or finished twice.
    per_patient = sql("SELECT a.token, count(*) FILTER (WHERE e.action = 'start'), "
                      "count(*) FILTER (WHERE e.action = 'complete') FROM appointment a "
                      "JOIN appointment_event e ON e.appointment_id = a.id GROUP BY a.token ORDER BY a.token")
    assert [(token, started) for token, started, _ in per_patient] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert all(finished <= 1 for *_, finished in per_patient)
    assert queue_of(sql)[0] == (1, "completed") and queue_of(sql)[-1] == (4, "in_consultation")


def test_a_doctor_sees_and_runs_their_own_queue(setup, queue, sql, new_browser, doctor):
    browser = new_browser()
    browser.sign_in(doctor)
    page = browser.get("/queue/mine").get_data(as_text=True)
    assert "My queue" in page and waiting_tokens(page) == ["1", "2", "3", "4"]
    fragment = browser.get("/queue/mine", headers=HTMX).get_data(as_text=True)
    assert "<html" not in fragment and "mine=1" in fragment and waiting_tokens(fragment) == ["1", "2", "3", "4"]
    response = browser.post(f"/queue/{setup.doctor_id}/next", {"mine": "1"}, page="/queue/mine")
    # The doctor calling their own next patient goes straight to the consultation screen.
    assert response.status_code == 303 and response.headers["Location"].startswith("/encounters/")
    assert queue_of(sql)[0] == (1, "in_consultation")
    assert sql("SELECT status FROM encounter") == [("open",)]


def test_the_queue_board_polls_for_changes(desk, setup, patients, sql):
    walk_in(desk, setup, patients[0])
    while True:  # the stamp also moves every minute (minutes waited): poll within one minute
        minute = int(time.time() // 60)
        html = desk.get("/queue/", headers=HTMX).get_data(as_text=True)
        poll = re.search(r'hx-get="(/queue/poll\?v=[^"]+)"', html).group(1).replace("&amp;", "&")
        mark = high_water(sql)
        unchanged = desk.get(poll, headers=HTMX)
        if int(time.time() // 60) == minute:
            break
    assert unchanged.status_code == 204 and unchanged.get_data() == b""
    assert audit_since(sql, mark) == []  # nothing shown, nothing recorded
    walk_in(desk, setup, patients[1])
    mark = high_water(sql)
    changed = desk.get(poll, headers=HTMX)
    assert changed.status_code == 200 and "Bela Sen" in changed.get_data(as_text=True)
    assert "<html" not in changed.get_data(as_text=True)
    assert [a for a, *_ in audit_since(sql, mark)] == ["queue.view"]
    assert "<html" in desk.get(poll).get_data(as_text=True)  # without htmx: the whole page


def test_the_queue_waits_and_done_lists(desk, setup, queue, sql):
    call_next(desk, setup)
    call_next(desk, setup)
    sql("UPDATE appointment SET arrived_at = now() - interval '25 minutes' WHERE token = 3")
    page = desk.get("/queue/").get_data(as_text=True)
    done = page.split("data-done>")[1].split("</ul>")[0]
    assert "Anil Rao" in done and "Bela Sen" not in done
    assert "walk-in · waiting 25 min" in page
    assert re.search(r'<span class="meta">\d\d:\d\d · waiting 0 min</span>', page)  # the booked one shows its time


@pytest.mark.parametrize("role", [Role.NURSE, Role.ADMIN])
def test_other_clinical_roles_may_add_walk_ins_and_call_next(sign_in, setup, patients, sql, role):
    browser = sign_in(role)
    assert walk_in(browser, setup, patients[0]).status_code == 303
    assert call_next(browser, setup).status_code == 303
    assert queue_of(sql) == [(1, "in_consultation")]


# --- Only roles that may register patients register them inline ----------------------------------------

def test_a_role_that_may_not_register_patients_cannot_register_a_walk_in(sign_in, setup, sql):
    nurse, reception = sign_in(Role.NURSE), sign_in(Role.RECEPTION)
    assert "New patient? Register them here" in reception.get("/queue/walk-in").get_data(as_text=True)
    assert "New patient? Register them here" not in nurse.get("/queue/walk-in").get_data(as_text=True)
    form = patient_form(full_name="Esha Walkin", dob="2001-01-01")
    data = {**{f"new-{k}": v for k, v in form.items()}, "new_patient": "y"}
    mark = high_water(sql)
    response = walk_in(nurse, setup, "", **data)
    assert response.status_code == 422
    assert "Your role may not register patients" in response.get_data(as_text=True)
    assert sql("SELECT count(*) FROM patient")[0][0] == 0 and queue_of(sql) == []
    assert "patient.create" not in [a for a, *_ in audit_since(sql, mark)]


# --- htmx: which element the search swaps ------------------------------------------------------------------

def test_the_walk_in_search_swaps_the_results_or_the_whole_form(desk, setup, patients):
    desk.get("/queue/walk-in")
    data = {"q": "bela", "intent": "search", "doctor_id": str(setup.doctor_id)}
    typing = desk.post("/queue/walk-in", data, headers={**HTMX, "HX-Target": "picker-results"})
    assert typing.status_code == 200
    html = typing.get_data(as_text=True)
    assert "Bela Sen" in html and 'id="walk-in-form"' not in html and 'id="q"' not in html
    button = desk.post("/queue/walk-in", data, headers={**HTMX, "HX-Target": "walk-in-form"})
    assert button.status_code == 200
    html = button.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="walk-in-form"') and "<html" not in html and "Bela Sen" in html
    # "Choose someone else": the chosen patient is let go and the search box comes back.
    again = desk.post("/queue/walk-in", {"q": "", "intent": "search", "patient_id": patients[1],
                                         "doctor_id": str(setup.doctor_id)},
                      headers={**HTMX, "HX-Target": "walk-in-form"})
    assert again.status_code == 200
    html = again.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="walk-in-form"') and 'id="q"' in html
    assert f'name="patient_id" value="{patients[1]}"' not in html


# --- The same patient twice ----------------------------------------------------------------------------------

@pytest.mark.parametrize("htmx", [True, False])
def test_a_patient_already_in_the_doctors_queue_is_not_added_again(desk, setup, patients, sql, htmx):
    assert walk_in(desk, setup, patients[0]).status_code == 303
    mark = high_water(sql)
    response = walk_in(desk, setup, patients[0], htmx=htmx, reason="came back")
    assert response.status_code == 409 and "HX-Trigger" not in response.headers
    page = html.unescape(response.get_data(as_text=True))
    assert "This patient is already in the doctor's queue today (token 1)." in page
    assert f'name="patient_id" value="{patients[0]}"' in page and 'value="came back"' in page
    assert ("<html" in page) is not htmx
    assert sql("SELECT count(*) FROM appointment")[0][0] == 1 and queue_of(sql) == [(1, "arrived")]
    assert "appointment.walk_in" not in [a for a, *_ in audit_since(sql, mark)]


# --- Malformed input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["\u00b2", "9" * 20])
def test_a_token_that_is_no_number_calls_the_next_as_without_one(desk, setup, patients, sql, token):
    walk_in(desk, setup, patients[0])
    response = call_next(desk, setup, token=token)
    assert response.status_code == 303
    assert queue_of(sql) == [(1, "in_consultation")]


# --- Polling ----------------------------------------------------------------------------------------------

def test_a_change_whose_clock_is_earlier_than_the_latest_still_reaches_the_queue_poll(desk, setup, patients, sql):
    """Two transactions: the one that read the clock first may commit last. The poll must still see it."""
    walk_in(desk, setup, patients[0])
    walk_in(desk, setup, patients[1])
    for _ in range(3):  # the stamp also moves every minute: all of it inside one minute
        minute = int(time.time() // 60)
        html_ = desk.get("/queue/", headers=HTMX).get_data(as_text=True)
        poll = re.search(r'hx-get="(/queue/poll\?v=[^"]+)"', html_).group(1).replace("&amp;", "&")
        unchanged = desk.get(poll, headers=HTMX)
        sql("UPDATE appointment SET status = 'in_consultation', started_at = now(), version = version + 1, "
            "updated_at = (SELECT max(updated_at) FROM appointment) - interval '1 minute' WHERE token = 1")
        changed = desk.get(poll, headers=HTMX)
        if int(time.time() // 60) == minute:
            break
    assert unchanged.status_code == 204
    assert changed.status_code == 200
    current = changed.get_data(as_text=True).split("data-current>")[1].split("</ul>")[0]
    assert "Anil Rao" in current
