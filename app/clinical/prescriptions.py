"""Prescriptions: drafting in an encounter, signing (locks it, numbers it, seals what it prints and its
verification code: app/clinical/rx_code.py), and new versions. The page, PDF, panel and public check
are built in app/clinical/rx_pages.py.

A draft belongs to an encounter and is written by the encounter's doctor; signing locks it for good
(the database refuses any later change). A change after signing is a new version: a draft copying
the items, `replaces_id` set, the same number and the next revision; once signed, the older one is
replaced (derived from the newer row: the old row cannot change).
"""

import json
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.clinical import allergy_check, rx_text
from app.clinical.models import Encounter, Prescription, RxStatus
from app.clinical.rx_code import content, seal_printed
from app.counters import next_number
from app.db import new_id, utcnow
from app.forms import squeeze
from app.patients.models import Patient
from app.patients.services import open_patient
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

MAX_ITEMS = 30
MAX_ADVICE = 2000
MAX_OVERRIDE = 500


class RxError(ValueError):
    """A refused change to a prescription, with a message for the user."""


class Locked(RxError):
    """The prescription is signed: only a new version can change it."""


class Stale(RxError):
    """The draft changed in another window since this one was shown."""


class Invalid(RxError):
    """A signature the allergy check refuses (`errors` per field; the forms are app/clinical/forms.py)."""

    def __init__(self, errors: dict[str, str], message: str = "Check the highlighted fields."):
        super().__init__(message)
        self.errors = errors


# --- Items ------------------------------------------------------------------------------------------

def item_line(item: dict) -> str:
    """One item as one line of English: drug, strength, form — dose, frequency, timing, then a times
    sign and the duration ("Paracetamol 500 mg tablet — 1 tablet 1-0-1 after food, 5 days" with it)."""
    what = " ".join(v for v in (squeeze(item.get(k)) for k in ("drug", "strength", "form")) if v)
    timing = item.get("timing") or ""
    timing = "" if timing == "any_time" else rx_text.TIMINGS.get(timing, (squeeze(timing).replace("_", " "),))[0]
    how = " ".join(v for v in (squeeze(item.get("dose")), squeeze(item.get("frequency")), timing) if v)
    duration = squeeze(item.get("duration"))
    if duration:
        how = f"{how} \N{MULTIPLICATION SIGN} {duration}" if how else duration
    line = f"{what} — {how}" if how else what
    instructions = squeeze(item.get("instructions"))
    return f"{line}; {instructions}" if instructions else line


# --- Reading ----------------------------------------------------------------------------------------

def open_rx(db: Session, rx: Prescription) -> tuple[list[dict], str]:
    """The items and advice, decrypted (clinical content: the caller checks access and audits)."""
    ring = keyring(db, rx.clinic_id)
    items = ring.open("prescription", "items", rx.id, rx.items_enc)
    return json.loads(items) if items else [], ring.open("prescription", "advice", rx.id, rx.advice_enc) or ""


def _seal(db: Session, rx: Prescription, items: list[dict], advice: str) -> None:
    ring = keyring(db, rx.clinic_id)
    rx.items_enc = ring.seal("prescription", "items", rx.id, json.dumps(items) if items else None)
    rx.advice_enc = ring.seal("prescription", "advice", rx.id, advice or None)
    rx.key_version = ring.active.version


def of_encounter(db: Session, encounter: Encounter) -> list[Prescription]:
    """The encounter's prescriptions, every version, oldest first."""
    return list(db.scalars(select(Prescription).where(
        Prescription.clinic_id == encounter.clinic_id, Prescription.encounter_id == encounter.id)
        .order_by(Prescription.created_at, Prescription.revision)))


def replacement(db: Session, rx: Prescription) -> Prescription | None:
    """The signed newer version that replaced this one, if any (a draft replaces nothing yet)."""
    return db.scalar(select(Prescription).where(
        Prescription.clinic_id == rx.clinic_id, Prescription.replaces_id == rx.id,
        Prescription.status == RxStatus.SIGNED))


def draft_of(db: Session, encounter: Encounter) -> Prescription | None:
    return db.scalar(select(Prescription).where(
        Prescription.clinic_id == encounter.clinic_id, Prescription.encounter_id == encounter.id,
        Prescription.status == RxStatus.DRAFT).limit(1))


# --- Drafting ---------------------------------------------------------------------------------------

def _check_draft(rx: Prescription) -> None:
    if rx.locked:
        raise Locked("This prescription is signed and can no longer be changed. "
                     "Use “Change (new version)” to replace it.")


def _check_version(rx: Prescription, version: int | None) -> None:
    if version is not None and version != rx.version:
        raise Stale("This prescription was changed in another window meanwhile. Check it below, then try again.")


def _touch(rx: Prescription) -> None:
    rx.version += 1


def start_draft(db: Session, *, encounter: Encounter, language: str, by: uuid.UUID) -> Prescription:
    """A new, empty draft prescription in the encounter (numbered when signed)."""
    if encounter.locked:
        raise Locked("This consultation is signed: a prescription can no longer be started in it.")
    if of_encounter(db, encounter):
        raise Locked("This consultation's prescription is signed. Use “Change (new version)” to change it.")
    ring = keyring(db, encounter.clinic_id)
    rx = Prescription(clinic_id=encounter.clinic_id, id=new_id(), patient_id=encounter.patient_id,
                      encounter_id=encounter.id, doctor_id=encounter.doctor_id, number=0, revision=1,
                      status=RxStatus.DRAFT, language=rx_text.language_for(language),
                      key_version=ring.active.version, version=1, created_at=utcnow(), created_by=by)
    db.add(rx)
    db.flush()
    return rx


def add_item(db: Session, *, encounter: Encounter, item: dict, language: str, by: uuid.UUID) -> Prescription:
    """Add an item to the encounter's draft (started now if there is none)."""
    rx = draft_of(db, encounter) or start_draft(db, encounter=encounter, language=language, by=by)
    items, advice = open_rx(db, rx)
    if len(items) >= MAX_ITEMS:
        raise RxError(f"A prescription holds at most {MAX_ITEMS} medicines.")
    _seal(db, rx, [*items, item], advice)
    _touch(rx)
    db.flush()
    return rx


def remove_item(db: Session, rx: Prescription, index: int, *, version: int | None) -> None:
    """Remove the item at `index` from a draft."""
    _check_draft(rx)
    _check_version(rx, version)
    items, advice = open_rx(db, rx)
    if not 0 <= index < len(items):
        raise RxError("That medicine is no longer on the prescription.")
    _seal(db, rx, items[:index] + items[index + 1:], advice)
    _touch(rx)
    db.flush()


def set_advice(db: Session, rx: Prescription, advice: str) -> None:
    """Save the general advice of a draft."""
    _check_draft(rx)
    advice = advice.replace("\r\n", "\n").strip()
    if len(advice) > MAX_ADVICE:
        raise RxError(f"Keep the advice to {MAX_ADVICE} characters.")
    items, before = open_rx(db, rx)
    if advice != before:
        _seal(db, rx, items, advice)
        _touch(rx)
        db.flush()


def discard(db: Session, rx: Prescription) -> None:
    """Delete a draft (the database refuses to delete a signed prescription)."""
    _check_draft(rx)
    db.delete(rx)
    db.flush()


def new_version(db: Session, rx: Prescription, *, language: str, by: uuid.UUID) -> Prescription:
    """A draft replacing a signed prescription: its items and advice, the same number, the next revision."""
    if not rx.locked:
        raise RxError("This prescription is still a draft: change it directly.")
    pending = db.scalar(select(Prescription).where(Prescription.clinic_id == rx.clinic_id,
                                                   Prescription.replaces_id == rx.id))
    if pending is not None and not pending.locked:
        return pending
    if pending is not None:
        raise RxError(f"This prescription was already replaced by version {pending.revision}.")
    encounter = db.get(Encounter, (rx.clinic_id, rx.encounter_id))
    if draft_of(db, encounter) is not None:
        raise RxError("This consultation already has a draft prescription: sign or discard it first.")
    items, advice = open_rx(db, rx)
    draft = Prescription(clinic_id=rx.clinic_id, id=new_id(), patient_id=rx.patient_id, encounter_id=rx.encounter_id,
                         doctor_id=rx.doctor_id, number=rx.number, revision=rx.revision + 1, replaces_id=rx.id,
                         status=RxStatus.DRAFT, language=rx_text.language_for(language), version=1,
                         created_at=utcnow(), created_by=by)
    _seal(db, draft, items, advice)
    db.add(draft)
    db.flush()
    return draft


# --- Signing and the verification code ----------------------------------------------------------------

def _allergy_review(db: Session, patient: Patient, items: list[dict], override: str) -> tuple:
    """The allergy check of the items, and the override to keep: Invalid when an allergy match has no reason."""
    review = allergy_check.review(allergy_check.recorded(db, patient), items)
    reason = " ".join(override.split())
    if review.blocking and not reason:
        raise Invalid({"override": "State why you prescribe it despite the allergy, or remove the medicine."},
                      "Allergy alert: " + " ".join(a.message for a in review.blocking)
                      + " Signing needs your reason.")
    if len(reason) > MAX_OVERRIDE:
        raise Invalid({"override": f"Keep the reason to {MAX_OVERRIDE} characters."})
    return review, allergy_check.printed_override(review, reason)


def sign(db: Session, *, rx: Prescription, patient: Patient, version: int | None, language: str, advice: str,
         by: uuid.UUID, override: str = "") -> tuple[Prescription, allergy_check.Review]:
    """Save the advice as typed, then sign and lock the draft: number it (first version), fix its
    language, seal its verification code, the patient's allergies as they are now and, when a medicine
    matches one, the doctor's reason for prescribing it anyway (`override`, required then)."""
    _check_draft(rx)
    _check_version(rx, version)
    set_advice(db, rx, advice)
    items, advice = open_rx(db, rx)
    if not items:
        raise RxError("Add at least one medicine before signing.")
    review, overridden = _allergy_review(db, patient, items, override)
    doctor = db.get(StaffUser, rx.doctor_id)
    if not (doctor.registration_number or "").strip():
        raise RxError("A prescription must carry your medical registration number, and your staff profile has "
                      "none. Ask the clinic admin to add your registration number and council, then sign.")
    if rx.number == 0:
        rx.number = next_number(db, rx.clinic_id, "rx")
    rx.language = rx_text.language_for(language)
    _seal(db, rx, items, advice)  # all under the active key, so a rotation running now can re-seal it later
    rx.status, rx.signed_at, rx.signed_by = RxStatus.SIGNED, utcnow(), by
    encounter = db.get(Encounter, (rx.clinic_id, rx.encounter_id))
    seal_printed(db, rx, content(rx, items, advice, doctor, open_patient(db, patient), encounter.follow_up_on,
                                 allergies=review.recorded.printed(), override=overridden))
    _touch(rx)
    db.flush()
    timeline.add(db, clinic_id=rx.clinic_id, patient_id=rx.patient_id, kind=Kind.PRESCRIPTION, action="signed",
                 ref_id=rx.id, by=by, doctor_id=rx.doctor_id, at=rx.signed_at)
    return rx, review
