"""Clinic records."""

from sqlalchemy.orm import Session

from app.clinics.models import Clinic


def update_clinic(db: Session, clinic: Clinic, values: dict) -> None:
    """Apply validated settings to the clinic."""
    for key in ("name", "legal_name", "address_line", "city", "pin_code", "state_code", "timezone"):
        setattr(clinic, key, values[key].strip() if isinstance(values[key], str) else values[key])
    clinic.gstin = values.get("gstin") or None
    db.flush()
