"""Vitals over HTTP: plausible ranges (422, input kept, nothing written), adult flags and the under-18 case,
°F stored as °C, BMI, trends without entered-in-error sets, voiding, htmx and plain variants, the
timeline rows and audit records, the role matrix and another clinic's patient."""

import re

import pytest
from sqlalchemy import event

from app.auth.policy import Role
from tests.conftest import patient_id
from tests.scheduling.conftest import HTMX, audit_since, high_water, insert_appointment, today

NON_CLINICAL = [Role.RECEPTION, Role.BILLING, Role.AUDITOR, Role.ADMIN]


# --- Fixtures shared with test_chart.py ------------------------------------------------------------------

@pytest.fixture
def doctor(factory, clinic):
    return factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")


@pytest.fixture
def sign_in(factory, clinic, new_browser):
    """A new browser signed in as a new staff member with `role` in the clinic."""
    def make(role: Role, name: str = "Staff Member"):
        browser = new_browser()
        browser.sign_in(factory.person(clinic, role, name=name))
        return browser
    return make


@pytest.fixture
def nurse(factory, clinic):
    return factory.person(clinic, Role.NURSE, name="Nisha Nurse")


@pytest.fixture
def doc(new_browser, doctor):
    browser = new_browser()
    browser.sign_in(doctor)
    return browser


@pytest.fixture
def triage(new_browser, nurse):
    browser = new_browser()
    browser.sign_in(nurse)
    return browser


@pytest.fixture
def patient(register):
    """A registered adult patient's id."""
    return patient_id(register(full_name="Kavya Iyer", dob="1985-03-10"))


@pytest.fixture
def appointment(sql, clinic, doctor, patient):
    """The patient checked in with the doctor today (which makes a care relationship)."""
    return insert_appointment(sql, clinic.id, doctor.id, patient, day=today(), status="arrived", token=1)


def page_of(patient: str) -> str:
    return f"/patients/{patient}/vitals"


def record(browser, patient, htmx=False, **values):
    """Submit the vitals form as the page offers it (CSRF token from the page)."""
    return browser.post(page_of(patient), values, page=page_of(patient), headers=HTMX if htmx else {})


def text(response) -> str:
    return response.get_data(as_text=True)


def count(sql, table: str) -> int:
    return sql(f"SELECT count(*) FROM {table}")[0][0]


# --- Validation ------------------------------------------------------------------------------------------

REFUSED = [
    ({"systolic": "301", "diastolic": "80"}, "systolic", "Systolic pressure must be between 50 and 300 mmHg."),
    ({"systolic": "49", "diastolic": "30"}, "systolic", "Systolic pressure must be between 50 and 300 mmHg."),
    ({"systolic": "250", "diastolic": "201"}, "diastolic", "Diastolic pressure must be between 20 and 200 mmHg."),
    ({"systolic": "120", "diastolic": "19"}, "diastolic", "Diastolic pressure must be between 20 and 200 mmHg."),
    ({"systolic": "120", "diastolic": "120"}, "diastolic", "The diastolic pressure must be lower than the systolic."),
    ({"systolic": "120"}, "diastolic", "Enter both numbers of the blood pressure."),
    ({"pulse": "19"}, "pulse", "Pulse must be between 20 and 300 /min."),
    ({"pulse": "301"}, "pulse", "Pulse must be between 20 and 300 /min."),
    ({"pulse": "72.5"}, "pulse", "Enter a whole number."),
    ({"pulse": "NaN"}, "pulse", "Enter a whole number."),
    ({"temperature": "29.9", "temperature_unit": "C"}, "temperature", "Temperature must be between 30 and 45 °C."),
    ({"temperature": "45.1", "temperature_unit": "C"}, "temperature", "Temperature must be between 30 and 45 °C."),
    ({"temperature": "85.9", "temperature_unit": "F"}, "temperature", "Temperature must be between 86 and 113 °F."),
    ({"temperature": "113.5", "temperature_unit": "F"}, "temperature", "Temperature must be between 86 and 113 °F."),
    ({"temperature": "98,6", "temperature_unit": "F"}, "temperature", "Enter a number, such as 72.5."),
    ({"spo2": "49"}, "spo2", "SpO2 must be between 50 and 100 %."),
    ({"spo2": "101"}, "spo2", "SpO2 must be between 50 and 100 %."),
    ({"resp_rate": "3"}, "resp_rate", "Respiratory rate must be between 4 and 80 /min."),
    ({"resp_rate": "81"}, "resp_rate", "Respiratory rate must be between 4 and 80 /min."),
    ({"weight_kg": "0.2"}, "weight_kg", "Weight must be between 0.3 and 400 kg."),
    ({"weight_kg": "400.1"}, "weight_kg", "Weight must be between 0.3 and 400 kg."),
    ({"weight_kg": "1e3"}, "weight_kg", "Enter a number, such as 72.5."),
    ({"height_cm": "29"}, "height_cm", "Height must be between 30 and 250 cm."),
    ({"height_cm": "251"}, "height_cm", "Height must be between 30 and 250 cm."),
    ({"glucose_mg_dl": "9", "glucose_context": "random"}, "glucose_mg_dl",
     "Blood glucose must be between 10 and 1500 mg/dL."),
    ({"glucose_mg_dl": "1501", "glucose_context": "random"}, "glucose_mg_dl",
     "Blood glucose must be between 10 and 1500 mg/dL."),
    ({"glucose_mg_dl": "110"}, "glucose_context", "Say when the glucose was measured."),
]


def test_implausible_values_are_refused_with_the_input_kept(triage, patient, sql):
    for values, name, message in REFUSED:
        form = {"pulse": "72", **values} if name != "pulse" else values
        response = record(triage, patient, **form)
        body = text(response)
        assert response.status_code == 422, values
        assert message in body, (values, re.findall(r'class="error"[^>]*>([^<]*)', body))
        assert f'id="vitals-{name}-error"' in body and 'aria-invalid="true"' in body
        for key, value in form.items():
            if key not in ("temperature_unit", "glucose_context"):
                assert f'name="{key}" value="{value}"' in body, (key, value)
        assert "<html" in body  # without JavaScript: the whole page
    assert count(sql, "vitals") == 0
    assert sql("SELECT count(*) FROM timeline_event WHERE kind = 'vitals'") == [(0,)]


def test_an_empty_form_asks_for_a_measurement(triage, patient, sql):
    response = record(triage, patient, htmx=True, pulse="", temperature_unit="F")
    assert response.status_code == 422 and "Enter at least one measurement." in text(response)
    assert text(response).lstrip().startswith("<section id=\"vitals-panel\"") and "<html" not in text(response)
    assert count(sql, "vitals") == 0


def test_the_refused_form_keeps_the_chosen_unit_and_context(triage, patient):
    body = text(record(triage, patient, htmx=True, temperature="120", temperature_unit="C",
                       glucose_mg_dl="5", glucose_context="post_meal"))
    assert '<option value="C" selected>' in body and '<option value="post_meal" selected>' in body
    assert 'name="temperature" value="120"' in body


# --- Recording, flags, units ---------------------------------------------------------------------------

def test_a_set_is_recorded_and_an_out_of_range_value_is_flagged_high(triage, patient, nurse, sql):
    response = record(triage, patient, systolic="150", diastolic="95", pulse="72", spo2="98", resp_rate="16")
    assert response.status_code == 303 and response.headers["Location"] == page_of(patient)
    page = text(triage.get(page_of(patient)))
    latest = page.split('class="facts readings"')[1].split("</dl>")[0]
    assert re.search(r'150/95 mmHg\s*<span class="badge flag flag-high">High</span>', latest)
    assert re.search(r"72 /min\s*</dd>", latest)  # a normal pulse carries no badge
    assert "98 %" in latest and "Vitals recorded." in page
    assert sql("SELECT kind, action, by::text FROM timeline_event WHERE kind = 'vitals'") == [
        ("vitals", "recorded", str(nurse.id))]
    ref = sql("SELECT t.ref_id = v.id, t.at = v.taken_at FROM timeline_event t, vitals v WHERE t.kind = 'vitals'")
    assert ref == [(True, True)]
    # Sealed: the values are not in the database in the clear.
    assert sql("SELECT count(*) FROM vitals WHERE position('150'::bytea IN values_enc) > 0") == [(0,)]


@pytest.mark.parametrize(("values", "shown", "badge"), [
    ({"systolic": "85", "diastolic": "55"}, "85/55 mmHg", "Low"),
    ({"systolic": "139", "diastolic": "89"}, "139/89 mmHg", None),
    ({"pulse": "101"}, "101 /min", "High"),
    ({"pulse": "59"}, "59 /min", "Low"),
    ({"spo2": "94"}, "94 %", "Low"),
    ({"resp_rate": "21"}, "21 /min", "High"),
    ({"temperature": "37.5", "temperature_unit": "C"}, "37.5 °C", "High"),
    ({"temperature": "34.9", "temperature_unit": "C"}, "34.9 °C", "Low"),
    ({"glucose_mg_dl": "100", "glucose_context": "fasting"}, "100 mg/dL (fasting)", "High"),
    ({"glucose_mg_dl": "139", "glucose_context": "post_meal"}, "139 mg/dL (after a meal)", None),
    ({"glucose_mg_dl": "140", "glucose_context": "random"}, "140 mg/dL (random)", "High"),
    ({"glucose_mg_dl": "69", "glucose_context": "random"}, "69 mg/dL (random)", "Low"),
])
def test_adult_ranges(triage, patient, values, shown, badge):
    record(triage, patient, **values)
    latest = text(triage.get(page_of(patient))).split('class="facts readings"')[1].split("</dl>")[0]
    assert shown in latest
    if badge:
        assert f">{badge}</span>" in latest
    else:
        assert "badge flag" not in latest


def test_fahrenheit_is_stored_as_celsius_and_shown_in_both(triage, patient, app, clinic):
    record(triage, patient, temperature="101.2", temperature_unit="F")
    record(triage, patient, temperature="98.6", temperature_unit="F")
    page = text(triage.get(page_of(patient)))
    assert "37.0 °C (98.6 °F)" in page.split('class="facts readings"')[1].split("</dl>")[0]
    assert re.search(r"38\.4 °C \(101\.2 °F\)\s*<span class=\"badge flag flag-high\">High</span>", page)
    assert '<option value="F" selected>' in page  # the form offers the unit last used
    assert sorted(stored_values(app, clinic), key=lambda v: v["temperature_c"]) == [
        {"temperature_c": 37.0, "temperature_unit": "F"}, {"temperature_c": 38.44, "temperature_unit": "F"}]


def stored_values(app, clinic) -> list[dict]:
    """The sets' values as stored (decrypted with the clinic's key, as the app would)."""
    from sqlalchemy import select

    from app.clinical.models import Vitals
    from app.clinical.vitals import open_values
    from app.db import get_session, set_tenant

    with app.test_request_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        return [open_values(db, row) for row in db.scalars(select(Vitals))]


def test_bmi_is_computed_with_asian_cut_offs(triage, patient, app, clinic):
    record(triage, patient, weight_kg="70", height_cm="165")
    latest = text(triage.get(page_of(patient))).split('class="facts readings"')[1].split("</dl>")[0]
    assert "70 kg" in latest and "165 cm" in latest
    assert re.search(r"25\.7 kg/m²\s*<span class=\"badge flag flag-high\">Obese</span>", latest)
    record(triage, patient, weight_kg="62.45", height_cm="165")
    latest = text(triage.get(page_of(patient))).split('class="facts readings"')[1].split("</dl>")[0]
    assert re.search(r"23\.0 kg/m²\s*<span class=\"badge flag flag-high\">Overweight</span>", latest)
    assert "62.5 kg" in latest  # kept to one decimal
    record(triage, patient, weight_kg="50", height_cm="170")
    latest = text(triage.get(page_of(patient))).split('class="facts readings"')[1].split("</dl>")[0]
    assert re.search(r"17\.3 kg/m²\s*<span class=\"badge flag flag-low\">Underweight</span>", latest)
    assert {"weight_kg": 62.5, "height_cm": 165.0} in stored_values(app, clinic)


def test_a_child_gets_no_adult_flags(triage, register):
    child = patient_id(register(full_name="Aarav Menon", dob=f"{today().year - 8}-01-15",
                                guardian_name="Priya Menon", guardian_relation="mother"))
    record(triage, child, systolic="150", diastolic="95", pulse="120", weight_kg="40", height_cm="130")
    page = text(triage.get(page_of(child)))
    assert "adult ranges not applied" in page
    assert "150/95 mmHg" in page and "23.7 kg/m²" in page
    assert "badge flag" not in page


# --- Trends ---------------------------------------------------------------------------------------------

def test_trends_are_drawn_with_a_table_and_without_sets_entered_in_error(triage, patient, sql):
    for pulse in ("64", "88", "112"):
        record(triage, patient, pulse=pulse, systolic="120", diastolic="80")
    page = text(triage.get(page_of(patient)))
    pulse_chart = page.split('class="trend trend-pulse"')[1].split("</figure>")[0]
    assert '<svg viewBox="0 0 300 96" role="img"' in pulse_chart and "<title id=\"trend-pulse-title\">" in pulse_chart
    assert "Pulse: 3 readings from" in pulse_chart and "latest 112 /min. 1 outside the normal range." in pulse_chart
    assert pulse_chart.count("<circle") == 3 and pulse_chart.count('class="dot flagged"') == 1
    assert re.search(r"112 /min\s*<span class=\"badge flag flag-high\">High</span>", pulse_chart)  # the table
    assert "<polyline" in page.split('class="trend trend-bp"')[1].split("</figure>")[0]
    panel = page.split('<section id="vitals-panel"')[1].split("</section>")[0]
    assert "<script" not in panel and "style=" not in panel
    newest = sql("SELECT id::text FROM vitals ORDER BY taken_at DESC LIMIT 1")[0][0]
    assert triage.post(f"/vitals/{newest}/void", {"next": page_of(patient)}, page=page_of(patient)).status_code == 303
    page = text(triage.get(page_of(patient)))
    pulse_chart = page.split('class="trend trend-pulse"')[1].split("</figure>")[0]
    assert "112 /min" not in pulse_chart and pulse_chart.count("<circle") == 2
    assert "88 /min" in page.split('class="facts readings"')[1]  # the latest valid set


def test_one_reading_draws_no_chart(triage, patient):
    record(triage, patient, pulse="70")
    assert "<svg" not in text(triage.get(page_of(patient)))


# --- Entered in error -------------------------------------------------------------------------------------

def test_the_recorder_or_a_doctor_may_void_a_set(triage, doc, sign_in, patient, sql, nurse, doctor):
    record(triage, patient, pulse="130")
    record(triage, patient, pulse="75")
    first, second = (r[0] for r in sql("SELECT id::text FROM vitals ORDER BY taken_at"))
    other_nurse = sign_in(Role.NURSE, name="Other Nurse")
    other_nurse.get(page_of(patient))
    mark = high_water(sql)
    assert other_nurse.post(f"/vitals/{first}/void", {}).status_code == 403
    assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [("vitals.void", "denied")]
    assert 'action="/vitals/' not in text(other_nurse.get(page_of(patient)))  # no button offered either

    voided = triage.post(f"/vitals/{first}/void", {"next": page_of(patient)}, page=page_of(patient))
    assert voided.status_code == 303
    doc.get(page_of(patient))
    mark = high_water(sql)
    by_doctor = doc.post(f"/vitals/{second}/void", {"full": "1"}, headers=HTMX)
    assert by_doctor.status_code == 200 and "The set is marked entered in error." in text(by_doctor)
    assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [("vitals.void", "allowed")]
    assert sql("SELECT voided_by::text FROM vitals ORDER BY taken_at") == [(str(nurse.id),), (str(doctor.id),)]
    assert sql("SELECT action FROM timeline_event WHERE kind = 'vitals' ORDER BY at") == [
        ("recorded",), ("recorded",), ("voided",), ("voided",)]
    page = text(doc.get(page_of(patient)))
    assert page.count('<tr class="voided">') == 2 and "<del>" in page and "Entered in error</strong>" in page
    assert "No vitals recorded (except sets entered in error)." in page
    again = doc.post(f"/vitals/{second}/void", {}, headers=HTMX)
    assert again.status_code == 409 and "already marked entered in error" in text(again)


def test_the_database_allows_only_the_void_columns_to_change(triage, patient, sql):
    import sqlalchemy

    record(triage, patient, pulse="80")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="locked"):
        sql("UPDATE vitals SET taken_at = taken_at - interval '1 day'")
    sql("UPDATE vitals SET voided_at = now()")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="already closed"):
        sql("UPDATE vitals SET voided_at = now() + interval '1 minute'")


# --- htmx and plain variants, links to the consultation -------------------------------------------------

def test_htmx_gets_the_panel_and_plain_forms_go_back_to_next(triage, patient):
    triage.get(page_of(patient))
    fragment = triage.post(page_of(patient), {"pulse": "90", "next": f"/patients/{patient}"}, headers=HTMX)
    body = text(fragment)
    assert fragment.status_code == 200 and body.lstrip().startswith('<section id="vitals-panel"')
    assert "<html" not in body and "Vitals recorded." in body and "90 /min" in body
    assert "HX-Request" in fragment.headers["Vary"]
    plain = triage.post(page_of(patient), {"pulse": "91", "next": f"/patients/{patient}"})
    assert plain.status_code == 303 and plain.headers["Location"] == f"/patients/{patient}"
    elsewhere = triage.post(page_of(patient), {"pulse": "92", "next": "https://evil.example/"})
    assert elsewhere.headers["Location"] == page_of(patient)
    panel = triage.get(page_of(patient), headers=HTMX)
    assert panel.status_code == 200 and "<html" not in text(panel) and "92 /min" in text(panel)
    assert "<html" in text(triage.get(page_of(patient)))


def test_a_set_taken_at_an_appointment_is_linked_to_it(triage, patient, appointment, doctor, sql, register,
                                                        clinic):
    response = record(triage, patient, pulse="80", appointment_id=str(appointment))
    assert response.status_code == 303
    assert sql("SELECT appointment_id::text FROM vitals") == [(str(appointment),)]
    assert sql("SELECT doctor_id::text FROM timeline_event WHERE kind = 'vitals'") == [(str(doctor.id),)]
    other = patient_id(register(full_name="Someone Else"))
    refused = record(triage, other, pulse="80", appointment_id=str(appointment))
    assert refused.status_code == 400 and count(sql, "vitals") == 1


def test_a_set_recorded_in_an_encounter_is_linked_to_it(triage, patient, appointment, doctor, sql, clinic):
    from app.db import new_id

    encounter = new_id()
    sql("INSERT INTO encounter (clinic_id, id, patient_id, doctor_id, appointment_id, status, started_at, "
        "key_version, version, updated_at) VALUES (:c, :i, :p, :d, :a, 'open', now(), 1, 1, now())",
        c=clinic.id, i=encounter, p=patient, d=doctor.id, a=appointment)
    response = record(triage, patient, htmx=True, pulse="80", encounter_id=str(encounter))
    body = text(response)
    assert response.status_code == 200
    assert f'name="encounter_id" value="{encounter}"' in body and f'name="appointment_id" value="{appointment}"' in body
    assert sql("SELECT encounter_id::text, appointment_id::text FROM vitals") == [(str(encounter), str(appointment))]


# --- Audit, roles, clinics ---------------------------------------------------------------------------------

def test_reads_and_writes_are_audited_once(triage, patient, sql):
    mark = high_water(sql)
    triage.get(page_of(patient))
    assert [(a, o, p) for a, o, p, *_ in audit_since(sql, mark)] == [("vitals.view", "allowed", patient)]
    mark = high_water(sql)
    triage.post(page_of(patient), {"pulse": "80"}, headers=HTMX)
    assert [a for a, *_ in audit_since(sql, mark)] == ["vitals.record"]
    mark = high_water(sql)
    triage.post(page_of(patient), {"pulse": "8000"}, headers=HTMX)
    assert [a for a, *_ in audit_since(sql, mark)] == ["vitals.view"]  # the refused form still showed vitals
    mark = high_water(sql)
    triage.post(page_of(patient), {"pulse": "81"})
    assert [a for a, *_ in audit_since(sql, mark)] == ["vitals.record"]
    assert sql("SELECT object_id = (SELECT id FROM vitals ORDER BY taken_at DESC LIMIT 1) FROM audit_event "
               "WHERE action = 'vitals.record' ORDER BY seq DESC LIMIT 1") == [(True,)]


@pytest.mark.parametrize("role", NON_CLINICAL)
def test_roles_without_clinical_access_are_refused_and_see_no_values(role, triage, sign_in, patient, sql):
    record(triage, patient, systolic="163", diastolic="97")
    vitals_id = sql("SELECT id::text FROM vitals")[0][0]
    browser = sign_in(role)
    browser.get("/")
    mark = high_water(sql)
    responses = [browser.get(page_of(patient)), browser.get(page_of(patient), headers=HTMX),
                 browser.post(page_of(patient), {"pulse": "80", "csrf_token": browser.token}),
                 browser.post(f"/vitals/{vitals_id}/void", {"csrf_token": browser.token}, headers=HTMX)]
    for response in responses:
        assert response.status_code == 403
        assert "163/97" not in text(response) and "163" not in text(response)
    assert [o for _, o, *_ in audit_since(sql, mark)] == ["denied"] * 4
    assert count(sql, "vitals") == 1 and sql("SELECT voided_at FROM vitals") == [(None,)]


def test_a_doctor_without_a_care_relationship_still_records_vitals(doc, patient, sql):
    response = record(doc, patient, pulse="77")
    assert response.status_code == 303 and "77 /min" in text(doc.get(page_of(patient)))


def test_another_clinics_patient_is_not_found(triage, patient, factory, other_clinic, new_browser, sql):
    record(triage, patient, pulse="99")
    vitals_id = sql("SELECT id::text FROM vitals")[0][0]
    outsider = new_browser()
    outsider.sign_in(factory.person(other_clinic, Role.DOCTOR, name="Dr Elsewhere"))
    outsider.get("/")
    mark = high_water(sql)
    assert outsider.get(page_of(patient)).status_code == 404
    assert outsider.post(page_of(patient), {"pulse": "80", "csrf_token": outsider.token}).status_code == 404
    assert outsider.post(f"/vitals/{vitals_id}/void", {"csrf_token": outsider.token}).status_code == 404
    assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [
        ("vitals.view", "denied"), ("vitals.record", "denied"), ("vitals.void", "denied")]
    assert count(sql, "vitals") == 1 and sql("SELECT voided_at FROM vitals") == [(None,)]


def test_the_page_costs_the_same_queries_for_many_sets(app, triage, patient):
    record(triage, patient, pulse="70", systolic="120", diastolic="80")
    few = queries(app, lambda: triage.get(page_of(patient)))
    for pulse in range(71, 83):
        triage.post(page_of(patient), {"pulse": str(pulse), "systolic": "120", "diastolic": "80"})
    many = queries(app, lambda: triage.get(page_of(patient)))
    assert many == few


def queries(app, call) -> int:
    engine = app.extensions["db_engine"]
    seen = []

    def count_it(*args):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", count_it)
    try:
        assert call().status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count_it)
    return len(seen)


def test_the_consultation_screen_carries_the_panel_and_its_forms_return_there(doc, patient, appointment, doctor,
                                                                               sql, clinic):
    from app.db import new_id

    encounter = new_id()
    sql("INSERT INTO encounter (clinic_id, id, patient_id, doctor_id, appointment_id, status, started_at, "
        "key_version, version, updated_at) VALUES (:c, :i, :p, :d, :a, 'open', now(), 1, 1, now())",
        c=clinic.id, i=encounter, p=patient, d=doctor.id, a=appointment)
    screen = f"/encounters/{encounter}"
    panel = text(doc.get(screen)).split('<section id="vitals-panel"')[1].split("</section>")[0]
    assert f'name="next" value="{screen}"' in panel and f'name="encounter_id" value="{encounter}"' in panel
    response = doc.post(page_of(patient), {"pulse": "140", "next": screen, "encounter_id": str(encounter)})
    assert response.status_code == 303 and response.headers["Location"] == screen
    panel = text(doc.get(screen)).split('<section id="vitals-panel"')[1].split("</section>")[0]
    assert re.search(r"140 /min\s*<span class=\"badge flag flag-high\">High</span>", panel)
    refused = doc.post(page_of(patient), {"pulse": "400", "next": screen, "encounter_id": str(encounter)})
    body = text(refused)
    assert refused.status_code == 422 and "<html" in body and f'name="next" value="{screen}"' in body
