"""Gapless per-clinic counters (MRNs, queue tokens, prescription numbers): a kernel mechanism every domain
numbers its records with, so no domain imports another just to count."""

import uuid

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.db import Base


class ClinicCounter(Base):
    """Per-clinic counters (e.g. the next MRN), taken with a row lock so numbers never repeat."""

    __tablename__ = "clinic_counter"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


def next_number(db: Session, clinic_id: uuid.UUID, name: str) -> int:
    """The clinic's next number in a series; the row lock keeps it unique under concurrency."""
    db.execute(insert(ClinicCounter).values(clinic_id=clinic_id, name=name, value=0).on_conflict_do_nothing())
    counter = db.execute(select(ClinicCounter).where(ClinicCounter.clinic_id == clinic_id, ClinicCounter.name == name)
                         .with_for_update()).scalar_one()
    counter.value += 1
    return counter.value
