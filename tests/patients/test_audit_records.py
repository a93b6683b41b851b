"""Every PHI read and write path writes exactly one audit record; refusals are recorded; no record, no PHI."""

import pytest
from sqlalchemy import event as sa_event

from app.auth.policy import Role
from tests.conftest import patient_form, patient_id


def _new_records(sql, since: int) -> list[tuple]:
    return sql("SELECT action, outcome, patient_id::text, array_length(patient_ids, 1) FROM audit_event "
               "WHERE seq > :s ORDER BY seq", s=since)


def _high_water(sql) -> int:
    return sql("SELECT coalesce(max(seq), 0) FROM audit_event")[0][0]


@pytest.mark.parametrize("path, method, expected", [
    ("{url}", "get", "patient.view"),
    ("{url}/edit", "get", "patient.edit_form"),
    ("/patients/search", "post", "patient.search"),
    ("{url}/edit", "post", "patient.update"),
    ("{url}/consents", "post", "consent.change"),
    ("/patients/new", "post", "patient.create"),
])
def test_each_phi_path_writes_exactly_one_record(desk, register, sql, path, method, expected):
    url = register(full_name="Counted Patient")
    desk.get(url)
    mark = _high_water(sql)
    target = path.format(url=url)
    if method == "get":
        response = desk.get(target)
    else:
        data = {
            "/patients/search": {"q": "counted"},
            f"{url}/edit": patient_form(full_name="Counted Patient", phone="9811111111", version="1"),
            f"{url}/consents": {"purpose": "sms", "granted": "1", "method": "in_person"},
            "/patients/new": patient_form(full_name="Another One", dob="1970-07-07"),
        }[target]
        response = desk.post(target, data)
    assert response.status_code in (200, 303)
    records = _new_records(sql, mark)
    assert [r[0] for r in records] == [expected], records
    _action, outcome, pid, shown = records[0]
    assert outcome == "allowed"
    if expected == "patient.search":
        assert shown == 1 and pid is None
    elif expected != "patient.create":
        assert pid == patient_id(url)


def test_a_page_of_search_results_is_one_record_naming_every_patient_shown(desk, register, sql):
    for i in range(3):
        register(full_name=f"Family Member{i} Rao", dob=f"199{i}-01-01")
    mark = _high_water(sql)
    desk.get("/patients/")
    desk.post("/patients/search", {"q": "rao"})
    assert [(r[0], r[3]) for r in _new_records(sql, mark)] == [("patient.search", 3)]


def test_cross_clinic_request_is_a_404_with_a_denied_record(desk, factory, other_clinic, new_browser, sql):
    other = new_browser()
    other.sign_in(factory.person(other_clinic, Role.RECEPTION))
    url = other.post("/patients/new", patient_form(), page="/patients/new").headers["Location"]
    mark = _high_water(sql)
    assert desk.get(url).status_code == 404
    records = _new_records(sql, mark)
    assert [(r[0], r[1]) for r in records] == [("patient.view", "denied")]
    clinic_of_record = sql("SELECT c.name FROM audit_event a JOIN clinic c ON c.id = a.clinic_id WHERE seq > :s",
                           s=mark)
    assert clinic_of_record == [("Sunrise Clinic",)]  # recorded in the asking clinic's trail


def test_a_role_refused_is_recorded(register, factory, clinic, new_browser, sql):
    url = register()
    billing = new_browser()
    billing.sign_in(factory.person(clinic, Role.BILLING))
    mark = _high_water(sql)
    assert billing.get(url + "/edit").status_code == 403
    assert [(r[0], r[1], r[2]) for r in _new_records(sql, mark)] == [
        ("denied:patients.edit", "denied", patient_id(url))]


def test_no_audit_record_means_no_phi(app, desk, register, sql):
    """If the audit insert fails, the page fails too: no PHI leaves without its record."""
    url = register(full_name="Fail Closed")
    engine = app.extensions["db_engine"]

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT"):
            raise RuntimeError("audit store unavailable")

    sa_event.listen(engine, "before_cursor_execute", refuse)
    try:
        response = desk.get(url)
    finally:
        sa_event.remove(engine, "before_cursor_execute", refuse)
    assert response.status_code == 500
    assert "Fail Closed" not in response.get_data(as_text=True)
