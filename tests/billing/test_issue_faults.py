# ruff: noqa: F811
"""Issuing under a real database fault: the issue's transaction committed, then the PostgreSQL backend
that was about to save the sign-in session was terminated. The desk sees what was committed (the issued
documents), never an error inviting a second bill, and sending the same issue form again shows the
documents already issued instead of issuing anything."""

from tests.billing.conftest import (  # noqa: F401
    BUYER_GSTIN,
    bill_id,
    billing_desk,
    gst_ready,
    patient,
    prices,
)
from tests.billing.test_invoicing import FY, add, new_bill, page, version_of
from tests.conftest import backend_killed_at
from tests.scheduling.conftest import HTMX


def session_save_killed(app, owner_engine):
    """The backend that writes the sign-in session after the request's work is terminated as it starts."""
    return backend_killed_at(app, owner_engine, "UPDATE user_session", "INSERT INTO user_session")


def mixed_draft(browser, patient, prices) -> str:
    """A registered buyer's draft with an exempt and a taxable line: it issues as two documents."""
    bid = new_bill(browser, patient_id=patient)
    add(browser, bid, prices.consultation)
    add(browser, bid, prices.medicine)
    response = browser.post(f"/bills/{bid}/recipient", {
        "name": "Acme Pharma Ltd", "gstin": BUYER_GSTIN, "state_code": "27", "city": "Mumbai",
        "address_line": "Plot 4, MIDC Andheri"}, page=f"/bills/{bid}")
    assert response.status_code == 303
    return bid


def issued(sql) -> list[tuple]:
    return sql("SELECT number FROM bill WHERE status = 'issued' ORDER BY number")


def test_a_blip_after_the_issue_commits_shows_the_documents_issued(billing_desk, patient, prices, sql, app,
                                                                    owner_engine):
    bid = mixed_draft(billing_desk, patient, prices)
    form = {"version": version_of(page(billing_desk, f"/bills/{bid}"))}
    with session_save_killed(app, owner_engine) as killed:
        response = billing_desk.post(f"/bills/{bid}/issue", form)
    assert killed, "the session save never ran: the fault was not injected"
    assert response.status_code == 303 and bill_id(response.headers["Location"]) == bid
    documents = [(f"BOS/{FY}/000001",), (f"INV/{FY}/000001",)]
    assert issued(sql) == documents
    html = page(billing_desk, f"/bills/{bid}")  # still signed in: the session row kept its last state
    assert f"INV/{FY}/000001" in html and "Add line" not in html

    # The desk, unsure, sends the same issue form again: no error and no second bill, the two documents named.
    for headers in ({}, HTMX):
        response = billing_desk.post(f"/bills/{bid}/issue", form, headers=headers)
        assert response.status_code in (204, 303)
        location = response.headers.get("HX-Redirect") or response.headers["Location"]
        assert bill_id(location) == bid
        html = page(billing_desk, location)
        assert f"This draft was already issued as INV/{FY}/000001 and BOS/{FY}/000001." in html
    assert issued(sql) == documents


def test_a_blip_with_an_htmx_issue_answers_the_redirect_to_the_document(billing_desk, patient, prices, sql, app,
                                                                        owner_engine):
    bid = new_bill(billing_desk, patient_id=patient)
    add(billing_desk, bid, prices.lab)
    form = {"version": version_of(page(billing_desk, f"/bills/{bid}"))}
    with session_save_killed(app, owner_engine) as killed:
        response = billing_desk.post(f"/bills/{bid}/issue", form, headers=HTMX)
    assert killed
    assert response.status_code == 204 and bill_id(response.headers["HX-Redirect"]) == bid
    assert issued(sql) == [(f"BOS/{FY}/000001",)]
    assert f"BOS/{FY}/000001" in page(billing_desk, f"/bills/{bid}")
