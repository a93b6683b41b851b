"""Scheduling test set-up: a doctor working every day 09:00-13:00 in 15-minute slots, a clinic open
08:00-20:00 every day, and a 15-minute consultation type. Days are chosen clear of public holidays."""

import re
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.auth.policy import Role
from app.db import new_id
from app.scheduling.slots import holiday_name


@dataclass
class Setup:
    doctor_id: uuid.UUID
    type_id: uuid.UUID
    long_type_id: uuid.UUID


def working_day(after: int = 1, state_code: str = "29", tz: str = "Asia/Kolkata") -> date:
    """The `after`-th day after today (clinic time) that is not a public holiday: working_day(1) and
    working_day(2) are two different days even when a holiday falls between (one doctor's 09:00 on each)."""
    day, left = datetime.now(ZoneInfo(tz)).date(), after
    while left:
        day += timedelta(days=1)
        left -= not holiday_name(state_code, day)
    return day


def slot(day: date, hhmm: str) -> str:
    return f"{day.isoformat()}T{hhmm}"


def open_clinic(sql, clinic_id, opens="08:00", closes="20:00"):
    for weekday in range(7):
        sql("INSERT INTO clinic_hours (clinic_id, weekday, opens, closes) VALUES (:c, :w, :o, :e)",
            c=clinic_id, w=weekday, o=opens, e=closes)


def add_sessions(sql, clinic_id, doctor_id, starts="09:00", ends="13:00", minutes=15, room="Room 1"):
    for weekday in range(7):
        sql("INSERT INTO doctor_session (clinic_id, id, doctor_id, weekday, starts, ends, slot_minutes, room, "
            "updated_at) VALUES (:c, :i, :d, :w, :s, :e, :m, :r, now())",
            c=clinic_id, i=new_id(), d=doctor_id, w=weekday, s=starts, e=ends, m=minutes, r=room)


def add_type(sql, clinic_id, name="Consultation", minutes=15, colour="teal") -> uuid.UUID:
    type_id = new_id()
    sql("INSERT INTO appointment_type (clinic_id, id, name, duration_minutes, colour, active, created_at) "
        "VALUES (:c, :i, :n, :m, :k, true, now())", c=clinic_id, i=type_id, n=name, m=minutes, k=colour)
    return type_id


@pytest.fixture
def doctor(factory, clinic):
    return factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")


@pytest.fixture
def setup(sql, clinic, doctor) -> Setup:
    open_clinic(sql, clinic.id)
    add_sessions(sql, clinic.id, doctor.id)
    return Setup(doctor.id, add_type(sql, clinic.id), add_type(sql, clinic.id, "Procedure", 30, "purple"))


def book_data(setup: Setup, start: str, patient: str, **extra) -> dict:
    data = {"doctor_id": str(setup.doctor_id), "start": start, "patient_id": patient,
            "type_id": str(setup.type_id), "reason": "fever", "intent": "book"}
    data.update(extra)
    return data


def book(browser, setup: Setup, start: str, patient: str, **extra):
    """Book over HTTP as the booking form does (without htmx)."""
    page = f"/schedule/book?doctor_id={setup.doctor_id}&start={start}"
    return browser.post("/schedule/book", book_data(setup, start, patient, **extra), page=page)


def appointment_id(location: str) -> str:
    return re.search(r"/appointments/([0-9a-f-]{36})", location).group(1)


HTMX = {"HX-Request": "true"}


def today(tz: str = "Asia/Kolkata") -> date:
    return datetime.now(ZoneInfo(tz)).date()


def insert_appointment(sql, clinic_id, doctor_id, patient_id, *, day: date, starts_at: datetime | None = None,
                       minutes: int = 15, status: str = "booked", token: int | None = None,
                       type_id=None) -> uuid.UUID:
    """An appointment row written directly (for states and days the booking form cannot reach, such as
    earlier today). Without `starts_at` it is a walk-in."""
    appointment_id = new_id()
    ends_at = starts_at + timedelta(minutes=minutes) if starts_at else None
    sql("INSERT INTO appointment (clinic_id, id, patient_id, doctor_id, type_id, walk_in, day, starts_at, ends_at, "
        "status, token, overbooked, key_version, version, created_at, updated_at, arrived_at) "
        "VALUES (:c, :i, :p, :d, :t, :w, :day, :s, :e, :st, :tok, false, 1, 1, now(), now(), "
        ":arrived)", c=clinic_id, i=appointment_id, p=patient_id, d=doctor_id, t=type_id, w=starts_at is None,
        day=day, s=starts_at, e=ends_at, st=status, tok=token,
        arrived=datetime.now(ZoneInfo("UTC")) if status in ("arrived", "in_consultation", "completed") else None)
    return appointment_id


def high_water(sql) -> int:
    return sql("SELECT coalesce(max(seq), 0) FROM audit_event")[0][0]


def audit_since(sql, mark: int) -> list[tuple]:
    """(action, outcome, patient_id, patient_ids, reason, flagged) of the audit records written after `mark`."""
    return sql("SELECT action, outcome, patient_id::text, patient_ids::text[], reason, flagged FROM audit_event "
               "WHERE seq > :s ORDER BY seq", s=mark)


@pytest.fixture
def sign_in(factory, clinic, new_browser):
    """A new browser signed in as a new staff member with `role` (in `clinic`, by default the clinic)."""
    def make(role: Role, at=None, name: str = "Staff Member"):
        browser = new_browser()
        browser.sign_in(factory.person(at or clinic, role, name=name))
        return browser
    return make


def at_once(calls: list) -> list:
    """Run the calls in threads released together by a barrier; their results in order (errors re-raised)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 (handed back to the test's thread)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.fixture
def desks(factory, clinic, new_browser):
    """`n` browsers, each signed in as its own receptionist (separate sessions and connections)."""
    def make(n: int) -> list:
        browsers = []
        for i in range(n):
            browser = new_browser()
            browser.sign_in(factory.person(clinic, Role.RECEPTION, name=f"Desk {i + 1}"))
            browser.get("/schedule/book")  # a CSRF token from a page that shows no patient
            browsers.append(browser)
        return browsers
    return make
