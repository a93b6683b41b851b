"""Billing records: the clinic's GST profile, the price list with dated GST rates, documents (tax
invoices, bills of supply, invoices-cum-bills of supply, credit notes) with their lines, the number
series they are numbered from, payments and refunds, each document's PDF, and the billing history.

Money is `Numeric(12, 2)` rupees read as Decimal (never float); quantities `Numeric(12, 3)`; rates
`Numeric(5, 2)` percent. The recipient's name and address are sealed (`recipient_enc`); amounts,
codes and the price-list descriptions copied onto lines are bookkeeping, kept plain so the GSTR-1
aggregates are SQL sums. The database keeps an issued document honest on its own (triggers in
migration 0005): a document and its lines change only while a draft, payments and the history are
append-only, and a number is taken from its series' counter in the issuing transaction, so a number is
never skipped or used twice.
"""

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.billing.tax import DocumentType, Treatment
from app.db import Base, enum_by_value, new_id, utcnow
from app.security.fields import sealed

MONEY = Numeric(12, 2)
QUANTITY = Numeric(12, 3)
RATE = Numeric(5, 2)


class BillingProfile(Base):
    """The clinic's billing settings beside its GST identity (legal name, address, state and GSTIN
    live on `clinic`): the authorised signatory, the series prefixes and the fee validity."""

    __tablename__ = "billing_profile"
    __table_args__ = (CheckConstraint("fee_validity_days BETWEEN 0 AND 90", name="fee_validity"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    signatory_name: Mapped[str] = mapped_column(String(120))
    signatory_designation: Mapped[str] = mapped_column(String(80))
    invoice_prefix: Mapped[str] = mapped_column(String(4), default="INV")
    bill_of_supply_prefix: Mapped[str] = mapped_column(String(4), default="BOS")
    credit_note_prefix: Mapped[str] = mapped_column(String(4), default="CN")
    receipt_prefix: Mapped[str] = mapped_column(String(4), default="RCT")
    # A follow-up consultation with the same doctor within this many days of a paid one is free (0: never).
    fee_validity_days: Mapped[int] = mapped_column(SmallInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class PriceItem(Base):
    """A service or a good the clinic sells. The GST rate is not here but in PriceRate, by date."""

    __tablename__ = "price_item"
    __table_args__ = (
        Index("ix_price_item_code", "clinic_id", "code", unique=True),
        CheckConstraint("price >= 0", name="price"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(24))  # what an appointment type's billable_item names
    name: Mapped[str] = mapped_column(String(120))
    hsn_sac: Mapped[str] = mapped_column(String(8))
    unit: Mapped[str] = mapped_column(String(8), default="NOS")  # the GST UQC
    price: Mapped[Decimal] = mapped_column(MONEY)
    price_includes_tax: Mapped[bool] = mapped_column(Boolean, default=False)  # an MRP
    treatment: Mapped[Treatment] = mapped_column(enum_by_value(Treatment, 12))
    # A consultation fee the clinic's fee validity makes free on a follow-up.
    fee_validity: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))

    @property
    def is_service(self) -> bool:
        return self.hsn_sac.startswith("99")


class PriceRate(Base):
    """A taxable item's GST rate from a date on (append-only: a new rate is a new row)."""

    __tablename__ = "price_rate"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "item_id"], ["price_item.clinic_id", "price_item.id"]),
        Index("ix_price_rate_item", "clinic_id", "item_id", "effective_from", unique=True),
        CheckConstraint("rate >= 0 AND rate < 100", name="rate"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID]
    effective_from: Mapped[date] = mapped_column(Date)
    rate: Mapped[Decimal] = mapped_column(RATE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class SeriesKind(StrEnum):
    INVOICE = "invoice"  # tax invoices and invoices-cum-bills of supply
    BILL_OF_SUPPLY = "bill_of_supply"
    CREDIT_NOTE = "credit_note"
    RECEIPT = "receipt"  # payment receipts (not a GST document; numbered all the same)


class BillSeries(Base):
    """One number series of a financial year: the counter the next number is taken from."""

    __tablename__ = "bill_series"
    __table_args__ = (
        Index("ix_bill_series_prefix", "clinic_id", "prefix", "fy_start", unique=True),
        CheckConstraint("next_number >= 1", name="next_number"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[SeriesKind] = mapped_column(enum_by_value(SeriesKind, 16))
    prefix: Mapped[str] = mapped_column(String(4))
    fy_start: Mapped[int] = mapped_column(SmallInteger)  # 2025 for 2025-26
    next_number: Mapped[int] = mapped_column(Integer, default=1)


class BillStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"


class CreditReason(StrEnum):
    CANCEL = "cancel"  # the whole document, as if never issued (reported cancelled in Table 13)
    RETURN = "return"  # goods returned or a service not given
    CORRECTION = "correction"  # charged too much


class Bill(Base):
    """A billing document. A draft is edited freely; issuing numbers it and freezes it for good.

    `kind` is decided by the lines at issue (DocumentType); a credit note points at its original.
    Totals are the sums of the lines' stored values (tax.py); credit notes carry negative amounts.
    """

    __tablename__ = "bill"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
        ForeignKeyConstraint(["clinic_id", "original_id"], ["bill.clinic_id", "bill.id"]),
        ForeignKeyConstraint(["clinic_id", "series_id"], ["bill_series.clinic_id", "bill_series.id"]),
        Index("ix_bill_number", "clinic_id", "fy_start", "number", unique=True, postgresql_where="number IS NOT NULL"),
        Index("ix_bill_patient", "clinic_id", "patient_id", "created_at"),
        Index("ix_bill_issued", "clinic_id", "issued_on", "kind"),
        Index("ix_bill_original", "clinic_id", "original_id"),
        Index("ix_bill_appointment", "clinic_id", "appointment_id"),
        CheckConstraint("status = 'draft' OR (number IS NOT NULL AND issued_on IS NOT NULL)", name="issued"),
        CheckConstraint("number = upper(number)", name="number_upper"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    status: Mapped[BillStatus] = mapped_column(enum_by_value(BillStatus, 8), default=BillStatus.DRAFT)
    kind: Mapped[DocumentType | None] = mapped_column(enum_by_value(DocumentType, 32))
    patient_id: Mapped[uuid.UUID | None]
    appointment_id: Mapped[uuid.UUID | None]
    doctor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    original_id: Mapped[uuid.UUID | None]  # a credit note's original document
    credit_reason: Mapped[CreditReason | None] = mapped_column(enum_by_value(CreditReason, 12))
    # The recipient as printed, sealed JSON: {"name", "address_line", "city", "pin_code", "phone"}.
    recipient_enc: Mapped[bytes | None] = sealed()
    recipient_state: Mapped[str | None] = mapped_column(String(2))  # the address's state: goods' place of supply
    recipient_gstin: Mapped[str | None] = mapped_column(String(15))  # a registered (B2B) recipient
    key_version: Mapped[int] = mapped_column(Integer)
    series_id: Mapped[uuid.UUID | None]
    fy_start: Mapped[int | None] = mapped_column(SmallInteger)
    number: Mapped[str | None] = mapped_column(String(16))
    issued_on: Mapped[date | None] = mapped_column(Date)  # the clinic's date of issue
    issued_at: Mapped[datetime | None]
    issued_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    # The supplier's particulars as printed at issue (JSON, not PHI): legal name, address, GSTIN, state,
    # signatory. The clinic may move or change its signatory later; the document does not.
    supplier: Mapped[str | None] = mapped_column(Text)
    supplier_state: Mapped[str | None] = mapped_column(String(2))
    taxable_value: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    exempt_value: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    nil_rated_value: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    cgst: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    sgst: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))  # SGST or UTGST (state_tax)
    igst: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    total: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    round_off: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    rounded_total: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    state_tax: Mapped[str] = mapped_column(String(5), default="SGST")
    # Set once, when a full credit note with reason "cancel" reverses it (GSTR-1 Table 13's "cancelled").
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    @property
    def issued(self) -> bool:
        return self.status is BillStatus.ISSUED

    @property
    def is_credit_note(self) -> bool:
        return self.kind is DocumentType.CREDIT_NOTE


class BillLine(Base):
    """One line: what was sold, as entered, and what the engine made of it (stored, never recomputed)."""

    __tablename__ = "bill_line"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "bill_id"], ["bill.clinic_id", "bill.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["clinic_id", "item_id"], ["price_item.clinic_id", "price_item.id"]),
        ForeignKeyConstraint(["clinic_id", "original_line_id"], ["bill_line.clinic_id", "bill_line.id"]),
        Index("ix_bill_line_bill", "clinic_id", "bill_id", "position"),
        Index("ix_bill_line_original", "clinic_id", "original_line_id"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    bill_id: Mapped[uuid.UUID]
    position: Mapped[int] = mapped_column(SmallInteger)
    item_id: Mapped[uuid.UUID | None]
    original_line_id: Mapped[uuid.UUID | None]  # on a credit note: the line it credits
    description: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(120))  # e.g. why a follow-up is free
    hsn_sac: Mapped[str] = mapped_column(String(8))
    unit: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)  # negative on a credit note
    unit_price: Mapped[Decimal] = mapped_column(MONEY)
    price_includes_tax: Mapped[bool] = mapped_column(Boolean, default=False)
    treatment: Mapped[Treatment] = mapped_column(enum_by_value(Treatment, 12))
    rate: Mapped[Decimal] = mapped_column(RATE, default=Decimal("0"))  # in force on the document date
    discount_value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    discount_percent: Mapped[bool] = mapped_column(Boolean, default=False)
    place_of_supply: Mapped[str] = mapped_column(String(2))
    inter_state: Mapped[bool] = mapped_column(Boolean, default=False)
    gross: Mapped[Decimal] = mapped_column(MONEY)
    discount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    taxable_value: Mapped[Decimal] = mapped_column(MONEY)
    cgst: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    sgst: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    igst: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    total: Mapped[Decimal] = mapped_column(MONEY)


class PaymentMode(StrEnum):
    CASH = "cash"
    UPI = "upi"
    CARD = "card"
    BANK = "bank"

    @property
    def label(self) -> str:
        return {"cash": "Cash", "upi": "UPI", "card": "Card", "bank": "Bank transfer"}[self.value]


class PaymentKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class Payment(Base):
    """Money received against a document, or refunded after a credit note. Append-only; amount > 0."""

    __tablename__ = "payment"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "bill_id"], ["bill.clinic_id", "bill.id"]),
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_payment_bill", "clinic_id", "bill_id", "received_at"),
        Index("ix_payment_day", "clinic_id", "received_on"),
        Index("ix_payment_receipt", "clinic_id", "receipt_number", unique=True),
        CheckConstraint("amount > 0", name="amount"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    bill_id: Mapped[uuid.UUID]
    patient_id: Mapped[uuid.UUID | None]
    kind: Mapped[PaymentKind] = mapped_column(enum_by_value(PaymentKind, 8), default=PaymentKind.PAYMENT)
    mode: Mapped[PaymentMode] = mapped_column(enum_by_value(PaymentMode, 8))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    reference: Mapped[str | None] = mapped_column(String(40))  # UPI / card / bank reference
    receipt_number: Mapped[str] = mapped_column(String(16))
    received_on: Mapped[date] = mapped_column(Date)  # the clinic's date
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class PdfStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class BillPdf(Base):
    """An issued document's PDF, made by an RQ worker and kept sealed (base64 of the bytes)."""

    __tablename__ = "bill_pdf"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "bill_id"], ["bill.clinic_id", "bill.id"]),
        Index("ix_bill_pdf_status", "clinic_id", "status", "requested_at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    bill_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[PdfStatus] = mapped_column(enum_by_value(PdfStatus, 8), default=PdfStatus.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    error: Mapped[str | None] = mapped_column(String(200))
    pdf_enc: Mapped[bytes | None] = sealed()
    sha256: Mapped[str | None] = mapped_column(String(64))
    key_version: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    rendered_at: Mapped[datetime | None]

    @property
    def id(self) -> uuid.UUID:
        """The row id the sealed PDF is bound to (its document's)."""
        return self.bill_id


class BillingEvent(Base):
    """The billing history, append-only: each thing done to a document, with its non-PHI details
    (numbers, amounts, item names) as JSON."""

    __tablename__ = "billing_event"
    __table_args__ = (Index("ix_billing_event_bill", "clinic_id", "bill_id", "at"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    bill_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
