"""Day close and GSTR-1: what the desk counts at the end of a day and what the accountant files from.

Every amount here is a sum of stored, already-rounded values (a document's totals are themselves the
sums of its lines'); nothing is recomputed from summed bases, so the GSTR-1 tables agree to the paisa.
Credit notes carry negative amounts and quantities, so a month's sums are net of them.
"""

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.auth.models import StaffUser
from app.billing import services
from app.billing.models import Bill, BillLine, BillSeries, BillStatus, CreditReason, Payment, PaymentKind, SeriesKind
from app.billing.tax import ZERO, DocumentType, Treatment
from app.clinics.models import Clinic
from app.clinics.states import state_label
from app.formats import inr
from app.scheduling.services import zone

B2CL_LIMIT = Decimal("100000")  # an inter-state B2C invoice above this is reported invoice-wise (Rule 59(4))
DOC_NATURES = {1: "Invoices for outward supply", 5: "Credit Note"}
SUPPLY_TYPES = {  # Table 8 rows: (inter-state, registered recipient) -> portal code and offline-tool description
    (True, True): ("INTRB2B", "Inter-State supplies to registered persons"),
    (False, True): ("INTRAB2B", "Intra-State supplies to registered persons"),
    (True, False): ("INTRB2C", "Inter-State supplies to unregistered persons"),
    (False, False): ("INTRAB2C", "Intra-State supplies to unregistered persons"),
}


def day_bounds(clinic: Clinic, start: date, end: date) -> tuple[datetime, datetime]:
    """The instants the clinic's days `start` (inclusive) to `end` (exclusive) begin and end."""
    tz = zone(clinic)
    return datetime.combine(start, time(), tz), datetime.combine(end, time(), tz)


# --- Day close ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Collection:
    """Money taken (and refunded) in one mode by one staff member, or a sum of such."""

    label: str
    count: int
    received: Decimal
    refunded: Decimal

    @property
    def net(self) -> Decimal:
        return self.received - self.refunded


@dataclass(frozen=True)
class Series:
    """Documents of one type and series issued in a period."""

    kind: DocumentType
    prefix: str
    count: int
    first: str
    last: str
    taxable: Decimal
    exempt: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True)
class Owed:
    """An issued invoice or bill of supply with a balance still due."""

    bill_id: uuid.UUID
    patient_id: uuid.UUID | None
    number: str
    issued_on: date
    name: str
    billed: Decimal
    due: Decimal


@dataclass
class DayClose:
    day: date
    by_mode: list[Collection]
    by_staff: list[Collection]
    by_mode_staff: list[Collection]
    documents: list[Series]
    credit_notes: list[tuple[Bill, str | None]]  # (the note, its original's number)
    cancelled: list[tuple[Bill, str | None]]  # (the document, the cancelling credit note's number)
    owed: list[Owed]

    @property
    def collected(self) -> Collection:
        return _sum_collections("Total", self.by_mode)

    @property
    def patient_ids(self) -> list[uuid.UUID]:
        return sorted({o.patient_id for o in self.owed if o.patient_id})


def _sum_collections(label: str, rows: Iterable[Collection]) -> Collection:
    rows = list(rows)
    return Collection(label, sum(r.count for r in rows), sum((r.received for r in rows), ZERO),
                      sum((r.refunded for r in rows), ZERO))


def _grouped_collections(rows: list[tuple[str, Collection]]) -> list[Collection]:
    groups: dict[str, list[Collection]] = {}
    for key, row in rows:
        groups.setdefault(key, []).append(row)
    return [_sum_collections(key, items) for key, items in sorted(groups.items())]


def collections(db: Session, clinic_id: uuid.UUID, day: date) -> list[tuple[str, str, Collection]]:
    """(mode label, staff name, collection) for each mode and staff member who took money on `day`."""
    received = func.sum(case((Payment.kind == PaymentKind.PAYMENT, Payment.amount), else_=0))
    refunded = func.sum(case((Payment.kind == PaymentKind.REFUND, Payment.amount), else_=0))
    rows = db.execute(
        select(Payment.mode, StaffUser.full_name, func.count(), received, refunded)
        .outerjoin(StaffUser, StaffUser.id == Payment.received_by)
        .where(Payment.clinic_id == clinic_id, Payment.received_on == day)
        .group_by(Payment.mode, Payment.received_by, StaffUser.full_name))
    found = []
    for mode, name, count, got, back in rows:
        staff = name or "(system)"
        found.append((mode.label, staff, Collection(f"{mode.label} · {staff}", count, Decimal(got), Decimal(back))))
    return sorted(found, key=lambda r: (r[0], r[1]))


def series_issued(db: Session, clinic_id: uuid.UUID, start: date, end: date) -> list[Series]:
    """Documents issued on days `start` to `end` (exclusive), by type and series."""
    rows = db.execute(
        select(Bill.kind, BillSeries.prefix, func.count(), func.min(Bill.number), func.max(Bill.number),
               func.sum(Bill.taxable_value), func.sum(Bill.exempt_value + Bill.nil_rated_value),
               func.sum(Bill.cgst + Bill.sgst + Bill.igst), func.sum(Bill.rounded_total))
        .join(BillSeries, (BillSeries.clinic_id == Bill.clinic_id) & (BillSeries.id == Bill.series_id))
        .where(Bill.clinic_id == clinic_id, Bill.status == BillStatus.ISSUED, Bill.issued_on >= start,
               Bill.issued_on < end)
        .group_by(Bill.kind, BillSeries.prefix).order_by(BillSeries.prefix, Bill.kind))
    return [Series(*row) for row in rows]


def _credit_notes(db: Session, clinic_id: uuid.UUID, day: date) -> list[tuple[Bill, str | None]]:
    original = aliased(Bill)
    return list(db.execute(
        select(Bill, original.number)
        .outerjoin(original, (original.clinic_id == Bill.clinic_id) & (original.id == Bill.original_id))
        .where(Bill.clinic_id == clinic_id, Bill.status == BillStatus.ISSUED, Bill.kind == DocumentType.CREDIT_NOTE,
               Bill.issued_on == day).order_by(Bill.number)))


def _cancelled(db: Session, clinic: Clinic, day: date) -> list[tuple[Bill, str | None]]:
    start, end = day_bounds(clinic, day, day + timedelta(days=1))
    note = aliased(Bill)
    return list(db.execute(
        select(Bill, note.number)
        .outerjoin(note, (note.clinic_id == Bill.clinic_id) & (note.original_id == Bill.id)
                   & (note.credit_reason == CreditReason.CANCEL) & (note.status == BillStatus.ISSUED))
        .where(Bill.clinic_id == clinic.id, Bill.cancelled_at >= start, Bill.cancelled_at < end)
        .order_by(Bill.number)))


def open_balances(db: Session, clinic: Clinic, day: date) -> list[tuple[Bill, Decimal]]:
    """Issued, not cancelled invoices and bills of supply with a balance due at the end of `day` (billed -
    credited - paid + refunded, by SQL sums), oldest first."""
    credits = (select(Bill.original_id.label("bill_id"), func.sum(-Bill.rounded_total).label("amount"))
               .where(Bill.clinic_id == clinic.id, Bill.status == BillStatus.ISSUED, Bill.original_id.is_not(None),
                      Bill.issued_on <= day).group_by(Bill.original_id).subquery())
    signed = case((Payment.kind == PaymentKind.PAYMENT, Payment.amount), else_=-Payment.amount)
    paid = (select(Payment.bill_id, func.sum(signed).label("amount"))
            .where(Payment.clinic_id == clinic.id, Payment.received_on <= day).group_by(Payment.bill_id).subquery())
    due = Bill.rounded_total - func.coalesce(credits.c.amount, 0) - func.coalesce(paid.c.amount, 0)
    _, end = day_bounds(clinic, day, day + timedelta(days=1))
    return list(db.execute(
        select(Bill, due)
        .outerjoin(credits, credits.c.bill_id == Bill.id).outerjoin(paid, paid.c.bill_id == Bill.id)
        .where(Bill.clinic_id == clinic.id, Bill.status == BillStatus.ISSUED, Bill.kind != DocumentType.CREDIT_NOTE,
               Bill.issued_on <= day, or_(Bill.cancelled_at.is_(None), Bill.cancelled_at >= end), due > 0)
        .order_by(Bill.issued_on, Bill.issued_at, Bill.number)))


def day_close(db: Session, clinic: Clinic, day: date) -> DayClose:
    """Everything the desk reconciles at the end of `day` (decrypts the names of those who owe: audit it)."""
    found = collections(db, clinic.id, day)
    owed = [Owed(bill.id, bill.patient_id, bill.number, bill.issued_on, services.recipient_of(db, bill)["name"],
                 bill.rounded_total, Decimal(due)) for bill, due in open_balances(db, clinic, day)]
    return DayClose(
        day=day,
        by_mode=_grouped_collections([(mode, row) for mode, _, row in found]),
        by_staff=_grouped_collections([(staff, row) for _, staff, row in found]),
        by_mode_staff=[row for _, _, row in found],
        documents=series_issued(db, clinic.id, day, day + timedelta(days=1)),
        credit_notes=_credit_notes(db, clinic.id, day), cancelled=_cancelled(db, clinic, day), owed=owed)


def day_close_csv(report: DayClose) -> str:
    """The day close as one CSV, a titled table per section: plain numbers for the spreadsheet, and each
    section's main amount once more as every page prints it (₹1,23,456.50), in a last "as shown" column."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"Day close {report.day.isoformat()}"])
    for title, rows in (("Collections by mode", report.by_mode), ("Collections by staff", report.by_staff),
                        ("Collections by mode and staff", report.by_mode_staff)):
        writer.writerows([[], [title], ["", "Count", "Received", "Refunded", "Net", "Net as shown"]])
        writer.writerows([safe_cell(r.label), r.count, r.received, r.refunded, r.net, inr(r.net)] for r in rows)
    writer.writerows([[], ["Documents issued"], ["Type", "Series", "Count", "From", "To", "Taxable", "Exempt/nil",
                                                 "Tax", "Total", "Total as shown"]])
    writer.writerows([s.kind.value, s.prefix, s.count, s.first, s.last, s.taxable, s.exempt, s.tax, s.total,
                      inr(s.total)] for s in report.documents)
    writer.writerows([[], ["Credit notes"], ["Number", "Against", "Reason", "Total", "Total as shown"]])
    writer.writerows([note.number, original or "", note.credit_reason.value if note.credit_reason else "",
                      note.rounded_total, inr(note.rounded_total)] for note, original in report.credit_notes)
    writer.writerows([[], ["Cancelled"], ["Number", "Credit note", "Total", "Total as shown"]])
    writer.writerows([bill.number, note or "", bill.rounded_total, inr(bill.rounded_total)]
                     for bill, note in report.cancelled)
    writer.writerows([[], ["Open balances"], ["Number", "Issued on", "Recipient", "Billed", "Due", "Due as shown"]])
    writer.writerows([o.number, o.issued_on.isoformat(), safe_cell(o.name), o.billed, o.due, inr(o.due)]
                     for o in report.owed)
    return out.getvalue()


# --- GSTR-1 -------------------------------------------------------------------------------------------

@dataclass
class Amounts:
    """Taxable value and taxes summed over stored lines (plus quantity and value for the HSN summary)."""

    taxable: Decimal = ZERO
    igst: Decimal = ZERO
    cgst: Decimal = ZERO
    sgst: Decimal = ZERO
    quantity: Decimal = ZERO
    value: Decimal = ZERO

    def add(self, line: BillLine, sign: int = 1) -> None:
        self.taxable += sign * line.taxable_value
        self.igst += sign * line.igst
        self.cgst += sign * line.cgst
        self.sgst += sign * line.sgst
        self.quantity += sign * line.quantity
        self.value += sign * line.total

    @property
    def tax(self) -> Decimal:
        return self.igst + self.cgst + self.sgst

    @property
    def empty(self) -> bool:
        """Nothing left (e.g. a document and the credit note cancelling it): not worth a row."""
        return not any((self.taxable, self.igst, self.cgst, self.sgst, self.quantity, self.value))


@dataclass
class Document:
    """An invoice or credit note reported invoice-wise (B2B, B2CL, CDNR, CDNUR), its taxable items by rate."""

    bill: Bill
    place_of_supply: str
    items: dict[Decimal, Amounts] = field(default_factory=dict)

    @property
    def value(self) -> Decimal:
        return abs(self.bill.rounded_total)


@dataclass(frozen=True)
class DocSeries:
    """Table 13: one series' documents of the month."""

    nature: int
    prefix: str
    first: str
    last: str
    total: int
    cancelled: int

    @property
    def net(self) -> int:
        return self.total - self.cancelled


@dataclass
class Gstr1:
    month: date  # its first day
    b2cs: dict[tuple[bool, str, Decimal], Amounts] = field(default_factory=dict)  # (inter, pos, rate)
    exempt: dict[tuple[bool, bool], dict[Treatment, Decimal]] = field(default_factory=dict)  # (inter, registered)
    hsn: dict[bool, dict[tuple[str, str, Decimal], Amounts]] = field(default_factory=lambda: {True: {}, False: {}})
    hsn_desc: dict[tuple[str, str, Decimal], str] = field(default_factory=dict)
    b2b: list[Document] = field(default_factory=list)
    b2cl: list[Document] = field(default_factory=list)
    cdnr: list[Document] = field(default_factory=list)
    cdnur: list[Document] = field(default_factory=list)
    docs: list[DocSeries] = field(default_factory=list)

    @property
    def fp(self) -> str:
        return self.month.strftime("%m%Y")

    def exempt_row(self, inter: bool, registered: bool) -> tuple[Decimal, Decimal]:
        """(nil rated, exempt) for one Table 8 row."""
        values = self.exempt.get((inter, registered), {})
        return values.get(Treatment.NIL_RATED, ZERO), values.get(Treatment.EXEMPT, ZERO)

    def checks(self) -> list[tuple[str, Decimal, Decimal]]:
        """(what, tables 4+5+7+8 less 9B, HSN summary): each pair should be equal to the paisa."""
        invoiced = Amounts()
        for amounts in self.b2cs.values():
            _merge(invoiced, amounts)
        for documents, sign in ((self.b2b, 1), (self.b2cl, 1), (self.cdnr, -1), (self.cdnur, -1)):
            for document in documents:
                for amounts in document.items.values():
                    _merge(invoiced, amounts, sign)
        untaxed = sum((sum(v.values(), ZERO) for v in self.exempt.values()), ZERO)
        hsn = Amounts()
        for tab in self.hsn.values():
            for amounts in tab.values():
                _merge(hsn, amounts)
        return [("Taxable value (incl. nil and exempt)", invoiced.taxable + untaxed, hsn.taxable),
                ("Integrated tax", invoiced.igst, hsn.igst), ("Central tax", invoiced.cgst, hsn.cgst),
                ("State/UT tax", invoiced.sgst, hsn.sgst)]


def _merge(into: Amounts, amounts: Amounts, sign: int = 1) -> None:
    into.taxable += sign * amounts.taxable
    into.igst += sign * amounts.igst
    into.cgst += sign * amounts.cgst
    into.sgst += sign * amounts.sgst


def month_bounds(month: date) -> tuple[date, date]:
    start = month.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def _section(bill: Bill, line: BillLine, original: Bill | None) -> str:
    """Which GSTR-1 table a taxable line belongs to."""
    if bill.is_credit_note:
        if bill.recipient_gstin:
            return "cdnr"
        big = original is not None and not original.recipient_gstin and original.rounded_total > B2CL_LIMIT
        return "cdnur" if big and line.inter_state else "b2cs"
    if bill.recipient_gstin:
        return "b2b"
    return "b2cl" if line.inter_state and bill.rounded_total > B2CL_LIMIT else "b2cs"


def _document(found: dict, bill: Bill, line: BillLine) -> Document:
    if bill.id not in found:
        found[bill.id] = Document(bill, line.place_of_supply)
    return found[bill.id]


def gstr1(db: Session, clinic: Clinic, month: date) -> Gstr1:
    """The month's GSTR-1 tables from the stored lines of documents issued in it (credit notes netted)."""
    start, end = month_bounds(month)
    report = Gstr1(month=start)
    original = aliased(Bill)
    rows = db.execute(
        select(BillLine, Bill, original)
        .join(Bill, (Bill.clinic_id == BillLine.clinic_id) & (Bill.id == BillLine.bill_id))
        .outerjoin(original, (original.clinic_id == Bill.clinic_id) & (original.id == Bill.original_id))
        .where(Bill.clinic_id == clinic.id, Bill.status == BillStatus.ISSUED, Bill.issued_on >= start,
               Bill.issued_on < end, BillLine.treatment != Treatment.NON_GST)  # bills from before registration
        .order_by(Bill.issued_on, Bill.number, BillLine.position))
    invoice_wise: dict[str, dict] = {"b2b": {}, "b2cl": {}, "cdnr": {}, "cdnur": {}}
    for line, bill, source in rows:
        registered = bool(bill.recipient_gstin)
        key = (line.hsn_sac, "OTH" if line.hsn_sac.startswith("99") else line.unit, line.rate)
        report.hsn[registered].setdefault(key, Amounts()).add(line)
        report.hsn_desc.setdefault(key, line.description[:30])
        if line.treatment is not Treatment.TAXABLE:
            row = report.exempt.setdefault((line.inter_state, registered), {})
            row[line.treatment] = row.get(line.treatment, ZERO) + line.taxable_value
            continue
        section = _section(bill, line, source)
        if section == "b2cs":
            report.b2cs.setdefault((line.inter_state, line.place_of_supply, line.rate), Amounts()).add(line)
        else:
            document = _document(invoice_wise[section], bill, line)
            document.items.setdefault(line.rate, Amounts()).add(line, -1 if bill.is_credit_note else 1)
    for name, found in invoice_wise.items():
        setattr(report, name, list(found.values()))
    for key in [k for k in report.hsn_desc if k[0].startswith("99")]:
        for tab in report.hsn.values():
            if key in tab:
                tab[key].quantity = Decimal(0)  # services are reported without a quantity (as india-compliance does)
    report.b2cs = {key: a for key, a in sorted(report.b2cs.items()) if not a.empty}
    report.hsn = {tab: {key: a for key, a in rows.items() if not a.empty} for tab, rows in report.hsn.items()}
    report.docs = documents_issued(db, clinic, start, end)
    return report


def documents_issued(db: Session, clinic: Clinic, start: date, end: date) -> list[DocSeries]:
    """Table 13: per GST series (not receipts), the numbers issued in the month and how many are cancelled
    by the month's end."""
    _, cutoff = day_bounds(clinic, start, end)
    cancelled = func.count().filter(Bill.cancelled_at < cutoff)
    rows = db.execute(
        select(BillSeries.kind, BillSeries.prefix, func.min(Bill.number), func.max(Bill.number), func.count(),
               cancelled)
        .join(BillSeries, (BillSeries.clinic_id == Bill.clinic_id) & (BillSeries.id == Bill.series_id))
        .where(Bill.clinic_id == clinic.id, Bill.status == BillStatus.ISSUED, Bill.issued_on >= start,
               Bill.issued_on < end, BillSeries.kind != SeriesKind.RECEIPT, Bill.kind != DocumentType.BILL)
        .group_by(BillSeries.kind, BillSeries.prefix))
    found = [DocSeries(5 if kind is SeriesKind.CREDIT_NOTE else 1, *rest) for kind, *rest in rows]
    return sorted(found, key=lambda s: (s.nature, s.prefix))


# --- The portal's JSON and the offline tool's CSVs ----------------------------------------------------

def _number(value: Decimal) -> float | int:
    """A JSON number: floats only here, at the output boundary, from values already rounded to the paisa."""
    return int(value) if value == value.to_integral_value() else float(value)


def _money(value: Decimal) -> float:
    return float(round(value, 2))


def _idt(day: date) -> str:
    """The portal's date: a machine format, not display text (so not app/formats.py)."""
    return day.strftime("%d-%m-%Y")


def _itms(document: Document, *, inter: bool | None = None) -> list[dict]:
    items = []
    for number, (rate, a) in enumerate(sorted(document.items.items()), start=1):
        detail = {"rt": _number(rate), "txval": _money(a.taxable), "iamt": _money(a.igst)}
        if not inter:
            detail |= {"camt": _money(a.cgst), "samt": _money(a.sgst)}
        items.append({"num": number, "itm_det": detail | {"csamt": 0}})
    return items


def _by_ctin(documents: list[Document], entry) -> list[dict]:
    parties: dict[str, list] = {}
    for document in documents:
        parties.setdefault(document.bill.recipient_gstin, []).append(entry(document))
    return [{"ctin": ctin, "key": entries} for ctin, entries in sorted(parties.items())]


def _invoice_entry(d: Document) -> dict:
    return {"inum": d.bill.number, "idt": _idt(d.bill.issued_on), "val": _money(d.value), "pos": d.place_of_supply,
            "rchrg": "N", "inv_typ": "R", "itms": _itms(d)}


def _note_entry(d: Document) -> dict:
    return {"ntty": "C", "nt_num": d.bill.number, "nt_dt": _idt(d.bill.issued_on), "val": _money(d.value),
            "pos": d.place_of_supply, "rchrg": "N", "inv_typ": "R", "itms": _itms(d)}


def _b2cl(report: Gstr1) -> list[dict]:
    places: dict[str, list] = {}
    for d in report.b2cl:
        places.setdefault(d.place_of_supply, []).append(
            {"inum": d.bill.number, "idt": _idt(d.bill.issued_on), "val": _money(d.value),
             "itms": _itms(d, inter=True)})
    return [{"pos": pos, "inv": invoices} for pos, invoices in sorted(places.items())]


def _cdnur(report: Gstr1) -> list[dict]:
    return [{"typ": "B2CL", "ntty": "C", "nt_num": d.bill.number, "nt_dt": _idt(d.bill.issued_on),
             "val": _money(d.value), "pos": d.place_of_supply, "itms": _itms(d, inter=True)} for d in report.cdnur]


def _nil(report: Gstr1) -> dict | None:
    nil = []
    for (inter, registered), (code, _) in SUPPLY_TYPES.items():
        if (inter, registered) in report.exempt:
            nil_rated, exempt = report.exempt_row(inter, registered)
            nil.append({"sply_ty": code, "expt_amt": _money(exempt), "nil_amt": _money(nil_rated), "ngsup_amt": 0})
    return {"inv": nil} if nil else None


def _hsn(report: Gstr1) -> dict | None:
    hsn = {f"hsn_{tab}": _hsn_entries(report, registered) for tab, registered in (("b2b", True), ("b2c", False))}
    return {k: v for k, v in hsn.items() if v} or None


def _doc_issue(report: Gstr1) -> dict | None:
    natures = sorted({s.nature for s in report.docs})
    if not natures:
        return None
    return {"doc_det": [
        {"doc_num": nature, "docs": [
            {"num": n, "from": s.first, "to": s.last, "totnum": s.total, "cancel": s.cancelled, "net_issue": s.net}
            for n, s in enumerate((s for s in report.docs if s.nature == nature), start=1)]}
        for nature in natures]}


def portal_json(report: Gstr1, gstin: str) -> dict:
    """The GST portal's GSTR-1 JSON for the month (sections with nothing in them left out)."""
    data = {
        "gstin": gstin, "fp": report.fp,
        "b2b": [{"ctin": p["ctin"], "inv": p["key"]} for p in _by_ctin(report.b2b, _invoice_entry)],
        "b2cl": _b2cl(report),
        "b2cs": [_b2cs_entry(key, a) for key, a in report.b2cs.items()],
        "cdnr": [{"ctin": p["ctin"], "nt": p["key"]} for p in _by_ctin(report.cdnr, _note_entry)],
        "cdnur": _cdnur(report), "nil": _nil(report), "hsn": _hsn(report), "doc_issue": _doc_issue(report),
    }
    return {key: value for key, value in data.items() if value}


def _b2cs_entry(key: tuple[bool, str, Decimal], a: Amounts) -> dict:
    inter, pos, rate = key
    taxes = {"iamt": _money(a.igst)} if inter else {"camt": _money(a.cgst), "samt": _money(a.sgst)}
    return {"sply_ty": "INTER" if inter else "INTRA", "pos": pos, "typ": "OE", "rt": _number(rate),
            "txval": _money(a.taxable), **taxes, "csamt": 0}


def _hsn_entries(report: Gstr1, registered: bool) -> list[dict]:
    return [{"num": n, "hsn_sc": hsn, "desc": report.hsn_desc[(hsn, uqc, rate)], "uqc": uqc,
             "qty": _number(a.quantity), "rt": _number(rate), "txval": _money(a.taxable), "iamt": _money(a.igst),
             "camt": _money(a.cgst), "samt": _money(a.sgst), "csamt": 0}
            for n, ((hsn, uqc, rate), a) in enumerate(sorted(report.hsn[registered].items()), start=1)]


def portal_json_text(report: Gstr1, gstin: str) -> str:
    return json.dumps(portal_json(report, gstin), indent=1, ensure_ascii=False)


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(header: str, rows: Iterable[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header.split(","))
    writer.writerows([safe_cell(c) if isinstance(c, str) else c for c in row] for row in rows)
    return out.getvalue()


def _offline_date(day: date) -> str:
    """The offline tool's "05-Apr-2026": its own English abbreviations, not CLDR's ("Sept")."""
    return day.strftime("%d-%b-%Y")


def _rate(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def offline_csvs(report: Gstr1) -> dict[str, str]:
    """The GST offline tool's CSV files for the month, by file name."""
    files = {
        "b2b.csv": _csv("GSTIN/UIN of Recipient,Receiver Name,Invoice Number,Invoice date,Invoice Value,"
                        "Place Of Supply,Reverse Charge,Applicable % of Tax Rate,Invoice Type,E-Commerce GSTIN,"
                        "Rate,Taxable Value,Cess Amount",
                        ([d.bill.recipient_gstin, "", d.bill.number, _offline_date(d.bill.issued_on), d.value,
                          state_label(d.place_of_supply), "N", "", "Regular B2B", "", _rate(rate), a.taxable, ZERO]
                         for d in report.b2b for rate, a in sorted(d.items.items()))),
        "b2cl.csv": _csv("Invoice Number,Invoice date,Invoice Value,Place Of Supply,Applicable % of Tax Rate,Rate,"
                         "Taxable Value,Cess Amount,E-Commerce GSTIN",
                         ([d.bill.number, _offline_date(d.bill.issued_on), d.value, state_label(d.place_of_supply),
                           "", _rate(rate), a.taxable, ZERO, ""]
                          for d in report.b2cl for rate, a in sorted(d.items.items()))),
        "b2cs.csv": _csv("Type,Place Of Supply,Rate,Applicable % of Tax Rate,Taxable Value,Cess Amount,"
                         "E-Commerce GSTIN",
                         (["OE", state_label(pos), _rate(rate), "", a.taxable, ZERO, ""]
                          for (_, pos, rate), a in report.b2cs.items())),
        "cdnr.csv": _csv("GSTIN/UIN of Recipient,Receiver Name,Note Number,Note Date,Note Type,Place Of Supply,"
                         "Reverse Charge,Note Supply Type,Note Value,Applicable % of Tax Rate,Rate,Taxable Value,"
                         "Cess Amount",
                         ([d.bill.recipient_gstin, "", d.bill.number, _offline_date(d.bill.issued_on), "C",
                           state_label(d.place_of_supply), "N", "Regular", d.value, "", _rate(rate), a.taxable, ZERO]
                          for d in report.cdnr for rate, a in sorted(d.items.items()))),
        "exempt.csv": _csv("Description,Nil Rated Supplies,Exempted(other than nil rated/non-GST supply),"
                           "Non-GST Supplies",
                           ([label, *report.exempt_row(inter, registered), ZERO]
                            for (inter, registered), (_, label) in SUPPLY_TYPES.items())),
        "docs.csv": _csv("Nature of Document,Sr. No. From,Sr. No. To,Total Number,Cancelled",
                         ([DOC_NATURES[s.nature], s.first, s.last, s.total, s.cancelled] for s in report.docs)),
    }
    for tab, registered in (("b2b", True), ("b2c", False)):
        files[f"hsn_{tab}.csv"] = _csv(
            "HSN,Description,UQC,Total Quantity,Total Value,Rate,Taxable Value,Integrated Tax Amount,"
            "Central Tax Amount,State/UT Tax Amount,Cess Amount",
            ([hsn, report.hsn_desc[(hsn, uqc, rate)], uqc, a.quantity, a.value, _rate(rate), a.taxable, a.igst,
              a.cgst, a.sgst, ZERO] for (hsn, uqc, rate), a in sorted(report.hsn[registered].items())))
    return files


def offline_zip(report: Gstr1) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in offline_csvs(report).items():
            archive.writestr(name, text)
    return out.getvalue()
