"""Every page addressed by an id loads it through one helper (`load_or_404`): an id that is not one of
this clinic's rows answers 404 and leaves a denied audit record naming what was asked for."""

import uuid

import pytest

from app.auth.policy import PUBLIC, ROLE_PERMISSIONS, Role
from tests.billing.conftest import billing_desk, gst_ready, patient, prices  # noqa: F401
from tests.billing.test_invoicing import issued_bill

ROLES = (Role.ADMIN, Role.DOCTOR, Role.NURSE)  # between them, every permission a `<uuid>` page needs


def denied_since(sql, mark: int) -> list[tuple]:
    return sql("SELECT action, object_type, object_id::text, reason FROM audit_event "
               "WHERE seq > :s AND outcome = 'denied' ORDER BY seq", s=mark)


def high_water(sql) -> int:
    return sql("SELECT coalesce(max(seq), 0) FROM audit_event")[0][0]


def test_another_clinics_patient_and_bill_are_not_found_and_the_look_is_recorded(
        billing_desk, patient, prices, factory, new_browser, sql):  # noqa: F811
    bill = issued_bill(billing_desk, (prices.lab, 1), patient_id=patient)
    outsider = new_browser()
    outsider.sign_in(factory.person(factory.clinic("Lakeside Clinic"), Role.ADMIN))
    mark = high_water(sql)
    assert outsider.get(f"/patients/{patient}").status_code == 404
    assert outsider.get(f"/bills/{bill}").status_code == 404
    assert denied_since(sql, mark) == [("patient.view", "patient", patient, "not found in this clinic"),
                                       ("bill.view", "bill", bill, "not found in this clinic")]


def uuid_routes(app) -> list:
    """(rule, method) of every signed-in page whose address holds an id."""
    return [(rule, method) for rule in app.url_map.iter_rules() if "<uuid:" in rule.rule
            and getattr(app.view_functions[rule.endpoint], "permission", PUBLIC) != PUBLIC
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]


def ask(browser, rule, method: str) -> tuple[object, set[str]]:
    """Request the page with a new random id in each place; the response and the ids."""
    ids = {name: str(uuid.uuid4()) for name in rule.arguments}
    url = rule.rule
    for name, value in ids.items():
        url = url.replace(f"<uuid:{name}>", value)
    return (browser.get(url) if method == "GET" else browser.post(url, {})), set(ids.values())


def test_every_page_addressed_by_an_id_refuses_an_unknown_one_with_a_denied_record(app, factory, clinic,
                                                                                    new_browser, sql):
    browsers = {role: new_browser() for role in ROLES}
    for role, browser in browsers.items():
        browser.sign_in(factory.person(clinic, role))
        browser.get("/")  # the signed-in session's CSRF token (the one from the sign-in page is not valid past it)
    routes = uuid_routes(app)
    assert len(routes) > 60
    wrong = []
    for rule, method in routes:
        role = next(r for r in ROLES if app.view_functions[rule.endpoint].permission in ROLE_PERMISSIONS[r])
        mark = high_water(sql)
        response, ids = ask(browsers[role], rule, method)
        records = denied_since(sql, mark)
        if response.status_code != 404 or len(records) != 1 or records[0][2] not in ids:
            wrong.append((rule.endpoint, method, response.status_code, records))
    assert wrong == [], wrong


@pytest.mark.parametrize(("endpoint", "object_type"), [
    ("patients.show", "patient"), ("billing.show", "bill"), ("scheduling.appointment", "appointment"),
    ("billing_setup.item", "price_item"), ("staff.show", "staff")])
def test_the_record_names_what_was_asked_for(app, as_admin, sql, endpoint, object_type):
    mark = high_water(sql)
    response, ids = ask(as_admin, next(app.url_map.iter_rules(endpoint)), "GET")
    assert response.status_code == 404
    assert [(t, i) for _a, t, i, _r in denied_since(sql, mark)] == [(object_type, ids.pop())]
