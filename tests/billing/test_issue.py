# ruff: noqa: F811
"""Issuing, numbering, credit notes and payments at the service level against the migrated database:
the right document type, numbers consecutive per series and financial year (also from many
connections at once), an issued document frozen by the database, fee validity, balances."""

import threading
import uuid
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy

from app.billing import credit_notes, issuing, payments, services
from app.billing.forms import RecipientForm
from app.billing.models import Bill, BillLine, CreditReason, PaymentMode, PriceItem
from app.billing.tax import Discount, DocumentType
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.patients.models import Patient
from app.scheduling.models import Appointment
from tests.billing.conftest import (  # noqa: F401
    BUYER_GSTIN,
    accounts,
    add_item,
    billing_desk,
    completed_visit,
    consultation_type,
    doctor,
    gst_ready,
    patient,
    prices,
)

DAY = date(2026, 11, 20)


@pytest.fixture
def db(app, clinic, patient, prices):
    """A session in the clinic (made after the HTTP fixtures: an open app context would leak into requests)."""
    with app.app_context():
        session = get_session()
        set_tenant(session, clinic_id=clinic.id, user_id=None)
        yield session
        session.rollback()


def _draft(db, clinic, patient, *items, appointment=None, day=DAY, recipient=None):
    c = db.get(Clinic, clinic.id)
    bill = services.new_draft(db, clinic=c, patient=db.get(Patient, (clinic.id, uuid.UUID(patient))),
                              appointment=appointment, by=None, day=day)
    if recipient:
        services.set_recipient(db, bill, {**services.recipient_of(db, bill), **recipient}, by=None)
    for item_id, quantity, *discount in items:
        services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, item_id)), quantity=Decimal(quantity),
                          discount=discount[0] if discount else None, by=None, day=day)
    return c, bill


def test_mixed_bill_to_a_patient_is_one_invoice_cum_bill_of_supply(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))
    assert bill.kind is DocumentType.INVOICE_CUM_BILL_OF_SUPPLY
    [issued] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    db.commit()
    assert issued.number == "INV/26-27/000001"
    # 2 strips at MRP 35 at 5%: CGST = SGST = 70 x 2.5 / 105 = 1.67; taxable 66.66; the MRP is the total.
    assert (issued.exempt_value, issued.taxable_value, issued.cgst, issued.sgst) == (
        Decimal("500.00"), Decimal("66.66"), Decimal("1.67"), Decimal("1.67"))
    assert issued.rounded_total == Decimal("570.00") and issued.round_off == Decimal("0.00")


def test_rate_in_force_on_the_issue_date_is_stored_on_the_line(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.medicine, 1))
    [issued] = issuing.issue(db, clinic=c, bill=bill, by=None, day=date(2025, 9, 21))
    assert issued.kind is DocumentType.TAX_INVOICE and issued.number == "INV/25-26/000001"
    [line] = services.lines_of(db, issued)
    assert line.rate == Decimal("12.00")
    # A later rate change touches nothing issued.
    db.commit()
    assert services.lines_of(db, issued)[0].rate == Decimal("12.00")


def test_exempt_only_is_a_bill_of_supply_in_its_own_series(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.consultation, 1), (prices.lab, 1))
    [issued] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    assert issued.kind is DocumentType.BILL_OF_SUPPLY and issued.number == "BOS/26-27/000001"
    assert (issued.cgst, issued.sgst, issued.igst) == (Decimal(0), Decimal(0), Decimal(0))


def test_registered_recipient_with_mixed_lines_gets_two_documents(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.consultation, 1), (prices.medicine, 1),
                     recipient={"gstin": BUYER_GSTIN, "name": "Acme Pharma Ltd", "state_code": "27"})
    assert bill.kind is None  # split at issue
    invoice, supply = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    assert invoice.kind is DocumentType.TAX_INVOICE and supply.kind is DocumentType.BILL_OF_SUPPLY
    [goods] = services.lines_of(db, invoice)
    assert goods.inter_state and goods.place_of_supply == "27" and goods.igst == Decimal("1.67")
    assert [ln.description for ln in services.lines_of(db, supply)] == ["General consultation"]


def test_an_issued_document_and_its_lines_are_frozen_by_the_database(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.cosmetic, 1))
    issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    db.commit()
    for statement in ("UPDATE bill SET total = 1 WHERE id = :i", "DELETE FROM bill WHERE id = :i",
                      "UPDATE bill_line SET total = 1 WHERE bill_id = :i", "DELETE FROM bill_line WHERE bill_id = :i"):
        with pytest.raises(sqlalchemy.exc.DBAPIError, match=r"issued|never deleted|locked"):
            db.execute(sqlalchemy.text(statement), {"i": bill.id})
        db.rollback()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
    with pytest.raises(services.BillingError):
        services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, prices.lab)), quantity=Decimal(1),
                          discount=None, by=None, day=DAY)


def test_fee_validity_makes_a_follow_up_with_the_same_doctor_free(db, sql, clinic, patient, prices, doctor):
    kind = consultation_type(sql, clinic.id)
    first = completed_visit(sql, clinic.id, doctor.id, patient, type_id=kind, day=date(2026, 11, 14))
    c, bill = _draft(db, clinic, patient, appointment=db.get(Appointment, (clinic.id, first)), day=date(2026, 11, 14))
    [paid] = issuing.issue(db, clinic=c, bill=bill, by=None, day=date(2026, 11, 14))
    assert paid.rounded_total == Decimal("500.00")
    again = completed_visit(sql, clinic.id, doctor.id, patient, type_id=kind, day=DAY)
    c, follow_up = _draft(db, clinic, patient, appointment=db.get(Appointment, (clinic.id, again)))
    [line] = services.lines_of(db, follow_up)
    assert follow_up.rounded_total == Decimal("0.00") and paid.number in line.note
    later = completed_visit(sql, clinic.id, doctor.id, patient, type_id=kind, day=date(2026, 11, 30))
    c, late = _draft(db, clinic, patient, appointment=db.get(Appointment, (clinic.id, later)), day=date(2026, 11, 30))
    assert late.rounded_total == Decimal("500.00")


def test_credit_notes_partial_then_the_rest_and_cancellation(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.consultation, 1), (prices.medicine, 3, Discount(Decimal("10.00"))))
    [invoice] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    medicine = services.lines_of(db, invoice)[1]
    first = credit_notes.issue_credit_note(db, clinic=c, original=invoice, quantities={medicine.id: Decimal(1)},
                                       reason=CreditReason.RETURN, by=None, day=DAY)
    rest = credit_notes.issue_credit_note(db, clinic=c, original=invoice, quantities={medicine.id: Decimal(2)},
                                      reason=CreditReason.RETURN, by=None, day=DAY)
    assert (first.number, rest.number) == ("CN/26-27/000001", "CN/26-27/000002")
    assert first.total + rest.total == -medicine.total  # pieces add up to the whole line, to the paisa
    with pytest.raises(services.Invalid):
        credit_notes.issue_credit_note(db, clinic=c, original=invoice, quantities={medicine.id: Decimal(1)},
                                   reason=CreditReason.RETURN, by=None, day=DAY)
    _, other = _draft(db, clinic, patient, (prices.lab, 1))
    [other] = issuing.issue(db, clinic=c, bill=other, by=None, day=DAY)
    note = credit_notes.issue_credit_note(db, clinic=c, original=other, quantities={}, reason=CreditReason.CANCEL,
                                      by=None, day=DAY)
    assert other.cancelled_at is not None and note.rounded_total == Decimal("-400.00")


def test_partial_payments_balance_and_refund_after_a_credit_note(db, clinic, patient, prices):
    c, bill = _draft(db, clinic, patient, (prices.cosmetic, 1))
    [invoice] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    assert invoice.rounded_total == Decimal("7080.00")
    payments.take_payment(db, invoice, mode=PaymentMode.UPI, amount=Decimal("5000"), reference="412345678901",
                          by=None, day=DAY)
    assert payments.account_of(db, invoice).due == Decimal("2080.00")
    with pytest.raises(services.Invalid):
        payments.take_payment(db, invoice, mode=PaymentMode.CASH, amount=Decimal("2080.01"), reference=None,
                              by=None, day=DAY)
    credit_notes.issue_credit_note(db, clinic=c, original=invoice, quantities={}, reason=CreditReason.CANCEL, by=None,
                               day=DAY)
    account = payments.account_of(db, invoice)
    assert account.due == Decimal("-5000.00") and account.refundable == Decimal("5000.00")
    refund = payments.refund(db, invoice, mode=PaymentMode.UPI, amount=Decimal("5000"), reference="R1", by=None,
                             day=DAY)
    assert refund.receipt_number == "RCT/26-27/000002"
    assert payments.account_of(db, invoice).due == Decimal("0.00")


def test_documents_issued_at_once_from_many_connections_are_consecutive(app, clinic, patient, prices):
    drafts = []
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        for _ in range(8):  # the pool holds 10 connections; each thread keeps one until the barrier
            drafts.append(_draft(db, clinic, patient, (prices.lab, 1))[1].id)
        db.commit()
    barrier, errors = threading.Barrier(len(drafts), timeout=30), []

    def issue_one(bill_id):
        with app.app_context():
            session = get_session()
            set_tenant(session, clinic_id=clinic.id, user_id=None)
            try:
                bill = session.get(Bill, (clinic.id, bill_id))
                barrier.wait()
                issuing.issue(session, clinic=session.get(Clinic, clinic.id), bill=bill, by=None, day=DAY)
                session.commit()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
                session.rollback()

    threads = [threading.Thread(target=issue_one, args=(bill_id,)) for bill_id in drafts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        numbers = sorted(db.scalars(sqlalchemy.select(Bill.number).where(Bill.clinic_id == clinic.id)))
        assert numbers == [f"BOS/26-27/{n:06d}" for n in range(1, 9)]
        assert db.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(BillLine)) == 8


# --- Review fixes -----------------------------------------------------------------------------------

def test_amounts_too_large_for_a_document_are_refused_not_a_500(db, sql, clinic, patient, prices):
    for typed in ("1e30", "9" * 40, "12.345"):
        with pytest.raises(services.Invalid):
            services.parse_amount(typed, "Amount", field="amount")
    package = add_item(sql, clinic.id, "PKG", "Surgery package", "999311", "200000.00")
    with pytest.raises(services.Invalid, match="more than one document"):
        _draft(db, clinic, patient, (package, 100000))


def test_credit_notes_together_never_credit_more_than_was_billed(db, sql, clinic, patient, prices):
    dressing = add_item(sql, clinic.id, "DRS", "Dressing", "999319", "100.50")
    c, bill = _draft(db, clinic, patient, (dressing, 2))
    [invoice] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    assert invoice.rounded_total == Decimal("201.00")
    line = services.lines_of(db, invoice)[0]
    notes = [credit_notes.issue_credit_note(db, clinic=c, original=invoice, quantities={line.id: Decimal(1)},
                                        reason=CreditReason.RETURN, by=None, day=DAY) for _ in range(2)]
    assert [n.rounded_total for n in notes] == [Decimal("-101.00"), Decimal("-100.00")]
    assert payments.account_of(db, invoice).credited == Decimal("201.00")


def test_fee_validity_needs_the_same_consultation_still_charged(db, sql, clinic, patient, prices, doctor):
    kind = consultation_type(sql, clinic.id)
    first = completed_visit(sql, clinic.id, doctor.id, patient, type_id=kind, day=date(2026, 11, 14))
    c, bill = _draft(db, clinic, patient, appointment=db.get(Appointment, (clinic.id, first)), day=date(2026, 11, 14))
    [paid] = issuing.issue(db, clinic=c, bill=bill, by=None, day=date(2026, 11, 14))
    fee = services.lines_of(db, paid)[0]
    credit_notes.issue_credit_note(db, clinic=c, original=paid, quantities={fee.id: Decimal(1)},
                                   reason=CreditReason.CORRECTION, by=None, day=date(2026, 11, 15))
    again = completed_visit(sql, clinic.id, doctor.id, patient, type_id=kind, day=DAY)
    _, follow_up = _draft(db, clinic, patient, appointment=db.get(Appointment, (clinic.id, again)))
    assert follow_up.rounded_total == Decimal("500.00")  # the fee was credited back: nothing makes it free


def test_a_cancelled_visit_bill_leaves_the_visit_to_bill_again(db, sql, clinic, patient, prices, doctor):
    from app.billing import pages

    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=consultation_type(sql, clinic.id), day=DAY)
    c, bill = _draft(db, clinic, patient, appointment=db.get(Appointment, (clinic.id, visit)))
    [issued] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    assert [a.id for a, *_ in pages.unbilled_visits(db, c, DAY)] == []
    credit_notes.issue_credit_note(db, clinic=c, original=issued, quantities={}, reason=CreditReason.CANCEL, by=None,
                               day=DAY)
    assert [a.id for a, *_ in pages.unbilled_visits(db, c, DAY)] == [visit]


def test_a_large_taxable_supply_or_a_registered_buyer_needs_name_address_and_state(db, clinic, patient, prices):
    c = db.get(Clinic, clinic.id)
    walk_in = services.new_draft(db, clinic=c, patient=None, appointment=None, by=None, day=DAY)
    services.add_line(db, walk_in, item=db.get(PriceItem, (clinic.id, prices.cosmetic)), quantity=Decimal(9),
                      discount=None, by=None, day=DAY)
    with pytest.raises(services.Invalid) as refused:
        issuing.issue(db, clinic=c, bill=walk_in, by=None, day=DAY)
    assert set(refused.value.errors) == {"name", "address_line", "state_code"}
    _, patients_bill = _draft(db, clinic, patient, (prices.cosmetic, 9))
    [issued] = issuing.issue(db, clinic=c, bill=patients_bill, by=None, day=DAY)  # the record has all three
    assert issued.taxable_value == Decimal("54000.00")


def _recipient(app, **typed) -> RecipientForm:
    with app.test_request_context(method="POST", data=typed):
        form = RecipientForm(meta={"csrf": False})
        form.validate()
        return form


def test_a_buyers_state_is_its_gstins(app):
    form = _recipient(app, name="Acme Pharma Ltd", gstin=BUYER_GSTIN.lower())
    assert form.messages() == {}
    assert (form.values()["gstin"], form.values()["state_code"]) == (BUYER_GSTIN, "27")
    form = _recipient(app, name="Acme Pharma Ltd", gstin=BUYER_GSTIN, state_code="29")
    assert "Maharashtra" in form.messages()["state_code"]
    assert _recipient(app, gstin=BUYER_GSTIN).messages() == {"name": "A registered recipient's legal name is required."}


def test_a_clinic_not_registered_for_gst_issues_plain_bills_without_gst(db, sql, clinic, patient, prices):
    sql("UPDATE clinic SET gstin = NULL WHERE id = :c", c=clinic.id)
    db.expire_all()
    c, bill = _draft(db, clinic, patient, (prices.consultation, 1), (prices.medicine, 2), (prices.cosmetic, 1))
    [issued] = issuing.issue(db, clinic=c, bill=bill, by=None, day=DAY)
    assert issued.kind is DocumentType.BILL and issued.number == "INV/26-27/000001"
    # No GST at all: the MRP is the price, the cosmetic procedure costs its price.
    assert (issued.cgst, issued.sgst, issued.igst, issued.rounded_total) == (0, 0, 0, Decimal("6570.00"))
    assert {line.treatment.value for line in services.lines_of(db, issued)} == {"non_gst"}
    from app.billing.documents import paper

    printed = paper(db, issued)
    assert printed.title == "Bill" and not printed.gst and not printed.supplier.gstin
    assert [label for label, _ in printed.totals] == ["Total", "Round off"]
    note = credit_notes.issue_credit_note(db, clinic=c, original=issued, quantities={}, reason=CreditReason.CANCEL,
                                          by=None, day=DAY)
    assert note.rounded_total == Decimal("-6570.00") and not paper(db, note).gst
