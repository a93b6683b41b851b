"""Credit notes (Rule 53(1A)): against an issued document, for some of its lines or all of it (a
cancellation), priced from the original by the engine, rounded so that all of a document's credit notes
together never credit more than was billed, and numbered in their own series."""

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import tax
from app.billing.issuing import number_and_freeze
from app.billing.models import Bill, BillLine, BillStatus, CreditReason
from app.billing.services import (
    ZERO,
    BillingError,
    Invalid,
    engine_document,
    lines_of,
    not_ready,
    profile_of,
    recipient_of,
    seal_recipient,
    store_line,
    store_totals,
    write_history,
)
from app.clinics.models import Clinic
from app.db import new_id, utcnow


def credited(db: Session, original: Bill) -> dict[uuid.UUID, Decimal]:
    """How much of each original line issued credit notes have returned (positive quantities)."""
    rows = db.execute(select(BillLine.original_line_id, func.sum(-BillLine.quantity))
                      .join(Bill, (Bill.clinic_id == BillLine.clinic_id) & (Bill.id == BillLine.bill_id))
                      .where(Bill.clinic_id == original.clinic_id, Bill.original_id == original.id,
                             Bill.status == BillStatus.ISSUED).group_by(BillLine.original_line_id))
    return {line_id: quantity for line_id, quantity in rows.all()}  # noqa: C416 (Row, not tuple)


def credit_notes_of(db: Session, original: Bill) -> list[Bill]:
    return list(db.scalars(select(Bill).where(Bill.clinic_id == original.clinic_id, Bill.original_id == original.id,
                                              Bill.status == BillStatus.ISSUED).order_by(Bill.issued_at)))


def issue_credit_note(db: Session, *, clinic: Clinic, original: Bill, quantities: dict[uuid.UUID, Decimal],
                      reason: CreditReason, by: uuid.UUID | None, day: date, now: datetime | None = None) -> Bill:
    """Issue a credit note against an issued document for the given quantities of its lines (all that
    is left of every line for a cancellation), numbered in the credit-note series. A cancellation marks
    the original cancelled."""
    if not original.issued or original.is_credit_note:
        raise BillingError("A credit note is issued against an issued invoice or bill of supply.")
    if original.cancelled_at is not None:
        raise BillingError(f"{original.number} is already cancelled.")
    profile = profile_of(db, clinic.id)
    problem = not_ready(clinic, profile)
    if problem:
        raise BillingError(problem)
    lines, already = lines_of(db, original), credited(db, original)
    if reason is CreditReason.CANCEL:
        if any(already.values()):
            raise BillingError("Part of this document was already credited: credit what is left as a return.")
        quantities = {line.id: line.quantity for line in lines}
    returns = _returns(lines, already, quantities)
    result = tax.compute_credit_note(engine_document(original, lines), returns)
    note = Bill(clinic_id=clinic.id, id=new_id(), status=BillStatus.DRAFT, kind=tax.DocumentType.CREDIT_NOTE,
                patient_id=original.patient_id, appointment_id=original.appointment_id, doctor_id=original.doctor_id,
                original_id=original.id, credit_reason=reason, recipient_state=original.recipient_state,
                recipient_gstin=original.recipient_gstin, supplier_state=original.supplier_state,
                state_tax=original.state_tax, key_version=original.key_version, created_by=by)
    db.add(note)
    db.flush()
    seal_recipient(db, note, recipient_of(db, original))
    for position, (part, priced) in enumerate(zip(returns, result.lines, strict=True), start=1):
        source = lines[part.line]
        line = BillLine(clinic_id=clinic.id, id=new_id(), bill_id=note.id, position=position, item_id=source.item_id,
                        original_line_id=source.id, description=source.description, hsn_sac=source.hsn_sac,
                        unit=source.unit, quantity=-part.quantity, unit_price=source.unit_price,
                        price_includes_tax=source.price_includes_tax, treatment=source.treatment, rate=source.rate,
                        discount_value=priced.line.discount.value if priced.line.discount else None,
                        discount_percent=bool(priced.line.discount and priced.line.discount.percent),
                        place_of_supply=priced.place_of_supply, gross=ZERO, taxable_value=ZERO, total=ZERO)
        store_line(line, priced)
        db.add(line)
    store_totals(note, result)
    _round_cumulatively(db, original, note)
    db.flush()
    now = now or utcnow()
    number_and_freeze(db, clinic, profile, note, by=by, now=now, day=day)
    if reason is CreditReason.CANCEL:
        original.cancelled_at, original.cancelled_by = now, by
        write_history(db, original, "cancelled", by, {"credit_note": note.number})
    db.flush()
    return note


def _round_cumulatively(db: Session, original: Bill, note: Bill) -> None:
    """Round a credit note so that all credit notes of the original together are their exact total
    rounded to the rupee: rounding each alone could credit more than was billed (two returns of one
    ₹100.50 item would credit ₹101 each against a ₹201 bill)."""
    earlier_total, earlier_rounded = db.execute(
        select(func.coalesce(func.sum(Bill.total), 0), func.coalesce(func.sum(Bill.rounded_total), 0))
        .where(Bill.clinic_id == original.clinic_id, Bill.original_id == original.id,
               Bill.status == BillStatus.ISSUED)).one()
    note.rounded_total = tax.rupees(earlier_total + note.total) - earlier_rounded
    note.round_off = note.rounded_total - note.total


def _returns(lines: list[BillLine], already: dict, quantities: dict) -> list[tax.Return]:
    returns, errors = [], {}
    for index, line in enumerate(lines):
        quantity = quantities.get(line.id) or Decimal(0)
        before = already.get(line.id, Decimal(0))
        if line.unit == "NOS" and not line.hsn_sac.startswith("99") and quantity != quantity.to_integral_value():
            errors[f"qty-{line.id}"] = "Whole numbers for items counted in pieces."
        elif quantity < 0 or before + quantity > line.quantity:
            errors[f"qty-{line.id}"] = f"At most {(line.quantity - before).normalize():f} can be credited."
        elif quantity:
            returns.append(tax.Return(index, quantity, before))
    if errors:
        raise Invalid("Some quantities are more than is left to credit.", errors)
    if not returns:
        raise Invalid("Choose at least one line and a quantity to credit.")
    return returns
