# ruff: noqa: F811  (fixtures imported from test_vitals are redefined as arguments, as pytest means)
"""Allergies and problems over HTTP: the allergy line, "no known allergies" and its automatic end, ICD-10
codes normalised or refused, entries ended (never edited) with their history, who may see and change
what, htmx and plain variants, timeline rows and audit records, another clinic's patient."""

import pytest
import sqlalchemy

from app.auth.policy import Role
from app.clinical.chart import describe
from app.clinical.models import ChartKind
from app.db import new_id
from tests.clinical.test_vitals import (  # noqa: F401  (fixtures)
    NON_CLINICAL,
    appointment,
    count,
    doc,
    doctor,
    nurse,
    patient,
    sign_in,
    text,
    triage,
)
from tests.conftest import patient_id
from tests.scheduling.conftest import HTMX, audit_since, high_water, insert_appointment, today


def chart_of(patient: str) -> str:
    return f"/patients/{patient}/chart"


def add_allergy(browser, patient, htmx=False, page=True, **fields):
    """Submit the allergy form (by default fetching the chart page first, for its CSRF token)."""
    return browser.post(f"/patients/{patient}/allergies", fields, page=chart_of(patient) if page else None,
                        headers=HTMX if htmx else {})


def add_problem(browser, patient, htmx=False, page=True, **fields):
    return browser.post(f"/patients/{patient}/problems", fields, page=chart_of(patient) if page else None,
                        headers=HTMX if htmx else {})


def end(browser, item, reason, htmx=False, patient=None):
    return browser.post(f"/chart-items/{item}/end", {"reason": reason}, page=chart_of(patient) if patient else None,
                        headers=HTMX if htmx else {})


def banner(page: str) -> str:
    return page.split('class="allergy-banner')[1].split("</p>")[0]


def items(sql, kind: str) -> list[tuple]:
    return sql("SELECT id::text, end_reason FROM chart_item WHERE kind = :k ORDER BY recorded_at", k=kind)


# --- The shapes other parts use -------------------------------------------------------------------------

def test_describe_gives_one_line_per_entry():
    assert describe(ChartKind.ALLERGY, {"substance": "Penicillin", "reaction": "rash", "severity": "severe"}) == (
        "Allergy: Penicillin — rash (severe)")
    assert describe(ChartKind.ALLERGY, {"substance": "Peanuts", "reaction": "", "severity": ""}) == "Allergy: Peanuts"
    assert describe(ChartKind.NO_KNOWN_ALLERGIES, None) == "No known allergies"
    assert describe(ChartKind.PROBLEM, {"condition": "Asthma", "code": "J45.9", "since": "2019", "note": ""}) == (
        "Problem: Asthma (J45.9), since 2019")


# --- Allergies ------------------------------------------------------------------------------------------

def test_an_allergy_is_recorded_and_heads_the_panel(triage, patient, nurse, sql):
    assert banner(text(triage.get(chart_of(patient)))).endswith("<strong>Allergies: Not recorded</strong>")
    response = add_allergy(triage, patient, substance="Penicillin", reaction="rash", severity="severe")
    assert response.status_code == 303 and response.headers["Location"] == chart_of(patient)
    add_allergy(triage, patient, substance="Sulfa drugs")
    page = text(triage.get(chart_of(patient)))
    assert "Allergies: Sulfa drugs, Penicillin (severe)" in banner(page) and "has-allergies" in banner(page)
    assert "Allergy recorded." in page and "— rash" in page
    assert sql("SELECT kind, action, by::text FROM timeline_event WHERE kind = 'chart'") == [
        ("chart", "recorded", str(nurse.id))] * 2
    assert sql("SELECT count(*) FROM chart_item WHERE position('Penicillin'::bytea IN details_enc) > 0") == [(0,)]


def test_no_known_allergies_is_its_own_entry_and_ends_when_an_allergy_is_recorded(triage, patient, sql):
    add_allergy(triage, patient, nka="1")
    assert banner(text(triage.get(chart_of(patient)))).endswith("<strong>No known allergies</strong>")
    twice = add_allergy(triage, patient, htmx=True, nka="1")
    assert twice.status_code == 409 and "already recorded" in text(twice)
    mark = high_water(sql)
    add_allergy(triage, patient, page=False, substance="Ibuprofen", reaction="wheeze", severity="moderate")
    assert [a for a, *_ in audit_since(sql, mark)] == ["chart.record", "chart.end"]
    assert [r for _, r in items(sql, "nka")] == ["resolved"]
    assert sql("SELECT action FROM timeline_event WHERE kind = 'chart' ORDER BY at, action DESC") == [
        ("recorded",), ("recorded",), ("ended",)]
    page = text(triage.get(chart_of(patient)))
    assert "Allergies: Ibuprofen (moderate)" in banner(page)
    past = page.split('class="past-entries"')[1].split("</details>")[0]
    assert "No known allergies" in past and "Superseded by a recorded allergy" in past and "Nisha Nurse" in past
    refused = add_allergy(triage, patient, htmx=True, nka="1")
    assert refused.status_code == 409 and "Allergies are on the list" in text(refused)
    assert count(sql, "chart_item") == 2


def test_an_allergy_needs_a_substance_and_keeps_what_was_typed(triage, patient, sql):
    response = add_allergy(triage, patient, substance="  ", reaction="hives", severity="mild")
    body = text(response)
    assert response.status_code == 422 and "<html" in body
    assert "Name the substance" in body and 'name="reaction" value="hives"' in body
    assert '<option value="mild" selected>' in body and 'id="allergy-substance-error"' in body
    long = add_allergy(triage, patient, htmx=True, substance="x" * 121)
    assert long.status_code == 422 and "Keep it to 120 characters." in text(long) and "<html" not in text(long)
    assert count(sql, "chart_item") == 0 and count(sql, "timeline_event WHERE kind = 'chart'") == 0


def test_an_allergy_entered_in_error_is_struck_through_in_past_entries(triage, patient, sql):
    add_allergy(triage, patient, substance="Aspirin")
    item = items(sql, "allergy")[0][0]
    ended = end(triage, item, "error", htmx=True, patient=patient)
    body = text(ended)
    assert ended.status_code == 200 and "Entered in error: moved to past entries." in body
    assert "<del>Allergy: Aspirin</del>" in body and "Allergies: Not recorded" in banner(body)
    assert "<html" not in body
    assert sql("SELECT end_reason, ended_by IS NOT NULL FROM chart_item") == [("error", True)]
    again = end(triage, item, "resolved", htmx=True)
    assert again.status_code == 409 and "already ended" in text(again)


# --- Problems -------------------------------------------------------------------------------------------

def test_problems_take_icd10_codes(doc, patient, appointment, sql):
    response = add_problem(doc, patient, condition="", code="j069", since="2024")
    assert response.status_code == 303
    add_problem(doc, patient, condition="Diabetes, on metformin", code=" e11 9 ", since="2019", note="HbA1c 7.2")
    page = text(doc.get(chart_of(patient)))
    problems = page.split('class="chart-problems"')[1]
    assert "<strong>Acute upper respiratory infection, unspecified</strong>" in problems
    assert '<span class="badge icd">J06.9</span>' in problems and '<span class="badge icd">E11.9</span>' in problems
    assert "Diabetes, on metformin" in problems and "since 2019" in problems and "HbA1c 7.2" in problems
    for code in ("ZZ99", "J00-J06", "E11.99"):
        wrong = add_problem(doc, patient, htmx=True, condition="Flu", code=code, since="last week")
        body = text(wrong)
        assert wrong.status_code == 422 and "is not an ICD-10 code" in body, code
        assert 'name="condition" value="Flu"' in body and 'name="since" value="last week"' in body
    empty = add_problem(doc, patient, htmx=True, condition="", code="")
    assert empty.status_code == 422 and "Name the condition, or give its ICD-10 code." in text(empty)
    assert count(sql, "chart_item") == 2


def test_a_resolved_problem_moves_to_past_entries_with_who_and_when(doc, patient, appointment, sql):
    add_problem(doc, patient, condition="Plantar fasciitis", since="March 2023")
    item = items(sql, "problem")[0][0]
    doc.get(chart_of(patient))
    mark = high_water(sql)
    response = end(doc, item, "resolved")
    assert response.status_code == 303
    assert [a for a, *_ in audit_since(sql, mark)] == ["chart.end"]
    page = text(doc.get(chart_of(patient)))
    assert "No problems listed." in page
    past = page.split('class="past-entries"')[1].split("</details>")[0]
    assert "Problem: Plantar fasciitis, since March 2023" in past and "<strong>Resolved</strong>" in past
    assert "Dr Meera Rao" in past and "<del>" not in past
    assert sql("SELECT action FROM timeline_event WHERE kind = 'chart' ORDER BY at") == [("recorded",), ("ended",)]
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="already closed"):
        sql("UPDATE chart_item SET end_reason = 'error'")


def test_entries_are_never_edited(doc, patient, appointment, sql):
    add_problem(doc, patient, condition="Asthma")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="locked"):
        sql("UPDATE chart_item SET recorded_at = now() - interval '1 day'")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="never deleted"):
        sql("DELETE FROM chart_item")


def test_no_known_allergies_cannot_be_resolved_by_hand(triage, patient, sql):
    add_allergy(triage, patient, nka="1")
    item = items(sql, "nka")[0][0]
    refused = end(triage, item, "resolved", htmx=True, patient=patient)
    assert refused.status_code == 422 and "Choose how it ended." in text(refused)
    assert end(triage, item, "error", htmx=True).status_code == 200
    assert [r for _, r in items(sql, "nka")] == ["error"]


# --- Who sees and changes what -------------------------------------------------------------------------------

def test_a_doctor_without_a_care_relationship_has_allergies_but_not_problems(doc, sign_in, patient, sql, clinic,
                                                                              doctor):
    other = sign_in(Role.DOCTOR, name="Dr Treating")
    treating_id = sql("SELECT id FROM staff_user WHERE full_name = 'Dr Treating'")[0][0]
    insert_appointment(sql, clinic.id, treating_id, patient, day=today(), status="arrived", token=1)
    add_problem(other, patient, condition="Hypothyroidism", code="E03.9")
    problem = items(sql, "problem")[0][0]

    assert add_allergy(doc, patient, substance="Latex").status_code == 303
    page = text(doc.get(chart_of(patient)))
    assert "Allergies: Latex" in banner(page) and "Hypothyroidism" not in page and "Problems" not in page
    mark = high_water(sql)
    assert add_problem(doc, patient, page=False, condition="Sentinel condition").status_code == 403
    refused = end(doc, problem, "resolved")
    assert refused.status_code == 403 and "Hypothyroidism" not in text(refused)
    assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [("chart.record", "denied"), ("chart.end", "denied")]
    assert count(sql, "chart_item WHERE kind = 'problem'") == 1


def test_a_nurse_sees_problems_only_after_breaking_the_glass_and_never_changes_them(triage, nurse, doc, patient,
                                                                                     appointment, sql, clinic):
    add_problem(doc, patient, condition="Epilepsy", code="G40.9")
    page = text(triage.get(chart_of(patient)))
    assert "Epilepsy" not in page and "Problems" not in page
    sql("INSERT INTO break_glass (clinic_id, id, user_id, patient_id, reason, started_at, expires_at) "
        "VALUES (:c, :i, :u, :p, 'seizure in the waiting room', now(), now() + interval '1 hour')",
        c=clinic.id, i=new_id(), u=nurse.id, p=patient)
    mark = high_water(sql)
    page = text(triage.get(chart_of(patient)))
    assert "Epilepsy" in page and "Add a problem" not in page
    assert [(a, f) for a, _, _, _, _, f in audit_since(sql, mark)] == [("chart.view", True)]
    assert add_problem(triage, patient, condition="Sentinel").status_code == 403  # not the nurse's to write
    problem = items(sql, "problem")[0][0]
    assert end(triage, problem, "resolved").status_code == 403


@pytest.mark.parametrize("role", NON_CLINICAL)
def test_roles_without_clinical_access_are_refused_and_see_nothing(role, triage, doc, appointment, sign_in,
                                                                   patient, sql):
    add_allergy(triage, patient, substance="Sentinel-allergen")
    add_problem(doc, patient, condition="Sentinel-condition")
    item = items(sql, "allergy")[0][0]
    browser = sign_in(role)
    browser.get("/")
    mark = high_water(sql)
    token = {"csrf_token": browser.token}
    responses = [browser.get(chart_of(patient)), browser.get(chart_of(patient), headers=HTMX),
                 browser.post(f"/patients/{patient}/allergies", {**token, "substance": "x"}),
                 browser.post(f"/patients/{patient}/allergies", {**token, "nka": "1"}, headers=HTMX),
                 browser.post(f"/patients/{patient}/problems", {**token, "condition": "x"}),
                 browser.post(f"/chart-items/{item}/end", {**token, "reason": "error"})]
    for response in responses:
        assert response.status_code == 403
        assert "Sentinel" not in text(response)
    assert [o for _, o, *_ in audit_since(sql, mark)] == ["denied"] * len(responses)
    assert count(sql, "chart_item") == 2 and count(sql, "chart_item WHERE ended_at IS NOT NULL") == 0


def test_another_clinics_patient_is_not_found(triage, patient, factory, other_clinic, new_browser, sql):
    add_allergy(triage, patient, substance="Penicillin")
    item = items(sql, "allergy")[0][0]
    outsider = new_browser()
    outsider.sign_in(factory.person(other_clinic, Role.NURSE, name="Nurse Elsewhere"))
    outsider.get("/")
    token = {"csrf_token": outsider.token}
    mark = high_water(sql)
    assert outsider.get(chart_of(patient)).status_code == 404
    assert outsider.post(f"/patients/{patient}/allergies", {**token, "substance": "x"}).status_code == 404
    assert outsider.post(f"/chart-items/{item}/end", {**token, "reason": "error"}).status_code == 404
    assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [
        ("chart.view", "denied"), ("chart.record", "denied"), ("chart.end", "denied")]
    assert count(sql, "chart_item") == 1 and count(sql, "chart_item WHERE ended_at IS NOT NULL") == 0


# --- htmx, plain forms, audit -----------------------------------------------------------------------------

def test_htmx_gets_the_panel_and_plain_forms_go_back_to_next(triage, patient, register):
    fragment = add_allergy(triage, patient, htmx=True, substance="Egg", next=f"/patients/{patient}")
    body = text(fragment)
    assert fragment.status_code == 200 and body.lstrip().startswith('<section id="chart-panel"')
    assert "Allergy recorded." in body and "Allergies: Egg" in body and "HX-Request" in fragment.headers["Vary"]
    plain = add_allergy(triage, patient, substance="Milk", next=f"/patients/{patient}")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/patients/{patient}"
    assert triage.get(chart_of(patient), headers=HTMX).get_data(as_text=True).lstrip().startswith("<section")
    assert "<html" in text(triage.get(chart_of(patient)))


def test_reads_and_writes_are_audited_once(triage, patient, sql):
    mark = high_water(sql)
    triage.get(chart_of(patient))
    assert [(a, o, p) for a, o, p, *_ in audit_since(sql, mark)] == [("chart.view", "allowed", patient)]
    mark = high_water(sql)
    triage.post(f"/patients/{patient}/allergies", {"substance": "Dust"}, headers=HTMX)
    assert [a for a, *_ in audit_since(sql, mark)] == ["chart.record"]
    mark = high_water(sql)
    triage.post(f"/patients/{patient}/allergies", {"substance": ""}, headers=HTMX)
    assert [a for a, *_ in audit_since(sql, mark)] == ["chart.view"]


def test_an_entry_made_in_a_consultation_names_it(doc, patient, appointment, sql, clinic, doctor, register):
    encounter = new_id()
    sql("INSERT INTO encounter (clinic_id, id, patient_id, doctor_id, appointment_id, status, started_at, "
        "key_version, version, updated_at) VALUES (:c, :i, :p, :d, :a, 'open', now(), 1, 1, now())",
        c=clinic.id, i=encounter, p=patient, d=doctor.id, a=appointment)
    response = add_problem(doc, patient, htmx=True, condition="Migraine", encounter_id=str(encounter))
    assert response.status_code == 200 and f'name="encounter_id" value="{encounter}"' in text(response)
    assert sql("SELECT encounter_id::text FROM chart_item") == [(str(encounter),)]
    assert sql("SELECT doctor_id::text FROM timeline_event WHERE kind = 'chart'") == [(str(doctor.id),)]
    stranger = patient_id(register(full_name="Not This One"))
    assert add_allergy(doc, stranger, substance="x", encounter_id=str(encounter)).status_code == 400
