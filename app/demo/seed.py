"""Demo data: two clinics in two states, one person of every role, a doctor in both clinics, patients,
each clinic's schedule with a week of appointments, and the clinical record of the visits already done.

Passwords and TOTP secrets are generated at seed time (never in the repo) and written to
`instance/demo-credentials.json` (0600), which `flask demo-users` prints.
"""

import json
import os
import random
import secrets
import uuid
from datetime import date
from pathlib import Path

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import AppMeta, StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, issue_recovery_codes, seal_totp_secret
from app.clinics.models import Clinic, Membership
from app.db import new_id, set_tenant, utcnow
from app.demo.billing import seed_billing
from app.demo.clinical import seed_clinical
from app.demo.reminders import seed_reminders
from app.demo.schedule import seed_schedule

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
    ("doctor2@demo.clinicdesk.in", "Dr. Ayesha Khan", [("blr", Role.DOCTOR)]),
    ("doctor.pune@demo.clinicdesk.in", "Dr. Sanjay Kulkarni", [("pune", Role.DOCTOR)]),
    ("nurse@demo.clinicdesk.in", "Meera Nair", [("blr", Role.NURSE)]),
    ("reception@demo.clinicdesk.in", "Ravi Shankar", [("blr", Role.RECEPTION)]),
    ("reception.pune@demo.clinicdesk.in", "Sneha Patil", [("pune", Role.RECEPTION)]),
    ("billing@demo.clinicdesk.in", "Farhan Sheikh", [("blr", Role.BILLING)]),
    ("auditor@demo.clinicdesk.in", "Lakshmi Iyer", [("blr", Role.AUDITOR)]),
]

# Doctors' details printed on prescriptions: (qualifications, speciality, registration number, council).
PROFESSIONAL = {
    "doctor@demo.clinicdesk.in": ("MBBS, MD (General Medicine)", "General Medicine", "KMC-78231",
                                  "Karnataka Medical Council"),
    "doctor2@demo.clinicdesk.in": ("MBBS, DCH, MD (Paediatrics)", "Paediatrics", "KMC-91544",
                                   "Karnataka Medical Council"),
    "doctor.pune@demo.clinicdesk.in": ("MBBS, MS (ENT)", "ENT", "MMC-2011/04/1187", "Maharashtra Medical Council"),
}

# (name, sex, date of birth, phone, language): families share a phone, as they do at the desk.
PATIENTS = {
    "blr": [
        ("Lakshmi Narayanan", "F", "1958-03-12", "9845012301", "kn"),
        ("Venkatesh Narayanan", "M", "1955-07-30", "9845012301", "kn"),
        ("Ananya Reddy", "F", "1992-11-02", "9886034512", "en"),
        ("Rohan Reddy", "M", "2016-06-18", "9886034512", "en"),
        ("Mohammed Irfan", "M", "1984-01-25", "9900456123", "hi"),
        ("Shabana Irfan", "F", "1987-09-09", "9900456123", "hi"),
        ("Priya Venkataraman", "F", "1975-04-04", "9741122334", "ta"),
        ("Suresh Gowda", "M", "1969-12-01", "9632587410", "kn"),
        ("Kavitha Shetty", "F", "2001-02-14", "9538876543", "kn"),
        ("Arjun Menon", "M", "1990-08-21", "9447012345", "ml"),
        ("Deepa Menon", "F", "1993-10-10", "9447012345", "ml"),
        ("Rahul Sharma", "M", "1985-05-05", "9811122233", "hi"),
    ],
    "pune": [
        ("Sunita Deshpande", "F", "1966-06-06", "9822012345", "mr"),
        ("Madhav Deshpande", "M", "1962-02-20", "9822012345", "mr"),
        ("Aarav Kulkarni", "M", "2018-03-03", "9765432109", "mr"),
        ("Neha Kulkarni", "F", "1989-12-12", "9765432109", "mr"),
        ("Imran Shaikh", "M", "1979-07-07", "9890011223", "hi"),
        ("Pooja Jadhav", "F", "1995-01-31", "9623456780", "mr"),
        ("Vikas Patil", "M", "1972-09-15", "9850098500", "mr"),
        ("Rekha Joshi", "F", "1950-11-11", "9403312345", "hi"),
    ],
}


# Weekly sessions: (doctor's e-mail, weekdays (0 = Monday), starts, ends, slot minutes, room).
SESSIONS = {
    "blr": [("doctor@demo.clinicdesk.in", range(6), "09:00", "13:00", 15, "Room 1"),
            ("doctor@demo.clinicdesk.in", (0, 2, 4), "17:00", "20:00", 15, "Room 1"),
            ("doctor2@demo.clinicdesk.in", range(6), "10:00", "14:00", 10, "Room 2"),
            ("doctor2@demo.clinicdesk.in", (1, 3), "16:00", "19:00", 10, "Room 2")],
    "pune": [("doctor.pune@demo.clinicdesk.in", range(6), "09:30", "13:30", 15, "Cabin 1"),
             ("doctor.pune@demo.clinicdesk.in", (0, 2, 4), "17:00", "20:00", 15, "Cabin 1"),
             ("doctor@demo.clinicdesk.in", (1, 3), "14:00", "18:00", 15, "Cabin 2")],
}


def _seed_patients(db: Session, clinic: Clinic, people: list[tuple], registrar: uuid.UUID) -> list[uuid.UUID]:
    from app.audit.services import record
    from app.patients.services import PatientData, register

    ids = []
    for name, sex, dob, phone, language in people:
        born = date.fromisoformat(dob)
        minor = (date.today() - born).days < 18 * 365
        data = PatientData(full_name=name, sex=sex, dob=born, phone=f"+91{phone}", language=language,
                           state_code=clinic.state_code, city=clinic.city,
                           guardian_name=f"{name.split()[-1]} family" if minor else None,
                           guardian_relation="Parent" if minor else None)
        consents = {"treatment": True, "whatsapp": language != "ta", "sms": True, "data_sharing": False}
        patient = register(db, clinic_id=clinic.id, data=data, by=registrar, consents=consents)
        record(db, "patient.create", clinic_id=clinic.id, patient_id=patient.id, object_type="patient",
               object_id=patient.id, reason="demo data")
        ids.append(patient.id)
    return ids


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
        qualifications, speciality, registration, council = PROFESSIONAL.get(email, (None,) * 4)
        user = StaffUser(id=new_id(), email=email, full_name=name, password_hash=hash_password(password),
                         mfa_enrolled_at=utcnow(), qualifications=qualifications, speciality=speciality,
                         registration_number=registration, registration_council=council)
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
    reception = {"blr": "reception@demo.clinicdesk.in", "pune": "reception.pune@demo.clinicdesk.in"}
    ids = dict(db.execute(select(StaffUser.email, StaffUser.id)).all())
    rng = random.Random(2026)  # noqa: S311 (demo data, fixed seed, nothing secret)
    for key, clinic in clinics.items():
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        patients = _seed_patients(db, clinic, PATIENTS[key], ids[reception[key]])
        doctors = {email: ids[email] for email, *_ in SESSIONS[key]}
        seed_schedule(db, clinic, doctors, SESSIONS[key], patients, ids[reception[key]], rng)
        seed_clinical(db, clinic, patients, rng)
        seed_billing(db, clinic, ids[reception[key]], rng)
        seed_reminders(db, clinic, utcnow())
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
