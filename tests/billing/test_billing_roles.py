# ruff: noqa: F811
"""Who reaches the billing pages: the receptionist bills and issues but gets 403 for credit notes; the
billing clerk issues credit notes; nurses, auditors and doctors get 403 on the billing pages."""

import pytest

from app.auth.policy import Role
from tests.billing.conftest import accounts, billing_desk, doctor, gst_ready, patient, prices  # noqa: F401
from tests.billing.test_invoicing import FY, issued_bill, page
from tests.scheduling.conftest import sign_in  # noqa: F401


def test_the_receptionist_issues_but_cannot_credit(billing_desk, patient, prices, sql):
    bid = issued_bill(billing_desk, (prices.lab, 1), patient_id=patient)
    html = page(billing_desk, f"/bills/{bid}")
    assert f"BOS/{FY}/000001" in html and "Issue credit note" not in html
    assert billing_desk.get(f"/bills/{bid}/credit-note").status_code == 403
    assert billing_desk.post(f"/bills/{bid}/credit-note", {"reason": "cancel"}).status_code == 403
    assert sql("SELECT count(*) FROM bill WHERE original_id = :b", b=bid)[0][0] == 0


def test_the_billing_clerk_issues_credit_notes(accounts, billing_desk, patient, prices):
    bid = issued_bill(billing_desk, (prices.lab, 1), patient_id=patient)
    assert "Issue credit note" in page(accounts, f"/bills/{bid}")
    assert "Why is the credit note issued?" in page(accounts, f"/bills/{bid}/credit-note")
    assert accounts.post(f"/bills/{bid}/credit-note", {"reason": "cancel"}).status_code == 303


@pytest.mark.parametrize("role", [Role.NURSE, Role.AUDITOR, Role.DOCTOR])
def test_other_roles_are_refused_the_billing_pages(role, sign_in, billing_desk, patient, prices):
    bid = issued_bill(billing_desk, (prices.lab, 1), patient_id=patient)
    browser = sign_in(role)
    assert browser.get("/billing").status_code == 403
    assert browser.get(f"/bills/{bid}").status_code == 403
    assert browser.post("/bills/new", {"patient_id": patient}).status_code == 403


def test_a_document_of_another_clinic_is_not_found(billing_desk, patient, prices, factory, new_browser):
    bid = issued_bill(billing_desk, (prices.lab, 1), patient_id=patient)
    elsewhere = factory.clinic("Lakeside Clinic")
    browser = new_browser()
    browser.sign_in(factory.person(elsewhere, Role.BILLING))
    assert browser.get(f"/bills/{bid}").status_code == 404
    assert browser.get(f"/bills/{bid}/credit-note").status_code == 404
