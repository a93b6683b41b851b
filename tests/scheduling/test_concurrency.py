"""Many desks booking one doctor at one time: PostgreSQL's exclusion constraint lets exactly one
through, the others get a clear 409 with their input back, and nothing half-written survives."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.config import APP_DB_ROLE
from app.db import new_id
from app.scheduling.models import NO_OVERLAP_CONSTRAINT
from tests.conftest import patient_form, patient_id
from tests.scheduling.conftest import HTMX, at_once, book, book_data, insert_appointment, slot, today, working_day

TAKEN = "Someone else has just booked this doctor at this time"


@pytest.fixture
def patient(register) -> str:
    return patient_id(register(full_name="Sole Patient"))


def post_all(browsers: list, forms: list[dict]) -> list:
    return at_once([lambda b=b, f=f: b.post("/schedule/book", f) for b, f in zip(browsers, forms, strict=True)])


def counts(sql) -> tuple:
    return (sql("SELECT count(*) FROM appointment")[0][0],
            sql("SELECT count(*) FROM appointment_event WHERE action = 'booked'")[0][0],
            sql("SELECT count(*) FROM patient")[0][0])


def test_twelve_desks_booking_one_slot_at_once(desks, setup, register, sql):
    browsers = desks(12)
    patients = [patient_id(register(full_name=f"Meena Pillai{i}")) for i in range(12)]
    start = slot(working_day(), "09:30")
    forms = [book_data(setup, start, patients[i], reason=f"typed at desk {i}") for i in range(12)]
    responses = post_all(browsers, forms)
    assert sorted(r.status_code for r in responses) == [303] + [409] * 11
    winner = next(i for i, r in enumerate(responses) if r.status_code == 303)
    for i, response in enumerate(responses):
        if i == winner:
            continue
        html = response.get_data(as_text=True)
        assert TAKEN in html and f'value="typed at desk {i}"' in html and f"Meena Pillai{i}" in html
        assert 'name="overbook"' in html  # a receptionist may overbook instead
    assert counts(sql) == (1, 1, 12)
    assert sql("SELECT patient_id::text FROM appointment") == [(patients[winner],)]
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'appointment.book'")[0][0] == 1
    assert sql("SELECT by FROM appointment_event")[0][0] == sql("SELECT created_by FROM appointment")[0][0]


def new_patient(i: int) -> dict:
    form = patient_form(full_name=f"Walkup Person{i} Nair", dob=f"19{60 + i}-03-0{1 + i % 9}")
    return {**{f"new-{k}": v for k, v in form.items()}, "new_patient": "y"}


def test_losing_desks_that_registered_a_patient_inline_keep_no_patient(desks, setup, sql):
    browsers = desks(8)
    start = slot(working_day(), "10:00")
    forms = [book_data(setup, start, "", **new_patient(i)) for i in range(8)]
    responses = post_all(browsers, forms)
    assert sorted(r.status_code for r in responses) == [303] + [409] * 7
    winner = next(i for i, r in enumerate(responses) if r.status_code == 303)
    for i, response in enumerate(responses):
        if i != winner:
            html = response.get_data(as_text=True)
            assert TAKEN in html and f'value="Walkup Person{i} Nair"' in html  # their typed patient, to try again
            assert 'name="new_patient" type="checkbox" value="y"' in html
    assert counts(sql) == (1, 1, 1)
    assert sql("SELECT count(*) FROM patient_history")[0][0] == 1
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'patient.create'")[0][0] == 1
    page = browsers[winner].get(responses[winner].headers["Location"]).get_data(as_text=True)
    assert f"Walkup Person{winner} Nair" in page


def test_overlapping_but_different_times_are_refused_too(desks, setup, register, sql):
    """A 30-minute procedure at 09:00 and a 15-minute visit at 09:15, asked for at the same moment."""
    browsers = desks(8)
    day = working_day()
    patients = [patient_id(register(full_name=f"Patient {i}")) for i in range(2)]
    forms = [book_data(setup, slot(day, "09:00"), patients[0], type_id=str(setup.long_type_id)) if i % 2 else
             book_data(setup, slot(day, "09:15"), patients[1]) for i in range(8)]
    responses = post_all(browsers, forms)
    assert sorted(r.status_code for r in responses) == [303] + [409] * 7
    assert counts(sql)[:2] == (1, 1)


def test_after_a_procedure_the_next_visit_can_follow_on_at_once(desk, setup, register, sql):
    """Ranges are half-open: 09:00-09:30 and 09:30-09:45 touch but do not overlap."""
    day = working_day()
    first, second = (patient_id(register(full_name=n)) for n in ("Early Bird", "Next One"))
    assert book(desk, setup, slot(day, "09:00"), first, type_id=str(setup.long_type_id)).status_code == 303
    assert book(desk, setup, slot(day, "09:15"), second).status_code == 409
    assert book(desk, setup, slot(day, "09:30"), second).status_code == 303


def raw_row(clinic, setup, patient: str, starts: datetime, minutes: int, status: str = "booked",
            overbooked: bool = False) -> dict:
    return {"c": clinic.id, "i": new_id(), "p": patient, "d": setup.doctor_id, "day": starts.date(), "s": starts,
            "e": starts + timedelta(minutes=minutes), "st": status, "ob": overbooked}


RAW_INSERT = text(
    "INSERT INTO appointment (clinic_id, id, patient_id, doctor_id, walk_in, day, starts_at, ends_at, status, "
    "overbooked, key_version, version, created_at, updated_at) "
    "VALUES (:c, :i, :p, :d, false, :day, :s, :e, :st, :ob, 1, 1, now(), now())")


def test_the_constraint_itself_refuses_an_overlapping_insert_from_the_app_role(app, clinic, setup, patient):
    nine = datetime.combine(working_day(), time(9), ZoneInfo("Asia/Kolkata"))
    with app.extensions["db_engine"].connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == APP_DB_ROLE
        conn.execute(text("SELECT set_config('app.clinic_id', :c, true)"), {"c": str(clinic.id)})
        conn.execute(RAW_INSERT, raw_row(clinic, setup, patient, nine, 30))
        # Rows that do not hold their time stand outside the rule: a cancellation, an overbooking.
        conn.execute(RAW_INSERT, raw_row(clinic, setup, patient, nine, 15, status="cancelled"))
        conn.execute(RAW_INSERT, raw_row(clinic, setup, patient, nine, 15, overbooked=True))
        with conn.begin_nested():
            conn.execute(RAW_INSERT, raw_row(clinic, setup, patient, nine + timedelta(minutes=30), 15))
        with pytest.raises(IntegrityError) as refused, conn.begin_nested():
            conn.execute(RAW_INSERT, raw_row(clinic, setup, patient, nine + timedelta(minutes=15), 15))
        assert refused.value.orig.diag.constraint_name == NO_OVERLAP_CONSTRAINT
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(text("UPDATE appointment SET status = 'booked', overbooked = false WHERE status = "
                              "'cancelled'"))
        conn.rollback()


def test_two_desks_checking_in_one_patient_at_once_give_one_token(desks, setup, clinic, patient, sql):
    aid = insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(), type_id=setup.type_id,
                             starts_at=datetime.now(UTC) + timedelta(hours=1))
    browsers = desks(4)
    responses = at_once([lambda b=b: b.post(f"/schedule/appointments/{aid}/status", {"action": "check_in"},
                                            headers=HTMX) for b in browsers])
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
    refused = [r.get_data(as_text=True) for r in responses if r.status_code == 409]
    assert all("This patient has already checked in (token 1)." in html for html in refused)
    assert sql("SELECT status, token FROM appointment") == [("arrived", 1)]
    assert sql("SELECT count(*) FROM appointment_event WHERE action = 'check_in'")[0][0] == 1
    assert sql("SELECT value FROM clinic_counter WHERE name LIKE 'token:%'") == [(1,)]
