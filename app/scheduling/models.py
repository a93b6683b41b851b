"""Scheduling: clinic hours and day overrides, doctors' weekly sessions and exceptions,
appointment types, appointments and their append-only history.

Double booking is refused by PostgreSQL: an exclusion constraint (btree_gist) on
(clinic, doctor, time range) over the appointments that hold their slot, created in the migration.
Free text a patient may have told the desk (visit reason, why a visit was cancelled) is PHI and
sealed like every other PHI field (app/security/fields.py).
"""

import uuid
from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Time,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, enum_by_value, new_id, utcnow
from app.security.fields import sealed


class Status(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    ARRIVED = "arrived"
    IN_CONSULTATION = "in_consultation"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    RESCHEDULED = "rescheduled"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {
    Status.BOOKED: "Booked", Status.CONFIRMED: "Confirmed", Status.ARRIVED: "Arrived",
    Status.IN_CONSULTATION: "In consultation", Status.COMPLETED: "Completed", Status.CANCELLED: "Cancelled",
    Status.NO_SHOW: "No-show", Status.RESCHEDULED: "Rescheduled",
}
# The statuses in which an appointment holds its time: these take part in the exclusion constraint.
HOLDS_SLOT = (Status.BOOKED, Status.CONFIRMED, Status.ARRIVED, Status.IN_CONSULTATION, Status.COMPLETED)
NO_OVERLAP_CONSTRAINT = "ex_appointment_no_overlap"
# Appointment-type colours: a fixed palette shown through CSS classes `tc-<key>` (the CSP allows no
# inline styles), chosen to stay distinguishable next to each other on the board.
COLOURS = {"teal": "Teal", "blue": "Blue", "indigo": "Indigo", "purple": "Purple", "pink": "Pink", "red": "Red",
           "orange": "Orange", "amber": "Amber", "green": "Green", "slate": "Slate"}


class ClinicHours(Base):
    """Opening hours per weekday (0 = Monday); no row means closed that weekday."""

    __tablename__ = "clinic_hours"
    __table_args__ = (CheckConstraint("closes > opens", name="opens_before_closes"),
                      CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"))

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    opens: Mapped[time] = mapped_column(Time)
    closes: Mapped[time] = mapped_column(Time)


class ClinicDay(Base):
    """A day that differs from the weekly hours: a closure, or open on a public holiday."""

    __tablename__ = "clinic_day"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_open: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppointmentType(Base):
    __tablename__ = "appointment_type"
    __table_args__ = (CheckConstraint("duration_minutes BETWEEN 5 AND 480", name="duration"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(60))
    duration_minutes: Mapped[int] = mapped_column(SmallInteger)
    colour: Mapped[str] = mapped_column(String(7))
    billable_item: Mapped[str | None] = mapped_column(String(80))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoctorSession(Base):
    """One weekly session of a doctor's availability template: weekday, hours, slot length, room."""

    __tablename__ = "doctor_session"
    __table_args__ = (CheckConstraint("ends > starts", name="starts_before_ends"),
                      CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
                      CheckConstraint("slot_minutes BETWEEN 5 AND 240", name="slot_minutes"),
                      Index("ix_doctor_session_doctor", "clinic_id", "doctor_id", "weekday"))

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    weekday: Mapped[int] = mapped_column(SmallInteger)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)
    slot_minutes: Mapped[int] = mapped_column(SmallInteger)
    room: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class ExceptionKind(StrEnum):
    LEAVE = "leave"
    EXTRA = "extra"


class SessionException(Base):
    """Leave (whole days, or some hours of one day) or an extra session on one day."""

    __tablename__ = "doctor_exception"
    __table_args__ = (CheckConstraint("last_day >= first_day", name="days_in_order"),
                      CheckConstraint("(starts IS NULL) = (ends IS NULL) AND (ends IS NULL OR ends > starts)",
                                      name="hours"),
                      CheckConstraint("kind <> 'extra' OR (starts IS NOT NULL AND slot_minutes IS NOT NULL "
                                      "AND first_day = last_day)", name="extra_has_hours"),
                      Index("ix_doctor_exception_days", "clinic_id", "doctor_id", "first_day", "last_day"))

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    kind: Mapped[ExceptionKind] = mapped_column(enum_by_value(ExceptionKind, 8))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    starts: Mapped[time | None] = mapped_column(Time)
    ends: Mapped[time | None] = mapped_column(Time)
    slot_minutes: Mapped[int | None] = mapped_column(SmallInteger)
    room: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(String(120))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Appointment(Base):
    """A booked slot (`starts_at`..`ends_at`) or a walk-in (no slot, a token in the day's queue)."""

    __tablename__ = "appointment"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        ForeignKeyConstraint(["clinic_id", "type_id"], ["appointment_type.clinic_id", "appointment_type.id"]),
        ForeignKeyConstraint(["clinic_id", "rescheduled_from"], ["appointment.clinic_id", "appointment.id"]),
        CheckConstraint("(starts_at IS NULL) = (ends_at IS NULL) AND (ends_at IS NULL OR ends_at > starts_at)",
                        name="slot_times"),
        CheckConstraint("walk_in = (starts_at IS NULL)", name="walk_in_has_no_slot"),
        Index("ix_appointment_day", "clinic_id", "day", "doctor_id"),
        Index("ix_appointment_patient", "clinic_id", "patient_id", "starts_at"),
        Index("ix_appointment_doctor", "clinic_id", "doctor_id", "starts_at"),
        Index("ix_appointment_token", "clinic_id", "day", "token", unique=True,
              postgresql_where="token IS NOT NULL"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    patient_id: Mapped[uuid.UUID]
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    type_id: Mapped[uuid.UUID | None]
    walk_in: Mapped[bool] = mapped_column(Boolean, default=False)
    day: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    status: Mapped[Status] = mapped_column(enum_by_value(Status, 16), default=Status.BOOKED)
    token: Mapped[int | None] = mapped_column(Integer)
    room: Mapped[str | None] = mapped_column(String(40))
    reason_enc: Mapped[bytes | None] = sealed()
    overbooked: Mapped[bool] = mapped_column(Boolean, default=False)
    rescheduled_from: Mapped[uuid.UUID | None]
    arrived_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    key_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))

    @property
    def holds_slot(self) -> bool:
        return self.status in HOLDS_SLOT


class AppointmentEvent(Base):
    """Each thing that happened to an appointment (booked, each status change, rescheduled): who, when,
    from which status to which, and the stated reason (sealed). Append-only."""

    __tablename__ = "appointment_event"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
        Index("ix_appointment_event_appointment", "clinic_id", "appointment_id", "at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    detail_enc: Mapped[bytes | None] = sealed()
    key_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
