"""When a clinic is open and when each doctor can be booked: pure functions, no database.

A day's availability for a doctor is: the weekly sessions for that weekday, clipped to the clinic's
opening hours (none on a closed day: a weekday without hours, a closure, or a public holiday of the
clinic's state that is not overridden), minus leave, plus extra sessions (an extra session is an
explicit decision, so it counts even on a day the clinic is otherwise closed). Times are wall-clock
times in the clinic's time zone; the results are aware datetimes in that zone.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from app.clinics.states import BY_CODE


@lru_cache(maxsize=256)
def _holiday_calendar(state_code: str | None, year: int) -> dict[date, str]:
    state = BY_CODE.get(state_code or "")
    calendar = holidays.India(subdiv=state.holiday_subdivision if state else None, years=year)
    return dict(calendar.items())


def public_holidays(state_code: str | None, year: int) -> dict[date, str]:
    """The public holidays of the state (national ones for a territory the package does not know)."""
    return _holiday_calendar(state_code, year)


def holiday_name(state_code: str | None, day: date) -> str | None:
    return _holiday_calendar(state_code, day.year).get(day)


@dataclass(frozen=True)
class Override:
    """A clinic's decision about one day: closed (with a note), or open despite a holiday."""

    is_open: bool
    note: str


@dataclass(frozen=True)
class ClinicDayStatus:
    day: date
    hours: tuple[time, time] | None  # None: closed
    holiday: str | None = None
    note: str | None = None

    @property
    def is_open(self) -> bool:
        return self.hours is not None


def clinic_day(day: date, weekly_hours: dict[int, tuple[time, time]], override: Override | None,
               state_code: str | None) -> ClinicDayStatus:
    """Whether and when the clinic is open on `day`."""
    hours = weekly_hours.get(day.weekday())
    holiday = holiday_name(state_code, day)
    if override is not None and not override.is_open:
        return ClinicDayStatus(day, None, holiday, override.note)
    if holiday and override is None:
        return ClinicDayStatus(day, None, holiday, None)
    return ClinicDayStatus(day, hours, holiday, override.note if override else None)


@dataclass(frozen=True)
class WeeklySession:
    weekday: int
    starts: time
    ends: time
    slot_minutes: int
    room: str | None = None


@dataclass(frozen=True)
class Leave:
    first_day: date
    last_day: date
    starts: time | None = None  # None: the whole day
    ends: time | None = None

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class Block:
    """A stretch of a day in which a doctor can be booked, on a grid of `slot_minutes` from `grid_start`."""

    starts: datetime
    ends: datetime
    slot_minutes: int
    room: str | None
    grid_start: datetime
    extra: bool = False


@dataclass(frozen=True)
class Slot:
    starts: datetime
    ends: datetime
    room: str | None


@dataclass
class DoctorDay:
    blocks: list[Block] = field(default_factory=list)

    def slots(self) -> list[Slot]:
        return [slot for block in self.blocks for slot in block_slots(block)]

    def contains(self, starts: datetime, ends: datetime) -> bool:
        """Whether the whole time lies inside the doctor's availability."""
        return any(b.starts <= starts and ends <= b.ends for b in self.blocks)


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz)


def _subtract(pieces: list[tuple[datetime, datetime]], cut: tuple[datetime, datetime]):
    """The parts of `pieces` outside `cut`."""
    kept = []
    for start, end in pieces:
        if cut[1] <= start or end <= cut[0]:
            kept.append((start, end))
            continue
        if start < cut[0]:
            kept.append((start, cut[0]))
        if cut[1] < end:
            kept.append((cut[1], end))
    return kept


def doctor_day(day: date, tz_name: str, clinic: ClinicDayStatus, sessions: list[WeeklySession],
               leaves: list[Leave], extras: list[WeeklySession]) -> DoctorDay:
    """A doctor's bookable blocks on `day`. `extras` are that day's extra sessions (weekday ignored)."""
    tz = ZoneInfo(tz_name)
    blocks = []
    whole_day_off = any(leave.covers(day) and leave.starts is None for leave in leaves)
    if clinic.is_open and not whole_day_off:
        opens, closes = (_at(day, t, tz) for t in clinic.hours)
        cuts = [(_at(day, leave.starts, tz), _at(day, leave.ends, tz)) for leave in leaves
                if leave.covers(day) and leave.starts is not None]
        for session in sorted((s for s in sessions if s.weekday == day.weekday()), key=lambda s: s.starts):
            grid = _at(day, session.starts, tz)
            pieces = [(max(grid, opens), min(_at(day, session.ends, tz), closes))]
            for cut in cuts:
                pieces = _subtract(pieces, cut)
            blocks += [Block(a, b, session.slot_minutes, session.room, grid) for a, b in pieces if b > a]
    for extra in extras:
        start = _at(day, extra.starts, tz)
        blocks.append(Block(start, _at(day, extra.ends, tz), extra.slot_minutes, extra.room, start, extra=True))
    return DoctorDay(sorted(blocks, key=lambda b: b.starts))


def block_slots(block: Block) -> list[Slot]:
    """The block's slots: the session's grid, keeping the slots that fit wholly inside the block."""
    step = timedelta(minutes=block.slot_minutes)
    # Walk the grid in UTC so a daylight-saving change inside a session does not bend it.
    moment = block.grid_start.astimezone(ZoneInfo("UTC"))
    start, end = block.starts.astimezone(ZoneInfo("UTC")), block.ends.astimezone(ZoneInfo("UTC"))
    tz = block.starts.tzinfo
    slots = []
    while moment + step <= end:
        if moment >= start:
            slots.append(Slot(moment.astimezone(tz), (moment + step).astimezone(tz), block.room))
        moment += step
    return slots
