"""Billing documents: drafts, their lines and recipient, issuing with a gapless number, credit notes,
and what is owed on a document.

Services flush, never commit (one commit per request or job). They write the billing history and the
patient's timeline in the same transaction; the caller audits. Prices and taxes come from the GST
engine (tax.py); a draft's lines are re-priced after every change (so what the draft shows is what
issuing it would print, if issued today) and once more at issue, with the rates in force that day.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from app.billing import tax
from app.billing.gstin import InvalidGstin, financial_year, state_label, validate_document_number, validate_gstin
from app.billing.models import (
    Bill,
    BillingEvent,
    BillingProfile,
    BillLine,
    BillPdf,
    BillSeries,
    BillStatus,
    CreditReason,
    PriceItem,
    PriceRate,
    SeriesKind,
)
from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.patients.models import Patient
from app.scheduling.models import Appointment, AppointmentType
from app.security.fields import keyring
from app.timeline import events
from app.timeline.models import Kind

ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("999999999.99")  # the largest line or document: below the columns' 10 digits with room for tax
B2C_DETAILS_FROM = Decimal("50000")  # Rule 46(e): an unregistered recipient's details on a supply of this much
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
    """Why the clinic cannot issue documents yet (None when it can)."""
    if not clinic.gstin:
        return "The clinic's GSTIN is not set: complete the GST profile before issuing documents."
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
        raise BillingError(f"{item.name} has no GST rate in force on {day:%d %b %Y}: set one in the price "
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


def _seal_recipient(db: Session, bill: Bill, values: dict) -> None:
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


def clean_recipient(form) -> dict:
    """The recipient fields of a form, checked: a valid GSTIN if given, a known state, a 6-digit PIN."""
    from app.billing.gstin import STATES

    values = {name: (form.get(name) or "").strip()[:200] for name in (*RECIPIENT_FIELDS, "state_code", "gstin")}
    errors = {}
    if values["gstin"]:
        try:
            values["gstin"] = validate_gstin(values["gstin"])
        except InvalidGstin as exc:
            errors["gstin"] = str(exc)
        else:  # a registered recipient's state is its GSTIN's
            if values["state_code"] and values["state_code"] != values["gstin"][:2]:
                errors["state_code"] = f"The GSTIN is registered in {state_label(values['gstin'][:2])}."
            values["state_code"] = values["gstin"][:2]
    if values["state_code"] and values["state_code"] not in STATES:
        errors["state_code"] = "Choose a state from the list."
    if values["pin_code"] and not (values["pin_code"].isdecimal() and len(values["pin_code"]) == 6):
        errors["pin_code"] = "A PIN code has 6 digits."
    if values["gstin"] and not values["name"]:
        errors["name"] = "A registered recipient's legal name is required."
    if errors:
        raise Invalid("Check the recipient's details.", errors)
    return values


def set_recipient(db: Session, bill: Bill, values: dict, *, by: uuid.UUID | None) -> None:
    """Change a draft's recipient (values from clean_recipient) and re-price it (goods follow the address)."""
    _require_draft(bill)
    _seal_recipient(db, bill, values)
    bill.recipient_state = values.get("state_code") or None
    bill.recipient_gstin = values.get("gstin") or None
    _history(db, bill, "recipient", by, {"state": bill.recipient_state, "registered": bool(bill.recipient_gstin)})
    reprice(db, bill)


# --- Drafts -------------------------------------------------------------------------------------------

def _require_draft(bill: Bill) -> None:
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
    _seal_recipient(db, bill, recipient)
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
    note = (f"Free follow-up: fee paid on {free_after.number} of {free_after.issued_on:%d %b %Y}"
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
    _require_draft(bill)
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
    _set_rate(line, item, rate_history(db, bill.clinic_id, [item.id]).get(item.id, []), day)
    try:
        _engine_line(line)
    except tax.TaxError as exc:
        raise Invalid(str(exc), {"discount": str(exc)}) from exc
    db.add(line)
    db.flush()
    _history(db, bill, "line_added", by, {"item": item.name, "quantity": str(quantity),
                                          "discount": str(discount.value) if discount else None})
    reprice(db, bill, day=day)
    return line


def remove_line(db: Session, bill: Bill, line_id: uuid.UUID, *, by: uuid.UUID | None, day: date) -> None:
    _require_draft(bill)
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
    _require_draft(bill)
    _history(db, bill, "discarded", by)  # the history outlives the draft
    db.delete(bill)
    db.flush()


def _set_rate(line: BillLine, item: PriceItem, history: list[tuple[date, Decimal]], day: date) -> None:
    """The item's rate on `day` onto the line; a taxable item whose rate is nil that day is nil-rated."""
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


def _store(line: BillLine, result: tax.LineResult) -> None:
    line.place_of_supply, line.inter_state = result.place_of_supply, result.inter_state
    for name in ("gross", "discount", "taxable_value", "cgst", "sgst", "igst"):
        setattr(line, name, getattr(result, name))
    line.total = result.total


def _store_totals(bill: Bill, result: tax.DocumentResult) -> None:
    for name in ("taxable_value", "exempt_value", "nil_rated_value", "cgst", "sgst", "igst", "total", "round_off",
                 "rounded_total"):
        setattr(bill, name, getattr(result, name))


def reprice(db: Session, bill: Bill, *, day: date | None = None) -> tax.DocumentResult | None:
    """Price a draft's lines with the rates in force on `day` (default: each line's current rate) and store
    the results on the lines and the draft. The kind stays None while a registered mixed supply would
    be split at issue."""
    lines = lines_of(db, bill)
    if not lines:
        _store_totals(bill, _EMPTY)
        bill.kind = None
        return None
    if day is not None:
        items = {item.id: item for item in db.scalars(select(PriceItem).where(
            PriceItem.clinic_id == bill.clinic_id, PriceItem.id.in_([ln.item_id for ln in lines if ln.item_id])))}
        history = rate_history(db, bill.clinic_id, items)
        for line in lines:
            item = items.get(line.item_id)
            if item is not None:
                _set_rate(line, item, history.get(item.id, []), day)
    document = engine_document(bill, lines)
    results = tuple(tax.price_line(document, line) for line in document.lines)
    if any(r.gross > MAX_AMOUNT for r in results) or sum(r.total for r in results) > MAX_AMOUNT:
        raise Invalid("That is more than one document can hold: check the quantity and price.",
                      {"quantity": "Too large."})
    for line, result in zip(lines, results, strict=True):
        _store(line, result)
    try:
        kind = tax.document_type(document)
    except tax.MixedSupplyToRegistered:
        kind = None
    priced = tax.DocumentResult(kind, results)
    _store_totals(bill, priced)
    bill.kind = kind
    bill.version += 1
    db.flush()
    return priced


class _Empty:
    taxable_value = exempt_value = nil_rated_value = cgst = sgst = igst = total = round_off = rounded_total = ZERO


_EMPTY = _Empty()


# --- Issuing ------------------------------------------------------------------------------------------

def format_number(prefix: str, day: date, number: int) -> str:
    """PREFIX/25-26/000123: the prefix, the financial year and the counter, 16 characters at most."""
    fy = financial_year(day).short_label
    width = max(4, 16 - len(prefix) - len(fy) - 2)
    return validate_document_number(f"{prefix}/{fy}/{number:0{width}d}")


def take_number(db: Session, clinic_id: uuid.UUID, kind: SeriesKind, prefix: str, day: date) -> tuple[BillSeries, str]:
    """The next number of a series for `day`'s financial year, taken under the series row's lock, so
    concurrent issues queue here and a rolled-back issue gives its number back (no gap, no reuse)."""
    fy_start = financial_year(day).start.year
    db.execute(insert(BillSeries).values(clinic_id=clinic_id, id=new_id(), kind=kind.value, prefix=prefix,
                                         fy_start=fy_start, next_number=1)
               .on_conflict_do_nothing(index_elements=["clinic_id", "prefix", "fy_start"]))
    series = db.scalar(select(BillSeries).where(BillSeries.clinic_id == clinic_id, BillSeries.prefix == prefix,
                                                BillSeries.fy_start == fy_start)
                       .with_for_update().execution_options(populate_existing=True))
    if series.kind is not kind:
        raise BillingError(f"The prefix {prefix} already numbers another series this year: change it in the "
                           "GST profile.")
    number = series.next_number
    try:
        text = format_number(prefix, day, number)
    except ValueError as exc:
        raise BillingError(f"The {prefix} series is full for this financial year.") from exc
    series.next_number = number + 1
    db.flush()
    return series, text


def _series_prefix(profile: BillingProfile, kind: tax.DocumentType) -> tuple[SeriesKind, str]:
    if kind is tax.DocumentType.BILL_OF_SUPPLY:
        return SeriesKind.BILL_OF_SUPPLY, profile.bill_of_supply_prefix
    if kind is tax.DocumentType.CREDIT_NOTE:
        return SeriesKind.CREDIT_NOTE, profile.credit_note_prefix
    return SeriesKind.INVOICE, profile.invoice_prefix


def supplier_particulars(clinic: Clinic, profile: BillingProfile) -> str:
    """The supplier's particulars printed on a document, as they are at issue (JSON)."""
    return json.dumps({"legal_name": clinic.legal_name, "trade_name": clinic.name, "address_line": clinic.address_line,
                       "city": clinic.city, "pin_code": clinic.pin_code, "state_code": clinic.state_code,
                       "gstin": clinic.gstin, "signatory_name": profile.signatory_name,
                       "signatory_designation": profile.signatory_designation})


def _number_and_freeze(db: Session, clinic: Clinic, profile: BillingProfile, bill: Bill, *, by, now: datetime,
                       day: date) -> None:
    series, number = take_number(db, clinic.id, *_series_prefix(profile, bill.kind), day)
    bill.series_id, bill.fy_start, bill.number = series.id, series.fy_start, number
    bill.issued_on, bill.issued_at, bill.issued_by = day, now, by
    bill.supplier, bill.supplier_state = supplier_particulars(clinic, profile), clinic.state_code
    bill.status = BillStatus.ISSUED
    db.add(BillPdf(clinic_id=clinic.id, bill_id=bill.id, requested_at=now))
    db.flush()
    _history(db, bill, "issued", by, {"number": number, "kind": bill.kind.value, "total": str(bill.rounded_total)})
    if bill.patient_id:
        action = "credit_note" if bill.is_credit_note else "issued"
        events.add(db, clinic_id=clinic.id, patient_id=bill.patient_id, kind=Kind.INVOICE, action=action,
                   ref_id=bill.id, by=by, doctor_id=bill.doctor_id, at=now)


def issue(db: Session, *, clinic: Clinic, bill: Bill, by: uuid.UUID | None, now: datetime | None = None,
          day: date, version: int | None = None) -> list[Bill]:
    """Issue a draft: re-priced with the rates in force on `day`, typed, numbered and frozen. A registered
    recipient's mix of taxable and exempt lines becomes two documents (tax invoice, bill of supply).

    `version`: the draft as the user last saw it; a draft changed since is refused (409), so nobody
    issues lines they have not seen.
    """
    _require_draft(bill)
    if version is not None and version != bill.version:
        raise BillingError("This draft was changed on another screen: check it again, then issue.")
    profile = profile_of(db, clinic.id)
    problem = not_ready(clinic, profile)
    if problem:
        raise BillingError(problem)
    if bill.supplier_state != clinic.state_code:
        bill.supplier_state = clinic.state_code
    priced = reprice(db, bill, day=day)
    if priced is None:
        raise Invalid("Add at least one line before issuing.")
    if priced.rounded_total < 0:
        raise BillingError("A document's total cannot be negative.")
    _require_recipient_details(db, bill, priced)
    documents = [bill]
    if bill.kind is None:  # a registered recipient's mixed supply: the exempt lines go to their own document
        documents.append(_split_exempt(db, bill, by=by, day=day))
    now = now or utcnow()
    for document in documents:
        _number_and_freeze(db, clinic, profile, document, by=by, now=now, day=day)
    return documents


def _require_recipient_details(db: Session, bill: Bill, priced: tax.DocumentResult) -> None:
    """Rule 46(d)/(e): a registered recipient's name, address and state always; an unregistered one's from
    a taxable supply of ₹50,000 (the state by name and code)."""
    large = priced.taxable_value + priced.cgst + priced.sgst + priced.igst >= B2C_DETAILS_FROM
    if not (bill.recipient_gstin or large):
        return
    recipient = recipient_of(db, bill)
    missing = {name: "Required on this document." for name in ("name", "address_line", "state_code")
               if not recipient.get(name)}
    if missing:
        who = "a registered recipient" if bill.recipient_gstin else "a taxable supply of ₹50,000 or more"
        raise Invalid(f"The recipient's name, address and state are required for {who} (Rule 46).", missing)


def _split_exempt(db: Session, bill: Bill, *, by, day: date) -> Bill:
    twin = Bill(clinic_id=bill.clinic_id, id=new_id(), status=BillStatus.DRAFT, patient_id=bill.patient_id,
                appointment_id=bill.appointment_id, doctor_id=bill.doctor_id, supplier_state=bill.supplier_state,
                state_tax=bill.state_tax, recipient_state=bill.recipient_state, recipient_gstin=bill.recipient_gstin,
                key_version=bill.key_version, created_by=by)
    db.add(twin)
    db.flush()
    _seal_recipient(db, twin, recipient_of(db, bill))
    exempt = [line for line in lines_of(db, bill) if line.treatment is not tax.Treatment.TAXABLE]
    for position, line in enumerate(exempt, start=1):
        line.bill_id, line.position = twin.id, position
    db.flush()
    for position, line in enumerate(lines_of(db, bill), start=1):
        line.position = position
    reprice(db, bill, day=day)
    reprice(db, twin, day=day)
    _history(db, twin, "created", by, {"split_from": str(bill.id)})
    return twin


# --- Credit notes -------------------------------------------------------------------------------------

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
    _seal_recipient(db, note, recipient_of(db, original))
    for position, (part, priced) in enumerate(zip(returns, result.lines, strict=True), start=1):
        source = lines[part.line]
        line = BillLine(clinic_id=clinic.id, id=new_id(), bill_id=note.id, position=position, item_id=source.item_id,
                        original_line_id=source.id, description=source.description, hsn_sac=source.hsn_sac,
                        unit=source.unit, quantity=-part.quantity, unit_price=source.unit_price,
                        price_includes_tax=source.price_includes_tax, treatment=source.treatment, rate=source.rate,
                        discount_value=priced.line.discount.value if priced.line.discount else None,
                        discount_percent=bool(priced.line.discount and priced.line.discount.percent),
                        place_of_supply=priced.place_of_supply, gross=ZERO, taxable_value=ZERO, total=ZERO)
        _store(line, priced)
        db.add(line)
    _store_totals(note, result)
    _round_cumulatively(db, original, note)
    db.flush()
    now = now or utcnow()
    _number_and_freeze(db, clinic, profile, note, by=by, now=now, day=day)
    if reason is CreditReason.CANCEL:
        original.cancelled_at, original.cancelled_by = now, by
        _history(db, original, "cancelled", by, {"credit_note": note.number})
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
