"""Regression tests from the review of the PHI core."""

from app.audit.trail import csv_cell
from app.auth.policy import Role
from tests.conftest import patient_id
from tests.patients.conftest import search


def test_impossible_dates_on_the_audit_page_are_reported_not_a_500(as_admin):
    for query in ("to=9999-12-31", "from=0001-01-01", "to=2024-02-30"):
        response = as_admin.get(f"/audit/?{query}")
        assert response.status_code == 200, query
        with as_admin.client.get(f"/audit/export.csv?{query}") as export:
            assert export.status_code in (200, 422), query


def test_patient_names_are_not_in_the_page_title(desk, register):
    html = desk.get(register(full_name="Title Leak")).get_data(as_text=True)
    assert "<title>Patient record" in html and "Title Leak ·" not in html


def test_names_that_begin_with_mrn_are_found(desk, register):
    register(full_name="Mrnalini Rao")
    assert "Mrnalini Rao" in search(desk, "mrnal")
    assert "Mrnalini Rao" in search(desk, "MRN-000001")


def test_a_control_character_in_the_user_agent_is_still_audited(factory, clinic, register, new_browser, sql):
    url = register()
    nurse = new_browser()
    nurse.sign_in(factory.person(clinic, Role.NURSE))
    response = nurse.get(url + "/edit", headers={"User-Agent": "evil\x00agent\x1fx"})
    assert response.status_code == 403
    assert sql("SELECT user_agent FROM audit_event WHERE outcome = 'denied'") == [("evilagentx",)]


def test_billing_view_decrypts_only_contact_details(factory, clinic, register, new_browser):
    url = register(full_name="Contact Only", address_line="Hidden Street 9")
    billing = new_browser()
    billing.sign_in(factory.person(clinic, Role.BILLING))
    html = billing.get(url).get_data(as_text=True)
    assert "Contact Only" in html and "Hidden Street" not in html


def test_csv_guard_covers_spaces_and_full_width_signs():
    for value in (" =1+1", "\uff1d1+1", "\n=1+1", "-2", "@x"):
        assert csv_cell(value).startswith("'"), value
    assert csv_cell("Ravi") == "Ravi"


def test_break_glass_review_rules(app, admin, factory, clinic, register, new_browser, sql):
    from app.db import get_session, set_tenant
    from app.patients import break_glass

    pid = patient_id(register())
    with app.test_request_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=admin.id)
        grant = break_glass.open_grant(db, clinic_id=clinic.id, user_id=admin.id, patient_id=pid,
                                       reason="Emergency, patient collapsed at desk")
        db.commit()
        grant_id = grant.id
    own = new_browser()
    own.sign_in(admin)
    assert own.post(f"/break-glass/{grant_id}/review", {}, page="/").status_code == 403
    other = new_browser()
    other.sign_in(factory.person(clinic, Role.ADMIN, name="Second Admin"))
    assert other.post(f"/break-glass/{grant_id}/review", {}, page="/").status_code == 303
    assert other.post(f"/break-glass/{grant_id}/review", {}, page="/").status_code == 303  # already reviewed
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'break_glass.review'")[0][0] == 1
    missing = other.post("/break-glass/00000000-0000-0000-0000-000000000000/review", {}, page="/")
    assert missing.status_code == 404
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'break_glass.review' AND outcome = 'denied'")[0][0] == 1


def test_who_looked_keeps_the_mrn_out_of_urls(register, factory, clinic, new_browser):
    import re

    register(full_name="Url Private")
    auditor = new_browser()
    auditor.sign_in(factory.person(clinic, Role.AUDITOR))
    auditor.get("/audit/")
    response = auditor.post("/audit/", {"mrn": "MRN-000001"})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "MRN" not in location.upper() and re.search(r"patient=[0-9a-f-]{36}", location)
    html = auditor.get(location).get_data(as_text=True)
    assert "Who looked at MRN-000001" in html
    assert not re.search(r'href="[^"]*mrn=', html, re.IGNORECASE)
    unknown = auditor.post("/audit/", {"mrn": "MRN-009999"})
    assert unknown.status_code == 200 and "No patient in this clinic has the MRN" in unknown.get_data(as_text=True)
