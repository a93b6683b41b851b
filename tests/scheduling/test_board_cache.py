"""The day board kept per process (app/scheduling/board_cache.py): a second desk asking for the same board
gets it without the database reading, decrypting and rendering it again, yet with its own CSRF token and its
own audit record; any change to the day shows at once; a view another role may not have is never served."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from app.auth.policy import Role
from app.scheduling.board_cache import CSRF_MARK, BoardCache
from tests.conftest import CSRF_RE, patient_id
from tests.scheduling.conftest import audit_since, high_water, insert_appointment, today

CHECK_IN_RE = re.compile(r'name="csrf_token" value="([^"]+)">\s*<input type="hidden" name="action" value="check_in">')


@pytest.fixture
def statements(app):
    counted = []

    def count(*_):
        if counted:
            counted[-1] += 1

    event.listen(app.extensions["db_engine"], "before_cursor_execute", count)

    def request(call):
        counted.append(0)
        response = call()
        return response, counted[-1]

    yield request
    event.remove(app.extensions["db_engine"], "before_cursor_execute", count)


@pytest.fixture
def on_the_board(setup, register, sql, clinic):
    """A patient booked later today (the board offers to check them in)."""
    patient = patient_id(register(full_name="Meera Pillai"))
    starts = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
    return patient, insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(), starts_at=starts)


def test_a_second_desk_gets_the_board_from_the_cache_with_its_own_token_and_audit_record(
        desks, on_the_board, statements, sql):
    patient, appointment = on_the_board
    first, second = desks(2)
    url = f"/schedule/?day={today().isoformat()}"
    mark = high_water(sql)
    page_1, fresh = statements(lambda: first.get(url))
    page_2, kept = statements(lambda: second.get(url))
    html_1, html_2 = page_1.get_data(as_text=True), page_2.get_data(as_text=True)
    assert page_1.status_code == page_2.status_code == 200
    assert "Meera Pillai" in html_1 and "Meera Pillai" in html_2 and CSRF_MARK not in html_2
    assert kept < fresh, "the second desk's board came from the cache"
    # Each page's forms carry the session's own token: the second desk checks the patient in from its page.
    token_2 = CHECK_IN_RE.search(html_2).group(1)
    assert token_2 == CSRF_RE.search(html_2).group(1) != CHECK_IN_RE.search(html_1).group(1)
    response = second.client.post(f"/schedule/appointments/{appointment}/status",
                                  data={"csrf_token": token_2, "action": "check_in"})
    assert response.status_code == 303
    records = [r for r in audit_since(sql, mark) if r[0] == "schedule.day"]
    assert [r[3] for r in records] == [[patient], [patient]], "each view audited, naming the patient shown"


def test_a_change_to_the_day_shows_at_once(desks, on_the_board, sql):
    _, appointment = on_the_board
    first, second = desks(2)
    url = f"/schedule/?day={today().isoformat()}"
    assert "data-check-in" in first.get(url).get_data(as_text=True)
    second.post(f"/schedule/appointments/{appointment}/status", {"action": "check_in"}, page=url)
    assert sql("SELECT status FROM appointment WHERE id = :i", i=appointment) == [("arrived",)]
    html = first.get(url).get_data(as_text=True)
    assert "data-check-in" not in html and "token 1" in html


def test_another_roles_view_is_never_served_from_the_cache(desks, sign_in, on_the_board):
    url = f"/schedule/?day={today().isoformat()}"
    (desk,) = desks(1)
    assert "data-check-in" in desk.get(url).get_data(as_text=True)
    billing = sign_in(Role.BILLING).get(url).get_data(as_text=True)  # may not book: no check-in button
    assert "Meera Pillai" in billing and "data-check-in" not in billing


def test_entries_are_bounded_and_expire():
    cache = BoardCache(entries=2, max_age=60)
    for n in range(3):
        cache.put(("clinic", n), f"board {n}", [])
    assert cache.get(("clinic", 0)) is None and cache.get(("clinic", 2)) == ("board 2", [])
    stale = BoardCache(entries=2, max_age=0)
    stale.put(("clinic", 1), "board", [])
    assert stale.get(("clinic", 1)) is None
