"""Minimum necessary on the timeline: each role sees what happened and with whom; clinical values, note
text, diagnoses and drugs only for those `access_for` allows, in the page and in the htmx fragments."""

import re
from html import unescape

import pytest

from app.auth.policy import Role
from app.clinical.models import ChartKind
from tests.scheduling.conftest import audit_since, high_water
from tests.timeline.conftest import HTMX, ITEM_RE

NOTE, DIAGNOSIS, DRUG = "NOTE-SENTINEL-7f3a", "DIAGNOSIS-SENTINEL-2b9c", "DRUG-SENTINEL-41de"
ALLERGY, PROBLEM, ADDENDUM = "ALLERGY-SENTINEL-90aa", "PROBLEM-SENTINEL-c0c1", "ADDENDUM-SENTINEL-5e5e"
HIDDEN_FROM_EVERYONE = ("SUBJECTIVE-SENTINEL", "ADVICE-SENTINEL", "REASON-SENTINEL", "DETAIL-SENTINEL")
CLINICAL = (NOTE, DIAGNOSIS, DRUG, ALLERGY, PROBLEM, ADDENDUM, "182/111")


@pytest.fixture
def care_doctor(as_role):
    return as_role(Role.DOCTOR, "Dr Care Giver")


@pytest.fixture
def chart(patient, history, care_doctor):
    """A visit with the care doctor: every clinical kind, each with a sentinel; then 30 consent changes,
    so the clinical items are on the second page (reached by htmx or the "Older" link)."""
    doctor_id = care_doctor.person.id
    history.appointment(patient, doctor_id, actions=("booked", "check_in"), token=3)
    history.vitals(patient, {"systolic": 182, "diastolic": 111, "pulse": 88}, doctor_id=doctor_id)
    history.chart(patient, ChartKind.ALLERGY, {"substance": ALLERGY, "reaction": "rash", "severity": "severe"})
    history.chart(patient, ChartKind.PROBLEM, {"condition": PROBLEM, "code": "I10", "since": "2019", "note": ""})
    encounter_id = history.encounter(patient, doctor_id, assessment=f"{NOTE} stable on treatment",
                                     diagnoses=[DIAGNOSIS], addendum=ADDENDUM)
    history.prescription(patient, doctor_id, encounter_id, drugs=[DRUG])
    history.consents(patient, 30)
    return encounter_id


def everything(browser, patient: str) -> str:
    """The first page, and each further page as htmx asks for it and as a plain link opens it."""
    first = browser.get(f"/patients/{patient}/timeline")
    assert first.status_code == 200
    html = seen = first.get_data(as_text=True)
    while found := re.search(r'<a href="([^"]+)" rel="next">Older</a>', html):
        fragment, page = browser.get(unescape(found.group(1)), headers=HTMX), browser.get(unescape(found.group(1)))
        assert fragment.status_code == page.status_code == 200
        html = fragment.get_data(as_text=True)
        seen += html + page.get_data(as_text=True)
    return seen


def test_the_care_doctor_sees_the_clinical_content(care_doctor, patient, chart):
    html = everything(care_doctor, patient)
    for shown in CLINICAL:
        assert shown in html, shown
    assert "Allergy: ALLERGY-SENTINEL-90aa — rash (severe)" in html
    assert "Problem: PROBLEM-SENTINEL-c0c1 (I10), since 2019" in html
    assert f"{DIAGNOSIS} (I10)" in html
    assert f'href="/encounters/{chart}"' in html
    assert "Prescription No. 7 issued by Dr Care Giver" in html
    assert 'tl-flag-high' in html
    for hidden in HIDDEN_FROM_EVERYONE:
        assert hidden not in html


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.BILLING, Role.ADMIN])
def test_non_clinical_roles_see_what_happened_and_with_whom_only(as_role, role, patient, chart):
    html = everything(as_role(role), patient)
    for hidden in CLINICAL + HIDDEN_FROM_EVERYONE:
        assert hidden not in html, hidden
    assert "Consultation with Dr Care Giver — signed" in html
    assert "Consultation with Dr Care Giver — addendum added" in html
    assert "Vitals recorded" in html and "Prescription issued by Dr Care Giver" in html
    assert "Allergy/problem list updated" in html
    assert "/encounters/" not in html and "Prescription No." not in html


def test_billing_sees_neither_record_changes_nor_consent(as_role, patient, chart):
    billing = as_role(Role.BILLING)
    html = billing.get(f"/patients/{patient}/timeline").get_data(as_text=True)
    assert "Consultation with Dr Care Giver — signed" in html and "Checked in, token 3" in html
    for hidden in ("Registered", "consent given", "WhatsApp", 'value="consent"', 'value="record"', "Record changes"):
        assert hidden not in html, hidden
    assert "Older" not in html  # the 30 consent changes and the registration are not hers to page through
    assert ITEM_RE.findall(billing.get(f"/patients/{patient}/timeline?kind=consent").get_data(as_text=True)) == []


@pytest.mark.parametrize("role", [Role.NURSE, Role.DOCTOR])
def test_triage_without_care_relationship_sees_vitals_and_allergies_only(as_role, role, patient, chart):
    html = everything(as_role(role, "Someone Else"), patient)
    assert "182/111" in html and ALLERGY in html
    for hidden in (NOTE, DIAGNOSIS, DRUG, PROBLEM, ADDENDUM, *HIDDEN_FROM_EVERYONE):
        assert hidden not in html, hidden
    assert "Problem list updated" in html and "/encounters/" not in html


def test_a_nurse_after_breaking_the_glass_sees_the_summary_not_the_note(as_role, patient, chart, sql):
    nurse = as_role(Role.NURSE, "Nurse Nisha")
    page = f"/patients/{patient}/timeline"
    response = nurse.post(f"/patients/{patient}/break-glass",
                          {"reason": "Collapsed in the waiting room, need the history", "next": page}, page=page)
    assert response.status_code == 303
    mark = high_water(sql)
    html = everything(nurse, patient)
    for shown in (DIAGNOSIS, DRUG, PROBLEM, ALLERGY, "182/111"):
        assert shown in html, shown
    for hidden in (NOTE, ADDENDUM, *HIDDEN_FROM_EVERYONE):
        assert hidden not in html, hidden
    records = audit_since(sql, mark)
    assert len(records) == 3 and all(r[0] == "timeline.view" and r[5] is True for r in records)
    assert all(r[4].startswith("break-the-glass until ") for r in records)
