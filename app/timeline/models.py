"""The timeline's feed: one row per thing that happened to a patient, written by the service that did it.

A row says what kind of thing happened, when, which doctor it concerns and which source row holds
the details; it holds no PHI itself. The page reads one keyset-paged slice of this table per patient
and then the details of that slice's source rows, a query per kind, so its cost does not grow with
the number of events.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id, utcnow


class Kind(StrEnum):
    APPOINTMENT = "appointment"
    ENCOUNTER = "encounter"
    VITALS = "vitals"
    PRESCRIPTION = "prescription"
    CHART = "chart"
    RECORD = "record"
    CONSENT = "consent"
    INVOICE = "invoice"
    PAYMENT = "payment"
    MESSAGE = "message"  # a reminder's fate (ref: the reminder row) or a patient's reply (ref: the inbound row)

    @property
    def label(self) -> str:
        return KIND_LABELS[self]

    @property
    def clinical(self) -> bool:
        """Whether items of this kind carry clinical content (shown only to those who may see it)."""
        return self in CLINICAL_KINDS


KIND_LABELS = {
    Kind.APPOINTMENT: "Appointments", Kind.ENCOUNTER: "Consultations", Kind.VITALS: "Vitals",
    Kind.PRESCRIPTION: "Prescriptions", Kind.CHART: "Allergies and problems", Kind.RECORD: "Record changes",
    Kind.CONSENT: "Consent", Kind.INVOICE: "Bills", Kind.PAYMENT: "Payments", Kind.MESSAGE: "Reminders",
}
CLINICAL_KINDS = frozenset({Kind.ENCOUNTER, Kind.VITALS, Kind.PRESCRIPTION, Kind.CHART})


class TimelineEvent(Base):
    """One item of a patient's timeline (append-only)."""

    __tablename__ = "timeline_event"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_timeline_event_page", "clinic_id", "patient_id", "at", "id"),
        Index("ix_timeline_event_kind", "clinic_id", "patient_id", "kind", "at", "id"),
        Index("ix_timeline_event_doctor", "clinic_id", "patient_id", "doctor_id", "at", "id"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(24))
    doctor_id: Mapped[uuid.UUID | None]
    ref_id: Mapped[uuid.UUID | None]
    by: Mapped[uuid.UUID | None]
