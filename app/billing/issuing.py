"""Issuing a draft: the right document type, a number from its series taken in the issuing transaction
(no gap, no reuse), the supplier's particulars frozen, the recipient details Rule 46 asks for, and a
registered buyer's mixed supply split into a tax invoice and a bill of supply."""

import json
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.billing import tax
from app.billing.models import Bill, BillingProfile, BillPdf, BillSeries, BillStatus, SeriesKind
from app.billing.numbers import financial_year, validate_document_number
from app.billing.services import (
    BillingError,
    Invalid,
    lines_of,
    not_ready,
    profile_of,
    recipient_of,
    reprice,
    require_draft,
    seal_recipient,
    write_history,
)
from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.timeline import events
from app.timeline.models import Kind

B2C_DETAILS_FROM = Decimal("50000")  # Rule 46(e): an unregistered recipient's details on a supply of this much


def format_number(prefix: str, day: date, number: int) -> str:
    """PREFIX/25-26/000123: the prefix, the financial year and the counter, 16 characters at most."""
    fy = financial_year(day).short_label
    width = 6 if len(prefix) <= 3 else 5  # the same width in every series (a 4-character prefix leaves room for 5)
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


def number_and_freeze(db: Session, clinic: Clinic, profile: BillingProfile, bill: Bill, *, by, now: datetime,
                       day: date) -> None:
    series, number = take_number(db, clinic.id, *_series_prefix(profile, bill.kind), day)
    bill.series_id, bill.fy_start, bill.number = series.id, series.fy_start, number
    bill.issued_on, bill.issued_at, bill.issued_by = day, now, by
    bill.supplier, bill.supplier_state = supplier_particulars(clinic, profile), clinic.state_code
    bill.status = BillStatus.ISSUED
    db.add(BillPdf(clinic_id=clinic.id, bill_id=bill.id, requested_at=now))
    db.flush()
    write_history(db, bill, "issued", by, {"number": number, "kind": bill.kind.value, "total": str(bill.rounded_total)})
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
    require_draft(bill)
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
        number_and_freeze(db, clinic, profile, document, by=by, now=now, day=day)
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
    seal_recipient(db, twin, recipient_of(db, bill))
    exempt = [line for line in lines_of(db, bill) if line.treatment is not tax.Treatment.TAXABLE]
    for position, line in enumerate(exempt, start=1):
        line.bill_id, line.position = twin.id, position
    db.flush()
    for position, line in enumerate(lines_of(db, bill), start=1):
        line.position = position
    reprice(db, bill, day=day)
    reprice(db, twin, day=day)
    write_history(db, twin, "created", by, {"split_from": str(bill.id)})
    return twin
