"""Patients, their blind-index tokens, record history and consent ledger.

Every PHI column is `*_enc`: AES-256-GCM under the clinic's data key, bound to its row and column
(see app/security/fields.py). Only non-identifying facts are plain: the state code (needed for GST
place of supply), preferred language (for reminders), the age-was-estimated flag and bookkeeping.
"""

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id, utcnow
from app.security.fields import PATIENT, sealed

# The encrypted demographic fields, in form order.
PHI_FIELDS = ("mrn", "full_name", "sex", "dob", "phone", "alt_phone", "email", "address_line", "city", "pin_code",
              "abha_number", "guardian_name", "guardian_relation", "guardian_phone")


class Patient(Base):
    __tablename__ = "patient"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    mrn_enc: Mapped[bytes] = sealed(PATIENT)
    full_name_enc: Mapped[bytes] = sealed(PATIENT)
    sex_enc: Mapped[bytes] = sealed(PATIENT)
    dob_enc: Mapped[bytes] = sealed(PATIENT)
    dob_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_enc: Mapped[bytes | None] = sealed(PATIENT)
    alt_phone_enc: Mapped[bytes | None] = sealed(PATIENT)
    email_enc: Mapped[bytes | None] = sealed(PATIENT)
    address_line_enc: Mapped[bytes | None] = sealed(PATIENT)
    city_enc: Mapped[bytes | None] = sealed(PATIENT)
    pin_code_enc: Mapped[bytes | None] = sealed(PATIENT)
    abha_number_enc: Mapped[bytes | None] = sealed(PATIENT)
    guardian_name_enc: Mapped[bytes | None] = sealed(PATIENT)
    guardian_relation_enc: Mapped[bytes | None] = sealed(PATIENT)
    guardian_phone_enc: Mapped[bytes | None] = sealed(PATIENT)
    state_code: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(8), default="en")
    key_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class PatientToken(Base):
    """Blind-index tokens (keyed HMAC) that make exact and prefix search work without plaintext."""

    __tablename__ = "patient_token"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"], ondelete="CASCADE"),
        Index("ix_patient_token_lookup", "clinic_id", "token"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(24), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))


class PatientHistory(Base):
    """Each change to a patient record: who, when, and the before/after values (encrypted JSON)."""

    __tablename__ = "patient_history"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_patient_history_patient", "clinic_id", "patient_id", "version"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    changed_fields: Mapped[str] = mapped_column(String(400))
    changes_enc: Mapped[bytes] = sealed()
    key_version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class ConsentEvent(Base):
    """The consent ledger: every grant and withdrawal per patient and purpose, never rewritten."""

    __tablename__ = "consent_event"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_consent_event_patient", "clinic_id", "patient_id", "purpose", "at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    purpose: Mapped[str] = mapped_column(String(24))
    granted: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class BreakGlass(Base):
    """Emergency access to a patient's clinical record outside a care relationship: reason, time box."""

    __tablename__ = "break_glass"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_break_glass_user_patient", "clinic_id", "user_id", "patient_id", "expires_at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    patient_id: Mapped[uuid.UUID]
    reason: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
