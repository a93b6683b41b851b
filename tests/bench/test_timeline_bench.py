"""The timeline benchmark's data at a tiny size against the test database: the long history has exactly the
asked number of events, of every kind, each pointing at a real source row sealed with the clinic's key; the
bench generator fills the timeline feed of what it loads; and the benchmark's doctor can sign in and
measure its pages."""

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.patients import services as patients
from app.patients.services import PatientData
from app.security.fields import keyring
from bench import data, env, history, measure
from bench import timeline as bench
from bench.data import Size
from tests.scheduling.conftest import add_type

SOURCES = {"appointment": "appointment_event", "encounter": "encounter", "vitals": "vitals",
           "prescription": "prescription", "chart": "chart_item", "record": "patient_history",
           "consent": "consent_event"}
END = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def cast(app, factory, clinic, sql):
    doctors = [factory.person(clinic, Role.DOCTOR, name=f"Dr {n}").id for n in ("One", "Two")]
    desk = factory.person(clinic, Role.RECEPTION).id
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        person = PatientData(full_name="Kamala Venkatesh", sex="F", dob=datetime(1956, 3, 14).date(),
                             phone="+919845012345")
        patient = patients.register(db, clinic_id=clinic.id, data=person, by=desk, consents={})
        db.commit()
        ring = keyring(db, clinic.id)
    return history.Cast(clinic.id, patient.id, doctors, desk, add_type(sql, clinic.id)), ring


def test_the_long_history_has_every_kind_and_exactly_the_events_asked(cast):
    cast, ring = cast
    rows = history.make(ring, cast, events=300, end=END)
    events = rows.tables["timeline_event"]
    assert len(events) == 300
    columns = history.COLUMNS["timeline_event"]
    kinds = Counter(dict(zip(columns, e, strict=True))["kind"] for e in events)
    assert set(kinds) == set(SOURCES) and kinds["appointment"] > kinds["prescription"] > 0
    ids = {table: {r[1] for r in table_rows} for table, table_rows in rows.tables.items()}
    for event in events:
        e = dict(zip(columns, event, strict=True))
        source = "encounter_addendum" if e["action"] == "addendum" else SOURCES[e["kind"]]
        assert e["ref_id"] in ids[source], e
        assert e["at"] < END and e["patient_id"] == cast.patient_id
    assert len({e[1] for e in events}) == 300
    vitals = dict(zip(history.COLUMNS["vitals"], rows.tables["vitals"][0], strict=True))
    assert {"systolic", "diastolic", "pulse"} <= set(json.loads(ring.open("vitals", "values", vitals["id"],
                                                                          vitals["values_enc"])))
    rx = dict(zip(history.COLUMNS["prescription"], rows.tables["prescription"][0], strict=True))
    assert json.loads(ring.open("prescription", "items", rx["id"], rx["items_enc"]))[0]["drug"]


def test_it_loads_and_the_timeline_reads_it(cast, admin_url, tmp_path, sql, new_browser, factory, clinic):
    cast, ring = cast
    rows = history.make(ring, cast, events=120, end=datetime.now(UTC) - timedelta(hours=1))
    with env.Bench(admin_url, {}, tmp_path).owner() as conn:
        history.load(conn, cast.clinic_id, rows)
    counts = dict(sql("SELECT kind, count(*) FROM timeline_event WHERE patient_id = :p GROUP BY kind",
                      p=cast.patient_id))
    assert sum(counts.values()) == 121 and counts["record"] >= 1  # and the registration
    for kind, table in SOURCES.items():
        missing = sql(f"SELECT count(*) FROM timeline_event t WHERE t.patient_id = :p AND t.kind = :k "
                      f"AND t.action <> 'addendum' AND NOT EXISTS (SELECT FROM {table} s WHERE s.id = t.ref_id)",
                      p=cast.patient_id, k=kind)[0][0]
        assert missing == 0, kind


def test_the_bench_generator_fills_the_timeline_and_the_benchmark_runs(app, admin_url, tmp_path, sql):
    meta = data.generate(app, admin_url, Size(patients=300, appointments=1500, day_appointments=400), workers=1,
                         log=lambda *_: None)
    fed = sql("SELECT (SELECT count(*) FROM appointment_event) + (SELECT count(*) FROM patient_history) "
              "+ (SELECT count(*) FROM consent_event), (SELECT count(*) FROM timeline_event WHERE kind IN "
              "('appointment', 'record', 'consent'))")[0]
    assert fed[0] == fed[1] > 1500
    place = env.Bench(admin_url, {}, tmp_path)
    made = bench._marker(place)  # the generator made the timeline patients: 5,000 events
    assert made["events"] == bench.LONG_EVENTS and made["cohort"] == 1
    assert sql("SELECT count(*) FROM timeline_event WHERE patient_id = :p", p=made["long"])[0][0] == bench.LONG_EVENTS
    marker = bench.subjects(app, place, 80, log=lambda *_: None)
    assert marker["cohort"] == 2
    assert bench.subjects(app, place, 80, log=lambda *_: None) == marker  # made once
    assert bench.subjects(app, place, 40, log=lambda *_: None)["cohort"] == 3  # remade for another size, beside
    for key, count in (("long", 80), ("page", 30), ("short", 5)):  # the earlier sets are still whole
        assert sql("SELECT count(*) FROM timeline_event WHERE patient_id = :p", p=marker[key])[0][0] == count
    assert sql("SELECT count(*) FROM timeline_event WHERE patient_id = :p", p=made["long"])[0][0] == bench.LONG_EVENTS
    assert sql("SELECT count(*), count(DISTINCT number) FROM prescription WHERE clinic_id = "
               "(SELECT clinic_id FROM patient WHERE id = :p)", p=made["long"])[0] == \
        sql("SELECT max(number), max(number) FROM prescription")[0]  # numbered on from the clinic's visits
    physician, desk = bench.doctor(app, marker), measure.desks(app, 1)[0]
    counter = measure.SqlCounter(app.extensions["db_engine"])
    results = [r.summary() for group in bench.measures(place, marker, physician, desk)
               for r in bench.turn_about(counter, 2, group)]
    assert len(results) == 9 and all(r["statuses"] == {"200": 2} for r in results)
    page = physician.get(f"/patients/{marker['long']}/timeline").get_data(as_text=True)
    assert page.count('id="tl-') == 25 and "Prescription No." in page
    assert meta["format"] == data.FORMAT
    assert isinstance(uuid.UUID(marker["long"]), uuid.UUID)
