"""Billing drafts: their lines and recipient, pricing with the GST engine, the history, and what is
owed on a document (issuing: issuing.py; credit notes: credit_notes.py).

Services flush, never commit (one commit per request or job). They write the billing history and the
patient's timeline in the same transaction; the caller audits. Prices and taxes come from the GST
engine (tax.py); a draft's lines are re-priced after every change (so what the draft shows is what
issuing it would print, if issued today) and once more at issue, with the rates in force that day.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app import formats
from app.billing import tax
from app.billing.models import (
    Bill,
    BillingEvent,
    BillingProfile,
    BillLine,
    BillStatus,
    PriceItem,
    PriceRate,
)
from app.clinics.models import Clinic
from app.db import new_id
from app.patients.models import Patient
from app.scheduling.models import Appointment, AppointmentType
from app.security.fields import keyring

ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("999999999.99")  # the largest line or document: below the columns' 10 digits with room for tax
RECIPIENT_FIELDS = ("name", "address_line", "city", "pin_code", "phone")
MAX_LINES = 60


class BillingError(Exception):
    """A billing action refused, with a message for the user (409)."""


class Invalid(BillingError):
    """Input that cannot be used (422), with per-field messages."""

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = errors or {}


# --- Settings and the price list -----------------------------------------------------------------------

def profile_of(db: Session, clinic_id: uuid.UUID) -> BillingProfile | None:
    return db.get(BillingProfile, clinic_id)


def not_ready(clinic: Clinic, profile: BillingProfile | None) -> str | None:
    """Why the clinic cannot issue documents yet (None when it can). A clinic without a GSTIN is not
    registered for GST and issues plain bills."""
    if profile is None or not profile.signatory_name:
        return "The authorised signatory is not set: complete the GST profile before issuing documents."
    return None


def rate_history(db: Session, clinic_id: uuid.UUID, item_ids) -> dict[uuid.UUID, list[tuple[date, Decimal]]]:
    """Each item's (effective from, rate) pairs, oldest first (one query)."""
    history: dict[uuid.UUID, list[tuple[date, Decimal]]] = {}
    rows = db.execute(select(PriceRate.item_id, PriceRate.effective_from, PriceRate.rate).where(
        PriceRate.clinic_id == clinic_id, PriceRate.item_id.in_(list(item_ids))).order_by(PriceRate.effective_from))
    for item_id, since, rate in rows:
        history.setdefault(item_id, []).append((since, rate))
    return history


def rate_on(history: list[tuple[date, Decimal]], item: PriceItem, day: date) -> Decimal:
    """The item's GST rate on `day` (0 for an exempt or nil-rated item)."""
    if item.treatment is not tax.Treatment.TAXABLE:
        return Decimal(0)
    try:
        return tax.rate_in_force(history, day)
    except tax.TaxError as exc:
        raise BillingError(f"{item.name} has no GST rate in force on {formats.day(day)}: set one in the price "
                           "list.") from exc


# --- Parsing what was typed ------------------------------------------------------------------------------

def parse_amount(raw: str | None, label: str, *, field: str, allow_zero: bool = False) -> Decimal:
    """A rupee amount typed in a form: digits, at most two decimals, positive (or zero)."""
    text = (raw or "").strip().replace(",", "").removeprefix("₹").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    # The size check comes first: rounding a huge value to the paisa would itself overflow.
    if (value is None or not value.is_finite() or abs(value) > MAX_AMOUNT or value.as_tuple().exponent < -2):
        raise Invalid(f"{label}: enter an amount in rupees, e.g. 450 or 450.50.", {field: "Enter an amount."})
    if value < 0 or (value == 0 and not allow_zero):
        raise Invalid(f"{label} must be more than zero.", {field: "Must be more than zero."})
    return value


def parse_quantity(raw: str | None, *, field: str = "quantity") -> Decimal:
    text = (raw or "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0 or value > 100000 or value != value.quantize(
            Decimal("0.001")):
        raise Invalid("Quantity: enter a number above zero (up to three decimals).", {field: "Enter a quantity."})
    return value


def parse_discount(raw: str | None, percent: bool) -> tax.Discount | None:
    text = (raw or "").strip()
    if not text:
        return None
    value = parse_amount(text, "Discount", field="discount", allow_zero=True)
    if not value:
        return None
    try:
        return tax.Discount(value, percent=percent)
    except tax.TaxError as exc:
        raise Invalid(str(exc), {"discount": str(exc)}) from exc


# --- Recipient ------------------------------------------------------------------------------------------

def recipient_of(db: Session, bill: Bill) -> dict:
    """The recipient as printed (PHI: the caller audits): name, address, phone, state, GSTIN."""
    ring = keyring(db, bill.clinic_id)
    sealed = json.loads(ring.open("bill", "recipient", bill.id, bill.recipient_enc) or "{}")
    return {**dict.fromkeys(RECIPIENT_FIELDS, ""), **sealed, "state_code": bill.recipient_state or "",
            "gstin": bill.recipient_gstin or ""}


def seal_recipient(db: Session, bill: Bill, values: dict) -> None:
    ring = keyring(db, bill.clinic_id)
    kept = {name: (values.get(name) or "").strip() for name in RECIPIENT_FIELDS}
    bill.recipient_enc = ring.seal("bill", "recipient", bill.id, json.dumps(kept) if any(kept.values()) else None)
    bill.key_version = ring.active.version


def patient_recipient(db: Session, patient: Patient) -> dict:
    """What a document prints of a patient: name, address, phone and state (decrypted for the document only)."""
    ring = keyring(db, patient.clinic_id)
    values = {name: ring.open("patient", name, patient.id, getattr(patient, f"{name}_enc")) or ""
              for name in ("full_name", "address_line", "city", "pin_code", "phone")}
    values["name"] = values.pop("full_name")
    return {**values, "state_code": patient.state_code or "", "gstin": ""}


def set_recipient(db: Session, bill: Bill, values: dict, *, by: uuid.UUID | None) -> None:
    """Change a draft's recipient (values from forms.RecipientForm) and re-price it (goods follow the address)."""
    require_draft(bill)
    seal_recipient(db, bill, values)
    bill.recipient_state = values.get("state_code") or None
    bill.recipient_gstin = values.get("gstin") or None
    _history(db, bill, "recipient", by, {"state": bill.recipient_state, "registered": bool(bill.recipient_gstin)})
    reprice(db, bill)


# --- Drafts -------------------------------------------------------------------------------------------

def require_draft(bill: Bill) -> None:
    if bill.status is not BillStatus.DRAFT:
        raise BillingError(f"{bill.number} is issued and cannot be changed: issue a credit note instead.")


def new_draft(db: Session, *, clinic: Clinic, patient: Patient | None, appointment: Appointment | None,
              by: uuid.UUID | None, day: date) -> Bill:
    """A draft for a patient (recipient from their record) or over the counter; from a completed
    appointment, with its type's default item (free within the fee validity)."""
    if appointment is not None and appointment.status.value != "completed":
        raise BillingError("Only a completed visit is billed from its appointment.")
    bill = Bill(clinic_id=clinic.id, id=new_id(), status=BillStatus.DRAFT, patient_id=patient.id if patient else None,
                appointment_id=appointment.id if appointment else None,
                doctor_id=appointment.doctor_id if appointment else None, supplier_state=clinic.state_code,
                state_tax="UTGST" if tax.is_union_territory(clinic.state_code) else "SGST", created_by=by,
                key_version=keyring(db, clinic.id).active.version)
    db.add(bill)
    recipient = patient_recipient(db, patient) if patient else {}
    seal_recipient(db, bill, recipient)
    bill.recipient_state = recipient.get("state_code") or None
    db.flush()
    _history(db, bill, "created", by, {"appointment": str(appointment.id) if appointment else None})
    if appointment is not None:
        _default_line(db, clinic, bill, appointment, by, day)
    return bill


def _default_line(db: Session, clinic: Clinic, bill: Bill, appointment: Appointment, by, day: date) -> None:
    kind = db.get(AppointmentType, (clinic.id, appointment.type_id)) if appointment.type_id else None
    code = (kind.billable_item or "").strip() if kind else ""
    item = db.scalar(select(PriceItem).where(PriceItem.clinic_id == clinic.id, func.upper(PriceItem.code) ==
                                             code.upper(), PriceItem.active)) if code else None
    if item is None:
        return
    free_after = fee_validity_source(db, clinic.id, bill.patient_id, appointment, item) if item.fee_validity else None
    discount = tax.Discount(Decimal(100), percent=True) if free_after else None
    note = (f"Free follow-up: fee paid on {free_after.number} of {formats.day(free_after.issued_on)}"
            if free_after else None)
    add_line(db, bill, item=item, quantity=Decimal(1), discount=discount, note=note, by=by, day=day)


def fee_validity_source(db: Session, clinic_id: uuid.UUID, patient_id: uuid.UUID | None, appointment: Appointment,
                        item: PriceItem) -> Bill | None:
    """The consultation that makes this follow-up free, if any: the same fee-validity item charged with the
    same doctor on an issued, uncancelled document within the clinic's days, and not credited back."""
    profile = profile_of(db, clinic_id)
    if profile is None or not profile.fee_validity_days or patient_id is None:
        return None
    since = appointment.day - timedelta(days=profile.fee_validity_days)
    credit = aliased(BillLine)
    credited_back = (select(func.coalesce(func.sum(credit.total), 0))
                     .where(credit.clinic_id == BillLine.clinic_id, credit.original_line_id == BillLine.id)
                     .scalar_subquery())
    paid = (select(Bill).join(BillLine, (BillLine.clinic_id == Bill.clinic_id) & (BillLine.bill_id == Bill.id))
            .where(Bill.clinic_id == clinic_id, Bill.patient_id == patient_id, Bill.doctor_id == appointment.doctor_id,
                   Bill.status == BillStatus.ISSUED, Bill.cancelled_at.is_(None), Bill.issued_on >= since,
                   Bill.appointment_id != appointment.id, BillLine.item_id == item.id,
                   BillLine.total + credited_back > 0)
            .order_by(Bill.issued_on.desc()).limit(1))
    return db.scalar(paid)


def lines_of(db: Session, bill: Bill) -> list[BillLine]:
    return list(db.scalars(select(BillLine).where(BillLine.clinic_id == bill.clinic_id, BillLine.bill_id == bill.id)
                           .order_by(BillLine.position)))


def add_line(db: Session, bill: Bill, *, item: PriceItem, quantity: Decimal, discount: tax.Discount | None,
             by: uuid.UUID | None, day: date, note: str | None = None) -> BillLine:
    """Add a price-list item to a draft and re-price it."""
    require_draft(bill)
    if not item.active:
        raise Invalid(f"{item.name} is no longer on the price list.", {"item_id": "Choose an item on the list."})
    lines = lines_of(db, bill)
    if len(lines) >= MAX_LINES:
        raise BillingError(f"A document holds at most {MAX_LINES} lines.")
    if not item.is_service and quantity != quantity.to_integral_value() and item.unit == "NOS":
        raise Invalid("Quantity: whole numbers for items counted in pieces.", {"quantity": "Enter a whole number."})
    line = BillLine(clinic_id=bill.clinic_id, id=new_id(), bill_id=bill.id, position=len(lines) + 1, item_id=item.id,
                    description=item.name, note=note, hsn_sac=item.hsn_sac, unit=item.unit, quantity=quantity,
                    unit_price=item.price, price_includes_tax=item.price_includes_tax, treatment=item.treatment,
                    rate=Decimal(0), discount_value=discount.value if discount else None,
                    discount_percent=bool(discount and discount.percent), place_of_supply=bill.supplier_state,
                    gross=ZERO, taxable_value=ZERO, total=ZERO)
    _set_rate(line, item, rate_history(db, bill.clinic_id, [item.id]).get(item.id, []), day,
              registered=registered(db, bill.clinic_id))
    _check_discount(bill, line)
    db.add(line)
    db.flush()
    _history(db, bill, "line_added", by, {"item": item.name, "quantity": str(quantity),
                                          "discount": str(discount.value) if discount else None})
    reprice(db, bill, day=day)
    return line


def _check_discount(bill: Bill, line: BillLine) -> None:
    """Refuse (422) a line the engine will not price: a discount in rupees above quantity times unit price says
    so on the discount; any other refusal keeps the engine's own message, on the quantity or the item."""
    gross = tax.paise(line.quantity * line.unit_price)
    if line.discount_value is not None and not line.discount_percent and line.discount_value > gross:
        raise Invalid(f"Discount: {formats.inr(line.discount_value)} is more than the line's {formats.inr(gross)}.",
                      {"discount": f"At most {formats.inr(gross)}, the line's amount."})
    try:
        tax.price_line(engine_document(bill, [line]), _engine_line(line))
    except tax.TaxError as exc:
        field = "quantity" if "quantity" in str(exc) else "item_id"
        raise Invalid(f"{line.description}: {exc}", {field: str(exc)}) from exc


def remove_line(db: Session, bill: Bill, line_id: uuid.UUID, *, by: uuid.UUID | None, day: date) -> None:
    require_draft(bill)
    line = db.get(BillLine, (bill.clinic_id, line_id))
    if line is None or line.bill_id != bill.id:
        raise BillingError("That line is no longer on this draft.")
    db.delete(line)
    db.flush()
    for position, rest in enumerate(lines_of(db, bill), start=1):
        rest.position = position
    _history(db, bill, "line_removed", by, {"item": line.description})
    reprice(db, bill, day=day)


def discard(db: Session, bill: Bill, *, by: uuid.UUID | None = None) -> None:
    """Delete a draft (an issued document is never deleted)."""
    require_draft(bill)
    _history(db, bill, "discarded", by)  # the history outlives the draft
    db.delete(bill)
    db.flush()


def registered(db: Session, clinic_id: uuid.UUID) -> bool:
    """Whether the clinic is registered for GST (has a GSTIN): if not, it charges no GST at all."""
    return bool(db.get(Clinic, clinic_id).gstin)


def _set_rate(line: BillLine, item: PriceItem, history: list[tuple[date, Decimal]], day: date, *,
              registered: bool) -> None:
    """The item's rate on `day` onto the line; a taxable item whose rate is nil that day is nil-rated, and
    every line of a clinic not registered for GST is non-GST."""
    if not registered:
        line.rate, line.treatment = Decimal(0), tax.Treatment.NON_GST
        return
    line.rate = rate_on(history, item, day)
    line.treatment = item.treatment
    if item.treatment is tax.Treatment.TAXABLE and not line.rate:
        line.treatment = tax.Treatment.NIL_RATED


# --- Pricing ------------------------------------------------------------------------------------------

def _engine_line(line: BillLine) -> tax.Line:
    discount = tax.Discount(line.discount_value, line.discount_percent) if line.discount_value else None
    return tax.Line(description=line.description, hsn_sac=line.hsn_sac, quantity=abs(line.quantity),
                    unit_price=line.unit_price, rate=line.rate, treatment=line.treatment,
                    price_includes_tax=line.price_includes_tax, discount=discount, unit=line.unit)


def engine_document(bill: Bill, lines: list[BillLine]) -> tax.Document:
    """The engine's view of a document's lines as stored (a credit note's original is priced from this)."""
    return tax.Document(supplier_state=bill.supplier_state, lines=tuple(_engine_line(line) for line in lines),
                        recipient_gstin=bill.recipient_gstin, recipient_state=bill.recipient_state)


def store_line(line: BillLine, result: tax.LineResult) -> None:
    line.place_of_supply, line.inter_state = result.place_of_supply, result.inter_state
    for name in ("gross", "discount", "taxable_value", "cgst", "sgst", "igst"):
        setattr(line, name, getattr(result, name))
    line.total = result.total


def store_totals(bill: Bill, result: tax.DocumentResult) -> None:
    for name in ("taxable_value", "exempt_value", "nil_rated_value", "cgst", "sgst", "igst", "total", "round_off",
                 "rounded_total"):
        setattr(bill, name, getattr(result, name))


def reprice(db: Session, bill: Bill, *, day: date | None = None) -> tax.DocumentResult | None:
    """Price a draft's lines with the rates in force on `day` (default: each line's current rate) and store
    the results on the lines and the draft. The kind stays None while a registered mixed supply would
    be split at issue."""
    lines = lines_of(db, bill)
    if not lines:
        store_totals(bill, _EMPTY)
        bill.kind = None
        return None
    if day is not None:
        items = {item.id: item for item in db.scalars(select(PriceItem).where(
            PriceItem.clinic_id == bill.clinic_id, PriceItem.id.in_([ln.item_id for ln in lines if ln.item_id])))}
        history, gst = rate_history(db, bill.clinic_id, items), registered(db, bill.clinic_id)
        for line in lines:
            item = items.get(line.item_id)
            if item is not None:
                _set_rate(line, item, history.get(item.id, []), day, registered=gst)
    document = engine_document(bill, lines)
    results = tuple(tax.price_line(document, line) for line in document.lines)
    if any(r.gross > MAX_AMOUNT for r in results) or sum(r.total for r in results) > MAX_AMOUNT:
        raise Invalid("That is more than one document can hold: check the quantity and price.",
                      {"quantity": "Too large."})
    for line, result in zip(lines, results, strict=True):
        store_line(line, result)
    try:
        kind = tax.document_type(document)
    except tax.MixedSupplyToRegistered:
        kind = None
    priced = tax.DocumentResult(kind, results)
    store_totals(bill, priced)
    bill.kind = kind
    bill.version += 1
    db.flush()
    return priced


class _Empty:
    taxable_value = exempt_value = nil_rated_value = cgst = sgst = igst = total = round_off = rounded_total = ZERO


_EMPTY = _Empty()


# --- What is owed -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    """A document's money: billed, credited (by credit notes), paid, refunded, and the balance due."""

    billed: Decimal
    credited: Decimal
    paid: Decimal
    refunded: Decimal

    @property
    def due(self) -> Decimal:
        """Still to collect (negative: owed back to the patient)."""
        return self.billed - self.credited - self.paid + self.refunded

    @property
    def refundable(self) -> Decimal:
        return max(-self.due, ZERO)


def history(db: Session, bill: Bill) -> list[BillingEvent]:
    return list(db.scalars(select(BillingEvent).where(BillingEvent.clinic_id == bill.clinic_id,
                                                      BillingEvent.bill_id == bill.id).order_by(BillingEvent.at)))


def _history(db: Session, bill: Bill, action: str, by: uuid.UUID | None, details: dict | None = None) -> None:
    db.add(BillingEvent(clinic_id=bill.clinic_id, id=new_id(), bill_id=bill.id, action=action,
                        details=json.dumps(details) if details else None, by=by))


def write_history(db: Session, bill: Bill, action: str, by: uuid.UUID | None, details: dict | None = None) -> None:
    """Append to a document's billing history (for the payment and PDF services)."""
    _history(db, bill, action, by, details)
