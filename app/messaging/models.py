"""Reminders: each clinic's settings and message templates, the outbox of messages (one row per
appointment, appointment version, reminder kind and channel, unique in the database), replies that
came in, patient links and the narrow sessions they open, and the waitlist with its slot offers.

No PHI in plain columns: the number a message went to and what it said are sealed (they carry the
patient's phone and a link credential); `to_index` is a keyed blind index of the number, so a reply
can be matched to the reminders sent to it. Link tokens and patient-session secrets are stored as
SHA-256 hashes only.
"""

import uuid
from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
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


class Channel(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"

    @property
    def label(self) -> str:
        return "WhatsApp" if self is Channel.WHATSAPP else "SMS"


class Transport(StrEnum):
    """Where messages go: Twilio, or the outbox page (no credentials: the demo, a clinic not yet set up)."""

    OUTBOX = "outbox"
    TWILIO = "twilio"


class State(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    SKIPPED = "skipped"

    @property
    def label(self) -> str:
        return self.value.capitalize()


# A status callback moves a row forward only: a late "sent" never overwrites "delivered".
RANK = {State.PENDING: 0, State.SENDING: 1, State.SENT: 2, State.DELIVERED: 3, State.READ: 4,
        State.UNDELIVERED: 5, State.FAILED: 5, State.SKIPPED: 6}
# Rows no job will touch again.
FINAL = (State.DELIVERED, State.READ, State.FAILED, State.UNDELIVERED, State.SKIPPED)


class Kind(StrEnum):
    """Why a message went: a scheduled reminder ("24h", "2h", "90m", "3d"… from app/messaging/plan.py),
    a waitlist offer, or the reschedule link a "3" reply asks for."""

    OFFER = "offer"
    RESCHEDULE_LINK = "relink"


class ReminderSettings(Base):
    """One clinic's reminder settings (no row: the defaults, outbox transport)."""

    __tablename__ = "reminder_settings"
    __table_args__ = (CheckConstraint("channels IN ('whatsapp,sms', 'sms,whatsapp', 'whatsapp', 'sms')",
                                      name="channels"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    channels: Mapped[str] = mapped_column(String(16), default="whatsapp,sms")  # in the order tried
    offsets_minutes: Mapped[str] = mapped_column(String(60), default="1440,120")
    quiet_start: Mapped[time] = mapped_column(Time, default=time(21, 0))
    quiet_end: Mapped[time] = mapped_column(Time, default=time(8, 0))
    transport: Mapped[Transport] = mapped_column(enum_by_value(Transport, 8), default=Transport.OUTBOX)
    account_sid: Mapped[str | None] = mapped_column(String(40))
    auth_token_enc: Mapped[bytes | None] = sealed()
    whatsapp_from: Mapped[str | None] = mapped_column(String(40))
    sms_from: Mapped[str | None] = mapped_column(String(40))
    messaging_service_sid: Mapped[str | None] = mapped_column(String(40))
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))

    @property
    def id(self) -> uuid.UUID:
        """The row id sealed values are bound to (one row per clinic)."""
        return self.clinic_id


class ReminderTemplate(Base):
    """A clinic's message templates in one language: the approved WhatsApp templates (ContentSid) and
    the SMS text registered on DLT (with its template id)."""

    __tablename__ = "reminder_template"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    whatsapp_content_sid: Mapped[str | None] = mapped_column(String(40))
    offer_content_sid: Mapped[str | None] = mapped_column(String(40))
    sms_text: Mapped[str] = mapped_column(String(480))
    offer_sms_text: Mapped[str] = mapped_column(String(480))
    dlt_template_id: Mapped[str | None] = mapped_column(String(30))
    offer_dlt_template_id: Mapped[str | None] = mapped_column(String(30))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class Reminder(Base):
    """One message in the outbox: pending → sending → sent → delivered/read, or failed/undelivered
    (with Twilio's error), or skipped (with why: cancelled, rescheduled, consent withdrawn, too late)."""

    __tablename__ = "reminder"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
        ForeignKeyConstraint(["clinic_id", "patient_id"], ["patient.clinic_id", "patient.id"]),
        Index("uq_reminder_once", "clinic_id", "appointment_id", "appointment_version", "kind", "channel", "offer_id",
              unique=True, postgresql_nulls_not_distinct=True),
        Index("ix_reminder_due", "clinic_id", "state", "due_at"),
        Index("ix_reminder_sid", "clinic_id", "twilio_sid", unique=True, postgresql_where="twilio_sid IS NOT NULL"),
        Index("ix_reminder_to", "clinic_id", "to_index", "sent_at"),
        Index("ix_reminder_appointment", "clinic_id", "appointment_id"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID]
    appointment_version: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(8))
    channel: Mapped[Channel] = mapped_column(enum_by_value(Channel, 8))
    offer_id: Mapped[uuid.UUID | None]
    due_at: Mapped[datetime]
    state: Mapped[State] = mapped_column(enum_by_value(State, 12), default=State.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    transport: Mapped[Transport | None] = mapped_column(enum_by_value(Transport, 8))
    language: Mapped[str | None] = mapped_column(String(8))
    to_index: Mapped[str | None] = mapped_column(String(24))
    to_enc: Mapped[bytes | None] = sealed()
    body_enc: Mapped[bytes | None] = sealed()
    twilio_sid: Mapped[str | None] = mapped_column(String(40))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_text: Mapped[str | None] = mapped_column(String(200))
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))


class InboundMessage(Base):
    """A reply that came in (each Twilio MessageSid once): what it asked for and what was done. Its
    words are not kept: only the intent read from them."""

    __tablename__ = "inbound_message"
    __table_args__ = (Index("ix_inbound_sid", "clinic_id", "twilio_sid", unique=True),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    twilio_sid: Mapped[str] = mapped_column(String(40))
    channel: Mapped[Channel] = mapped_column(enum_by_value(Channel, 8))
    from_index: Mapped[str] = mapped_column(String(24))
    intent: Mapped[str | None] = mapped_column(String(16))
    reminder_id: Mapped[uuid.UUID | None]
    patient_id: Mapped[uuid.UUID | None]
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class PatientLink(Base):
    """A patient's link to one appointment: the token's SHA-256, when it expires, whether revoked."""

    __tablename__ = "patient_link"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
        Index("ix_patient_link_appointment", "clinic_id", "appointment_id"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_opened_at: Mapped[datetime | None]


class LinkRoute(Base):
    """token hash → clinic, outside row-level security: a link is opened before any clinic is known.
    Holds nothing else (the link row, under RLS, says whether it is still good)."""

    __tablename__ = "link_route"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"))  # not `clinic_id`: that name means RLS


class LinkAttempt(Base):
    """Each time an address opened a patient link (good or not): the per-address rate limit counts these."""

    __tablename__ = "link_attempt"
    __table_args__ = (Index("ix_link_attempt_ip", "ip", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    ip: Mapped[str] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    good: Mapped[bool] = mapped_column(Boolean)


class PatientVisit(Base):
    """The narrow session a link opens: one appointment, nothing else; the cookie holds
    `<clinic id>.<secret>` and this row the secret's SHA-256."""

    __tablename__ = "patient_visit"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    link_id: Mapped[uuid.UUID]
    appointment_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class WaitlistEntry(Base):
    """A patient with an appointment who asked to be offered an earlier time with the same doctor."""

    __tablename__ = "waitlist_entry"
    __table_args__ = (
        ForeignKeyConstraint(["clinic_id", "appointment_id"], ["appointment.clinic_id", "appointment.id"]),
        Index("uq_waitlist_active", "clinic_id", "appointment_id", unique=True, postgresql_where="ended_at IS NULL"),
        Index("ix_waitlist_doctor", "clinic_id", "doctor_id", "ended_at"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID]
    patient_id: Mapped[uuid.UUID]
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(20))


class SlotOffer(Base):
    """A freed time offered to the waitlist; the first patient to take it gets it (the booking's
    exclusion constraint decides a race), the others are told it has gone."""

    __tablename__ = "slot_offer"
    __table_args__ = (Index("ix_slot_offer_doctor", "clinic_id", "doctor_id", "starts_at"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    freed_by: Mapped[uuid.UUID | None]  # the appointment whose cancellation or move freed it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_at: Mapped[datetime | None]
    taken_by: Mapped[uuid.UUID | None]  # the appointment booked into it
