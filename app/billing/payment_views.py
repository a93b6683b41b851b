"""Payments, refunds and receipts: the payments panel on an issued document's page, taking money against it,
paying back what a credit note left owed, and a printable receipt for each.

Payments are append-only; a mistake is put right by a refund, never an edit.
"""

import json
import uuid
from decimal import Decimal

from flask import Blueprint, Response, flash, g, url_for
from flask_login import current_user
from sqlalchemy.orm import Session

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, requires
from app.billing import credit_notes, services
from app.billing import payments as pay_service
from app.billing.forms import PaymentForm
from app.billing.models import Bill, Payment, PaymentKind
from app.billing.pages import payment_panel
from app.billing.services import ZERO, BillingError, Invalid
from app.billing.words import amount_in_words
from app.db import get_session
from app.formats import inr
from app.htmx import client_redirect, is_htmx, render_partial
from app.patients.services import staff_names
from app.scheduling import services as schedule

bp = Blueprint("billing_payment", __name__)
PANEL = "billing/_payments.html"


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
