"""The bench generator and benchmark at a tiny size against the test database, so neither can rot: what
the generator makes has the right shape, the app reads and searches it as its own, the database's rules
(no overlap, row-level security) still hold, and the benchmark's desks can sign in, read the board and book."""

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.db import get_session, set_tenant
from app.patients import services as patients
from app.patients.models import Patient
from app.scheduling import services as schedule
from app.scheduling.models import Appointment
from bench import clinics, data, env, measure
from bench import schedule as bench
from bench.data import Size

SIZE = Size(patients=600, appointments=3000, day_appointments=400)
HOLDING = "('booked', 'confirmed', 'arrived', 'in_consultation', 'completed')"


def _schema(sql) -> list:
    return sql("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' UNION ALL "
               "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint ORDER BY 1")


@pytest.fixture
def made(app, admin_url, sql):
    before = _schema(sql)
    meta = data.generate(app, admin_url, SIZE, workers=1, log=lambda *_: None)
    assert _schema(sql) == before, "the load must leave every index and constraint as it found them"
    return meta


def _count(sql, statement: str, **params) -> int:
    return sql(statement, **params)[0][0]


def test_counts_and_every_clinic_set_up(made, sql, admin_url):
    assert _count(sql, "SELECT count(*) FROM patient") == SIZE.patients
    assert _count(sql, "SELECT count(*) FROM appointment") == SIZE.appointments
    assert _count(sql, "SELECT count(*) FROM appointment_event WHERE action IN ('booked', 'walked_in')") \
        == SIZE.appointments
    clinic_rows = sql("SELECT c.id, c.state_code, "
                      "(SELECT count(*) FROM membership m WHERE m.clinic_id = c.id AND m.role = 'doctor'), "
                      "(SELECT count(DISTINCT doctor_id) FROM doctor_session s WHERE s.clinic_id = c.id), "
                      "(SELECT count(*) FROM appointment_type t WHERE t.clinic_id = c.id), "
                      "(SELECT count(*) FROM clinic_hours h WHERE h.clinic_id = c.id), "
                      "(SELECT count(*) FROM clinic_key k WHERE k.clinic_id = c.id), "
                      "(SELECT count(*) FROM patient p WHERE p.clinic_id = c.id), "
                      "(SELECT count(*) FROM appointment a WHERE a.clinic_id = c.id) FROM clinic c")
    assert len(clinic_rows) == len(clinics.SPECS) >= 5
    assert len({row[1] for row in clinic_rows}) == len(clinic_rows), "one clinic per state"
    for _, _, doctors, with_sessions, types, hours, keys, patient_count, appointments in clinic_rows:
        assert doctors == with_sessions > 0 and types and hours >= 6 and keys == 1
        assert patient_count > 0 and appointments > 0
    assert data.matches(data.existing(admin_url), SIZE)


def test_the_benchmark_day_and_statuses(made, sql):
    big = sql("SELECT id FROM clinic WHERE name = :n", n=clinics.SPECS[0].name)[0][0]
    day = date.fromisoformat(made["bench_day"])
    count, doctors = sql("SELECT count(*), count(DISTINCT doctor_id) FROM appointment WHERE clinic_id = :c "
                         "AND day = :d", c=big, d=day)[0]
    assert (count, doctors) == (400, 20)
    anchor = date.fromisoformat(made["anchor"])
    past = {r[0] for r in sql("SELECT DISTINCT status FROM appointment WHERE day < :d", d=anchor)}
    ahead = {r[0] for r in sql("SELECT DISTINCT status FROM appointment WHERE day > :d", d=day)}
    assert past <= {"completed", "no_show", "cancelled"} and "completed" in past
    assert ahead <= {"booked", "confirmed", "cancelled"} and {"booked", "confirmed"} <= ahead
    assert not sql("SELECT clinic_id, day, token FROM appointment WHERE token IS NOT NULL "
                   "GROUP BY 1, 2, 3 HAVING count(*) > 1")


def test_no_doctor_is_double_booked(made, sql, app):
    assert _count(sql, "SELECT count(*) FROM pg_constraint WHERE conname = 'ex_appointment_no_overlap'") == 1
    assert _count(sql, f"""
        SELECT count(*) FROM appointment a JOIN appointment b ON a.clinic_id = b.clinic_id
          AND a.doctor_id = b.doctor_id AND a.id < b.id
          AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)
          AND a.starts_at IS NOT NULL AND b.starts_at IS NOT NULL
        WHERE a.status IN {HOLDING} AND b.status IN {HOLDING} AND NOT a.overbooked AND NOT b.overbooked""") == 0
    with app.app_context():
        db = get_session()
        for clinic_id, in sql("SELECT id FROM clinic"):
            set_tenant(db, clinic_id=clinic_id, user_id=None)
            clinic = db.get(schedule.Clinic, clinic_id)
            assert not [a for a in schedule.upcoming_outside_availability(db, clinic) if not a.overbooked]
            db.rollback()


def test_the_app_opens_and_finds_every_clinics_patients(made, sql, app):
    with app.app_context():
        db = get_session()
        for clinic_id, in sql("SELECT id FROM clinic"):
            set_tenant(db, clinic_id=clinic_id, user_id=None)
            for patient in db.scalars(select(Patient).where(Patient.clinic_id == clinic_id).limit(3)):
                opened = patients.open_patient(db, patient)
                assert len(opened.full_name.split()) >= 2 and opened.mrn.startswith("MRN-")
                assert (opened.phone or opened.guardian_phone).startswith("+91")
                for query in (opened.full_name.split()[0][:3], opened.mrn, (opened.phone or "")[-4:]):
                    found = [p.id for p, _ in patients.search(db, clinic_id, query)]
                    assert patient.id in found or len(found) == patients.SEARCH_LIMIT, query
                assert patients.history(db, patient)[0][0].action == "created"
            db.rollback()


def test_families_share_a_phone(made, sql):
    shared = _count(sql, "SELECT count(*) FROM (SELECT token FROM patient_token WHERE kind = 'phone' "
                         "GROUP BY clinic_id, token HAVING count(DISTINCT patient_id) > 1) s")
    assert shared > SIZE.patients / 10


def test_row_level_security_still_isolates(made, sql, app):
    clinic_id, expected = sql("SELECT clinic_id, count(*) FROM patient GROUP BY 1 ORDER BY 2 DESC LIMIT 1")[0]
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        assert db.scalars(select(Patient.clinic_id).distinct()).all() == [clinic_id]
        assert db.scalar(select(func.count()).select_from(Patient)) == expected
        assert db.scalars(select(Appointment.clinic_id).distinct()).all() == [clinic_id]
        db.rollback()
        set_tenant(db, clinic_id=None, user_id=None)
        assert db.scalar(select(func.count()).select_from(Patient)) == 0
        assert db.scalar(select(func.count()).select_from(Appointment)) == 0
        db.rollback()


def test_the_benchmark_runs_against_what_was_made(made, app, admin_url, tmp_path):
    desks = measure.desks(app, 2)
    counter = measure.SqlCounter(app.extensions["db_engine"])
    day = date.fromisoformat(made["bench_day"])
    page = desks[0].get(f"/schedule/?day={day.isoformat()}").get_data(as_text=True)
    assert page.count('class="doctor-col"') == 20
    assert len(set(re.findall(r'id="appt-([0-9a-f-]{36})"', page))) == 400
    board = bench.board(desks[0], counter, day, 3).summary()
    assert board["n"] == 3 and board["queries_min"] > 0
    assert bench.poll(desks[0], counter, day, 3).summary()["statuses"] == {"204": 3}
    place = env.Bench(admin_url, {}, tmp_path)
    booking_day = bench.booking_day(place, made, date.fromisoformat(made["anchor"]) + timedelta(days=1))
    jobs = bench.booking_jobs(app, place, booking_day, 6, 0.5, made["seed"])
    result = bench.book(app, desks, counter, jobs, "booking").summary()
    twins = sum(job.twin for job in jobs)
    assert (result["booked"], result["refused_409"]) == (6, twins)
    assert bench.check_no_overlap(place, booking_day) == {"overlapping_pairs": 0, "appointments_that_day": 6}
