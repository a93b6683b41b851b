"""The patient registry over HTTP: register, duplicates, search, edit with history, consents, roles."""

import re

import pytest

from app.auth.policy import Role
from tests.conftest import patient_form
from tests.patients.conftest import search


def test_register_shows_the_patient_with_a_new_mrn(desk, register):
    url = register(full_name="Sunita Devi Sharma", phone="+91 98765 43210", abha_number="12345678901234",
                   email="sunita@example.in", address_line="4 Temple Street", city="Bengaluru", pin_code="560001")
    html = desk.get(url).get_data(as_text=True)
    for text in ["Sunita Devi Sharma", "MRN-000001", "+91 98765 43210", "12-3456-7890-1234", "sunita@example.in",
                 "4 Temple Street, Bengaluru, 560001", "Karnataka", "हिन्दी (Hindi)", "04 May 1980"]:
        assert text in html, text
    second = register(full_name="Anil Kumar", dob="1975-01-01")
    assert "MRN-000002" in desk.get(second).get_data(as_text=True)


def test_mrns_are_per_clinic(desk, register, factory, other_clinic, new_browser):
    register()
    other = new_browser()
    other.sign_in(factory.person(other_clinic, Role.RECEPTION))
    response = other.post("/patients/new", patient_form(full_name="Other Clinic Patient"), page="/patients/new")
    assert "MRN-000001" in other.get(response.headers["Location"]).get_data(as_text=True)


def test_age_instead_of_date_of_birth(desk, register):
    url = register(full_name="Old Man Kaka", dob="", age_years="70")
    html = desk.get(url).get_data(as_text=True)
    assert re.search(r"Male|Female", html) and "70 years" in html and "(age given)" in html


@pytest.mark.parametrize("overrides, field, message", [
    ({"phone": "12345", "guardian_phone": ""}, "phone", "not valid"),
    ({"dob": "2999-01-01"}, "dob", "cannot be in the future"),
    ({"dob": "", "age_years": ""}, "dob", "Enter the date of birth, or the age"),
    ({"dob": "2015-01-01"}, "guardian_name", "under 18 needs a guardian"),
    ({"abha_number": "1234"}, "abha_number", "14 digits"),
    ({"pin_code": "012345"}, "pin_code", "6 digits"),
    ({"full_name": ""}, "full_name", "This field is required"),
    ({"phone": "", "guardian_phone": ""}, "phone", "Enter the patient"),
    ({"email": "not-an-email"}, "email", "Invalid email"),
])
def test_bad_input_comes_back_with_the_error_beside_its_field(desk, overrides, field, message, sql):
    data = patient_form(**{"full_name": "Kept Name Here", "city": "Mysuru", **overrides})
    response = desk.post("/patients/new", data, page="/patients/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'id="{field}-error">[^<]*{message}', html), html[:3000]
    assert "Mysuru" in html and (not data["full_name"] or "Kept Name Here" in html)
    assert sql("SELECT count(*) FROM patient")[0][0] == 0


def test_htmx_form_errors_return_only_the_form(desk):
    desk.get("/patients/new")
    response = desk.post("/patients/new", patient_form(phone="1"), headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and html.lstrip().startswith('<form id="patient_form"') and "<html" not in html


def test_same_phone_is_offered_as_a_possible_duplicate(desk, register, sql):
    register(full_name="Ramesh Gupta", phone="9876500001", dob="1970-02-02")
    response = desk.post("/patients/new", patient_form(full_name="Priya Gupta", phone="98765 00001",
                                                       dob="2001-03-03"), page="/patients/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Is this one of these patients?" in html and "Ramesh Gupta" in html
    assert "Priya Gupta" in html  # the typed input is kept
    assert sql("SELECT count(*) FROM patient")[0][0] == 1
    confirmed = desk.post("/patients/new", patient_form(full_name="Priya Gupta", phone="98765 00001",
                                                        dob="2001-03-03", confirm_new="y"))
    assert confirmed.status_code == 303
    assert sql("SELECT count(*) FROM patient")[0][0] == 2


def test_same_name_and_date_of_birth_is_offered_as_a_possible_duplicate(desk, register):
    register(full_name="Meena  Kumari", dob="1990-09-09")
    response = desk.post("/patients/new", patient_form(full_name="meena kumari", dob="1990-09-09"),
                         page="/patients/new")
    assert response.status_code == 200 and "Meena Kumari" in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["sun", "SHAR", "devi", "sharma sun", "98765 43210", "+919876543210",
                                   "3210", "543210", "MRN-000001", "mrn 1", "12-3456-7890-1234"])
def test_search_finds_by_name_prefix_phone_last_digits_mrn_abha(desk, register, query):
    register(full_name="Sunita Devi Sharma", phone="9876543210", abha_number="12345678901234")
    register(full_name="Anil Kumar", phone="9123400000", dob="1971-01-01")
    html = search(desk, query)
    assert "Sunita Devi Sharma" in html and "Anil Kumar" not in html


def test_search_never_returns_another_clinics_patient(desk, register, factory, other_clinic, new_browser):
    other = new_browser()
    other.sign_in(factory.person(other_clinic, Role.RECEPTION))
    other.post("/patients/new", patient_form(full_name="Sunita Elsewhere", phone="9876543210"), page="/patients/new")
    register(full_name="Sunita Here", phone="9876543211")
    html = search(desk, "sunita")
    assert "Sunita Here" in html and "Sunita Elsewhere" not in html
    assert "Sunita Elsewhere" not in search(desk, "9876543210")


def test_search_page_works_without_javascript(desk, register):
    register(full_name="Plain Form Patient")
    html = search(desk, "plain", htmx=False)
    assert "<html" in html and "Plain Form Patient" in html


def test_search_fragment_for_htmx_and_no_match_message(desk, register):
    register()
    response_html = search(desk, "zzzz")
    assert "<html" not in response_html and "No patient matches" in response_html
    assert "Register a new patient" in response_html


def test_search_terms_are_never_in_a_url(desk, register):
    register(full_name="Private Person")
    page = desk.get("/patients/").get_data(as_text=True)
    assert 'method="post" action="/patients/search"' in page and "hx-get" not in page.split("<main")[1]


def test_edit_keeps_history_with_before_and_after(desk, register, sql):
    url = register(full_name="Kiran Rao", phone="9000000001")
    form = desk.get(url + "/edit").get_data(as_text=True)
    assert 'value="+919000000001"' in form
    response = desk.post(url + "/edit", patient_form(full_name="Kiran Rao", phone="9000000002", version="1"))
    assert response.status_code == 303
    html = desk.get(url).get_data(as_text=True)
    assert "+91 90000 00002" in html
    history = html.split("Record history")[1]
    assert "+919000000001" in history and "+919000000002" in history and "Ravi Reception" in history
    assert "9000000001" not in search(desk, "9000000001") or "Kiran Rao" not in search(desk, "9000000001")
    assert "Kiran Rao" in search(desk, "9000000002")
    assert sql("SELECT version FROM patient")[0][0] == 2


def test_edit_without_changes_writes_no_history(desk, register, sql):
    url = register(full_name="Same Same", phone="9000000011", dob="1980-05-04")
    desk.get(url + "/edit")
    response = desk.post(url + "/edit", patient_form(full_name="Same Same", phone="9000000011", version="1"))
    assert response.status_code == 303
    assert sql("SELECT count(*) FROM patient_history")[0][0] == 1


def test_edit_does_not_overwrite_someone_elses_change(desk, register, new_browser, factory, clinic):
    url = register(full_name="Race Condition", phone="9000000021")
    desk.get(url + "/edit")
    other = new_browser()
    other.sign_in(factory.person(clinic, Role.RECEPTION))
    other.get(url + "/edit")
    assert other.post(url + "/edit", patient_form(full_name="Race Condition", phone="9000000022",
                                                  version="1")).status_code == 303
    late = desk.post(url + "/edit", patient_form(full_name="Race Condition Mine", phone="9000000023", version="1"))
    assert late.status_code == 409
    html = late.get_data(as_text=True)
    assert "Someone else changed this record" in html and "Race Condition Mine" in html


def test_consent_given_and_withdrawn_keeps_the_ledger(desk, register, sql):
    url = register(consent_whatsapp="y")
    page = desk.get(url).get_data(as_text=True)
    assert re.search(r"WhatsApp reminders</td>\s*<td><strong class=\"ok\">Given", page)
    response = desk.post(url + "/consents", {"purpose": "whatsapp", "granted": "0", "method": "in_person"})
    assert response.status_code == 303
    page = desk.get(url).get_data(as_text=True)
    assert re.search(r"WhatsApp reminders</td>\s*<td><strong class=\"no\">Withdrawn", page)
    rows = sql("SELECT purpose, granted, method FROM consent_event WHERE purpose = 'whatsapp' ORDER BY at")
    assert rows == [("whatsapp", True, "in_person"), ("whatsapp", False, "in_person")]
    assert "Consent history (3)" in page  # treatment + whatsapp given, whatsapp withdrawn


@pytest.mark.parametrize("role", [Role.NURSE, Role.DOCTOR, Role.ADMIN])
def test_clinical_roles_see_the_full_record(role, register, factory, clinic, new_browser):
    url = register(full_name="Visible Patient", abha_number="12345678901234")
    viewer = new_browser()
    viewer.sign_in(factory.person(clinic, role))
    html = viewer.get(url).get_data(as_text=True)
    assert "Visible Patient" in html and "12-3456-7890-1234" in html and "Record history" in html


def test_billing_sees_name_and_contact_only(register, factory, clinic, new_browser):
    url = register(full_name="Billing View", abha_number="12345678901234", address_line="Secret Lane 5")
    billing = new_browser()
    billing.sign_in(factory.person(clinic, Role.BILLING))
    html = billing.get(url).get_data(as_text=True)
    assert "Billing View" in html
    for hidden in ["12-3456-7890-1234", "Secret Lane 5", "Record history", "Consent", "04 May 1980"]:
        assert hidden not in html, hidden
    assert billing.get(url + "/edit").status_code == 403


def test_nurse_cannot_register_or_edit(register, factory, clinic, new_browser):
    url = register()
    nurse = new_browser()
    nurse.sign_in(factory.person(clinic, Role.NURSE))
    assert nurse.get("/patients/new").status_code == 403
    assert nurse.get(url + "/edit").status_code == 403
    assert nurse.post(url + "/consents", {"purpose": "sms", "granted": "1", "method": "in_person"},
                      page=url).status_code == 403


def test_auditor_has_no_patient_access(register, factory, clinic, new_browser):
    url = register()
    auditor = new_browser()
    auditor.sign_in(factory.person(clinic, Role.AUDITOR))
    assert auditor.get(url).status_code == 403
    assert auditor.get("/patients/").status_code == 403


def test_another_clinics_patient_is_a_404(desk, factory, other_clinic, new_browser):
    other = new_browser()
    other.sign_in(factory.person(other_clinic, Role.RECEPTION))
    url = other.post("/patients/new", patient_form(), page="/patients/new").headers["Location"]
    assert desk.get(url).status_code == 404
    assert desk.get(url + "/edit").status_code == 404
    assert desk.get("/patients/00000000-0000-0000-0000-000000000000").status_code == 404


def test_nothing_readable_is_stored(register, sql):
    register(full_name="Zebulon Quixotic", phone="9812398123", email="zeb@quixotic.example",
             abha_number="91234567890123", address_line="77 Sentinel Road", pin_code="560077")
    dump = " ".join(str(v) for table in ("patient", "patient_token", "patient_history", "audit_event",
                                         "consent_event")
                    for row in sql(f"SELECT * FROM {table}") for v in row)
    dump += " ".join(bytes(v).decode("latin-1") for row in sql("SELECT full_name_enc, phone_enc FROM patient")
                     for v in row)
    for sentinel in ["Zebulon", "Quixotic", "9812398123", "quixotic.example", "91234567890123", "Sentinel", "560077"]:
        assert sentinel.lower() not in dump.lower(), sentinel
