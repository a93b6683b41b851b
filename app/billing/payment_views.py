"""Payments, refunds and receipts: the payments panel on an issued document's page, taking money against it,
paying back what a credit note left owed, and a printable receipt for each.

Payments are append-only; a mistake is put right by a refund, never an edit.
"""

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from flask import Blueprint, Response, flash, g, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.services import load_or_404, record
from app.auth.models import StaffUser
from app.auth.policy import Permission, can, requires
from app.billing import credit_notes, services
from app.billing import payments as pay_service
from app.billing.forms import PaymentForm
from app.billing.models import Bill, Payment, PaymentKind, PaymentMode
from app.billing.services import ZERO, Account, BillingError, Invalid
from app.billing.words import amount_in_words
from app.db import get_session
from app.formats import inr
from app.htmx import client_redirect, is_htmx, render_partial
from app.scheduling import services as schedule

bp = Blueprint("billing_payment", __name__)
PANEL = "billing/_payments.html"
MODES = list(PaymentMode)


@dataclass
class PaymentRow:
    payment: Payment
    received_by: str


@dataclass
class PaymentPanel:
    """What the payments panel shows: the account, the payments and refunds, and the two forms."""

    bill: Bill
    account: Account
    payments: list[PaymentRow]
    can_take: bool
    can_refund: bool
    form: dict = field(default_factory=dict)  # the payment form as typed (a refused submission)
    refund_form: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    refund_errors: dict = field(default_factory=dict)
    problem: str | None = None  # a refused payment's message
    refund_problem: str | None = None

    @property
    def modes(self) -> list[PaymentMode]:
        return MODES

    @property
    def payment_values(self) -> dict:
        """The payment form's values: as typed, or the balance due by cash."""
        return self.form or {"mode": "", "amount": f"{self.account.due:.2f}", "reference": ""}

    @property
    def refund_values(self) -> dict:
        return self.refund_form or {"mode": "", "amount": f"{self.account.refundable:.2f}", "reference": ""}


def staff_names(db: Session, ids) -> dict[uuid.UUID, str]:
    """Staff full names by id (one query)."""
    ids = {staff_id for staff_id in ids if staff_id}
    if not ids:
        return {}
    return dict(db.execute(select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(ids))).all())


def payment_panel(db: Session, bill: Bill, **state) -> PaymentPanel:
    """The payments panel for an issued document (state: form, refund_form, errors, refund_errors, problem,
    refund_problem)."""
    account = pay_service.account_of(db, bill)
    payments = pay_service.payments_of(db, bill)
    names = staff_names(db, (p.received_by for p in payments))
    rows = [PaymentRow(p, names.get(p.received_by, "")) for p in payments]
    role, payable = g.get("role"), bill.issued and not bill.is_credit_note
    return PaymentPanel(bill=bill, account=account, payments=rows,
                        can_take=payable and can(role, Permission.PAYMENT_TAKE) and account.due > 0,
                        can_refund=payable and can(role, Permission.CREDIT_NOTE_CREATE) and account.refundable > 0,
                        **state)


# --- Taking money and paying it back ------------------------------------------------------------------

def _panel_response(bill: Bill, status: int = 200, **state) -> Response:
    """The panel (htmx), or for a refused form without JavaScript a page around it, as typed."""
    db = get_session()
    template = PANEL if is_htmx() else "billing/payment.html"
    response = render_partial(template, status=status, pay=payment_panel(db, bill, **state))
    db.commit()
    return response


def _money(bill_id: uuid.UUID, action: str, service, prefix: str) -> Response:
    """Take a payment or make a refund against the document with the service; answer the panel or go back."""
    bill = load_or_404(Bill, bill_id, action)
    db, form = get_session(), PaymentForm()
    if not form.validate():
        return _not_saved(bill, action, prefix, 422, "invalid", form.typed(), form.messages(), form.problem())
    try:
        payment = service(db, bill, **form.values(), by=current_user.id, day=schedule.today(g.clinic))
    except BillingError as exc:
        status = 422 if isinstance(exc, Invalid) else 409
        return _not_saved(bill, action, prefix, status, type(exc).__name__.lower(), form.typed(),
                          getattr(exc, "errors", None) or {}, str(exc))
    record(db, action, patient_id=bill.patient_id, object_type="payment", object_id=payment.id)
    if is_htmx():
        return _panel_response(bill)
    verb = "Refunded" if payment.kind is PaymentKind.REFUND else "Received"
    flash(f"{verb} {inr(payment.amount)} by {payment.mode.label} — receipt {payment.receipt_number}.", "success")
    db.commit()
    return client_redirect(url_for("billing.show", bill_id=bill.id))


def _not_saved(bill: Bill, action: str, prefix: str, status: int, why: str, typed: dict, errors: dict,
               problem: str) -> Response:
    """The panel again with the refused form (`prefix`: "" for a payment, "refund_" for a refund); the one
    audit record notes that nothing was saved."""
    db = get_session()
    db.rollback()
    record(db, action, patient_id=bill.patient_id, object_type="bill", object_id=bill.id, reason=f"not saved: {why}")
    return _panel_response(bill, status, **{f"{prefix}form": typed, f"{prefix}errors": errors,
                                            f"{prefix}problem": problem})


@bp.post("/bills/<uuid:bill_id>/payments")
@requires(Permission.PAYMENT_TAKE)
def take(bill_id):
    """Take a payment (all or part of the balance due) against an issued document."""
    return _money(bill_id, "payment.take", pay_service.take_payment, "")


@bp.post("/bills/<uuid:bill_id>/refunds")
@requires(Permission.CREDIT_NOTE_CREATE)
def refund(bill_id):
    """Pay back to the patient what a credit note left owed."""
    return _money(bill_id, "payment.refund", pay_service.refund, "refund_")


# --- The receipt ---------------------------------------------------------------------------------------

def balance_after(db: Session, bill: Bill, payment: Payment) -> Decimal:
    """The balance due on `bill` just after `payment`: credit notes issued by then, payments up to it."""
    credited = sum((-note.rounded_total for note in credit_notes.credit_notes_of(db, bill)
                    if note.issued_at <= payment.received_at), ZERO)
    moved = ZERO
    for earlier in pay_service.payments_of(db, bill):
        moved += earlier.amount if earlier.kind is PaymentKind.PAYMENT else -earlier.amount
        if earlier.id == payment.id:
            break
    return bill.rounded_total - credited - moved


@bp.get("/payments/<uuid:payment_id>/receipt")
@requires(Permission.INVOICE_VIEW)
def receipt(payment_id):
    """A payment receipt or refund voucher, ready to print."""
    db = get_session()
    payment = load_or_404(Payment, payment_id, "payment.receipt")
    bill = db.get(Bill, (g.clinic.id, payment.bill_id))
    context = {"payment": payment, "bill": bill, "supplier": json.loads(bill.supplier or "{}"),
               "recipient": services.recipient_of(db, bill), "balance": balance_after(db, bill, payment),
               "words": amount_in_words(payment.amount),
               "received_by": staff_names(db, [payment.received_by]).get(payment.received_by, "")}
    record(db, "payment.receipt", patient_id=bill.patient_id, object_type="payment", object_id=payment.id)
    response = render_partial("billing/receipt.html", **context)
    db.commit()
    return response
