"""The printed document (the "paper"): every particular Rules 46, 46A, 49 and 53(1A) require, gathered
from stored values only (never recomputed), for the document page and its PDF (templates/billing/_paper.html).

- An issued document prints the supplier as frozen at issue (`bill.supplier`); a draft prints the clinic
  and profile as they are now, titled "Draft — not a valid document", without a number.
- A credit note prints absolute amounts (stored negative), its reason, and the original's number and date.
- `paper(db, bill, as_issued=True)` leaves out what happened after issue (a cancellation), so the PDF,
  made once by the worker, is the document as issued and regenerates byte for byte.

`pdf_state(db, bill)` is what templates/billing/_pdf_status.html shows (the PDF's progress).
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import formats
from app.billing import credit_notes, services
from app.billing.models import Bill, BillPdf, CreditReason, PdfStatus
from app.billing.tax import DocumentType, Treatment
from app.billing.words import amount_in_words
from app.clinics.models import Clinic
from app.clinics.states import BY_CODE, state_label
from app.db import utcnow

TITLES = {
    DocumentType.TAX_INVOICE: "Tax Invoice",
    DocumentType.BILL_OF_SUPPLY: "Bill of Supply",
    DocumentType.INVOICE_CUM_BILL_OF_SUPPLY: "Invoice-cum-Bill of Supply",
    DocumentType.CREDIT_NOTE: "Credit Note",
    DocumentType.BILL: "Bill",
}
NOT_REGISTERED = "The supplier is not registered under GST: no GST is charged on this bill."
DRAFT_TITLE = "Draft — not a valid document"
REASONS = {
    CreditReason.CANCEL: "Cancellation of the original document",
    CreditReason.RETURN: "Goods returned or service not provided",
    CreditReason.CORRECTION: "Correction of the amount charged",
}
ZERO = Decimal("0.00")


# --- Formatting ----------------------------------------------------------------------------------------

def quantity_text(quantity: Decimal) -> str:
    text = f"{abs(Decimal(quantity)).normalize():f}"
    return text


# --- The paper ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Party:
    name: str
    trade_name: str = ""  # printed when it differs from the legal name
    address: tuple[str, ...] = ()
    phone: str = ""
    gstin: str = ""
    state: str = ""  # "29-Karnataka", or "" when not known


@dataclass(frozen=True)
class TaxPart:
    label: str  # CGST, SGST, UTGST, IGST
    rate: str  # "2.5%"
    amount: Decimal


@dataclass(frozen=True)
class PaperLine:
    position: int
    description: str
    note: str
    hsn_sac: str
    quantity: str
    unit: str
    unit_price: Decimal
    discount: Decimal
    discount_text: str  # "10%" for a percentage discount, else ""
    taxable_value: Decimal
    taxable: bool
    treatment_label: str  # "" (taxable), "Exempt", "Nil rated"
    rate: str  # the GST rate, "5%" ("" when not taxable)
    cgst: TaxPart | None
    sgst: TaxPart | None
    igst: TaxPart | None
    total: Decimal
    mrp: bool
    place_of_supply: str  # "29-Karnataka"
    non_gst: bool = False  # a line of a supplier not registered for GST


@dataclass(frozen=True)
class Paper:
    bill_id: uuid.UUID
    draft: bool
    title: str
    kind: DocumentType | None
    number: str
    issued_on: str  # "05 Apr 2026"
    supplier: Party
    recipient: Party
    recipient_registered: bool
    place_of_supply: str  # one for the document, or "" when lines differ (then printed per line)
    per_line_place: bool
    lines: list[PaperLine]
    state_tax: str  # SGST or UTGST
    has_tax: bool  # any taxable line: the tax columns print
    has_intra: bool  # CGST + SGST/UTGST columns
    has_inter: bool  # IGST column
    totals: list[tuple[str, Decimal]]  # (label, amount), ending with Total, Round off, Grand total
    grand_total: Decimal
    amount_in_words: str
    reverse_charge: str = "No"
    credit_note: bool = False
    credit_reason: str = ""
    original_number: str = ""
    original_date: str = ""
    original_title: str = ""
    cancelled: str = ""  # "Cancelled by CN/26-27/000001 on 05 Apr 2026"
    signatory_name: str = ""
    signatory_designation: str = ""
    mrp: bool = False
    gst: bool = True  # the supplier is registered: GST particulars print (place of supply, reverse charge)
    electronic_note: str = "This is a computer-generated document; no signature is required."
    notes: list[str] = field(default_factory=list)

    @property
    def not_registered_note(self) -> str:
        return NOT_REGISTERED


def _supplier(db: Session, bill: Bill) -> dict:
    if bill.issued and bill.supplier:
        return json.loads(bill.supplier)
    clinic = db.get(Clinic, bill.clinic_id)
    profile = services.profile_of(db, bill.clinic_id)
    values = {"legal_name": clinic.legal_name, "trade_name": clinic.name, "address_line": clinic.address_line,
              "city": clinic.city, "pin_code": clinic.pin_code, "state_code": clinic.state_code,
              "gstin": clinic.gstin or "", "signatory_name": "", "signatory_designation": ""}
    if profile is not None:
        values.update(signatory_name=profile.signatory_name, signatory_designation=profile.signatory_designation)
    return values


def _state(code: str | None) -> str:
    return state_label(code) if code and code in BY_CODE else ""


def _address(line: str | None, city: str | None, pin_code: str | None) -> tuple[str, ...]:
    city_line = " ".join(part for part in ((city or "").strip(), (pin_code or "").strip()) if part)
    return tuple(part for part in ((line or "").strip(), city_line) if part)


def _line(line, sign: int, state_tax: str) -> PaperLine:
    taxable = line.treatment is Treatment.TAXABLE
    half = Decimal(line.rate) / 2
    cgst = sgst = igst = None
    if taxable and line.inter_state:
        igst = TaxPart("IGST", formats.percent(line.rate), sign * line.igst)
    elif taxable:
        cgst = TaxPart("CGST", formats.percent(half), sign * line.cgst)
        sgst = TaxPart(state_tax, formats.percent(half), sign * line.sgst)
    label = {Treatment.EXEMPT: "Exempt", Treatment.NIL_RATED: "Nil rated"}.get(line.treatment, "")
    discount_text = formats.percent(line.discount_value) if line.discount_percent and line.discount_value else ""
    return PaperLine(
        position=line.position, description=line.description, note=line.note or "", hsn_sac=line.hsn_sac,
        quantity=quantity_text(line.quantity), unit=line.unit, unit_price=line.unit_price,
        discount=sign * line.discount, discount_text=discount_text, taxable_value=sign * line.taxable_value,
        taxable=taxable, treatment_label=label, rate=formats.percent(line.rate) if taxable else "", cgst=cgst,
        sgst=sgst,
        igst=igst, total=sign * line.total, mrp=line.price_includes_tax and line.treatment is not Treatment.NON_GST,
        place_of_supply=_state(line.place_of_supply), non_gst=line.treatment is Treatment.NON_GST)


def _cancelled(db: Session, bill: Bill) -> str:
    if bill.cancelled_at is None:
        return ""
    for note in credit_notes.credit_notes_of(db, bill):
        if note.credit_reason is CreditReason.CANCEL:
            return f"Cancelled by {note.number} on {formats.day(note.issued_on)}"
    return "Cancelled"


def _supplier_party(values: dict) -> Party:
    legal_name, trade_name = values.get("legal_name") or "", values.get("trade_name") or ""
    return Party(name=legal_name, trade_name=trade_name if trade_name != legal_name else "",
                 address=_address(values.get("address_line"), values.get("city"), values.get("pin_code")),
                 gstin=values.get("gstin") or "", state=_state(values.get("state_code")))


def _recipient_party(db: Session, bill: Bill) -> Party:
    values = services.recipient_of(db, bill)
    return Party(name=values.get("name") or "",
                 address=_address(values.get("address_line"), values.get("city"), values.get("pin_code")),
                 phone=values.get("phone") or "", gstin=values.get("gstin") or "",
                 state=_state(values.get("state_code")))


def _place(lines: list[PaperLine], default: str) -> tuple[str, bool]:
    """The document's place of supply, or "" and True when its lines differ (printed per line)."""
    places = sorted({line.place_of_supply for line in lines if line.place_of_supply})
    if len(places) > 1:
        return "", True
    return (places[0] if places else default), False


def _tax_totals(bill: Bill, lines: list[PaperLine], sign: int, state_tax: str) -> list[tuple[str, Decimal]]:
    """The value and tax rows of the totals: each only when a line or the bill has it."""
    rows = [("Taxable value", bill.taxable_value, any(line.taxable for line in lines) or bill.taxable_value),
            ("Exempt value", bill.exempt_value, bill.exempt_value),
            ("Nil-rated value", bill.nil_rated_value, bill.nil_rated_value)]
    intra = any(line.cgst is not None for line in lines) or bill.cgst
    rows += [("CGST", bill.cgst, intra), (state_tax, bill.sgst, intra),
             ("IGST", bill.igst, any(line.igst is not None for line in lines) or bill.igst)]
    return [(label, sign * amount) for label, amount, shown in rows if shown]


def _totals(bill: Bill, lines: list[PaperLine], sign: int, state_tax: str) -> list[tuple[str, Decimal]]:
    """(label, amount) rows ending with Total and Round off (the grand total prints after them)."""
    ending = [("Total", sign * bill.total), ("Round off", sign * bill.round_off)]
    return [*_tax_totals(bill, lines, sign, state_tax), *ending]


def _original(db: Session, bill: Bill) -> dict[str, str]:
    """A credit note's original document: its number, date and title."""
    original = db.get(Bill, (bill.clinic_id, bill.original_id)) if bill.original_id is not None else None
    if original is None:
        return {}
    return {"original_number": original.number or "", "original_date": formats.day(original.issued_on),
            "original_title": TITLES.get(original.kind, "")}


def _heading(bill: Bill) -> dict:
    """Title, number and date: a draft has neither number nor date."""
    if not bill.issued:
        return {"draft": True, "title": DRAFT_TITLE, "number": "", "issued_on": ""}
    return {"draft": False, "title": TITLES.get(bill.kind, "Invoice"), "number": bill.number or "",
            "issued_on": formats.day(bill.issued_on)}


def _is_gst(bill: Bill, lines: list[PaperLine]) -> bool:
    """Whether GST particulars print: not a plain bill, nor one whose every line is outside GST."""
    return bill.kind is not DocumentType.BILL and not (lines and all(line.non_gst for line in lines))


def _signatory(values: dict) -> dict[str, str]:
    return {"signatory_name": values.get("signatory_name") or "",
            "signatory_designation": values.get("signatory_designation") or ""}


def paper(db: Session, bill: Bill, *, as_issued: bool = False) -> Paper:
    """Everything the document prints. PHI (the recipient): the caller audits the response that shows it.

    `as_issued`: the document as it was at issue (the PDF): no cancellation mark added later.
    """
    sign = -1 if bill.kind is DocumentType.CREDIT_NOTE else 1
    state_tax = bill.state_tax or "SGST"
    lines = [_line(line, sign, state_tax) for line in services.lines_of(db, bill)]
    supplier_values = _supplier(db, bill)
    recipient = _recipient_party(db, bill)
    place, per_line = _place(lines, _state(bill.supplier_state or supplier_values.get("state_code")))
    return Paper(
        bill_id=bill.id, kind=bill.kind, **_heading(bill), supplier=_supplier_party(supplier_values),
        recipient=recipient, recipient_registered=bool(recipient.gstin), place_of_supply=place,
        per_line_place=per_line, lines=lines, state_tax=state_tax, has_tax=any(line.taxable for line in lines),
        has_intra=any(line.cgst is not None for line in lines), has_inter=any(line.igst is not None for line in lines),
        totals=_totals(bill, lines, sign, state_tax), gst=_is_gst(bill, lines), grand_total=sign * bill.rounded_total,
        amount_in_words=amount_in_words(abs(bill.rounded_total)), credit_note=bill.kind is DocumentType.CREDIT_NOTE,
        credit_reason=REASONS.get(bill.credit_reason, "") if bill.credit_reason else "", **_original(db, bill),
        cancelled="" if as_issued else _cancelled(db, bill), **_signatory(supplier_values),
        mrp=any(line.mrp for line in lines))


# --- The PDF's progress ------------------------------------------------------------------------------

STUCK_AFTER = timedelta(minutes=3)


@dataclass(frozen=True)
class PdfState:
    bill_id: uuid.UUID
    status: str  # "pending", "ready", "failed", or "none" (a draft: no PDF)
    error: str = ""
    attempts: int = 0
    sha256: str = ""
    stuck: bool = False  # pending for longer than a render and its retries take: offer Retry

    @property
    def pending(self) -> bool:
        return self.status == PdfStatus.PENDING.value

    @property
    def ready(self) -> bool:
        return self.status == PdfStatus.READY.value

    @property
    def failed(self) -> bool:
        return self.status == PdfStatus.FAILED.value


def pdf_row(db: Session, bill: Bill, *, for_update: bool = False) -> BillPdf | None:
    query = select(BillPdf).where(BillPdf.clinic_id == bill.clinic_id, BillPdf.bill_id == bill.id)
    if for_update:
        query = query.with_for_update()
    return db.scalars(query).one_or_none()


def pdf_state(db: Session, bill: Bill) -> PdfState:
    """The document's PDF status for templates/billing/_pdf_status.html (context variable `pdf_state`)."""
    row = pdf_row(db, bill) if bill.issued else None
    if row is None:
        return PdfState(bill_id=bill.id, status="none")
    stuck = row.status is PdfStatus.PENDING and utcnow() - row.requested_at > STUCK_AFTER
    return PdfState(bill_id=bill.id, status=row.status.value, error=row.error or "", attempts=row.attempts,
                    sha256=row.sha256 or "", stuck=stuck)
