"""What the generator makes, before it makes it: the size, the days, and how many appointments each doctor
has each day (exactly the asked total, on the doctors' real slot grids) and how many patients each
clinic has. Plain data, shared with the worker processes."""

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from app.scheduling.slots import holiday_name
from bench.clinics import ClinicPlan
from bench.names import seeded

SEED = 2026
MAX_HISTORY_DAYS = 1035  # with the 60 days ahead: about three years
FUTURE_DAYS = 60
USUAL_PER_DAY = 2_000  # appointments a working day in all the clinics at the full size (about three years)


@dataclass(frozen=True)
class Size:
    patients: int = 200_000
    appointments: int = 2_000_000
    day_appointments: int = 400  # the big clinic's 20 doctors on the benchmark day
    seed: int = SEED


SMALL = Size(2_000, 20_000)


@dataclass
class Plan:
    """What to generate, shared with the worker processes (they inherit it when forked)."""

    size: Size
    now: datetime
    anchor: date  # today at the clinics
    first: date
    last: date
    bench_day: date
    clinics: list[ClinicPlan]
    counts: dict[tuple[int, date], list[int]] = field(default_factory=dict)  # (clinic, day) -> per doctor


# --- Sizes and days -------------------------------------------------------------------------------------

def bench_day_after(day: date, state_code: str) -> date:
    """The first working day (Monday to Saturday, not a public holiday) from `day`."""
    while day.weekday() == 6 or holiday_name(state_code, day):
        day += timedelta(days=1)
    return day


def _future_share(days_ahead: int) -> float:
    """How full a day is, `days_ahead` from today: desks book most visits within a fortnight."""
    return 1.0 if days_ahead <= 0 else 0.9 * math.exp(-days_ahead / 14)


def history_days(size: Size) -> int:
    """How many days back the appointments go: as many as the clinics' usual load needs for the asked
    number (a busy week at the least, about three years with the horizon at the most)."""
    per_day = USUAL_PER_DAY * 6 / 7
    ahead = per_day * sum(_future_share(d) for d in range(FUTURE_DAYS + 1))
    return max(7, min(MAX_HISTORY_DAYS, math.ceil((size.appointments - ahead) / per_day)))


def _capacity(plan: Plan, cp: ClinicPlan, di: int, day: date, cache: dict) -> int:
    doctor = cp.doctors[di]
    leaves = tuple(leave for leave in doctor.leaves if leave.covers(day))
    key = (cp.index, di, day.weekday(), day in cp.closures, bool(holiday_name(cp.spec.place.state_code, day)), leaves)
    if key not in cache:
        cache[key] = len(cp.doctor_day(doctor, day).slots())
    return cache[key]


def plan_counts(plan: Plan) -> None:
    """How many appointments each doctor has each day: exactly `size.appointments` in all, the big clinic's
    doctors exactly `size.day_appointments` on the benchmark day, the rest spread by each clinic's load and
    how far ahead the day is, never more than the doctor's slots."""
    rng = seeded(plan.size.seed, "counts")
    cache: dict = {}
    fixed = min(plan.size.day_appointments, plan.size.appointments)
    entries = []  # (clinic, day, doctor, weight, capacity)
    day = plan.first
    while day <= plan.last:
        for cp in plan.clinics:
            for di in range(len(cp.doctors)):
                cap = _capacity(plan, cp, di, day, cache)
                if cap and not (cp.index == 0 and day == plan.bench_day):
                    share = _future_share((day - plan.anchor).days) * rng.uniform(0.8, 1.2)
                    entries.append((cp.index, day, di, cp.spec.load * share, cap))
        day += timedelta(days=1)
    big = plan.clinics[0]
    caps = [_capacity(plan, big, di, plan.bench_day, cache) for di in range(len(big.doctors))]
    _spread(plan, [(0, plan.bench_day, di, rng.uniform(0.75, 1.25), cap) for di, cap in enumerate(caps)], fixed, rng)
    _spread(plan, entries, plan.size.appointments - fixed, rng)


def _spread(plan: Plan, entries: list[tuple], total: int, rng: random.Random) -> None:
    """Share `total` out over the entries in proportion to their weights, each at most ~92% of its capacity;
    the rounding carries over from one entry to the next, so the sum is exact."""
    expected = _scaled([w for *_, w, _ in entries], [cap * 0.92 for *_, cap in entries], total)
    carry = rng.random()
    acc = carry
    for i, ((ci, day, di, _, _), e) in enumerate(zip(entries, expected, strict=True)):
        before, acc = acc, carry + total if i == len(entries) - 1 else acc + e  # the last one lands exactly
        n = math.floor(acc) - math.floor(before)
        if n:
            plan.counts.setdefault((ci, day), [0] * len(plan.clinics[ci].doctors))[di] += n


def _scaled(weights: list[float], limits: list[float], total: int) -> list[float]:
    if total > sum(limits):
        raise SystemExit(f"{total} appointments do not fit the bench clinics' slots (at most {int(sum(limits))})")
    scale, values = total / sum(weights), []
    for _ in range(20):
        values = [min(w * scale, limit) for w, limit in zip(weights, limits, strict=True)]
        missing = total - sum(values)
        if missing < 1e-6:
            break
        free = sum(w for w, v, limit in zip(weights, values, limits, strict=True) if v < limit)
        scale += missing / free
    return values


def share_patients(plan: Plan) -> None:
    """Patients per clinic in proportion to its appointments (every clinic gets some)."""
    per_clinic = [0] * len(plan.clinics)
    for (ci, _), counts in plan.counts.items():
        per_clinic[ci] += sum(counts)
    total, wanted = sum(per_clinic) or 1, plan.size.patients
    floor = min(20, wanted // len(plan.clinics))
    shares = [floor + (wanted - floor * len(per_clinic)) * n / total for n in per_clinic]
    whole = [int(s) for s in shares]
    for i in sorted(range(len(shares)), key=lambda i: whole[i] - shares[i])[:wanted - sum(whole)]:
        whole[i] += 1
    for cp, n in zip(plan.clinics, whole, strict=True):
        cp.patients = n


