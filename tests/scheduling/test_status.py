"""Status changes: booked → confirmed → arrived (token) → in consultation → completed; cancel with a
reason; no-show and its undo; refusals that change nothing. Each change leaves an appointment event
and an audit record, with htmx (the panel, and every board told to refresh) and without (303)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.auth.policy import Role
from app.scheduling.booking import ACTION_LABELS
from tests.conftest import patient_id, register_with
from tests.scheduling.conftest import HTMX, audit_since, high_water, insert_appointment, today, working_day


@pytest.fixture
def patient(register) -> str:
    return patient_id(register(full_name="Farah Khan"))


@pytest.fixture
def todays(sql, clinic, setup, patient):
    """An appointment today, later than now (any time of day the tests run)."""
    def make(status="booked", *, starts_at=None, doctor_id=None, who=None, day=None):
        starts_at = starts_at or datetime.now(UTC) + timedelta(hours=2)
        return str(insert_appointment(sql, clinic.id, doctor_id or setup.doctor_id, who or patient,
                                      day=day or today(), starts_at=starts_at, status=status,
                                      type_id=setup.type_id))
    return make


def change(browser, aid: str, action: str, *, htmx: bool = False, **extra):
    """Press a status button (the CSRF token comes from a page that shows no patient, so writes no record)."""
    return browser.post(f"/schedule/appointments/{aid}/status", {"action": action, **extra},
                        page="/schedule/book", headers=HTMX if htmx else {})


def state(sql, aid: str) -> tuple:
    return sql("SELECT status, token, version, arrived_at IS NOT NULL, started_at IS NOT NULL, "
               "finished_at IS NOT NULL FROM appointment WHERE id = :a", a=aid)[0]


def events(sql, aid: str) -> list[tuple]:
    return sql("SELECT action, from_status, to_status, by FROM appointment_event WHERE appointment_id = :a "
               "ORDER BY at, id", a=aid)


FLOW = [("confirm", "confirmed"), ("check_in", "arrived"), ("start", "in_consultation"), ("complete", "completed")]
FLOW_FROM = [("confirm", "booked"), ("check_in", "confirmed"), ("start", "arrived"), ("complete", "in_consultation")]


def test_the_whole_visit_without_htmx(desk, todays, sql, reception, patient):
    aid = todays()
    page = desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert 'data-action="confirm"' in page and 'data-action="check_in"' in page and "Cancel this appointment" in page
    assert 'data-action="no_show"' not in page  # its time has not come
    for action, status in FLOW:
        mark = high_water(sql)
        response = change(desk, aid, action)
        assert response.status_code == 303 and response.headers["Location"] == f"/schedule/appointments/{aid}"
        assert state(sql, aid)[0] == status
        assert events(sql, aid)[-1][:3] == (action, dict(FLOW_FROM)[action], status)
        assert events(sql, aid)[-1][3] == reception.id
        (at,) = sql("SELECT max(at) FROM appointment_event WHERE appointment_id = :a", a=aid)[0]
        assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)
        assert [(a, o, p) for a, o, p, *_ in audit_since(sql, mark)] == [(f"appointment.{action}", "allowed", patient)]
    assert state(sql, aid) == ("completed", 1, 5, True, True, True)
    page = desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert "Mark done: done." in page and "token <strong>1</strong>" in page
    assert "check in (confirmed → arrived)\n      by Ravi Reception" in page
    assert re.findall(r'data-action="(\w+)"', page) == ["bill"]  # nothing left to do but bill the visit



def test_the_whole_visit_with_htmx(desk, todays, sql, patient):
    aid = todays()
    for action, status in FLOW:
        mark = high_water(sql)
        response = change(desk, aid, action, htmx=True)
        assert response.status_code == 200
        assert response.headers["HX-Trigger"] == "board-changed" and "HX-Request" in response.headers["Vary"]
        html = response.get_data(as_text=True)
        assert html.lstrip().startswith('<div id="appointment-panel"') and "<html" not in html
        assert f'status-{status}">' in html and "Farah Khan" in html
        assert state(sql, aid)[0] == status
        assert [a for a, *_ in audit_since(sql, mark)] == [f"appointment.{action}"]  # one record, naming her
    assert [e[0] for e in events(sql, aid)] == [a for a, _ in FLOW]


def test_a_check_in_from_the_board_returns_to_the_board_with_the_token(desk, todays, sql):
    aid = todays()
    board = f"/schedule/?day={today().isoformat()}"
    html = desk.get(board).get_data(as_text=True)
    assert "data-check-in" in html
    response = desk.post(f"/schedule/appointments/{aid}/status", {"action": "check_in", "next": board})
    assert response.status_code == 303 and response.headers["Location"] == board
    assert "Checked in: token 1." in desk.get(board).get_data(as_text=True)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
def test_next_never_leaves_the_site(desk, todays, target):
    aid = todays()
    response = desk.post(f"/schedule/appointments/{aid}/status", {"action": "confirm", "next": target},
                         page=f"/schedule/appointments/{aid}")
    assert response.status_code == 303 and response.headers["Location"] == f"/schedule/appointments/{aid}"


def test_tokens_are_consecutive_per_clinic_per_day(desk, todays, sql, register, factory, clinic, other_clinic,
                                                    new_browser, setup):
    second = factory.person(clinic, Role.DOCTOR, name="Dr Two")
    first = todays()
    others = [todays(doctor_id=second.id, who=patient_id(register(full_name=f"Patient {i}")),
                     starts_at=datetime.now(UTC) + timedelta(hours=2 + i)) for i in range(2)]
    tomorrow = todays(day=working_day(), starts_at=datetime.now(UTC) + timedelta(days=1))  # another day's counter
    for aid in [others[1], first, others[0]]:
        assert change(desk, aid, "check_in").status_code == 303
    assert [state(sql, a)[1] for a in (others[1], first, others[0])] == [1, 2, 3]
    assert state(sql, tomorrow)[1] is None
    walk_in = desk.post("/queue/walk-in", {"patient_id": patient_id(register()), "doctor_id": str(setup.doctor_id),
                                            "type_id": "", "intent": "add"}, page="/queue/walk-in")
    assert walk_in.status_code == 303
    assert sql("SELECT token FROM appointment WHERE walk_in") == [(4,)]
    # Another clinic counts its own tokens from 1.
    elsewhere = new_browser()
    elsewhere.sign_in(factory.person(other_clinic, Role.RECEPTION))
    doctor = factory.person(other_clinic, Role.DOCTOR)
    data = {"patient_id": patient_id(register_with(elsewhere)), "doctor_id": str(doctor.id), "type_id": "",
            "intent": "add"}
    response = elsewhere.post("/queue/walk-in", data, page="/queue/walk-in")
    assert response.status_code == 303
    assert sql("SELECT token FROM appointment WHERE clinic_id = :c", c=other_clinic.id) == [(1,)]


@pytest.mark.parametrize("htmx", [True, False])
def test_cancelling_needs_a_reason(desk, todays, sql, htmx):
    aid = todays()
    refused = change(desk, aid, "cancel", htmx=htmx, reason="  ")
    # Refused with or without htmx: the same page or panel comes back (409) with why.
    assert refused.status_code == 409 and "Say why the appointment is cancelled." in refused.get_data(as_text=True)
    assert ("<html" in refused.get_data(as_text=True)) is not htmx
    assert state(sql, aid)[0] == "booked" and events(sql, aid) == []
    mark = high_water(sql)
    done = change(desk, aid, "cancel", htmx=htmx, reason="Moved to another city")
    assert done.status_code == (200 if htmx else 303)
    assert state(sql, aid)[0] == "cancelled"
    assert events(sql, aid)[0][:3] == ("cancel", "booked", "cancelled")
    assert [(a, r) for a, _o, _p, _ids, r, _f in audit_since(sql, mark)] == [("appointment.cancel", None)]
    page = desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert "Moved to another city" in page and "Cancelled" in page


def test_a_refused_cancellation_without_javascript_keeps_the_typed_reason(desk, todays, sql):
    aid = todays("completed")
    response = change(desk, aid, "cancel", reason="Patient called to cancel")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "cannot be changed that way" in html and "<html" in html
    assert state(sql, aid)[0] == "completed"


def test_a_reason_longer_than_the_form_allows_is_refused(desk, todays, sql):
    aid = todays()
    response = change(desk, aid, "cancel", htmx=True, reason="x" * 201)
    assert response.status_code == 409 and "Keep the reason to 200 characters." in response.get_data(as_text=True)
    assert state(sql, aid)[0] == "booked" and events(sql, aid) == []


REFUSALS = [
    ("completed", "check_in", "This patient has already checked in."),
    ("cancelled", "confirm", "An appointment that is cancelled cannot be changed that way (confirm)."),
    ("cancelled", "undo_no_show", "An appointment that is cancelled cannot be changed that way (undo no-show)."),
    ("rescheduled", "check_in", "An appointment that is rescheduled cannot be changed that way (check in)."),
    ("arrived", "no_show", "An appointment that is arrived cannot be changed that way (no-show)."),
    ("booked", "start", "An appointment that is booked cannot be changed that way (start consultation)."),
    ("booked", "no_show", "An appointment can be marked as a no-show only once its time has come."),
    ("booked", "delete", "Choose one of the actions shown for this appointment."),
    ("booked", "", "Choose one of the actions shown for this appointment."),
]


@pytest.mark.parametrize("htmx", [True, False])
def test_a_second_check_in_says_the_patient_has_checked_in_with_the_token(desk, todays, sql, htmx):
    aid = todays()
    assert change(desk, aid, "check_in").status_code == 303
    before = state(sql, aid)
    response = change(desk, aid, "check_in", htmx=htmx)
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "This patient has already checked in (token 1)." in html
    assert "cannot be changed that way" not in html and ("<html" in html) is not htmx
    assert state(sql, aid) == before and [e[0] for e in events(sql, aid)] == ["check_in"]


@pytest.mark.parametrize("htmx", [True, False])
@pytest.mark.parametrize("status, action, message", REFUSALS)
def test_refused_changes_say_why_and_change_nothing(desk, todays, sql, status, action, message, htmx):
    aid = todays(status)
    before = state(sql, aid)
    mark = high_water(sql)
    response = change(desk, aid, action, htmx=htmx)
    assert response.status_code == 409 and "HX-Trigger" not in response.headers
    html = response.get_data(as_text=True)
    assert message in html
    assert state(sql, aid) == before and events(sql, aid) == []
    assert not [a for a, *_ in audit_since(sql, mark) if a == f"appointment.{action}"]


def test_nothing_changes_a_cancelled_appointment(desk, todays, sql):
    aid = todays("cancelled", starts_at=datetime.now(UTC) - timedelta(minutes=5))
    assert "data-action=" not in desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    for action in ACTION_LABELS:
        response = change(desk, aid, action, htmx=True, reason="try anyway")
        assert response.status_code == 409, action
        assert "An appointment that is cancelled cannot be changed that way" in response.get_data(as_text=True)
    assert state(sql, aid)[:3] == ("cancelled", None, 1) and events(sql, aid) == []


def test_check_in_only_on_the_day(desk, setup, sql, clinic, patient):
    day = working_day()
    aid = str(insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day,
                                 starts_at=datetime.now(UTC) + timedelta(days=1), type_id=setup.type_id))
    page = desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert 'data-action="check_in"' not in page and 'data-action="confirm"' in page
    response = change(desk, aid, "check_in", htmx=True)
    assert response.status_code == 409
    assert "You can check in only on the day of the appointment." in response.get_data(as_text=True)
    assert state(sql, aid)[:2] == ("booked", None)


def test_no_show_and_its_undo(desk, todays, sql):
    aid = todays(starts_at=datetime.now(UTC) - timedelta(minutes=1))
    assert 'data-action="no_show"' in desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert change(desk, aid, "no_show").status_code == 303
    assert state(sql, aid)[0] == "no_show"
    page = desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert 'data-action="undo_no_show"' in page
    mark = high_water(sql)
    assert change(desk, aid, "undo_no_show", htmx=True).status_code == 200
    assert state(sql, aid)[0] == "booked"
    assert [e[:3] for e in events(sql, aid)] == [("no_show", "booked", "no_show"),
                                                 ("undo_no_show", "no_show", "booked")]
    assert [a for a, *_ in audit_since(sql, mark)] == ["appointment.undo_no_show"]


def test_undoing_a_no_show_whose_time_was_booked_since_is_refused(desk, todays, sql, register):
    starts = datetime.now(UTC) - timedelta(minutes=1)
    aid = todays("no_show", starts_at=starts)
    todays(starts_at=starts, who=patient_id(register(full_name="Took The Slot")))
    response = change(desk, aid, "undo_no_show", htmx=True)
    assert response.status_code == 409
    assert "That time has been booked for someone else since" in response.get_data(as_text=True)
    assert state(sql, aid)[0] == "no_show" and events(sql, aid) == []


def test_back_to_waiting(desk, todays, sql):
    aid = todays("in_consultation")
    assert change(desk, aid, "back_to_waiting").status_code == 303
    assert state(sql, aid)[0] == "arrived" and events(sql, aid)[0][:3] == ("back_to_waiting", "in_consultation",
                                                                           "arrived")


def test_undoing_a_no_show_whose_time_an_overbooking_took_since_is_refused(desk, todays, sql, register):
    """An overbooked appointment stands outside the no-overlap constraint: the undo checks for it itself."""
    starts = datetime.now(UTC) - timedelta(minutes=1)
    aid = todays("no_show", starts_at=starts)
    fitted_in = todays(starts_at=starts, who=patient_id(register(full_name="Fitted In")))
    sql("UPDATE appointment SET overbooked = true WHERE id = :a", a=fitted_in)
    mark = high_water(sql)
    response = change(desk, aid, "undo_no_show", htmx=True)
    assert response.status_code == 409
    assert "That time has been booked for someone else since" in response.get_data(as_text=True)
    assert state(sql, aid)[0] == "no_show" and events(sql, aid) == []
    assert "appointment.undo_no_show" not in [a for a, *_ in audit_since(sql, mark)]
