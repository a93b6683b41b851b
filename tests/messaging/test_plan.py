"""When reminders go out, as tables: an appointment and a booking moment -> the reminders planned.

Times are written in the clinic's local time for reading; plan answers in UTC and aware datetimes
compare as instants. Cases follow shared/reference/reminders.md §7 (3-7) and the rules in
app/messaging/plan.py's docstring.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.messaging.plan import Planned, Schedule, is_stale, kind_of, plan

IST, DUBAI, NEW_YORK = "Asia/Kolkata", "Asia/Dubai", "America/New_York"
H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)


def at(text: str, zone: str = IST) -> datetime:
    """'2026-11-24 10:30' in `zone`."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def case(appointment, now, expected, zone=IST, **schedule):
    return (Schedule(timezone=zone, **schedule), at(appointment, zone), at(now, zone), [
        (kind, at(due, zone)) for kind, due in expected
    ])


PLANS = [
    # The default schedule, 24 h and 2 h, on a Tuesday 10:30 visit.
    pytest.param(*case("2026-11-24 10:30", "2026-11-20 12:00", [
        ("24h", "2026-11-23 10:30"), ("2h", "2026-11-24 08:30"),
    ]), id="booked-days-ahead"),
    pytest.param(*case("2026-11-24 10:30", "2026-11-24 09:30", []), id="booked-1h-ahead-none"),
    pytest.param(*case("2026-11-24 10:30", "2026-11-24 07:30", [("2h", "2026-11-24 08:30")]), id="booked-3h-ahead"),
    pytest.param(*case("2026-11-24 12:00", "2026-11-24 10:00", [("2h", "2026-11-24 10:00")]), id="due-exactly-now"),
    pytest.param(*case("2026-11-24 12:00", "2026-11-24 10:01", []), id="due-a-minute-ago-skipped"),
    # Quiet hours 21:00-08:00: a reminder inside moves to 20:59 before the window.
    pytest.param(*case("2026-11-24 22:30", "2026-11-20 12:00", [
        ("24h", "2026-11-23 20:59"), ("2h", "2026-11-24 20:30"),
    ]), id="24h-at-22:30-moves-to-20:59"),
    pytest.param(*case("2026-11-24 09:00", "2026-11-20 12:00", [
        ("24h", "2026-11-23 09:00"), ("2h", "2026-11-23 20:59"),
    ]), id="2h-at-07:00-moves-to-previous-evening"),
    pytest.param(*case("2026-11-24 23:00", "2026-11-20 12:00", [
        ("24h", "2026-11-23 20:59"), ("2h", "2026-11-24 20:59"),
    ]), id="2h-at-21:00-start-minute-is-quiet"),
    pytest.param(*case("2026-11-24 10:00", "2026-11-20 12:00", [
        ("24h", "2026-11-23 10:00"), ("2h", "2026-11-24 08:00"),
    ]), id="2h-at-08:00-end-minute-is-not-quiet"),
    # Booked inside the window, so 20:59 has passed: later, to 08:00, if that leaves 30 minutes.
    pytest.param(*case("2026-11-24 09:00", "2026-11-23 22:00", [("2h", "2026-11-24 08:00")]), id="booked-at-night"),
    pytest.param(*case("2026-11-24 08:30", "2026-11-23 22:00", [("2h", "2026-11-24 08:00")]), id="later-exactly-30m"),
    pytest.param(*case("2026-11-24 08:15", "2026-11-23 22:00", []), id="later-too-close-skipped"),
    pytest.param(*case("2026-11-24 09:00", "2026-11-24 07:00", [("2h", "2026-11-24 08:00")]), id="booked-at-07:00"),
    pytest.param(*case("2026-11-24 09:00", "2026-11-24 07:45", []), id="passed-at-07:00-not-revived-at-08:00"),
    # Moves never make two messages: the larger offset keeps its kind.
    pytest.param(*case("2026-11-24 09:30", "2026-11-20 12:00", [("12h", "2026-11-23 20:59")], offsets=(12 * H, 11 * H)),
                 id="both-move-to-20:59-one-kept"),
    pytest.param(*case("2026-11-24 23:59", "2026-11-20 12:00", [("3h", "2026-11-24 20:59")], offsets=(3 * H, 2 * H)),
                 id="moved-onto-an-unmoved-one"),
    # Other schedules.
    pytest.param(*case("2026-11-24 15:30", "2026-11-20 12:00", [("2h", "2026-11-24 12:59")], offsets=(2 * H,),
                       quiet_start=time(13), quiet_end=time(14)), id="lunch-window-13-14"),
    pytest.param(*case("2026-11-24 16:00", "2026-11-20 12:00", [("2h", "2026-11-24 14:00")], offsets=(2 * H,),
                       quiet_start=time(13), quiet_end=time(14)), id="lunch-window-end-not-quiet"),
    pytest.param(*case("2026-11-24 09:00", "2026-11-20 12:00", [("2h", "2026-11-24 07:00")], offsets=(2 * H,),
                       quiet_start=time(13), quiet_end=time(14)), id="lunch-window-night-is-fine"),
    pytest.param(*case("2026-11-24 09:00", "2026-11-20 12:00", [
        ("24h", "2026-11-23 09:00"), ("2h", "2026-11-24 07:00"),
    ], quiet_start=time(0), quiet_end=time(0)), id="no-quiet-hours"),
    pytest.param(*case("2026-11-24 10:30", "2026-11-01 12:00", [
        ("3d", "2026-11-21 10:30"), ("24h", "2026-11-23 10:30"),
        ("2h", "2026-11-24 08:30"), ("90m", "2026-11-24 09:00"),
    ], offsets=(2 * H, 90 * M, 3 * D, 24 * H)), id="four-offsets-any-order"),
    pytest.param(*case("2026-11-24 10:30", "2026-11-01 12:00", [], offsets=()), id="no-offsets-no-reminders"),
    # Another zone: the same rules on Dubai's clock (UTC+4).
    pytest.param(*case("2026-11-24 09:00", "2026-11-20 12:00", [
        ("24h", "2026-11-23 09:00"), ("2h", "2026-11-23 20:59"),
    ], zone=DUBAI), id="dubai"),
    # New York, on the days clocks change (2026-03-08 springs forward, 2026-11-01 falls back, at 02:00).
    # Offsets are elapsed hours: 24 h before 10:00 EDT is 09:00 EST the day before.
    pytest.param(*case("2026-03-08 10:00", "2026-03-01 12:00", [
        ("24h", "2026-03-07 09:00"), ("2h", "2026-03-08 08:00"),
    ], zone=NEW_YORK), id="new-york-spring-forward"),
    pytest.param(*case("2026-03-08 08:30", "2026-03-01 12:00", [
        ("24h", "2026-03-06 20:59"), ("2h", "2026-03-07 20:59"),
    ], zone=NEW_YORK), id="new-york-spring-forward-quiet"),
    pytest.param(*case("2026-11-01 10:00", "2026-10-25 12:00", [
        ("24h", "2026-10-31 11:00"), ("2h", "2026-11-01 08:00"),
    ], zone=NEW_YORK), id="new-york-fall-back"),
    pytest.param(*case("2026-11-01 09:00", "2026-10-31 23:00", [("2h", "2026-11-01 08:00")], zone=NEW_YORK),
                 id="new-york-fall-back-booked-at-night"),
]


@pytest.mark.parametrize(("schedule", "appointment", "now", "expected"), PLANS)
def test_plan(schedule, appointment, now, expected):
    planned = plan(schedule, appointment, now)
    assert [(p.kind, p.due_at) for p in planned] == expected
    assert all(p.due_at.tzinfo is UTC and p.due_at < appointment for p in planned)


def test_the_same_instant_is_planned_on_each_clinic_s_own_clock():
    appointment = at("2026-11-24 09:00", DUBAI)  # 10:30 in India: its 2 h reminder, 08:30 there, is not quiet
    assert plan(Schedule(), appointment, at("2026-11-20 12:00")) == [
        Planned("24h", at("2026-11-23 10:30"), 24 * H), Planned("2h", at("2026-11-24 08:30"), 2 * H),
    ]


def test_defaults_and_offsets_kept_largest_first():
    schedule = Schedule(offsets=[2 * H, 24 * H])
    assert schedule.offsets == (24 * H, 2 * H)
    assert schedule == Schedule()
    assert (Schedule().quiet_start, Schedule().quiet_end, Schedule().timezone) == (time(21), time(8), IST)


@pytest.mark.parametrize("schedule", [
    pytest.param({"offsets": (timedelta(0),)}, id="zero"),
    pytest.param({"offsets": (-2 * H,)}, id="negative"),
    pytest.param({"offsets": (20 * M,)}, id="under-30-minutes"),
    pytest.param({"offsets": (15 * D,)}, id="over-14-days"),
    pytest.param({"offsets": (2 * H, 2 * H)}, id="twice"),
    pytest.param({"offsets": (3 * D, 2 * D, 24 * H, 2 * H, H)}, id="five"),
    pytest.param({"offsets": (2 * H + timedelta(seconds=30),)}, id="seconds"),
    pytest.param({"offsets": (7200,)}, id="not-a-timedelta"),
    pytest.param({"quiet_start": time(21, 0, 30)}, id="quiet-seconds"),
    pytest.param({"quiet_end": time(8, tzinfo=UTC)}, id="quiet-aware"),
    pytest.param({"quiet_end": "08:00"}, id="quiet-text"),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, id="unknown-zone"),
    pytest.param({"timezone": "../etc/passwd"}, id="bad-zone"),
])
def test_invalid_schedules(schedule):
    with pytest.raises(ValueError):
        Schedule(**schedule)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(Schedule(), datetime(2026, 11, 24, 10, 30), at("2026-11-20 12:00"))


@pytest.mark.parametrize(("offset", "kind"), [
    (24 * H, "24h"), (2 * H, "2h"), (90 * M, "90m"), (30 * M, "30m"), (36 * H, "36h"),
    (2 * D, "2d"), (3 * D, "3d"), (14 * D, "14d"), (25 * H, "25h"),
])
def test_kind_of(offset, kind):
    assert kind_of(offset) == kind


@pytest.mark.parametrize("offset", [timedelta(0), -H, timedelta(seconds=90)])
def test_kind_of_refuses_what_is_not_whole_minutes(offset):
    with pytest.raises(ValueError):
        kind_of(offset)


# is_stale: a reminder due 10:00 for a 12:00 visit, with the default 15 minutes' grace.
STALE = [
    pytest.param("2026-11-24 09:00", "2026-11-24 12:00", {}, False, id="early"),
    pytest.param("2026-11-24 10:00", "2026-11-24 12:00", {}, False, id="on-time"),
    pytest.param("2026-11-24 10:15", "2026-11-24 12:00", {}, False, id="end-of-grace"),
    pytest.param("2026-11-24 10:16", "2026-11-24 12:00", {}, True, id="past-grace"),
    pytest.param("2026-11-24 10:05", "2026-11-24 10:05", {}, True, id="appointment-started"),
    pytest.param("2026-11-24 10:16", "2026-11-24 12:00", {"grace": 30 * M}, False, id="longer-grace"),
    pytest.param("2026-11-24 10:01", "2026-11-24 12:00", {"grace": timedelta(0)}, True, id="no-grace"),
]


@pytest.mark.parametrize(("now", "start", "grace", "stale"), STALE)
def test_is_stale(now, start, grace, stale):
    assert is_stale(at("2026-11-24 10:00"), at(start), at(now), **grace) is stale


def test_is_stale_compares_instants_across_zones():
    assert not is_stale(at("2026-11-24 10:00"), at("2026-11-24 12:00"), at("2026-11-24 08:40", DUBAI))
    assert is_stale(at("2026-11-24 10:00"), at("2026-11-24 12:00"), at("2026-11-24 08:46", DUBAI))
