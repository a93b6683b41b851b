"""When reminders go out: a clinic's schedule applied to one appointment.

Pure functions, no clock: the caller passes `now`. Every datetime in and out is timezone-aware, and
what comes out is UTC. Quiet hours are wall-clock times in the clinic's zone (a zoneinfo name), so a
clinic in Dubai or New York keeps its own evenings, and zoneinfo handles the days clocks change.
Research: shared/reference/reminders.md §6 (default schedule) and §7 (cases 3-7); every rule below
is pinned in tests/messaging/test_plan.py.

The schedule
- Offsets are elapsed time before the appointment (default 24 h and 2 h): whole minutes, from
  MIN_LEAD (30 minutes) to 14 days, distinct, at most 4, kept largest first. No offsets at all is a
  valid schedule that plans nothing. Elapsed, not wall-clock: on a day clocks change "2 h before" is
  still two real hours, so "24 h before" a 10:00 visit falls at 09:00 or 11:00 the day before.
- Quiet hours run from quiet_start up to quiet_end in local time, default 21:00-08:00: the start
  minute is quiet, the end minute is not. A window may wrap midnight (21:00-08:00) or not (13:00-14:00,
  lunch); equal start and end means no quiet hours.
- A reminder's kind (kind_of) is named from its offset alone: "3d", "24h", "90m". Outbox keys and
  job ids include it, so an offset's name never changes.

Planning one appointment (plan), offset by offset
1. due = start - offset. If that has passed at `now`, the reminder is skipped, never sent late:
   booked 3 h ahead gets only the 2 h reminder, booked 1 h ahead none. Due exactly at `now` is kept.
2. Inside quiet hours it moves EARLIER, to the last minute before that window began (20:59 for a
   21:00 start). Earlier, not later, because a reminder is there to reach the patient in time to act
   (come, cancel and free the slot, or reschedule), and moving it later only takes that time away:
   2 h before an 08:15 visit is 06:15, and 08:00 would leave 15 minutes; before an 08:00 visit it
   would land on the start. Moving earlier always keeps it before the visit, with more notice.
3. If that earlier minute has already passed at `now` (booked late in the evening for the next
   morning), it moves LATER instead, to the end of the window, but only if that is at least MIN_LEAD
   before the appointment: less is too late to act on, and the front desk has just spoken to the
   patient anyway. Otherwise the reminder is skipped.
4. Step 1 looks at the unmoved time on purpose: booked at 07:45 for a 09:00 visit, the 2 h reminder
   (07:00) has passed and is not revived at 08:00 just because 07:00 was quiet.
5. A reminder that lands on or before one with a larger offset is dropped (12 h and 11 h before a
   09:30 visit both move to 20:59): the patient gets one message, under the kind planned first.
The plan is in due order.

`now` is the moment of booking or rescheduling: plan decides which reminders exist. At send time
is_stale decides whether one is still worth sending, since a retry or a sweep may come too late.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIN_LEAD = timedelta(minutes=30)
MAX_OFFSET = timedelta(days=14)
MAX_REMINDERS = 4
_MINUTE = timedelta(minutes=1)
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class Schedule:
    """A clinic's reminder offsets, quiet hours (local wall-clock) and time zone."""

    offsets: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    timezone: str = "Asia/Kolkata"

    def __post_init__(self) -> None:
        offsets = tuple(self.offsets)
        _check_offsets(offsets)
        object.__setattr__(self, "offsets", tuple(sorted(offsets, reverse=True)))
        for edge in (self.quiet_start, self.quiet_end):
            if not isinstance(edge, time) or edge.tzinfo or edge.second or edge.microsecond:
                raise ValueError(f"Quiet hours are local times in whole minutes, not {edge!r}.")
        _zone(self.timezone)  # an unknown zone fails when the schedule is saved, not at send time

    @property
    def zone(self) -> ZoneInfo:
        """The clinic's time zone."""
        return _zone(self.timezone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise ValueError(f"{name!r} is not a known time zone.") from error


def _check_offsets(offsets: tuple[timedelta, ...]) -> None:
    if len(offsets) > MAX_REMINDERS:
        raise ValueError(f"At most {MAX_REMINDERS} reminders per appointment, not {len(offsets)}.")
    for offset in offsets:
        if not isinstance(offset, timedelta) or offset % _MINUTE or not MIN_LEAD <= offset <= MAX_OFFSET:
            raise ValueError(f"A reminder goes 30 minutes to 14 days ahead, in whole minutes, not {offset!r}.")
    if len(set(offsets)) != len(offsets):
        raise ValueError("Each reminder needs its own offset.")


def kind_of(offset: timedelta) -> str:
    """The stable name of the reminder sent `offset` ahead: "3d" from two whole days up, else "24h" or "90m"."""
    minutes, rest = divmod(offset, _MINUTE)
    if rest or minutes <= 0:
        raise ValueError(f"A reminder offset is a positive number of whole minutes, not {offset!r}.")
    if minutes >= 2 * _DAY_MINUTES and minutes % _DAY_MINUTES == 0:
        return f"{minutes // _DAY_MINUTES}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


@dataclass(frozen=True)
class Planned:
    """One reminder to send: its kind, when (UTC) and the offset it came from."""

    kind: str
    due_at: datetime
    offset: timedelta


def plan(schedule: Schedule, appointment_start: datetime, now: datetime) -> list[Planned]:
    """The reminders to send for an appointment booked at `now`, in due order (rules in the module docstring)."""
    start, now = _utc(appointment_start), _utc(now)
    planned: list[Planned] = []
    for offset in schedule.offsets:  # largest first, so the plan comes out in due order
        due = _due(schedule, start - offset, start, now)
        if due is not None and (not planned or due > planned[-1].due_at):
            planned.append(Planned(kind_of(offset), due, offset))
    return planned


def is_stale(
    due_at: datetime, appointment_start: datetime, now: datetime, grace: timedelta = timedelta(minutes=15)
) -> bool:
    """True when a reminder is too late to send: `grace` past its moment, or the appointment has started."""
    now = _utc(now)
    return now > _utc(due_at) + grace or now >= _utc(appointment_start)


def _due(schedule: Schedule, due: datetime, start: datetime, now: datetime) -> datetime | None:
    if due < now:
        return None
    window = _quiet_window(schedule, due)
    if window is None:
        return due
    began, ends = window
    if began - _MINUTE >= now:
        return began - _MINUTE
    return ends if ends <= start - MIN_LEAD else None


def quiet_until(schedule: Schedule, moment: datetime) -> datetime | None:
    """When the quiet hours `moment` falls in end (UTC), or None when it is not in quiet hours."""
    window = _quiet_window(schedule, _utc(moment))
    return window[1] if window else None


def _quiet_window(schedule: Schedule, moment: datetime) -> tuple[datetime, datetime] | None:
    """The quiet window (began, ends) in UTC that `moment` falls in, if any."""
    quiet_start, quiet_end, zone = schedule.quiet_start, schedule.quiet_end, schedule.zone
    local = moment.astimezone(zone)
    clock, day = local.time(), local.date()
    if quiet_start < quiet_end:
        if not quiet_start <= clock < quiet_end:
            return None
        return _at(day, quiet_start, zone), _at(day, quiet_end, zone)
    if quiet_start == quiet_end or quiet_end <= clock < quiet_start:
        return None
    first = day if clock >= quiet_start else day - timedelta(days=1)  # a wrapping window began last evening
    return _at(first, quiet_start, zone), _at(first + timedelta(days=1), quiet_end, zone)


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"Reminder times must be timezone-aware, not {moment!r}.")
    return moment.astimezone(UTC)
