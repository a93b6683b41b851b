"""What a signed prescription prints, sealed at signing, and its verification code.

The code is an HMAC-SHA256, under a per-clinic key derived from the master key, of a canonical JSON
of everything the paper carries as it was at signing; an altered record or paper no longer matches
it, and a later correction of a name or registration changes neither the paper nor its code.
"""

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.auth.models import StaffUser
from app.clinical.models import Prescription
from app.patients.services import PatientData
from app.security import throttle
from app.security.client import client_network
from app.security.crypto import master_key
from app.security.fields import keyring

CODE_CHARS = 12  # 60 bits, shown as three groups of four
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Failed checks of printed codes allowed per address and clinic in the window (then 429).
VERIFY_FAILURES, VERIFY_WINDOW = 20, timedelta(minutes=15)
VERIFY_LIMITS = (throttle.Limit(VERIFY_FAILURES, VERIFY_WINDOW),)


def content(rx: Prescription, items: list[dict], advice: str, doctor: StaffUser, patient: PatientData,
            follow_up: date | None = None, *, allergies: dict | None = None, override: dict | None = None) -> dict:
    """Everything the paper carries, as it is at signing: what the code vouches for and reprints show.
    With the patient's allergy status (app/clinical/allergy_check.py) and, when a medicine matched an
    allergy, the doctor's reason for prescribing it anyway."""
    printed = {
        "clinic": str(rx.clinic_id), "prescription": str(rx.id), "number": rx.number, "revision": rx.revision,
        "doctor": {"name": doctor.full_name, "qualifications": doctor.qualifications or "",
                   "speciality": doctor.speciality or "",
                   "registration_number": doctor.registration_number or "",
                   "registration_council": doctor.registration_council or ""},
        "patient": {"mrn": patient.mrn, "name": patient.full_name, "sex": patient.sex or "",
                    "dob": patient.dob.isoformat() if patient.dob else ""},
        "signed_at": rx.signed_at.isoformat(), "language": rx.language, "items": items, "advice": advice,
        "follow_up": follow_up.isoformat() if follow_up else "",
    }
    if allergies is not None:
        printed["allergies"] = allergies
    if override:
        printed["allergy_override"] = override
    return printed


def seal_printed(db: Session, rx: Prescription, printed: dict) -> None:
    """Seal what the paper carries into the prescription, and its verification code."""
    ring = keyring(db, rx.clinic_id)
    rx.printed_enc = ring.seal("prescription", "printed", rx.id, json.dumps(printed, sort_keys=True))
    rx.key_version = ring.active.version
    rx.code = code_of(rx, printed)


def printed_of(db: Session, rx: Prescription) -> dict | None:
    """The content sealed at signing (None for a draft)."""
    text = keyring(db, rx.clinic_id).open("prescription", "printed", rx.id, rx.printed_enc)
    return json.loads(text) if text else None


@dataclass(frozen=True)
class PrintedDoctor:
    """The doctor's details as printed at signing."""

    full_name: str
    qualifications: str
    speciality: str
    registration_number: str
    registration_council: str


@dataclass(frozen=True)
class PrintedPatient:
    """The patient's details as printed at signing."""

    full_name: str
    mrn: str
    sex: str
    dob: date | None


def printed_people(printed: dict) -> tuple[PrintedDoctor, PrintedPatient]:
    d, p = printed["doctor"], printed["patient"]
    doctor = PrintedDoctor(d["name"], d["qualifications"], d.get("speciality", ""), d["registration_number"],
                           d["registration_council"])
    patient = PrintedPatient(p["name"], p["mrn"], p.get("sex", ""),
                             date.fromisoformat(p["dob"]) if p.get("dob") else None)
    return doctor, patient


def code_of(rx: Prescription, sealed: dict) -> str:
    """The verification code: HMAC-SHA256 of the canonical content under the clinic's key, 60 bits."""
    canonical = json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hmac.new(master_key().derive(f"prescription|{rx.clinic_id}"), canonical, hashlib.sha256).digest()
    bits = int.from_bytes(digest[:8], "big") >> (64 - 5 * CODE_CHARS)
    return "".join(CROCKFORD[(bits >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS)))


def grouped(code: str | None) -> str:
    """'7KQ29XHMP4TA' -> '7KQ2-9XHM-P4TA'."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4)) if code else ""


def normal_code(typed: str | None) -> str:
    """A typed or scanned code in canonical form (dashes, spaces and case ignored; I/L read as 1, O as 0)."""
    text = re.sub(r"[\s-]", "", (typed or "")[:40]).upper().translate(str.maketrans("ILO", "110"))
    # Anything outside the code's alphabet makes it no code at all (and keeps compare_digest on ASCII).
    return text if all(c in CROCKFORD for c in text) else ""


def current_code(db: Session, rx: Prescription) -> str:
    """The code recomputed from the content sealed at signing (DecryptionError if it was altered)."""
    printed = printed_of(db, rx)
    return code_of(rx, printed) if printed else ""


def initials(name: str) -> str:
    """'Sunita Devi Sharma' -> 'S. D. S.'"""
    return " ".join(f"{word[0].upper()}." for word in name.split() if word)


def age_on(born: date | None, day: date) -> int | None:
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def too_many_failures(db: Session, clinic_id: uuid.UUID) -> bool:
    """Whether the client failed too many code checks at this clinic lately (counted from the audit trail)."""
    throttle.serialise(db, f"rx-verify:{clinic_id}:{client_network()}")
    return throttle.reached(db, AuditEvent.at, [
        AuditEvent.clinic_id == clinic_id, AuditEvent.action == "prescription.verify", AuditEvent.outcome == "denied",
        throttle.from_client(AuditEvent.ip)], VERIFY_LIMITS)
