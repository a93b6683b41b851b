"""The PHI audit trail: one append-only record per read or write of PHI, and its hash chain.

Requests only insert `audit_event` rows (each carrying an HMAC of its own contents), so no request
waits on another clinic's or even its own clinic's lock. A background job links committed events
into a per-clinic chain (`audit_chain`, consecutive positions, HMAC over the previous link) and
signs the chain head now and then (`audit_checkpoint`, Ed25519). All three tables are append-only.
"""

import uuid
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, LargeBinary, Sequence, String
from sqlalchemy.dialects.postgresql import ARRAY, INET, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id, utcnow

audit_seq = Sequence("audit_seq", metadata=Base.metadata)


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_clinic_patient_at", "clinic_id", "patient_id", "at"),
        Index("ix_audit_event_clinic_at", "clinic_id", "at"),
        Index("ix_audit_event_clinic_seq", "clinic_id", "seq"),
        # "who looked at this patient" also finds the patient among search results shown
        Index("ix_audit_event_patient_ids", "patient_ids", postgresql_using="gin"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger, audit_seq, server_default=audit_seq.next_value(), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[uuid.UUID | None]
    patient_id: Mapped[uuid.UUID | None]
    patient_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    outcome: Mapped[str] = mapped_column(String(16), default="allowed")
    reason: Mapped[str | None] = mapped_column(String(300))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[IPv4Address | IPv6Address | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(200))
    mac: Mapped[str] = mapped_column(String(64))


class AuditChainLink(Base):
    __tablename__ = "audit_chain"
    __table_args__ = (Index("ix_audit_chain_event", "clinic_id", "event_id", unique=True),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[uuid.UUID]
    chain_hash: Mapped[str] = mapped_column(String(64))
    chained_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoint"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chain_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    public_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class AuditShipment(Base):
    """Checkpoints shipped off the database (app/audit/shipping.py): up to which position, when. Written
    after the shipped lines are durable, so the file is never behind what this says."""

    __tablename__ = "audit_shipment"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shipped_at: Mapped[datetime] = mapped_column(default=utcnow)
    count: Mapped[int]


class AuditVerification(Base):
    """The result of each full verification of a clinic's trail (by the checkpoint job or on demand),
    so the auditor's page shows the latest without re-reading every event."""

    __tablename__ = "audit_verification"
    __table_args__ = (Index("ix_audit_verification_clinic_at", "clinic_id", "checked_at"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    problem: Mapped[str | None] = mapped_column(String(500))
    chained: Mapped[int] = mapped_column(BigInteger)
    unchained: Mapped[int] = mapped_column(BigInteger)
    checkpoint_position: Mapped[int | None] = mapped_column(BigInteger)
    checked_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
