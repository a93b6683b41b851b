"""Demo data: two clinics in two states, one person of every role, a doctor in both clinics.

Passwords and TOTP secrets are generated at seed time (never in the repo) and written to
`instance/demo-credentials.json` (0600), which `flask demo-users` prints.
"""

import json
import os
import secrets
from pathlib import Path

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import AppMeta, StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, issue_recovery_codes, seal_totp_secret
from app.clinics.models import Clinic, Membership
from app.db import new_id, set_tenant, utcnow

CLINICS = [
    dict(key="blr", name="Indiranagar Family Clinic", legal_name="Indiranagar Family Clinic LLP",
         address_line="12, 100 Feet Road, HAL 2nd Stage, Indiranagar", city="Bengaluru", pin_code="560038",
         state_code="29", gstin="29AABCI4821K1ZF"),
    dict(key="pune", name="Kothrud Health Centre", legal_name="Kothrud Health Centre Private Limited",
         address_line="45, Karve Road, near Kothrud Depot", city="Pune", pin_code="411038",
         state_code="27", gstin="27AACCK7310M1ZE"),
]
STAFF = [
    ("admin@demo.clinicdesk.in", "Asha Kulkarni", [("blr", Role.ADMIN), ("pune", Role.ADMIN)]),
    ("doctor@demo.clinicdesk.in", "Dr. Vikram Rao", [("blr", Role.DOCTOR), ("pune", Role.DOCTOR)]),
    ("nurse@demo.clinicdesk.in", "Meera Nair", [("blr", Role.NURSE)]),
    ("reception@demo.clinicdesk.in", "Ravi Shankar", [("blr", Role.RECEPTION)]),
    ("reception.pune@demo.clinicdesk.in", "Sneha Patil", [("pune", Role.RECEPTION)]),
    ("billing@demo.clinicdesk.in", "Farhan Sheikh", [("blr", Role.BILLING)]),
    ("auditor@demo.clinicdesk.in", "Lakshmi Iyer", [("blr", Role.AUDITOR)]),
]


def is_empty(db: Session) -> bool:
    return db.scalar(select(StaffUser.id).limit(1)) is None


def is_demo(db: Session) -> bool:
    return db.get(AppMeta, "demo") is not None


def seed(db: Session, credentials_file: Path) -> list[dict]:
    """Create the demo clinics and staff; returns (and saves) their sign-in details."""
    clinics = {}
    for spec in CLINICS:
        values = {k: v for k, v in spec.items() if k != "key"}
        clinic = Clinic(id=new_id(), **values)
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        db.add(clinic)
        db.flush()
        clinics[spec["key"]] = clinic
    people = []
    for email, name, roles in STAFF:
        password = secrets.token_urlsafe(12)
        secret = pyotp.random_base32(32)
        user = StaffUser(id=new_id(), email=email, full_name=name, password_hash=hash_password(password),
                         mfa_enrolled_at=utcnow())
        user.totp_secret_enc = seal_totp_secret(user, secret)
        db.add(user)
        db.flush()
        issue_recovery_codes(db, user)
        for key, role in roles:
            set_tenant(db, clinic_id=clinics[key].id, user_id=None)
            db.add(Membership(clinic_id=clinics[key].id, user_id=user.id, role=role))
            db.flush()
            people.append({"email": email, "password": password, "role": role.value,
                           "clinic": clinics[key].name, "totp_secret": secret})
    db.add(AppMeta(key="demo", value="true"))
    db.flush()
    _write_credentials(credentials_file, people)
    return people


def _write_credentials(path: Path, people: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(people, fh, indent=2)
