"""Scheduling test set-up: a doctor working every day 09:00-13:00 in 15-minute slots, a clinic open
08:00-20:00 every day, and a 15-minute consultation type. Days are chosen clear of public holidays."""

import re
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
    """The first day at least `after` days from today (clinic time) that is not a public holiday."""
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=after)
    while holiday_name(state_code, day):
        day += timedelta(days=1)
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
