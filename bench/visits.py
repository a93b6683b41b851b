"""Appointments as the desk and the booking code write them: on each doctor's slot grid (the app's own
availability), a few walk-ins with queue tokens, an occasional overbooking, and a life story by now
(past: completed, no-show or cancelled; today: done, in the room, waiting or still to come; ahead:
booked or confirmed, a few cancelled), with the appointment's history in `appointment_event`.
"""

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from app.scheduling.models import Status
from app.security.fields import Keyring
from bench import clinics, names
from bench.clinics import ClinicPlan, uuid7
from bench.patients import patient_id, registered_by
from bench.plan import Plan

FULL_HISTORY_DAYS = 30  # appointments this recent carry every status change in appointment_event
REASONS = ("fever and cough", "BP review", "diabetes follow-up", "back pain", "skin rash", "vaccination due",
           "headache", "knee pain", "thyroid report review", "cold and sore throat", "antenatal check-up",
           "chest congestion", "acidity", "follow-up after lab tests")
CANCEL_REASONS = ("patient travelling", "feeling better", "will come next week", "family function", "doctor's advice")
OVERBOOK_REASONS = ("Severe pain, cannot wait", "Post-operative review", "Senior citizen, came from far")
COLUMNS = {
    "appointment": ("clinic_id", "id", "patient_id", "doctor_id", "type_id", "walk_in", "day", "starts_at", "ends_at",
                    "status", "token", "room", "reason_enc", "overbooked", "rescheduled_from", "arrived_at",
                    "started_at", "finished_at", "key_version", "version", "created_at", "created_by", "updated_at",
                    "updated_by"),
    "appointment_event": ("clinic_id", "id", "appointment_id", "action", "from_status", "to_status", "detail_enc",
                          "key_version", "at", "by"),
}


@dataclass
class Visit:
    """One appointment being made up: its times, its story (status changes) and who it is for."""

    doctor_id: uuid.UUID
    starts: datetime | None
    ends: datetime | None
    minutes: int
    room: str | None
    created: datetime
    changes: list[tuple[str, str, str, datetime, str | None]] = field(default_factory=list)
    overbooked: bool = False
    arrived: datetime | None = None
    token: int | None = None

    @property
    def status(self) -> str:
        return self.changes[-1][2] if self.changes else Status.BOOKED.value

    def change(self, action: str, to: Status, at: datetime, detail: str | None = None) -> None:
        self.changes.append((action, self.status, to.value, at, detail))
        if action in ("check_in", "walked_in"):
            self.arrived = at


def _minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=rng.uniform(low, high))


def _scheduled(rng: random.Random, now: datetime, today: date, doctor_id, starts, ends, room) -> Visit:
    """A booked visit and what became of it by `now`."""
    lead = timedelta(minutes=max(30.0, min(rng.expovariate(1 / 5760), 60 * 1440)))
    created = min(starts - lead, now - _minutes(rng, 1, 600))
    visit = Visit(doctor_id, starts, ends, int((ends - starts).total_seconds() // 60), room, created)
    story: list[tuple[str, Status, datetime, str | None]] = []
    if ends <= now:  # over: most came, some did not, some cancelled beforehand
        roll = rng.random()
        if roll < 0.09:
            story.append(("no_show", Status.NO_SHOW, min(now, ends + _minutes(rng, 30, 240)), None))
        elif roll < 0.18:
            at = created + (starts - created) * rng.uniform(0.3, 0.99)
            story.append(("cancel", Status.CANCELLED, at, rng.choice(CANCEL_REASONS)))
        else:
            arrived = starts - _minutes(rng, 5, 30)
            started = max(arrived + timedelta(minutes=1), starts + _minutes(rng, -5, 25))
            finished = started + (ends - starts) * rng.uniform(0.6, 1.3)
            story += [("check_in", Status.ARRIVED, arrived, None), ("start", Status.IN_CONSULTATION, started, None)]
            if finished <= now:
                story.append(("complete", Status.COMPLETED, finished, None))
    elif starts <= now:  # now, at the doctor's or still waiting
        story.append(("check_in", Status.ARRIVED, max(created, starts - _minutes(rng, 5, 20)), None))
        if rng.random() < 0.7:
            story.append(("start", Status.IN_CONSULTATION, max(starts, story[0][2]), None))
    elif starts.astimezone(ZoneInfo(clinics.TZ)).date() == today and starts <= now + timedelta(minutes=40):
        if rng.random() < 0.5:
            story.append(("check_in", Status.ARRIVED, max(created, now - _minutes(rng, 0, 20)), None))
    elif rng.random() < 0.05:
        story.append(("cancel", Status.CANCELLED, created + (now - created) * rng.uniform(0.1, 1),
                      rng.choice(CANCEL_REASONS)))
    next_at = story[0][2] if story else min(starts, now)
    if rng.random() < 0.45 and next_at > created:  # confirmed by phone or message before whatever came next
        visit.change("confirm", Status.CONFIRMED, created + (next_at - created) * rng.uniform(0.1, 0.9))
    for action, to, at, detail in story:
        visit.change(action, to, at, detail)
    return visit


def _walk_in(rng: random.Random, now: datetime, doctor_id, first_start: datetime, last_end: datetime,
             minutes: int) -> Visit | None:
    """A patient without an appointment who joined the doctor's queue (only on days already begun)."""
    latest = min(now, last_end)
    if latest <= first_start:
        return None
    arrived = first_start + (latest - first_start) * rng.random()
    visit = Visit(doctor_id, None, None, minutes, None, arrived)
    visit.change("walked_in", Status.ARRIVED, arrived)
    started = arrived + _minutes(rng, 5, 60)
    if started <= now:
        visit.change("start", Status.IN_CONSULTATION, started)
        finished = started + _minutes(rng, 5, 20)
        if finished <= now:
            visit.change("complete", Status.COMPLETED, finished)
    return visit


def _doctor_day(rng: random.Random, plan: Plan, cp: ClinicPlan, di: int, day: date, n: int) -> list[Visit]:
    """`n` visits of one doctor on one day: on the slot grid, each slot at most once (an occasional
    overbooking aside), a few walk-ins on days that have begun."""
    doctor = cp.doctors[di]
    cells = cp.doctor_day(doctor, day).slots()
    minutes = cells[0].ends - cells[0].starts
    slot_minutes = int(minutes.total_seconds() // 60)
    visits = []
    walk_ins = sum(rng.random() < 0.06 for _ in range(n)) if day <= plan.anchor else 0
    for _ in range(walk_ins):
        visit = _walk_in(rng, plan.now, doctor.id, cells[0].starts, cells[-1].ends, slot_minutes)
        if visit:
            visits.append(visit)
    wanted = n - len(visits)
    overbook = wanted >= 2 and rng.random() < 0.01
    sizes = [2 if rng.random() < 0.15 else 1 for _ in range(wanted - overbook)]
    while sum(sizes) > len(cells):
        sizes[sizes.index(2)] = 1
    order = ["visit"] * len(sizes) + ["gap"] * (len(cells) - sum(sizes))
    rng.shuffle(order)
    at = 0
    for item in order:
        if item == "gap":
            at += 1
            continue
        size = sizes.pop()
        if size == 2 and (at + 1 >= len(cells) or cells[at].ends != cells[at + 1].starts):
            size = 1
        visits.append(_scheduled(rng, plan.now, plan.anchor, doctor.id, cells[at].starts, cells[at + size - 1].ends,
                                 cells[at].room))
        at += size
    booked = [v for v in visits if v.starts]
    if overbook and booked:
        twin = rng.choice(booked)
        visit = _scheduled(rng, plan.now, plan.anchor, doctor.id, twin.starts, twin.ends, twin.room)
        visit.overbooked = True
        visits.append(visit)
    return visits


class Made(NamedTuple):
    """An appointment as made, for what follows from it (bench/records.py)."""

    id: uuid.UUID
    patient: int  # the patient's number in the clinic
    patient_id: uuid.UUID
    doctor_id: uuid.UUID
    type_id: uuid.UUID | None
    day: date
    starts: datetime | None
    status: str
    started: datetime | None
    finished: datetime | None
    created: datetime
    desk: uuid.UUID


def make(plan: Plan, cp: ClinicPlan, ring: Keyring, days: list[date],
         made: list[Made] | None = None) -> dict[str, list[tuple]]:
    """A clinic's appointments and their events on `days` (queue tokens are per clinic and day); each one
    also into `made` when given."""
    rows = {"appointment": [], "appointment_event": []}
    for day in days:
        rng = names.seeded(plan.size.seed, "day", cp.index, day)
        visits = [v for di, n in enumerate(plan.counts.get((cp.index, day), ())) if n
                  for v in _doctor_day(rng, plan, cp, di, day, n)]
        for number, visit in enumerate(sorted((v for v in visits if v.arrived), key=lambda v: v.arrived), 1):
            visit.token = number
        full = day >= plan.anchor - timedelta(days=FULL_HISTORY_DAYS)
        for visit in visits:
            one = _visit_rows(rows, plan, cp, ring, rng, day, visit, full)
            if made is not None:
                made.append(one)
    return rows


def _visit_rows(rows: dict, plan: Plan, cp: ClinicPlan, ring: Keyring, rng: random.Random, day: date, visit: Visit,
                full: bool) -> Made:
    n = rng.randint(1, registered_by(plan, cp, int(visit.created.timestamp() * 1000)))
    pid = patient_id(plan, cp, n)
    desk = rng.choice(cp.desks)
    aid = uuid7(int(visit.created.timestamp() * 1000), rng)
    types = cp.types.get(visit.minutes)
    type_id = rng.choice(types) if types and (visit.starts or rng.random() < 0.7) else None
    moments = {action: at for action, _, _, at, _ in visit.changes}
    updated = visit.changes[-1][3] if visit.changes else visit.created
    version = 1 + sum(action != "walked_in" for action, *_ in visit.changes)
    reason = rng.choice(REASONS) if rng.random() < 0.7 else None
    rows["appointment"].append((
        cp.id, aid, pid, visit.doctor_id, type_id, visit.starts is None, day, visit.starts, visit.ends, visit.status,
        visit.token, visit.room, ring.seal("appointment", "reason", aid, reason), visit.overbooked, None,
        visit.arrived, moments.get("start"), moments.get("complete"), ring.active.version, version, visit.created,
        desk, updated, desk))
    first = ("walked_in", None, Status.ARRIVED.value, visit.created, None) if visit.starts is None else \
        ("booked", None, Status.BOOKED.value, visit.created, None)
    story = [first]
    if full:
        if visit.overbooked:
            story.append(("overbooked", "booked", "booked", visit.created, rng.choice(OVERBOOK_REASONS)))
        story += [c for c in visit.changes if c[0] != "walked_in"]
    for action, before, after, at, detail in story:
        event_id = uuid7(int(at.timestamp() * 1000), rng)
        rows["appointment_event"].append((cp.id, event_id, aid, action, before, after,
                                          ring.seal("appointment_event", "detail", event_id, detail),
                                          ring.active.version, at, desk))
    return Made(aid, n, pid, visit.doctor_id, type_id, day, visit.starts, visit.status, moments.get("start"),
                moments.get("complete"), visit.created, desk)
