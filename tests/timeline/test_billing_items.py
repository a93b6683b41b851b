# ruff: noqa: F811
"""Bills and payments on the patient's timeline: real documents issued and paid through the billing
services, read over HTTP by each role. The desk and accounts see the document, its number, date, total
and payments with links; the doctor who saw the patient sees the amounts without links; a nurse sees
neither kind; a doctor who never saw the patient sees that a bill was issued, not what it came to."""

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import unescape

import pytest

from app.auth.policy import Role
from app.billing import credit_notes, issuing, payments, services
from app.billing.models import Bill, CreditReason, PaymentMode, PriceItem
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.patients.models import Patient
from app.scheduling.models import Appointment
from tests.billing.conftest import (  # noqa: F401
    accounts,
    billing_desk,
    completed_visit,
    consultation_type,
    doctor,
    gst_ready,
    patient,
    prices,
)
from tests.timeline.conftest import HTMX, ITEM_RE

DAY = date(2026, 11, 20)
AT = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # 11:30 in Bengaluru


@pytest.fixture
def browsers(new_browser, factory, clinic, doctor):
    """A browser per role: the doctor who saw the patient, another doctor, a nurse."""
    made = {}
    for key, person in (("doctor", doctor), ("other_doctor", factory.person(clinic, Role.DOCTOR, name="Dr Other")),
                        ("nurse", factory.person(clinic, Role.NURSE, name="Nurse Nisha"))):
        browser = new_browser()
        browser.sign_in(person)
        made[key] = browser
    return made


@pytest.fixture
def documents(app, clinic, sql, doctor, browsers, billing_desk, accounts, patient, prices):
    """A paid consultation with two strips of medicine (INV/26-27/000001, one strip returned by a credit note
    and refunded), and a lab bill cancelled (BOS/26-27/000001, partly paid by UPI before)."""
    type_id = consultation_type(sql, clinic.id)
    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=type_id, day=DAY)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c = db.get(Clinic, clinic.id)
        person = db.get(Patient, (clinic.id, uuid.UUID(patient)))
        bill = services.new_draft(db, clinic=c, patient=person, appointment=db.get(Appointment, (clinic.id, visit)),
                                  by=None, day=DAY)
        services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, prices.medicine)), quantity=Decimal(2),
                          discount=None, by=None, day=DAY)
        [invoice] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY, now=AT)
        cash = payments.take_payment(db, invoice, mode=PaymentMode.CASH, amount=invoice.rounded_total, reference=None,
                                     by=None, day=DAY, now=AT + timedelta(minutes=1))
        medicine = next(line for line in services.lines_of(db, invoice) if line.item_id == prices.medicine)
        note = credit_notes.issue_credit_note(db, clinic=c, original=invoice, quantities={medicine.id: Decimal(1)},
                                          reason=CreditReason.RETURN, by=None, day=DAY, now=AT + timedelta(minutes=2))
        refund = payments.refund(db, invoice, mode=PaymentMode.CASH, amount=Decimal("35.00"), reference=None, by=None,
                                 day=DAY, now=AT + timedelta(minutes=3))
        lab = services.new_draft(db, clinic=c, patient=person, appointment=None, by=None, day=DAY)
        services.add_line(db, lab, item=db.get(PriceItem, (clinic.id, prices.lab)), quantity=Decimal(1),
                          discount=None, by=None, day=DAY)
        [bos] = issuing.issue(db, clinic=c, bill=lab, by=None, day=DAY, now=AT + timedelta(minutes=4))
        upi = payments.take_payment(db, bos, mode=PaymentMode.UPI, amount=Decimal("100.00"),
                                    reference="412345678901", by=None, day=DAY, now=AT + timedelta(minutes=5))
        cancel = credit_notes.issue_credit_note(db, clinic=c, original=bos, quantities={}, reason=CreditReason.CANCEL,
                                            by=None, day=DAY, now=AT + timedelta(minutes=6))
        db.commit()
        ids = {"invoice": invoice.id, "note": note.id, "bos": bos.id, "cancel": cancel.id, "cash": cash.id,
               "refund": refund.id, "upi": upi.id}
        assert [db.get(Bill, (clinic.id, ids[k])).number for k in ("invoice", "note", "bos", "cancel")] == [
            "INV/26-27/000001", "CN/26-27/000001", "BOS/26-27/000001", "CN/26-27/000002"]
    return ids


def page(browser, patient, query="") -> str:
    response = browser.get(f"/patients/{patient}/timeline{query}")
    assert response.status_code == 200
    return unescape(response.get_data(as_text=True))


@pytest.mark.parametrize("who", ["desk", "accounts"])
def test_the_desk_and_accounts_see_documents_and_payments_with_links(who, billing_desk, accounts, patient,
                                                                    documents):
    browser = billing_desk if who == "desk" else accounts
    html = page(browser, patient)
    for shown in ("Invoice-cum-bill of supply INV/26-27/000001", "₹570.00", "Dated 20 Nov 2026",
                  "Credit note CN/26-27/000001", "Against INV/26-27/000001", "₹35.00",
                  "Bill of supply BOS/26-27/000001", "₹400.00", "Cancelled", "Credit note CN/26-27/000002",
                  "Against BOS/26-27/000001", "Payment received by Cash", "Refund paid by Cash",
                  "Payment received by UPI", "₹100.00", "Receipt RCT/26-27/000001 against INV/26-27/000001",
                  "Receipt RCT/26-27/000002 for INV/26-27/000001",
                  "Receipt RCT/26-27/000003 against BOS/26-27/000001"):
        assert shown in html, shown
    for key in ("invoice", "note", "bos", "cancel"):
        assert f'href="/bills/{documents[key]}"' in html
    for key in ("cash", "refund", "upi"):
        assert f'href="/payments/{documents[key]}/receipt"' in html
    assert re.search(r'tl-invoice struck"[^>]*>.*?BOS/26-27/000001</a> <strong class="tl-amount">₹400.00', html, re.S)
    # The filter offers the two kinds and keeps only what was asked for, in the page and the htmx fragment.
    assert 'value="invoice"> Bills' in html and 'value="payment"> Payments' in html
    only_bills = page(browser, patient, "?kind=invoice")
    assert len(ITEM_RE.findall(only_bills)) == 4 and "Payment received" not in only_bills
    fragment = unescape(browser.get(f"/patients/{patient}/timeline?kind=payment", headers=HTMX)
                        .get_data(as_text=True))
    assert len(ITEM_RE.findall(fragment)) == 3 and "Tax invoice" not in fragment and "INV/26-27/000001" in fragment


def test_the_doctor_who_saw_the_patient_sees_amounts_without_links(browsers, patient, documents):
    html = page(browsers["doctor"], patient)
    for shown in ("Invoice-cum-bill of supply INV/26-27/000001", "₹570.00", "Payment received by Cash",
                  "Receipt RCT/26-27/000001 against INV/26-27/000001", "Credit note CN/26-27/000001"):
        assert shown in html, shown
    assert "/bills/" not in html and "/receipt" not in html


def test_another_doctor_sees_that_a_bill_was_issued_not_its_amount(browsers, patient, documents):
    html = page(browsers["other_doctor"], patient)
    assert "Bill issued" in html and "Payment received" in html and "Credit note issued" in html
    for hidden in ("INV/26-27", "RCT/26-27", "₹", "/bills/", "Cash", "UPI"):
        assert hidden not in html, hidden


def test_a_nurse_sees_neither_bills_nor_payments(browsers, patient, documents):
    html = page(browsers["nurse"], patient)
    for hidden in ("Bill issued", "Payment received", "Credit note", "INV/26-27", "₹", 'value="invoice"',
                   'value="payment"'):
        assert hidden not in html, hidden
    assert "Visit completed" in html or "Registered" in html  # the rest of the timeline is still there
    assert ITEM_RE.findall(page(browsers["nurse"], patient, "?kind=invoice&kind=payment")) == []
