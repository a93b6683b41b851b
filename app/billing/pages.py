"""What the billing desk's pages show: the billing home's lists, the draft editor, the credit-note form and
the payments panel (every billing view loads a document with `load_or_404(Bill, ...)`).

Reads only (no writes; only a refused lookup commits its denial record): the views audit what these return.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from flask import g
from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app.auth.policy import Permission, can
from app.billing import credit_notes, services
from app.billing import payments as pay_service
from app.billing.documents import TITLES
from app.billing.models import Bill, BillingEvent, BillLine, BillStatus, CreditReason, Payment, PaymentMode, PriceItem
from app.billing.services import Account
from app.clinics.models import Clinic
from app.clinics.states import BY_CODE, state_label
from app.patients.services import labels_of, staff_names
from app.scheduling.models import Appointment, Status

LIMIT = 50
STATE_CHOICES = [(code, state_label(code)) for code in sorted(BY_CODE)]
REASON_CHOICES = [
    (CreditReason.RETURN, "Return", "Goods returned or a service not given: credit the quantities below."),
    (CreditReason.CORRECTION, "Correction", "Charged too much: credit the quantities below."),
    (CreditReason.CANCEL, "Cancel the whole document", "Credits every line in full and marks the document "
     "cancelled (quantities below are ignored)."),
]
ACTIONS = {"created": "Draft started", "line_added": "Line added", "line_removed": "Line removed",
           "recipient": "Recipient changed", "issued": "Issued", "cancelled": "Cancelled", "discarded": "Discarded",
           "payment": "Payment received", "refund": "Refund paid", "pdf_ready": "PDF made",
           "pdf_retry": "PDF tried again"}
HIDDEN_DETAILS = ("appointment", "split_from", "sha256")


def title_of(bill: Bill) -> str:
    """What a document is called in lists: "Tax Invoice", or "Draft" for a draft."""
    return TITLES.get(bill.kind, "Document") if bill.issued else "Draft"


def recipient_names(db: Session, bills: list[Bill]) -> dict[uuid.UUID, str]:
    """Each document's recipient name (PHI: the caller audits the list)."""
    return {bill.id: services.recipient_of(db, bill).get("name") or "Walk-in customer" for bill in bills}


# --- The billing home -----------------------------------------------------------------------------------

@dataclass
class Home:
    """The billing home's lists."""

    documents: list[Bill]
    drafts: list[Bill]
    visits: list[tuple[Appointment, str, str]]  # (appointment, patient name and MRN, doctor name)
    names: dict[uuid.UUID, str]

    @property
    def patient_ids(self) -> list[uuid.UUID]:
        ids = {b.patient_id for b in self.documents + self.drafts if b.patient_id}
        return sorted(ids | {a.patient_id for a, _, _ in self.visits}, key=str)


def home(db: Session, clinic: Clinic, day: date) -> Home:
    """Today's documents, drafts in progress and today's completed visits not yet billed."""
    documents = list(db.scalars(select(Bill).where(Bill.clinic_id == clinic.id, Bill.status == BillStatus.ISSUED,
                                                   Bill.issued_on == day)
                                .order_by(Bill.issued_at.desc(), Bill.number.desc()).limit(LIMIT)))
    drafts = list(db.scalars(select(Bill).where(Bill.clinic_id == clinic.id, Bill.status == BillStatus.DRAFT)
                             .order_by(Bill.created_at.desc()).limit(LIMIT)))
    return Home(documents=documents, drafts=drafts, visits=unbilled_visits(db, clinic, day),
                names=recipient_names(db, documents + drafts))


def unbilled_visits(db: Session, clinic: Clinic, day: date) -> list[tuple[Appointment, str, str]]:
    """The day's completed appointments with no document (draft or issued, not cancelled) made from them."""
    billed = exists().where(Bill.clinic_id == Appointment.clinic_id, Bill.appointment_id == Appointment.id,
                            Bill.original_id.is_(None), Bill.cancelled_at.is_(None))
    visits = list(db.scalars(select(Appointment).where(
        Appointment.clinic_id == clinic.id, Appointment.day == day, Appointment.status == Status.COMPLETED, ~billed)
        .order_by(Appointment.finished_at.nulls_last(), Appointment.token).limit(LIMIT)))
    labels = labels_of(db, clinic.id, {a.patient_id for a in visits}, contact_only=True)
    doctors = staff_names(db, {a.doctor_id for a in visits})
    return [(a, f"{labels[a.patient_id].full_name} ({labels[a.patient_id].mrn})" if a.patient_id in labels else "—",
             doctors.get(a.doctor_id, "—")) for a in visits]


def by_number(db: Session, clinic_id: uuid.UUID, number: str) -> Bill | None:
    text = "".join(number.split()).upper()[:16]
    return db.scalar(select(Bill).where(Bill.clinic_id == clinic_id, Bill.number == text)) if text else None


def issued_together(db: Session, bill: Bill) -> list[Bill]:
    """The documents one issue made of this draft: it and, for a registered buyer's mixed supply, the
    bill of supply split from it (issued at the same instant)."""
    split = and_(BillingEvent.clinic_id == Bill.clinic_id, BillingEvent.bill_id == Bill.id,
                 BillingEvent.action == "created")
    twins = db.scalars(select(Bill).join(BillingEvent, split).where(
        Bill.clinic_id == bill.clinic_id, Bill.issued_on == bill.issued_on, Bill.issued_at == bill.issued_at,
        Bill.id != bill.id, BillingEvent.details.cast(JSONB)["split_from"].astext == str(bill.id)))
    return [bill, *twins]


def bills_of_patient(db: Session, clinic_id: uuid.UUID, patient_id: uuid.UUID, limit: int = 20) -> list[dict]:
    """A patient's latest documents and drafts, with the balance still due on each invoice."""
    from app.billing.payments import accounts_of

    bills = list(db.scalars(select(Bill).where(Bill.clinic_id == clinic_id, Bill.patient_id == patient_id)
                            .order_by(Bill.created_at.desc()).limit(limit)))
    accounts = accounts_of(db, [bill for bill in bills if bill.issued and not bill.is_credit_note])
    rows = []
    for bill in bills:
        due = accounts[bill.id].due if bill.id in accounts else None
        rows.append({"bill": bill, "title": title_of(bill), "due": due,
                     "total": -bill.rounded_total if bill.is_credit_note else bill.rounded_total})
    return rows


# --- The draft editor -------------------------------------------------------------------------------------

@dataclass
class Editor:
    """A draft's editor: lines, the add-line and recipient forms (as typed after a refusal), the preview."""

    bill: Bill
    lines: list[BillLine]
    services: list[PriceItem]
    goods: list[PriceItem]
    recipient: dict
    line_form: dict
    errors: dict = field(default_factory=dict)
    problem: str | None = None
    not_ready: str | None = None

    @property
    def split(self) -> bool:
        """A registered recipient's mix of taxable and exempt lines: issued as two documents."""
        return bool(self.lines) and self.bill.kind is None

    @property
    def becomes(self) -> str:
        if not self.lines:
            return ""
        return "a Tax Invoice and a Bill of Supply" if self.split else TITLES[self.bill.kind]


def price_items(db: Session, clinic_id: uuid.UUID) -> list[PriceItem]:
    return list(db.scalars(select(PriceItem).where(PriceItem.clinic_id == clinic_id, PriceItem.active)
                           .order_by(func.lower(PriceItem.name))))


def editor(db: Session, clinic: Clinic, bill: Bill, *, recipient: dict | None = None, line_form: dict | None = None,
           errors: dict | None = None, problem: str | None = None) -> Editor:
    items = price_items(db, clinic.id)
    return Editor(bill=bill, lines=services.lines_of(db, bill), services=[i for i in items if i.is_service],
                  goods=[i for i in items if not i.is_service],
                  recipient=recipient if recipient is not None else services.recipient_of(db, bill),
                  line_form=line_form or {"quantity": "1", "discount_kind": "amount"}, errors=errors or {},
                  problem=problem, not_ready=services.not_ready(clinic, services.profile_of(db, clinic.id)))


# --- An issued document ------------------------------------------------------------------------------------

def history_rows(db: Session, bill: Bill) -> list[tuple[BillingEvent, str, str, str]]:
    """(event, what, who, details) of a document's billing history."""
    events = services.history(db, bill)
    names = staff_names(db, {e.by for e in events})
    rows = []
    for event in events:
        details = json.loads(event.details) if event.details else {}
        if "kind" in details:
            details["kind"] = TITLES.get(details["kind"], details["kind"])
        text = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in details.items()
                         if value not in (None, "") and key not in HIDDEN_DETAILS)
        what = ACTIONS.get(event.action, event.action.replace("_", " ").capitalize())
        rows.append((event, what, names.get(event.by, "the system" if event.by is None else "—"), text))
    return rows


@dataclass
class CreditLine:
    line: BillLine
    creditable: Decimal
    typed: str


def credit_lines(db: Session, original: Bill, form: dict | None = None) -> list[CreditLine]:
    """The original's lines with what is left to credit on each, and the quantity typed."""
    already = credit_notes.credited(db, original)
    form = form or {}
    return [CreditLine(line, line.quantity - already.get(line.id, Decimal(0)), form.get(f"qty-{line.id}", ""))
            for line in services.lines_of(db, original)]


# --- The payments panel ---------------------------------------------------------------------------------

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
