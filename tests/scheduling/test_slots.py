"""Availability: slots from weekly sessions, clipped to the clinic's hours, minus leave, plus extra
sessions; public holidays of the clinic's state; wall-clock times in the clinic's own time zone.

The pure functions first (any date, no database), then the same rules as the day board shows them.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from markupsafe import escape

from app.clinics.states import STATES
from app.scheduling import slots as sl
from tests.conftest import patient_id
from tests.scheduling.conftest import add_sessions, add_type, book, holiday_name, open_clinic, slot, working_day

MONDAY = date(2026, 11, 30)  # no public holiday in Karnataka
OPEN = {weekday: (time(8), time(20)) for weekday in range(7)}
MORNINGS = [sl.WeeklySession(weekday, time(9), time(13), 15, "Room 1") for weekday in range(7)]


def span(starts: str, ends: str) -> str:
    """A time range as the pages write it (with an en dash)."""
    return f"{starts}\u2013{ends}"


def clock_times(day: sl.DoctorDay) -> list[str]:
    return [s.starts.strftime("%H:%M") for s in day.slots()]


def doctor_day(day=MONDAY, *, hours=OPEN, override=None, state="29", sessions=MORNINGS, leaves=(), extras=(),
               tz="Asia/Kolkata") -> sl.DoctorDay:
    status = sl.clinic_day(day, hours, override, state)
    return sl.doctor_day(day, tz, status, list(sessions), list(leaves), list(extras))


def test_a_weekly_session_gives_its_slots():
    day = doctor_day()
    assert len(day.slots()) == 16
    assert clock_times(day)[:3] == ["09:00", "09:15", "09:30"] and clock_times(day)[-1] == "12:45"
    assert {s.room for s in day.slots()} == {"Room 1"}
    assert all(s.ends - s.starts == timedelta(minutes=15) for s in day.slots())


def test_only_the_sessions_of_that_weekday_count():
    tuesday_only = [sl.WeeklySession(1, time(9), time(10), 30)]
    assert clock_times(doctor_day(sessions=tuesday_only)) == []
    assert clock_times(doctor_day(MONDAY + timedelta(days=1), sessions=tuesday_only)) == ["09:00", "09:30"]


def test_sessions_are_clipped_to_the_clinics_hours_on_the_sessions_grid():
    hours = {MONDAY.weekday(): (time(10, 10), time(12))}
    # 10:10 is not on the 15-minute grid from 09:00: the first whole slot is 10:15.
    assert clock_times(doctor_day(hours=hours)) == ["10:15", "10:30", "10:45", "11:00", "11:15", "11:30", "11:45"]


def test_a_weekday_without_opening_hours_has_no_slots():
    assert doctor_day(hours={}).slots() == []


def test_whole_day_leave_removes_every_slot_of_the_days_it_covers():
    leave = sl.Leave(MONDAY - timedelta(days=2), MONDAY)
    assert doctor_day(leaves=[leave]).slots() == []
    assert len(doctor_day(MONDAY + timedelta(days=1), leaves=[leave]).slots()) == 16


def test_part_day_leave_removes_only_those_hours():
    leave = sl.Leave(MONDAY, MONDAY, time(10, 5), time(11, 50))
    times = clock_times(doctor_day(leaves=[leave]))
    # Slots touching the leave go; the grid stays the session's.
    assert times == ["09:00", "09:15", "09:30", "09:45", "12:00", "12:15", "12:30", "12:45"]


def test_an_extra_session_adds_slots_even_on_a_closed_day():
    extra = sl.WeeklySession(MONDAY.weekday(), time(17), time(18), 20, "Room 9")
    day = doctor_day(extras=[extra])
    assert clock_times(day)[-3:] == ["17:00", "17:20", "17:40"]
    assert [b.extra for b in day.blocks] == [False, True]
    closed = doctor_day(hours={}, extras=[extra])
    assert clock_times(closed) == ["17:00", "17:20", "17:40"]
    assert {s.room for s in closed.slots()} == {"Room 9"}


def test_availability_contains_only_whole_stretches():
    day = doctor_day(leaves=[sl.Leave(MONDAY, MONDAY, time(10), time(11))])
    at = lambda hhmm: datetime.combine(MONDAY, time.fromisoformat(hhmm), ZoneInfo("Asia/Kolkata"))  # noqa: E731
    assert day.contains(at("09:30"), at("10:00"))
    assert not day.contains(at("09:45"), at("10:15"))  # runs into the leave
    assert not day.contains(at("12:45"), at("13:15"))  # runs past the session


def next_holiday(state: str, after: date) -> tuple[date, str]:
    days = {**sl.public_holidays(state, after.year), **sl.public_holidays(state, after.year + 1)}
    return min((d, n) for d, n in days.items() if d > after)


def test_a_public_holiday_of_the_clinics_state_closes_it():
    holiday, name = next_holiday("29", MONDAY)
    status = sl.clinic_day(holiday, OPEN, None, "29")
    assert not status.is_open and status.holiday == name
    assert doctor_day(holiday).slots() == []


def test_a_holiday_of_another_state_does_not_close_the_clinic():
    kerala, karnataka = set(sl.public_holidays("32", 2027)), set(sl.public_holidays("29", 2027))
    only_kerala = min(kerala - karnataka)
    assert not sl.clinic_day(only_kerala, OPEN, None, "32").is_open
    assert sl.clinic_day(only_kerala, OPEN, None, "29").is_open


def test_open_anyway_on_a_holiday_and_a_closure_on_a_working_day():
    holiday, name = next_holiday("29", MONDAY)
    opened = sl.clinic_day(holiday, OPEN, sl.Override(True, "Open for the camp"), "29")
    assert opened.is_open and opened.holiday == name and opened.note == "Open for the camp"
    assert len(doctor_day(holiday, override=sl.Override(True, "Open for the camp")).slots()) == 16
    closed = sl.clinic_day(MONDAY, OPEN, sl.Override(False, "Painting"), "29")
    assert not closed.is_open and closed.note == "Painting"
    assert doctor_day(override=sl.Override(False, "Painting")).slots() == []


def test_every_gst_state_maps_to_a_subdivision_the_holidays_package_knows():
    known = {s.code: s.holiday_subdivision for s in STATES if s.holiday_subdivision}
    assert set(known) == {s.code for s in STATES} - {"97"}  # Other Territory: national holidays only
    assert set(known.values()) <= set(holidays.India.subdivisions)
    for code in ("29", "27", "07", "97"):
        assert "Republic Day" in sl.public_holidays(code, 2027).values()


# --- Time zones -----------------------------------------------------------------------------------

def test_slots_are_wall_clock_times_in_the_clinics_zone_across_a_dst_change():
    london = ZoneInfo("Europe/London")
    before, after = date(2027, 3, 23), date(2027, 3, 30)  # clocks go forward on Sunday 28 March 2027
    winter = doctor_day(before, tz="Europe/London").slots()[0]
    summer = doctor_day(after, tz="Europe/London").slots()[0]
    assert winter.starts.utcoffset() == timedelta(0) and summer.starts.utcoffset() == timedelta(hours=1)
    assert winter.starts.astimezone(UTC) == datetime(2027, 3, 23, 9, tzinfo=UTC)
    assert summer.starts.astimezone(UTC) == datetime(2027, 3, 30, 8, tzinfo=UTC)
    assert summer.starts.astimezone(london).strftime("%H:%M") == "09:00"


def test_new_york_slots_are_new_york_times():
    day = doctor_day(date(2026, 12, 1), tz="America/New_York").slots()
    assert day[0].starts.astimezone(UTC) == datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert day[-1].ends.astimezone(UTC) == datetime(2026, 12, 1, 18, tzinfo=UTC)


def test_a_session_across_the_clock_change_keeps_real_fifteen_minute_slots():
    night = [sl.WeeklySession(6, time(0), time(4), 30)]
    sunday = date(2027, 3, 28)
    day = doctor_day(sunday, hours={6: (time(0), time(23))}, sessions=night, tz="Europe/London")
    # 01:00-02:00 does not exist that night: three real hours, six half-hour slots.
    assert clock_times(day) == ["00:00", "00:30", "02:00", "02:30", "03:00", "03:30"]
    assert all(s.ends.astimezone(UTC) - s.starts.astimezone(UTC) == timedelta(minutes=30) for s in day.slots())


# --- The same rules on the day board ------------------------------------------------------------------

def free_times(html: str) -> list[str]:
    import re

    return re.findall(r'id="slot-[0-9a-f-]+-(\d{4})"', html)


@pytest.fixture
def board(desk):
    def get(day: date) -> str:
        response = desk.get(f"/schedule/?day={day.isoformat()}")
        assert response.status_code == 200
        return response.get_data(as_text=True)
    return get


def test_the_board_shows_the_doctors_free_slots(board, setup):
    html = board(working_day())
    assert "Dr Meera Rao" in html and f"{span('09:00', '13:00')} (Room 1)" in html and "16 free" in html
    assert free_times(html)[:2] == ["0900", "0915"] and free_times(html)[-1] == "1245"


def test_the_board_clips_to_the_clinics_hours(board, setup, sql, clinic):
    sql("UPDATE clinic_hours SET opens = '10:30' WHERE clinic_id = :c", c=clinic.id)
    html = board(working_day())
    assert free_times(html)[0] == "1030" and span("10:30", "13:00") in html


def test_leave_on_the_board_and_booking_into_it_is_refused(board, desk, register, setup, sql, clinic):
    day, next_day = working_day(), working_day(2)
    sql("INSERT INTO doctor_exception (clinic_id, id, doctor_id, kind, first_day, last_day, created_at) "
        "VALUES (:c, gen_random_uuid(), :d, 'leave', :f, :f, now())", c=clinic.id, d=setup.doctor_id, f=day)
    sql("INSERT INTO doctor_exception (clinic_id, id, doctor_id, kind, first_day, last_day, starts, ends, created_at) "
        "VALUES (:c, gen_random_uuid(), :d, 'leave', :f, :f, '11:00', '13:00', now())",
        c=clinic.id, d=setup.doctor_id, f=next_day)
    assert "Dr Meera Rao" not in board(day) and "No doctor is scheduled on this day." in board(day)
    assert free_times(board(next_day))[-1] == "1045"
    response = book(desk, setup, slot(next_day, "11:30"), patient_id(register()))
    assert response.status_code == 422
    assert "The doctor is not available for the whole of that time." in response.get_data(as_text=True)
    assert sql("SELECT count(*) FROM appointment")[0][0] == 0


def test_an_extra_session_on_the_board(board, setup, sql, clinic):
    day = working_day()
    sql("INSERT INTO doctor_exception (clinic_id, id, doctor_id, kind, first_day, last_day, starts, ends, "
        "slot_minutes, room, created_at) VALUES (:c, gen_random_uuid(), :d, 'extra', :f, :f, '16:00', '17:00', 30, "
        "'Room 7', now())", c=clinic.id, d=setup.doctor_id, f=day)
    html = board(day)
    assert f"{span('16:00', '17:00')} (Room 7) extra" in html and free_times(html)[-2:] == ["1600", "1630"]


def test_a_holiday_closes_the_board_until_the_clinic_opens_anyway(board, setup, sql, clinic):
    holiday, name = next_holiday("29", working_day())
    name = str(escape(name))
    html = board(holiday)
    assert f"The clinic is closed on this day ({name})." in html and free_times(html) == []
    sql("INSERT INTO clinic_day (clinic_id, day, is_open, note, created_at) VALUES (:c, :d, true, 'Open', now())",
        c=clinic.id, d=holiday)
    html = board(holiday)
    assert f"{name} · open" in html and len(free_times(html)) == 16


def test_a_closure_closes_the_board(board, setup, sql, clinic):
    day = working_day()
    sql("INSERT INTO clinic_day (clinic_id, day, is_open, note, created_at) VALUES (:c, :d, false, 'Painting', "
        "now())", c=clinic.id, d=day)
    html = board(day)
    assert "Painting" in html and "The clinic is closed on this day." in html and free_times(html) == []


@pytest.fixture
def london(factory, sql):
    """A clinic in London (clocks go forward on the last Sunday of March) with the usual doctor and types."""
    from app.auth.policy import Role

    clinic = factory.clinic("Thames Clinic", timezone="Europe/London")
    receptionist = factory.person(clinic, Role.RECEPTION, name="Lena Desk")
    doctor = factory.person(clinic, Role.DOCTOR, name="Dr Owen Hale")
    open_clinic(sql, clinic.id)
    add_sessions(sql, clinic.id, doctor.id)
    from tests.scheduling.conftest import Setup

    return clinic, receptionist, Setup(doctor.id, add_type(sql, clinic.id), add_type(sql, clinic.id, "Procedure", 30))


def _next_spring_forward() -> date:
    """The UK's next change to summer time (last Sunday of March) with a bookable week before it."""
    today = datetime.now(ZoneInfo("Europe/London")).date()
    for year in (today.year, today.year + 1):
        change = date(year, 3, 31) - timedelta(days=(date(year, 3, 31).weekday() + 1) % 7)
        if change - timedelta(days=6) > today:
            return change
    raise AssertionError("unreachable")


def _open_day(change: date, direction: int) -> date:
    """The first day before (-1) or after (+1) the clock change that is not a holiday of the clinic's state."""
    day = change + timedelta(days=direction)
    while holiday_name("29", day):
        day += timedelta(days=direction)
    return day


def test_a_london_clinic_books_london_times_across_the_clock_change(london, new_browser, sql):
    from tests.conftest import register_with

    _clinic, receptionist, setup = london
    browser = new_browser()
    browser.sign_in(receptionist)
    patient = patient_id(register_with(browser))
    change = _next_spring_forward()
    winter, summer = _open_day(change, -1), _open_day(change, +1)
    for day in (winter, summer):
        html = browser.get(f"/schedule/?day={day.isoformat()}").get_data(as_text=True)
        assert free_times(html)[0] == "0900" and span("09:00", "13:00") in html
        assert book(browser, setup, slot(day, "09:00"), patient).status_code == 303
    stored = sql("SELECT day, starts_at, ends_at FROM appointment ORDER BY starts_at")
    assert stored == [
        (winter, datetime.combine(winter, time(9), UTC), datetime.combine(winter, time(9, 15), UTC)),
        (summer, datetime.combine(summer, time(8), UTC), datetime.combine(summer, time(8, 15), UTC)),
    ]
    html = browser.get(f"/schedule/?day={summer.isoformat()}").get_data(as_text=True)
    card = f'<time class="when" datetime="{summer.isoformat()}T08:00:00+00:00">' + span("09:00", "09:15") + "</time>"
    assert card in html
    assert free_times(html)[0] == "0915"
    week = browser.get(f"/schedule/week?doctor_id={setup.doctor_id}&day={summer.isoformat()}").get_data(as_text=True)
    assert span("09:00", "09:15") in week


def test_an_evening_in_new_york_is_on_the_new_york_day(factory, sql, new_browser):
    """21:00 in New York is already tomorrow in UTC and in India: the appointment keeps the clinic's day."""
    from app.auth.policy import Role
    from tests.conftest import register_with
    from tests.scheduling.conftest import Setup

    clinic = factory.clinic("Hudson Clinic", timezone="America/New_York")
    receptionist = factory.person(clinic, Role.RECEPTION)
    doctor = factory.person(clinic, Role.DOCTOR, name="Dr Ada Night")
    open_clinic(sql, clinic.id, opens="08:00", closes="23:00")
    add_sessions(sql, clinic.id, doctor.id, starts="20:00", ends="22:00", minutes=30)
    setup = Setup(doctor.id, add_type(sql, clinic.id, minutes=30), add_type(sql, clinic.id, "Long", 60))
    browser = new_browser()
    browser.sign_in(receptionist)
    day = working_day(tz="America/New_York")
    assert book(browser, setup, slot(day, "21:00"), patient_id(register_with(browser))).status_code == 303
    (stored_day, starts_at), = sql("SELECT day, starts_at FROM appointment")
    assert stored_day == day
    assert starts_at == datetime.combine(day, time(21), ZoneInfo("America/New_York"))
    assert starts_at.astimezone(UTC).date() == day + timedelta(days=1)
    html = browser.get(f"/schedule/?day={day.isoformat()}").get_data(as_text=True)
    assert span("21:00", "21:30") in html and free_times(html) == ["2000", "2030", "2130"]
