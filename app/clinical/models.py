"""Clinical records: encounters (SOAP note, diagnoses, follow-up) with their revisions and addenda,
the patient's allergies and problems, vitals, and prescriptions.

Every clinical value and free text is sealed (`*_enc`, app/security/fields.py); only bookkeeping is
plain (who, when, status, the follow-up date). The database itself keeps the record honest: a signed
encounter, a signed prescription, revisions, addenda and vitals refuse changes (triggers in the
migration), except re-sealing under a newer key and the one-way "ended" / "entered in error" marks.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, ForeignKeyConstraint, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, enum_by_value, new_id, utcnow
from app.security.fields import sealed


class EncounterStatus(StrEnum):
    OPEN = "open"
    SIGNED = "signed"


# The SOAP sections, in the order a note is written and read.
SOAP = ("subjective", "objective", "assessment", "plan")


class Encounter(Base):
    """One consultation: opened from an appointment or walk-in, written, then signed and locked."""

    __tablename__ = "encounter"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
        Index("ix_encounter_patient", "clinic_id", "patient_id", "started_at"),
        Index("ix_encounter_doctor", "clinic_id", "doctor_id", "patient_id"),
        Index("ix_encounter_appointment", "clinic_id", "appointment_id", unique=True,
              postgresql_where="appointment_id IS NOT NULL"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    appointment_id: Mapped[uuid.UUID | None]
    status: Mapped[EncounterStatus] = mapped_column(enum_by_value(EncounterStatus, 8), default=EncounterStatus.OPEN)
    subjective_enc: Mapped[bytes | None] = sealed()
    objective_enc: Mapped[bytes | None] = sealed()
    assessment_enc: Mapped[bytes | None] = sealed()
    plan_enc: Mapped[bytes | None] = sealed()
    # JSON list of {"text": ..., "code": ICD-10 or null}, sealed as one value.
    diagnoses_enc: Mapped[bytes | None] = sealed()
    follow_up_on: Mapped[date | None] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    signed_at: Mapped[datetime | None]
    signed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    key_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))

    @property
    def locked(self) -> bool:
        return self.status is EncounterStatus.SIGNED


class EncounterRevision(Base):
    """Each save of an open encounter that changed something: the sections changed, before and after
    (sealed JSON). Append-only: the note's full history, autosaves included."""

    __tablename__ = "encounter_revision"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "encounter_id"], ["encounter.clinic_id", "encounter.id"]),
        Index("ix_encounter_revision_encounter", "clinic_id", "encounter_id", "version"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    encounter_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    changed: Mapped[str] = mapped_column(String(120))
    changes_enc: Mapped[bytes] = sealed()
    key_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class Addendum(Base):
    """A correction or late entry to a signed encounter. Append-only."""

    __tablename__ = "encounter_addendum"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "encounter_id"], ["encounter.clinic_id", "encounter.id"]),
        Index("ix_encounter_addendum_encounter", "clinic_id", "encounter_id", "at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    encounter_id: Mapped[uuid.UUID]
    patient_id: Mapped[uuid.UUID]
    text_enc: Mapped[bytes] = sealed()
    key_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class ChartKind(StrEnum):
    ALLERGY = "allergy"
    NO_KNOWN_ALLERGIES = "nka"
    PROBLEM = "problem"


class EndReason(StrEnum):
    RESOLVED = "resolved"
    ENTERED_IN_ERROR = "error"


class ChartItem(Base):
    """An entry of the patient's allergy list or problem list, kept across visits.

    Never edited: an entry is recorded, and later ended (resolved, or entered in error) by someone,
    at some time. The details (substance, reaction, severity; condition, ICD-10 code, since when)
    are one sealed JSON value.
    """

    __tablename__ = "chart_item"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_chart_item_patient", "clinic_id", "patient_id", "kind", "recorded_at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    kind: Mapped[ChartKind] = mapped_column(enum_by_value(ChartKind, 8))
    details_enc: Mapped[bytes | None] = sealed()
    encounter_id: Mapped[uuid.UUID | None]
    key_version: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    end_reason: Mapped[EndReason | None] = mapped_column(enum_by_value(EndReason, 8))


class Vitals(Base):
    """One set of vital signs taken at one time (values sealed as one JSON value, canonical units).

    Append-only, except being marked entered in error (who, when), which strikes it from trends.
    """

    __tablename__ = "vitals"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("ix_vitals_patient", "clinic_id", "patient_id", "taken_at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    encounter_id: Mapped[uuid.UUID | None]
    appointment_id: Mapped[uuid.UUID | None]
    values_enc: Mapped[bytes] = sealed()
    key_version: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    voided_at: Mapped[datetime | None]
    voided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class RxStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


class Prescription(Base):
    """A prescription: drafted in an encounter, then signed and locked. A change after signing is a
    new version (`replaces_id` → the one it replaces); the newest signed version is the valid one.

    `items_enc` is a sealed JSON list of {drug, strength, form, dose, frequency, duration, timing,
    instructions}; `advice_enc` the general advice. `code` is the verification code printed on the
    paper: an HMAC of the signed content, `printed_enc` (app/clinical/prescriptions.py), so an altered
    record or paper no longer matches it.
    """

    __tablename__ = "prescription"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        ForeignKeyConstraint(["clinic_id", "encounter_id"], ["encounter.clinic_id", "encounter.id"]),
        ForeignKeyConstraint(["clinic_id", "replaces_id"], ["prescription.clinic_id", "prescription.id"]),
        Index("ix_prescription_patient", "clinic_id", "patient_id", "created_at"),
        Index("ix_prescription_encounter", "clinic_id", "encounter_id"),
        Index("ix_prescription_replaces", "clinic_id", "replaces_id", unique=True,
              postgresql_where="replaces_id IS NOT NULL"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    encounter_id: Mapped[uuid.UUID]
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    number: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(SmallInteger, default=1)
    replaces_id: Mapped[uuid.UUID | None]
    status: Mapped[RxStatus] = mapped_column(enum_by_value(RxStatus, 8), default=RxStatus.DRAFT)
    language: Mapped[str] = mapped_column(String(8), default="en")
    items_enc: Mapped[bytes | None] = sealed()
    advice_enc: Mapped[bytes | None] = sealed()
    # At signing: everything the paper carries (doctor's and patient's details as they were then, items,
    # advice, follow-up), sealed as one JSON value. Reprints and the verification code use it, so a later
    # correction of a name or registration neither changes an issued paper nor breaks its code.
    printed_enc: Mapped[bytes | None] = sealed()
    code: Mapped[str | None] = mapped_column(String(16))
    key_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    signed_at: Mapped[datetime | None]
    signed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))

    @property
    def locked(self) -> bool:
        return self.status is RxStatus.SIGNED
