"""The bench generator and benchmark at a tiny size against the test database, so neither can rot: what
the generator makes has the right shape (fifty clinics in many states; visits with their consultations,
vitals, prescriptions, bills, payments and reminders, each on the patient's timeline), the app reads,
searches and numbers on from it as its own, the database's rules (no overlap, row-level security,
indexes and constraints) still hold, and the benchmark's desks can sign in, read the board and book.

The data set is made once for the module (a few seconds); the tests that change it come last."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from app.billing import issuing, services
from app.billing.models import PriceItem
from app.clinics.models import Clinic
from app.clinics.states import BY_CODE
from app.counters import next_number
from app.db import get_session, set_tenant
from app.patients import services as patients
from app.patients.models import Patient
from app.scheduling import services as schedule
from app.scheduling.models import Appointment
from bench import clinics, data, env, measure, timeline
from bench import schedule as bench
from bench.data import Size

SIZE = Size(patients=600, appointments=3000, day_appointments=400)
HOLDING = "('booked', 'confirmed', 'arrived', 'in_consultation', 'completed')"
# Timeline kind -> the table its ref points at (an encounter's addendum aside: the long history's).
SOURCES = {"appointment": "appointment_event", "encounter": "encounter", "vitals": "vitals",
           "prescription": "prescription", "chart": "chart_item", "record": "patient_history",
           "consent": "consent_event", "invoice": "bill", "payment": "payment", "message": "reminder"}


def _schema(run) -> list:
    return run("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' UNION ALL "
               "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint ORDER BY 1")


@pytest.fixture(autouse=True)
def _clean_tables():
    """The data set lives for the module (`made` empties the tables after it)."""
    yield


@pytest.fixture(scope="module")
def made(app, admin_url, owner_engine):
    def run(statement: str):
        with owner_engine.begin() as conn:
            return conn.execute(text(statement)).all()

    before = _schema(run)
    meta = data.generate(app, admin_url, SIZE, workers=1, log=lambda *_: None)
    assert _schema(run) == before, "the load must leave every index and constraint as it found them"
    yield meta
    with owner_engine.begin() as conn:
        tables = conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                   "AND tablename <> 'alembic_version'")).all()
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))


def _count(sql, statement: str, **params) -> int:
    return sql(statement, **params)[0][0]


def _big_clinic(sql):
    return sql("SELECT id FROM clinic WHERE name = :n", n=clinics.SPECS[0].name)[0][0]


def test_counts_and_every_clinic_set_up(made, sql, admin_url):
    assert _count(sql, "SELECT count(*) FROM patient") == SIZE.patients + len(timeline.PEOPLE)
    assert _count(sql, "SELECT count(*) FROM appointment") > SIZE.appointments  # and the long histories'
    assert _count(sql, "SELECT count(*) FROM appointment_event WHERE action IN ('booked', 'walked_in')") \
        == _count(sql, "SELECT count(*) FROM appointment")
    clinic_rows = sql("SELECT c.id, c.state_code, c.gstin, "
                      "(SELECT count(*) FROM membership m JOIN staff_user u ON u.id = m.user_id "
                      "WHERE m.clinic_id = c.id AND m.role = 'doctor' AND u.email LIKE 'doctor%'), "
                      "(SELECT count(DISTINCT doctor_id) FROM doctor_session s WHERE s.clinic_id = c.id), "
                      "(SELECT count(*) FROM appointment_type t WHERE t.clinic_id = c.id), "
                      "(SELECT count(*) FROM clinic_hours h WHERE h.clinic_id = c.id), "
                      "(SELECT count(*) FROM clinic_key k WHERE k.clinic_id = c.id), "
                      "(SELECT count(*) FROM patient p WHERE p.clinic_id = c.id), "
                      "(SELECT count(*) FROM appointment a WHERE a.clinic_id = c.id), "
                      "(SELECT count(*) FROM price_item i WHERE i.clinic_id = c.id), "
                      "(SELECT count(*) FROM billing_profile b WHERE b.clinic_id = c.id) FROM clinic c")
    assert len(clinic_rows) == len(clinics.SPECS) == 50
    states = {row[1] for row in clinic_rows}
    assert len(states) >= 12 and states <= set(BY_CODE), "clinics in several states, real GST state codes"
    for _, state, gstin, doctors, with_sessions, types, hours, keys, patient_count, appointments, items, profile \
            in clinic_rows:
        assert gstin.startswith(state) and doctors == with_sessions > 0 and types and hours >= 6 and keys == 1
        assert patient_count > 0 and appointments > 0 and items and profile == 1
    assert {s.doctors for s in clinics.SPECS[8:]} <= set(range(1, 7))
    assert data.matches(data.existing(admin_url), SIZE)


def test_the_visits_have_their_records_and_every_record_its_timeline_event(made, sql):
    counts = dict(sql("SELECT kind, count(*) FROM timeline_event GROUP BY kind"))
    assert set(counts) == set(SOURCES), counts
    for kind, table in SOURCES.items():
        assert _count(sql, f"SELECT count(*) FROM {table}") > 0, table
        orphans = _count(sql, f"SELECT count(*) FROM timeline_event t WHERE t.kind = :k AND t.action <> 'addendum' "
                              f"AND NOT EXISTS (SELECT FROM {table} s WHERE s.clinic_id = t.clinic_id "
                              f"AND s.id = t.ref_id)", k=kind)
        assert orphans == 0, kind
        if table == "reminder":  # a message is on the timeline of the patient it was sent to
            assert _count(sql, "SELECT count(*) FROM timeline_event t JOIN reminder s ON s.clinic_id = t.clinic_id "
                               "AND s.id = t.ref_id WHERE t.kind = 'message' AND s.patient_id <> t.patient_id") == 0
    assert _count(sql, "SELECT count(*) FROM timeline_event t WHERE NOT EXISTS (SELECT FROM patient p "
                       "WHERE p.clinic_id = t.clinic_id AND p.id = t.patient_id)") == 0, "every event has its patient"
    completed = _count(sql, "SELECT count(*) FROM appointment WHERE status = 'completed' AND finished_at IS NOT NULL")
    assert _count(sql, "SELECT count(*) FROM encounter WHERE status = 'signed'") == completed
    assert _count(sql, "SELECT count(*) FROM timeline_event WHERE kind = 'encounter' AND action = 'signed'") \
        == completed
    for table in ("encounter", "vitals", "prescription", "bill", "payment", "reminder"):  # one event per row
        kind = {"encounter": "encounter' AND action = 'opened", "bill": "invoice",
                "vitals": "vitals' AND action = 'recorded"}.get(table, table)
        kind = "message' AND action = 'sent" if table == "reminder" else kind
        assert _count(sql, f"SELECT count(*) FROM {table}") == _count(
            sql, f"SELECT count(*) FROM timeline_event WHERE kind = '{kind}'"), table
    assert _count(sql, "SELECT count(*) FROM bill b WHERE NOT EXISTS (SELECT FROM bill_line l "
                       "WHERE l.clinic_id = b.clinic_id AND l.bill_id = b.id)") == 0
    assert _count(sql, "SELECT count(*) FROM bill b WHERE total <> (SELECT sum(total) FROM bill_line l "
                       "WHERE l.clinic_id = b.clinic_id AND l.bill_id = b.id)") == 0
    assert _count(sql, "SELECT count(*) FROM reminder WHERE state IN ('delivered', 'read')") > 0
    assert {r[0] for r in sql("SELECT DISTINCT channel FROM reminder")} == {"whatsapp", "sms"}


def test_one_patient_has_five_thousand_events(made, sql):
    assert _count(sql, "SELECT max(n) FROM (SELECT count(*) AS n FROM timeline_event GROUP BY patient_id) s") \
        == timeline.LONG_EVENTS


def test_numbers_are_gapless_and_the_app_numbers_on(made, sql, app):
    series = {(c, prefix, fy): after - 1 for c, prefix, fy, after in sql(
        "SELECT clinic_id, prefix, fy_start, next_number FROM bill_series")}
    used = sql("SELECT b.clinic_id, s.prefix, s.fy_start, count(*), max(split_part(b.number, '/', 3)::int) FROM bill b "
               "JOIN bill_series s ON s.clinic_id = b.clinic_id AND s.id = b.series_id GROUP BY 1, 2, 3 UNION ALL "
               "SELECT clinic_id, 'RCT', 2000 + split_part(split_part(receipt_number, '/', 2), '-', 1)::int, count(*), "
               "max(split_part(receipt_number, '/', 3)::int) FROM payment GROUP BY 1, 2, 3")
    assert len(used) == len(series) >= 100  # bills of supply and receipts at least, in every clinic
    for clinic_id, prefix, fy, count, last in used:
        assert count == last == series[(clinic_id, prefix, fy)], (prefix, fy)  # 1..N, the counter at N
    for count, last, counter in sql("SELECT count(*), max(number), (SELECT value FROM clinic_counter c "
                                    "WHERE c.clinic_id = r.clinic_id AND c.name = 'rx') FROM prescription r "
                                    "GROUP BY clinic_id"):
        assert count == last == counter
    big = _big_clinic(sql)
    anchor = date.fromisoformat(made["anchor"])
    desk = sql("SELECT id FROM staff_user WHERE email = :e", e=clinics.email("desk", clinics.SPECS[0], 1))[0][0]
    before = _count(sql, "SELECT count(*) FROM bill WHERE clinic_id = :c AND number LIKE :p",
                    c=big, p=issuing.format_number("BOS", anchor, 1)[:-6] + "%")
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=big, user_id=desk)
        clinic = db.get(Clinic, big)
        patient = db.scalars(select(Patient).where(Patient.clinic_id == big).limit(1)).one()
        consult = db.scalars(select(PriceItem).where(PriceItem.clinic_id == big, PriceItem.code == "CONSULT")).one()
        bill = services.new_draft(db, clinic=clinic, patient=patient, appointment=None, by=desk, day=anchor)
        services.add_line(db, bill, item=consult, quantity=Decimal(1), discount=None, by=desk, day=anchor)
        issued = issuing.issue(db, clinic=clinic, bill=bill, by=desk, day=anchor)
        assert [d.number for d in issued] == [issuing.format_number("BOS", anchor, before + 1)]
        rx_before = _count(sql, "SELECT value FROM clinic_counter WHERE clinic_id = :c AND name = 'rx'", c=big)
        assert next_number(db, big, "rx") == rx_before + 1
        db.rollback()


def test_the_app_opens_the_records_and_the_timeline_over_http(made, sql, app):
    big = _big_clinic(sql)
    doctor_id, email = sql("SELECT e.doctor_id, u.email FROM encounter e JOIN staff_user u ON u.id = e.doctor_id "
                           "WHERE e.clinic_id = :c AND u.email LIKE 'doctor%' GROUP BY 1, 2 ORDER BY count(*) DESC "
                           "LIMIT 1", c=big)[0]
    patient_id, encounter_id, rx_id, bill_id = sql(
        "SELECT e.patient_id, e.id, r.id, b.id FROM encounter e JOIN prescription r ON r.clinic_id = e.clinic_id "
        "AND r.encounter_id = e.id JOIN bill b ON b.clinic_id = e.clinic_id AND b.appointment_id = e.appointment_id "
        "WHERE e.clinic_id = :c AND e.doctor_id = :d AND EXISTS (SELECT FROM payment p WHERE p.clinic_id = b.clinic_id "
        "AND p.bill_id = b.id) AND EXISTS (SELECT FROM reminder m WHERE m.clinic_id = e.clinic_id "
        "AND m.appointment_id = e.appointment_id) AND EXISTS (SELECT FROM vitals v WHERE v.clinic_id = e.clinic_id "
        "AND v.encounter_id = e.id) LIMIT 1", c=big, d=doctor_id)[0]
    with app.app_context():
        physician = measure.Desk(app, email, clinics.password(), clinics.totp_secret(email))
        address = clinics.email("desk", clinics.SPECS[0], 2)  # desk 1 signs in later: a TOTP code is used once
        desk = measure.Desk(app, address, clinics.password(), clinics.totp_secret(address))
    physician.sign_in()
    desk.sign_in()
    for who, url, expected in ((physician, f"/encounters/{encounter_id}", "Feels well"),
                               (physician, f"/prescriptions/{rx_id}", "Prescription"),
                               (desk, f"/bills/{bill_id}", "/"), (desk, f"/patients/{patient_id}", "MRN-")):
        response = who.get(url)
        assert response.status_code == 200, url
        assert expected in response.get_data(as_text=True), url
    page = physician.get(f"/patients/{patient_id}/timeline")
    assert page.status_code == 200 and page.get_data(as_text=True).count('id="tl-') > 0
    for who, kinds in ((physician, ("appointment", "encounter", "vitals", "prescription", "message")),
                       (desk, ("invoice", "payment", "record", "consent", "message", "appointment"))):
        for kind in kinds:
            body = who.get(f"/patients/{patient_id}/timeline?kind={kind}").get_data(as_text=True)
            assert f"tl-{kind}" in body, kind
    bill_page = desk.get(f"/bills/{bill_id}").get_data(as_text=True)
    number = sql("SELECT number FROM bill WHERE id = :b", b=bill_id)[0][0]
    assert number in bill_page


def test_the_benchmark_day_and_statuses(made, sql):
    big = _big_clinic(sql)
    day = date.fromisoformat(made["bench_day"])
    count, doctors = sql("SELECT count(*), count(DISTINCT doctor_id) FROM appointment WHERE clinic_id = :c "
                         "AND day = :d AND doctor_id IN (SELECT id FROM staff_user WHERE email LIKE 'doctor%')",
                         c=big, d=day)[0]
    assert (count, doctors) == (400, 20)
    anchor = date.fromisoformat(made["anchor"])
    past = {r[0] for r in sql("SELECT DISTINCT status FROM appointment WHERE day < :d AND doctor_id IN "
                              "(SELECT id FROM staff_user WHERE email LIKE 'doctor%')", d=anchor)}
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
            for patient in db.scalars(select(Patient).where(Patient.clinic_id == clinic_id).limit(1)):
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
    assert page.count('class="doctor-col"') >= 20
    assert len(set(re.findall(r'id="appt-([0-9a-f-]{36})"', page))) >= 400
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
