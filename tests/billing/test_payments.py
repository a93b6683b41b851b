# ruff: noqa: F811
"""Payments, refunds and receipts over HTTP: the receptionist takes money (partial, by UPI, cash...), bad
amounts and missing references are refused with the form as typed, two desks never both take the last
rupee, the billing clerk refunds what a credit note left owed, and each receipt prints what it must."""

import re
import uuid
from decimal import Decimal

import pytest
import sqlalchemy

from app.billing import credit_notes, issuing, services
from app.billing.models import Bill, CreditReason, PriceItem
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.patients.models import Patient
from app.scheduling.services import today
from tests.billing.conftest import accounts, billing_desk, gst_ready, patient, prices  # noqa: F401
from tests.scheduling.conftest import HTMX, at_once, audit_since, high_water

RECEIPT = re.compile(r"RCT/\d\d-\d\d/\d{6}")


def _issue(app, clinic, patient, item_id, quantity="1", *, issue=True) -> str:
    """A document for the patient made through the services (committed), as an id string."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c = db.get(Clinic, clinic.id)
        day = today(c)
        bill = services.new_draft(db, clinic=c, patient=db.get(Patient, (clinic.id, uuid.UUID(patient))),
                                  appointment=None, by=None, day=day)
        services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, item_id)), quantity=Decimal(quantity),
                          discount=None, by=None, day=day)
        if issue:
            [bill] = issuing.issue(db, clinic=c, bill=bill, by=None, day=day)
        db.commit()
        return str(bill.id)


@pytest.fixture
def invoice(app, clinic, billing_desk, accounts, patient, prices) -> str:
    """An issued tax invoice for ₹7,080.00 (a cosmetic procedure at 18%), made after the browsers (which
    fetch the bills list for a form token)."""
    for browser in (billing_desk, accounts):
        assert browser.get("/billing").status_code == 200
    return _issue(app, clinic, patient, prices.cosmetic)


def _cancel(app, clinic, bill_id: str) -> None:
    """Cancel the document with a full credit note (through the services)."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c = db.get(Clinic, clinic.id)
        credit_notes.issue_credit_note(db, clinic=c, original=db.get(Bill, (clinic.id, uuid.UUID(bill_id))),
                                   quantities={}, reason=CreditReason.CANCEL, by=None, day=today(c))
        db.commit()


def pay(browser, bill_id, *, htmx=False, refund=False, **form):
    url = f"/bills/{bill_id}/{'refunds' if refund else 'payments'}"
    return browser.post(url, form, headers=HTMX if htmx else {})


def html(response) -> str:
    return response.get_data(as_text=True)


def _receipts(text: str) -> list[str]:
    return re.findall(r'href="(/payments/[0-9a-f-]{36}/receipt)"', text)


# --- Taking payment ---------------------------------------------------------------------------------

def test_panel_offers_the_balance_due_with_the_four_modes(billing_desk, invoice):
    response = pay(billing_desk, invoice, htmx=True, mode="upi", amount="80", reference="412345678901")
    body = html(response)
    assert response.status_code == 200 and 'id="payments"' in body and "<html" not in body
    assert "Balance due" in body and "₹7,000.00" in body
    for label in ("Cash", "UPI", "Card", "Bank transfer"):
        assert f"> {label}</label>" in body
    assert 'name="amount" value="7000.00"' in body  # the amount defaults to the balance due
    assert "412345678901" in body and "Ritu Desk" in body and RECEIPT.search(body)


def test_document_page_shows_the_panel_without_javascript(billing_desk, invoice):
    body = html(billing_desk.get(f"/bills/{invoice}"))
    assert 'id="payments"' in body and "Take payment" in body and "₹7,080.00" in body
    assert f'action="/bills/{invoice}/payments"' in body


def test_partial_upi_then_cash_for_the_rest_is_paid_in_full(billing_desk, invoice, sql):
    first = pay(billing_desk, invoice, htmx=True, mode="upi", amount="5000", reference="412345678901")
    assert first.status_code == 200
    assert "₹2,080.00" in html(first) and "Balance due" in html(first)

    rest = pay(billing_desk, invoice, mode="cash", amount="2,080")  # without JavaScript
    assert rest.status_code == 303 and rest.headers["Location"].endswith(f"/bills/{invoice}")
    notice = html(billing_desk.get("/patients/new"))
    assert re.search(r"Received ₹2,080.00 by Cash — receipt RCT/\d\d-\d\d/000002", notice)

    again = pay(billing_desk, invoice, htmx=True, mode="cash", amount="1")
    assert again.status_code == 409
    assert "Paid in full" in html(again) and "Nothing is due" in html(again)
    assert 'name="mode"' not in html(again)  # no payment form when nothing is due
    rows = sql("SELECT mode, amount, reference FROM payment WHERE bill_id = :b ORDER BY received_at", b=invoice)
    assert [(m, str(a), r) for m, a, r in rows] == [("upi", "5000.00", "412345678901"), ("cash", "2080.00", None)]


def test_upi_without_reference_is_refused_with_the_amount_kept(billing_desk, invoice, sql):
    response = pay(billing_desk, invoice, htmx=True, mode="upi", amount="1234.50", reference=" ")
    body = html(response)
    assert response.status_code == 422 and "<html" not in body
    assert "Enter the UPI transaction reference (UTR)." in body
    assert 'value="1234.50"' in body and re.search(r'value="upi"[^>]*checked', body)
    assert 'aria-invalid="true"' in body

    page = pay(billing_desk, invoice, mode="bank", amount="99")  # without JavaScript: a page around the panel
    assert page.status_code == 422 and "<html" in html(page) and 'id="payments"' in html(page)
    assert "Enter the bank UTR." in html(page) and 'value="99"' in html(page)
    assert sql("SELECT count(*) FROM payment WHERE bill_id = :b", b=invoice)[0][0] == 0


@pytest.mark.parametrize("amount, message", [
    ("7080.01", "At most ₹7,080.00."), ("0", "Must be more than zero."), ("-5", "Must be more than zero."),
    ("five hundred", "Enter an amount."), ("10.555", "Enter an amount."), ("", "Enter an amount."),
])
def test_bad_amounts_are_refused(billing_desk, invoice, sql, amount, message):
    response = pay(billing_desk, invoice, htmx=True, mode="cash", amount=amount)
    assert response.status_code == 422
    assert message in html(response) and f'value="{amount}"' in html(response)
    assert sql("SELECT count(*) FROM payment WHERE bill_id = :b", b=invoice)[0][0] == 0


def test_no_payment_on_a_draft(app, clinic, billing_desk, patient, prices, sql):
    draft = _issue(app, clinic, patient, prices.lab, issue=False)
    response = pay(billing_desk, draft, htmx=True, mode="cash", amount="400")
    assert response.status_code == 409
    assert "Payments are taken against an issued invoice" in html(response)
    assert sql("SELECT count(*) FROM payment WHERE bill_id = :b", b=draft)[0][0] == 0


def test_another_clinics_bill_is_not_found(billing_desk, invoice):
    assert pay(billing_desk, uuid.uuid4(), mode="cash", amount="1").status_code == 404


def test_two_desks_cannot_both_take_the_last_rupee(billing_desk, accounts, invoice, sql):
    both = at_once([lambda: pay(billing_desk, invoice, htmx=True, mode="cash", amount="7080"),
                    lambda: pay(accounts, invoice, htmx=True, mode="upi", amount="7080", reference="UTR55")])
    assert sorted(r.status_code for r in both) == [200, 409]
    refused = next(r for r in both if r.status_code == 409)
    assert "Nothing is due on INV/" in html(refused) and "Paid in full" in html(refused)
    assert sql("SELECT count(*), sum(amount) FROM payment WHERE bill_id = :b", b=invoice)[0] == (1, Decimal("7080"))


def test_payment_is_audited(billing_desk, invoice, patient, sql):
    mark = high_water(sql)
    pay(billing_desk, invoice, htmx=True, mode="card", amount="100", reference="4242")
    pay(billing_desk, invoice, htmx=True, mode="card", amount="0")
    records = audit_since(sql, mark)
    assert [(action, outcome, pid) for action, outcome, pid, *_ in records] == [
        ("payment.take", "allowed", patient), ("payment.take", "allowed", patient)]
    assert records[1][4] == "not saved: invalid"
    [(object_type,)] = sql("SELECT object_type FROM audit_event WHERE seq = :s", s=mark + 1)
    assert object_type == "payment"


def test_payments_are_append_only(billing_desk, invoice, sql):
    pay(billing_desk, invoice, htmx=True, mode="cash", amount="100")
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        sql("UPDATE payment SET amount = 1 WHERE bill_id = :b", b=invoice)
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        sql("DELETE FROM payment WHERE bill_id = :b", b=invoice)
    assert sql("SELECT amount FROM payment WHERE bill_id = :b", b=invoice) == [(Decimal("100.00"),)]


# --- Refunds --------------------------------------------------------------------------------------

def test_refund_after_a_cancel_credit_note(app, clinic, billing_desk, accounts, invoice, patient, sql):
    pay(billing_desk, invoice, htmx=True, mode="upi", amount="5000", reference="412345678901")
    _cancel(app, clinic, invoice)
    panel = pay(billing_desk, invoice, htmx=True, mode="cash", amount="1")
    assert panel.status_code == 409 and "₹5,000.00 to refund to the patient" in html(panel)
    assert "Record refund" not in html(panel)  # the receptionist cannot refund

    assert pay(billing_desk, invoice, refund=True, mode="cash", amount="5000").status_code == 403

    too_much = pay(accounts, invoice, htmx=True, refund=True, mode="cash", amount="5000.01")
    assert too_much.status_code == 422 and "At most ₹5,000.00" in html(too_much)
    assert "Record refund" in html(too_much) and 'value="5000.01"' in html(too_much)

    mark = high_water(sql)
    done = pay(accounts, invoice, refund=True, mode="upi", amount="5000", reference="REF77")
    assert done.status_code == 303
    assert "Refunded ₹5,000.00 by UPI — receipt RCT/" in html(accounts.get("/patients/new"))
    assert [(a, o, p) for a, o, p, *_ in audit_since(sql, mark)][:1] == [("payment.refund", "allowed", patient)]
    assert sql("SELECT kind, amount FROM payment WHERE bill_id = :b ORDER BY received_at", b=invoice) == [
        ("payment", Decimal("5000.00")), ("refund", Decimal("5000.00"))]


def test_refund_without_a_credit_note_is_refused(accounts, invoice):
    response = pay(accounts, invoice, htmx=True, refund=True, mode="cash", amount="10")
    assert response.status_code == 409 and "issue a credit note first" in html(response)


# --- Receipts -------------------------------------------------------------------------------------

def test_receipt_shows_number_amount_in_words_and_balance_after(billing_desk, accounts, invoice, patient, sql):
    first = pay(billing_desk, invoice, htmx=True, mode="upi", amount="5000", reference="412345678901")
    second = pay(billing_desk, invoice, htmx=True, mode="cash", amount="2080")
    [url_first, url_second] = _receipts(html(second))
    assert _receipts(html(first)) == [url_first]

    mark = high_water(sql)
    page = accounts.get(url_first)
    body = html(page)
    assert page.status_code == 200 and "Payment receipt" in body
    assert re.search(r"RCT/\d\d-\d\d/000001", body) and "₹5,000.00" in body
    assert "Rupees Five Thousand Only" in body
    assert "₹2,080.00 due" in body  # the balance just after this payment, not today's
    assert "Kavya Iyer" in body and "Ritu Desk" in body and "29AABCR1718E1ZL" in body
    assert "Rao Health Clinics Private Limited" in body and "412345678901" in body
    assert re.search(r"INV/\d\d-\d\d/000001 dated", body) and "data-print" in body
    assert [(a, o, p) for a, o, p, *_ in audit_since(sql, mark)] == [("payment.receipt", "allowed", patient)]

    last = html(accounts.get(url_second))
    assert "Rupees Two Thousand Eighty Only" in last and "Nil (paid in full)" in last


def test_refund_voucher(app, clinic, billing_desk, accounts, invoice):
    pay(billing_desk, invoice, htmx=True, mode="cash", amount="7080")
    _cancel(app, clinic, invoice)
    panel = pay(accounts, invoice, htmx=True, refund=True, mode="cash", amount="7080")
    assert panel.status_code == 200 and "Refund" in html(panel)
    body = html(accounts.get(_receipts(html(panel))[-1]))
    assert "Refund voucher" in body and "Paid to" in body and "Rupees Seven Thousand Eighty Only" in body
    assert "Nil (paid in full)" in body


def test_unknown_receipt_is_not_found(accounts, invoice):
    assert accounts.get(f"/payments/{uuid.uuid4()}/receipt").status_code == 404
