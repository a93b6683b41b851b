"""A patient's link, swapped for a narrow session: one appointment, nothing else, for two hours at most.

Opening a link (GET /p/<token>) changes nothing about the appointment (WhatsApp's previewer opens it
too): it writes a `patient_visit` row and a cookie `cd_visit` = "<clinic id>.<secret>", and the
browser goes on to a token-free address. The row keeps only the secret's SHA-256 and ends with the
link or after two hours, whichever is first. It is not a staff session: the staff guard never reads
it, so staff pages still ask for a sign-in, and it names one appointment, so no address can reach
another.

Each address (an IPv6 one by its /64) may fail to open 20 links in 10 minutes (`link_attempt`): a token
is 128 random bits, so this only keeps a guesser from using the app as an oracle; the sweep forgets old
attempts.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.db import new_id, set_tenant, utcnow
from app.messaging.links import Found
from app.messaging.models import LinkAttempt, PatientVisit
from app.patients.models import Patient
from app.scheduling.models import Appointment
from app.security import throttle

COOKIE = "cd_visit"
COOKIE_PATH = "/p"
LIFETIME = timedelta(hours=2)
WINDOW = timedelta(minutes=10)
OPENS_PER_WINDOW = 20
LIMITS = (throttle.Limit(OPENS_PER_WINDOW, WINDOW),)


def too_many_opens(db: Session, ip: str) -> bool:
    """Whether this address (client_network) tried too many unknown, expired or revoked links lately."""
    throttle.serialise(db, f"patient-link:{ip}")
    # Only failures count: good opens tell a guesser nothing, and many patients share one carrier address.
    return throttle.reached(db, LinkAttempt.at, [LinkAttempt.ip == ip, LinkAttempt.good.is_(False)], LIMITS)


def note_attempt(db: Session, ip: str, good: bool) -> None:
    """Count one link opened from this address."""
    db.add(LinkAttempt(id=new_id(), ip=ip, at=utcnow(), good=good))
    db.flush()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start(db: Session, found: Found) -> tuple[PatientVisit, str]:
    """A new visit for the link's appointment; returns it and the cookie's value (never stored)."""
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    visit = PatientVisit(clinic_id=found.link.clinic_id, id=new_id(), secret_hash=_hash(secret),
                         link_id=found.link.id, appointment_id=found.appointment.id, created_at=now,
                         expires_at=min(found.link.expires_at, now + LIFETIME))
    db.add(visit)
    found.link.last_opened_at = now
    db.flush()
    return visit, f"{visit.clinic_id}.{secret}"


@dataclass
class Visit:
    """What a patient's session reaches: their clinic, the one appointment, its patient."""

    row: PatientVisit
    clinic: Clinic
    appointment: Appointment
    patient: Patient


def current(db: Session, cookie: str | None, *, for_update: bool = False) -> Visit | None:
    """The live visit the cookie names, with the tenant set to its clinic (and the appointment locked
    for a change); None when there is none, it ended or expired."""
    clinic_part, _, secret = (cookie or "").partition(".")
    try:
        clinic_id = uuid.UUID(clinic_part)
    except ValueError:
        return None
    if not secret or len(secret) > 64:
        return None
    set_tenant(db, clinic_id=clinic_id, user_id=None)
    row = db.scalar(select(PatientVisit).where(PatientVisit.clinic_id == clinic_id,
                                               PatientVisit.secret_hash == _hash(secret)))
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    clinic = db.scalar(select(Clinic).where(Clinic.id == clinic_id))
    # FOR NO KEY UPDATE, not FOR UPDATE: a change here may write rows that reference other patients'
    # appointments (an offer of the time it frees), whose own changes hold them the same way; key-share
    # references pass such a lock, so two patients taking offers at once cannot deadlock.
    lock = {"key_share": True} if for_update else False
    appointment = db.get(Appointment, (clinic_id, row.appointment_id), with_for_update=lock)
    patient = db.get(Patient, (clinic_id, appointment.patient_id))
    return Visit(row, clinic, appointment, patient)


def follow(db: Session, visit: Visit, appointment: Appointment) -> None:
    """After the patient moved their appointment, the visit shows the new one."""
    visit.row.appointment_id = appointment.id
    visit.appointment = appointment
    db.flush()
