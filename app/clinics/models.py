"""Clinics and memberships (user x clinic x role)."""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.policy import Role
from app.db import Base, enum_by_value, new_id, utcnow


class Clinic(Base):
    __tablename__ = "clinic"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    legal_name: Mapped[str] = mapped_column(String(200))
    address_line: Mapped[str] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(100))
    pin_code: Mapped[str] = mapped_column(String(6))
    state_code: Mapped[str] = mapped_column(String(2))
    gstin: Mapped[str | None] = mapped_column(String(15))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Kolkata")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    __tablename__ = "membership"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"), primary_key=True, index=True)
    role: Mapped[Role] = mapped_column(enum_by_value(Role, 16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")


class ClinicRegistry(Base):
    """Clinic ids only, outside row-level security, for jobs that visit every clinic (kept by a trigger)."""

    __tablename__ = "clinic_registry"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
