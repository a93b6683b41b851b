"""Payments and refunds against an issued document: what is owed, taking money (partial payments
allowed, never more than is due), refunding after a credit note, each with a numbered receipt.

Payment rows are append-only; a mistaken payment is put right by a refund, never by an edit.
"""

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing.issuing import take_number
from app.billing.models import Bill, BillStatus, Payment, PaymentKind, PaymentMode, SeriesKind
from app.billing.services import (
    ZERO,
    Account,
    BillingError,
    Invalid,
    profile_of,
    write_history,
)
from app.db import new_id, utcnow
from app.formats import inr
from app.timeline import events
from app.timeline.models import Kind


def account_of(db: Session, bill: Bill) -> Account:
    """What was billed on `bill`, credited against it, paid and refunded (two queries)."""
    credited = db.scalar(select(func.coalesce(func.sum(-Bill.rounded_total), 0)).where(
        Bill.clinic_id == bill.clinic_id, Bill.original_id == bill.id, Bill.status == BillStatus.ISSUED))
    sums = dict(db.execute(select(Payment.kind, func.sum(Payment.amount)).where(
        Payment.clinic_id == bill.clinic_id, Payment.bill_id == bill.id).group_by(Payment.kind)).all())
    return Account(billed=bill.rounded_total, credited=Decimal(credited).quantize(ZERO),
                   paid=sums.get(PaymentKind.PAYMENT, ZERO), refunded=sums.get(PaymentKind.REFUND, ZERO))


def accounts_of(db: Session, bills: list[Bill]) -> dict[uuid.UUID, Account]:
    """The accounts of several documents of one clinic in two queries (lists, the patient page)."""
    if not bills:
        return {}
    clinic_id, ids = bills[0].clinic_id, [bill.id for bill in bills]
    credited = dict(db.execute(select(Bill.original_id, func.sum(-Bill.rounded_total)).where(
        Bill.clinic_id == clinic_id, Bill.original_id.in_(ids), Bill.status == BillStatus.ISSUED)
        .group_by(Bill.original_id)).all())
    sums: dict[tuple, Decimal] = {(bill_id, kind): amount for bill_id, kind, amount in db.execute(
        select(Payment.bill_id, Payment.kind, func.sum(Payment.amount)).where(
            Payment.clinic_id == clinic_id, Payment.bill_id.in_(ids)).group_by(Payment.bill_id, Payment.kind))}
    return {bill.id: Account(billed=bill.rounded_total, credited=credited.get(bill.id, ZERO),
                             paid=sums.get((bill.id, PaymentKind.PAYMENT), ZERO),
                             refunded=sums.get((bill.id, PaymentKind.REFUND), ZERO)) for bill in bills}


def payments_of(db: Session, bill: Bill) -> list[Payment]:
    return list(db.scalars(select(Payment).where(Payment.clinic_id == bill.clinic_id, Payment.bill_id == bill.id)
                           .order_by(Payment.received_at)))


def _record(db: Session, bill: Bill, kind: PaymentKind, mode: PaymentMode, amount: Decimal, reference: str | None,
            *, by: uuid.UUID | None, day: date, now: datetime | None) -> Payment:
    profile = profile_of(db, bill.clinic_id)
    _, receipt = take_number(db, bill.clinic_id, SeriesKind.RECEIPT, profile.receipt_prefix, day)
    payment = Payment(clinic_id=bill.clinic_id, id=new_id(), bill_id=bill.id, patient_id=bill.patient_id, kind=kind,
                      mode=mode, amount=amount, reference=reference, receipt_number=receipt, received_on=day,
                      received_at=now or utcnow(), received_by=by)
    db.add(payment)
    db.flush()
    write_history(db, bill, kind.value, by, {"receipt": receipt, "mode": mode.value, "amount": str(amount)})
    if bill.patient_id:
        events.add(db, clinic_id=bill.clinic_id, patient_id=bill.patient_id, kind=Kind.PAYMENT,
                   action="refunded" if kind is PaymentKind.REFUND else "received", ref_id=payment.id, by=by,
                   doctor_id=bill.doctor_id, at=payment.received_at)
    return payment


def _payable(db: Session, bill: Bill) -> Account:
    """The document locked for this payment (two desks never both take the last rupee) and its account."""
    if bill.status is not BillStatus.ISSUED or bill.is_credit_note:
        raise BillingError("Payments are taken against an issued invoice or bill of supply.")
    db.execute(select(Bill.id).where(Bill.clinic_id == bill.clinic_id, Bill.id == bill.id).with_for_update())
    return account_of(db, bill)


def take_payment(db: Session, bill: Bill, *, mode: PaymentMode, amount: Decimal, reference: str | None,
                 by: uuid.UUID | None, day: date, now: datetime | None = None) -> Payment:
    """Take a payment (all or part of the balance due) with its receipt number."""
    account = _payable(db, bill)
    if account.due <= 0:
        raise BillingError(f"Nothing is due on {bill.number}.")
    if amount > account.due:
        raise Invalid(f"Only {inr(account.due)} is due on {bill.number}.", {"amount": f"At most {inr(account.due)}."})
    return _record(db, bill, PaymentKind.PAYMENT, mode, amount, reference, by=by, day=day, now=now)


def refund(db: Session, bill: Bill, *, mode: PaymentMode, amount: Decimal, reference: str | None,
           by: uuid.UUID | None, day: date, now: datetime | None = None) -> Payment:
    """Pay back what a credit note left owed to the patient (never more)."""
    account = _payable(db, bill)
    if account.refundable <= 0:
        raise BillingError(f"Nothing is owed back on {bill.number}: issue a credit note first.")
    if amount > account.refundable:
        most = f"At most {inr(account.refundable)}"
        raise Invalid(f"{most} can be refunded.", {"amount": f"{most}."})
    return _record(db, bill, PaymentKind.REFUND, mode, amount, reference, by=by, day=day, now=now)
