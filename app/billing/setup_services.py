"""Billing setup: the clinic's GST profile and the price list with its dated GST rates.

The forms are app/billing/setup_forms.py. Writing flushes, never commits (the view commits once, after
auditing). Issued documents copy the supplier's particulars and each line's item values and
rate, so nothing saved here ever changes one of them.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import formats
from app.auth.models import StaffUser
from app.billing import tax
from app.billing.issuing import format_number
from app.billing.models import BillingProfile, BillSeries, PriceItem, PriceRate, SeriesKind
from app.billing.services import BillingError, Invalid, rate_history
from app.clinics.models import Clinic
from app.clinics.states import STATES
from app.db import utcnow

GST_START = date(2017, 7, 1)
STATE_CODES = {s.code for s in STATES}  # a clinic registers in a current state, never a legacy code
CLINIC_FIELDS = ("legal_name", "address_line", "city", "pin_code", "state_code", "gstin")
SERIES = (("invoice_prefix", SeriesKind.INVOICE, "Tax invoices", "INV"),
          ("bill_of_supply_prefix", SeriesKind.BILL_OF_SUPPLY, "Bills of supply", "BOS"),
          ("credit_note_prefix", SeriesKind.CREDIT_NOTE, "Credit notes", "CN"),
          ("receipt_prefix", SeriesKind.RECEIPT, "Payment receipts", "RCT"))
PROFILE_FIELDS = ("signatory_name", "signatory_designation", *(s[0] for s in SERIES), "fee_validity_days")
UNITS = {"NOS": "Numbers", "BOX": "Box", "BTL": "Bottles", "PAC": "Packs", "TBS": "Tablets",
         "MLT": "Millilitre", "GMS": "Grams", "KGS": "Kilograms", "TUB": "Tubes", "SET": "Sets", "UNT": "Units",
         "OTH": "Others"}
TREATMENTS = {tax.Treatment.TAXABLE: "Taxable", tax.Treatment.EXEMPT: "Exempt", tax.Treatment.NIL_RATED: "Nil-rated"}
UNIT_OPTIONS = [(code, f"{code} ({label.lower()})") for code, label in UNITS.items()]
TREATMENT_OPTIONS = [(treatment.value, label) for treatment, label in TREATMENTS.items()]
COMMON_RATES = ("0", "0.25", "3", "5", "12", "18", "28", "40")
PREFIX = re.compile(r"[A-Z0-9]{1,4}")


# --- The GST profile ------------------------------------------------------------------------------

def profile_values(clinic: Clinic, profile: BillingProfile | None) -> dict:
    """The profile form's values as saved (the series defaults when no profile exists yet)."""
    values = {name: getattr(clinic, name) or "" for name in CLINIC_FIELDS}
    values.update(signatory_name="", signatory_designation="", fee_validity_days="0")
    values.update({name: default for name, _, _, default in SERIES})
    if profile is not None:
        values.update({name: str(getattr(profile, name)) for name in PROFILE_FIELDS})
    return values


def _series_clash(db: Session, clinic_id: uuid.UUID, values: dict) -> dict[str, str]:
    """Prefixes that already number another kind of document (a series never changes kind)."""
    used = dict(db.execute(select(BillSeries.prefix, BillSeries.kind).where(BillSeries.clinic_id == clinic_id)).all())
    labels = {kind: label for _, kind, label, _ in SERIES}
    return {name: f"{values[name]} already numbers {labels[used[values[name]]].lower()}: choose another prefix."
            for name, kind, _, _ in SERIES if used.get(values[name], kind) is not kind}


def save_profile(db: Session, clinic: Clinic, values: dict, *, by: uuid.UUID) -> list[str]:
    """Write the cleaned profile (creating the billing profile row if missing); the names of fields changed."""
    clash = _series_clash(db, clinic.id, values)
    if clash:
        raise Invalid("A prefix cannot be reused for another kind of document.", clash)
    profile = db.get(BillingProfile, clinic.id)
    if profile is None:
        profile = BillingProfile(clinic_id=clinic.id)
        db.add(profile)
    values = {**values, "gstin": values["gstin"] or None}
    changed = [name for name in CLINIC_FIELDS if getattr(clinic, name) != values[name]]
    changed += [name for name in PROFILE_FIELDS if getattr(profile, name) != values[name]]
    for name in CLINIC_FIELDS:
        setattr(clinic, name, values[name])
    for name in PROFILE_FIELDS:
        setattr(profile, name, values[name])
    profile.updated_at, profile.updated_by = utcnow(), by
    db.flush()
    return changed


def number_examples(values: dict, day: date) -> list[tuple[str, str]]:
    """(series, first number this financial year) for each valid prefix, e.g. ("Tax invoices", INV/26-27/000001)."""
    prefixes = {name: str(values.get(name) or "").upper() for name, _, _, _ in SERIES}
    return [(label, format_number(prefixes[name], day, 1)) for name, _, label, _ in SERIES
            if PREFIX.fullmatch(prefixes[name])]


# --- The price list -------------------------------------------------------------------------------

@dataclass
class PriceRow:
    item: PriceItem
    today_rate: Decimal | None  # None: taxable with no rate in force today (or not taxable)
    future: list[tuple[date, Decimal]]


def price_rows(db: Session, clinic_id: uuid.UUID, day: date, *, q: str = "", inactive: bool = False) -> list[PriceRow]:
    """The price list by code, filtered by name or code, with each item's rate today and rates to come."""
    query = select(PriceItem).where(PriceItem.clinic_id == clinic_id).order_by(PriceItem.code)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(PriceItem.name.ilike(like), PriceItem.code.ilike(like)))
    if not inactive:
        query = query.where(PriceItem.active.is_(True))
    items = list(db.scalars(query.limit(1000)))
    history = rate_history(db, clinic_id, [i.id for i in items])
    return [PriceRow(i, _in_force(history.get(i.id, []), day), [(s, r) for s, r in history.get(i.id, []) if s > day])
            for i in items]


def _in_force(history: list[tuple[date, Decimal]], day: date) -> Decimal | None:
    try:
        return tax.rate_in_force(history, day)
    except tax.TaxError:
        return None


def item_values(item: PriceItem | None, day: date) -> dict:
    """The item form's values (a new item's defaults when None)."""
    if item is None:
        return {"code": "", "name": "", "hsn_sac": "", "unit": "NOS", "price": "", "price_includes_tax": False,
                "treatment": "exempt", "fee_validity": False, "active": True, "rate": "",
                "effective_from": day.isoformat(), "version": ""}
    return {"code": item.code, "name": item.name, "hsn_sac": item.hsn_sac, "unit": item.unit, "price": str(item.price),
            "price_includes_tax": item.price_includes_tax, "treatment": item.treatment.value,
            "fee_validity": item.fee_validity, "active": item.active, "rate": "", "effective_from": day.isoformat(),
            "version": str(item.version)}


def check_version(item: PriceItem, raw: str | None) -> None:
    """Refuse a save made from a form older than the item (someone else saved it meanwhile)."""
    if (raw or "").strip() != str(item.version):
        raise BillingError(f"{item.code} was changed by someone else after you opened it: review it and save again.")


def has_rates(db: Session, item: PriceItem) -> bool:
    return db.scalar(select(PriceRate.id).where(PriceRate.clinic_id == item.clinic_id, PriceRate.item_id == item.id)
                     .limit(1)) is not None


def code_taken(db: Session, clinic_id: uuid.UUID, code: str) -> bool:
    return db.scalar(select(PriceItem.id).where(PriceItem.clinic_id == clinic_id, PriceItem.code == code)) is not None


def create_item(db: Session, clinic_id: uuid.UUID, values: dict, *, by: uuid.UUID) -> PriceItem:
    """A new price item, with its first GST rate when taxable."""
    taken = Invalid("Another item already has this code.",
                    {"code": f"{values['code']} is already in the price list: choose another code."})
    if code_taken(db, clinic_id, values["code"]):
        raise taken
    item = PriceItem(clinic_id=clinic_id, updated_by=by, version=1,
                     **{k: v for k, v in values.items() if k not in ("rate",)})
    if not _inserted(db, item):  # the same code added at the same moment
        raise taken
    if item.treatment is tax.Treatment.TAXABLE:
        add_rate(db, item, *values["rate"], by=by)
    return item


def update_item(db: Session, item: PriceItem, values: dict, *, by: uuid.UUID) -> list[str]:
    """Change an item (not its code) and bump its version; the names of fields changed."""
    names = ("name", "hsn_sac", "unit", "price", "price_includes_tax", "treatment", "fee_validity", "active")
    changed = [name for name in names if getattr(item, name) != values[name]]
    for name in names:
        setattr(item, name, values[name])
    item.version += 1
    item.updated_at, item.updated_by = utcnow(), by
    if "rate" in values and item.treatment is tax.Treatment.TAXABLE:
        add_rate(db, item, *values["rate"], by=by)
    db.flush()
    return changed


def add_rate(db: Session, item: PriceItem, since: date, rate: Decimal, *, by: uuid.UUID) -> PriceRate:
    """Append a dated rate; one already starting on that date is never replaced."""
    if item.treatment is not tax.Treatment.TAXABLE:
        raise Invalid("Exempt and nil-rated items carry no GST rate.", {"rate": "This item is not taxable."})
    refused = Invalid(f"A rate from {formats.day(since)} is already recorded; rates are never changed or replaced.",
                      {"effective_from": "A rate already starts on this date: choose another date."})
    exists = db.scalar(select(PriceRate.id).where(PriceRate.clinic_id == item.clinic_id,
                                                 PriceRate.item_id == item.id, PriceRate.effective_from == since))
    row = PriceRate(clinic_id=item.clinic_id, item_id=item.id, effective_from=since, rate=rate, created_by=by)
    if exists or not _inserted(db, row):
        raise refused
    return row


def _inserted(db: Session, row) -> bool:
    """Insert under a savepoint; False when a unique index refuses it (nothing else is undone)."""
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        return False
    return True


@dataclass
class RateLine:
    since: date
    rate: Decimal
    by: str
    at: object
    in_force: bool
    future: bool


def rates_of(db: Session, item: PriceItem, day: date) -> list[RateLine]:
    """The item's rate history, newest first, marking the rate in force on `day` and rates still to come."""
    rows = db.execute(select(PriceRate, StaffUser.full_name).outerjoin(StaffUser, StaffUser.id == PriceRate.created_by)
                      .where(PriceRate.clinic_id == item.clinic_id, PriceRate.item_id == item.id)
                      .order_by(PriceRate.effective_from.desc())).all()
    current = max((r.effective_from for r, _ in rows if r.effective_from <= day), default=None)
    return [RateLine(r.effective_from, r.rate, name or "set up", r.created_at, r.effective_from == current,
                     r.effective_from > day) for r, name in rows]


def item_of(db: Session, clinic_id: uuid.UUID, form: dict) -> PriceItem:
    """The price item chosen in the list, or typed by its code (a code wins when both are given)."""
    code = form.get("code", "").strip().upper()
    if code:
        item = db.scalar(select(PriceItem).where(PriceItem.clinic_id == clinic_id, PriceItem.active,
                                                 func.upper(PriceItem.code) == code))
        if item is None:
            raise Invalid(f"No item on the price list has the code {code}.", {"code": "Unknown code."})
        return item
    try:
        item = db.get(PriceItem, (clinic_id, uuid.UUID(form.get("item_id", ""))))
    except ValueError:
        item = None
    if item is None:
        raise Invalid("Choose an item from the price list, or type its code.",
                               {"item_id": "Choose an item."})
    return item
