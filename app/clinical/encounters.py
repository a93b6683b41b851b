"""Encounters: opening one from an appointment, saving the SOAP note (autosave), diagnoses, follow-up,
signing (which locks it and completes the visit) and addenda.

Every save that changes something appends a revision with the sections before and after (sealed),
so the note's whole history is kept. A save carries the version the writer started from; a save
from a stale version is refused and nothing is overwritten.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clinical import icd
from app.clinical.models import SOAP, Addendum, Encounter, EncounterRevision, EncounterStatus, Prescription, RxStatus
from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.scheduling import booking
from app.scheduling.models import Appointment, Status
from app.security.fields import Keyring, keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

MAX_SECTION = 20_000
MAX_DIAGNOSES = 20
MAX_ADDENDUM = 5_000
# Appointments a consultation can be opened from: the patient is here (or being seen, or was seen today).
OPENABLE = (Status.ARRIVED, Status.IN_CONSULTATION, Status.COMPLETED)


class EncounterError(ValueError):
    """A refused change to an encounter, with a message for the user."""


class Locked(EncounterError):
    """The encounter is signed: only addenda can be added."""


class StaleVersion(EncounterError):
    """The note was saved meanwhile from another window; nothing was overwritten."""


@dataclass
class Note:
    subjective: str = ""
    objective: str = ""
    assessment: str = ""
    plan: str = ""
    diagnoses: list[dict] = field(default_factory=list)

    def sections(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in SOAP}

    @property
    def empty(self) -> bool:
        return not any(self.sections().values()) and not self.diagnoses


def open_note(db: Session, encounter: Encounter) -> Note:
    """Decrypt the note and diagnoses (clinical content: the caller checks access and audits)."""
    ring = keyring(db, encounter.clinic_id)
    values = {name: ring.open("encounter", name, encounter.id, getattr(encounter, f"{name}_enc")) or ""
              for name in SOAP}
    diagnoses = ring.open("encounter", "diagnoses", encounter.id, encounter.diagnoses_enc)
    return Note(diagnoses=json.loads(diagnoses) if diagnoses else [], **values)


def encounter_of(db: Session, clinic_id: uuid.UUID, appointment_id: uuid.UUID) -> Encounter | None:
    return db.scalar(select(Encounter).where(Encounter.clinic_id == clinic_id,
                                             Encounter.appointment_id == appointment_id))


def open_encounter(db: Session, *, clinic: Clinic, appointment: Appointment, by: uuid.UUID) -> Encounter:
    """The appointment's encounter, opened now if it has none; an arrived patient goes in to consultation."""
    existing = encounter_of(db, clinic.id, appointment.id)
    if existing is not None:
        return existing
    if appointment.status not in OPENABLE:
        raise EncounterError("Check the patient in before opening the consultation.")
    if appointment.status is Status.ARRIVED:
        booking.change_status(db, clinic=clinic, appointment=appointment, action="start", by=by)
    ring = keyring(db, clinic.id)
    encounter = Encounter(clinic_id=clinic.id, id=new_id(), patient_id=appointment.patient_id,
                          doctor_id=appointment.doctor_id, appointment_id=appointment.id, started_at=utcnow(),
                          key_version=ring.active.version, created_by=by, updated_by=by)
    db.add(encounter)
    db.flush()
    timeline.add(db, clinic_id=clinic.id, patient_id=encounter.patient_id, kind=Kind.ENCOUNTER, action="opened",
                 ref_id=encounter.id, by=by, doctor_id=encounter.doctor_id, at=encounter.started_at)
    return encounter


def save_note(db: Session, encounter: Encounter, note: Note, *, version: int, by: uuid.UUID) -> list[str]:
    """Save the note as written; returns the sections that changed (none: nothing is written)."""
    _check_open(encounter)
    if version != encounter.version and _sections_changed_since(db, encounter, version):
        raise StaleVersion("This note was saved from another window meanwhile. Your text is still here: "
                           "copy it, then reload the page to see the other version.")
    before = open_note(db, encounter)
    changes = {name: [getattr(before, name), getattr(note, name)] for name in (*SOAP, "diagnoses")
               if getattr(before, name) != getattr(note, name)}
    if changes:
        ring = keyring(db, encounter.clinic_id)
        _seal_note(ring, encounter, note)
        _touch(encounter, by)
        _add_revision(db, ring, encounter, changes, by)
    return list(changes)


def _sections_changed_since(db: Session, encounter: Encounter, version: int) -> bool:
    """Whether the note's text was saved after `version` (a diagnosis or follow-up set meanwhile does not
    conflict with the text being typed; a version from the future or none at all does)."""
    if not 0 < version < encounter.version:
        return True
    changed = db.scalars(select(EncounterRevision.changed).where(
        EncounterRevision.clinic_id == encounter.clinic_id, EncounterRevision.encounter_id == encounter.id,
        EncounterRevision.version > version))
    return any(set(names.split(",")) & set(SOAP) for names in changed)


def _seal_note(ring: Keyring, encounter: Encounter, note: Note) -> None:
    for name in SOAP:
        setattr(encounter, f"{name}_enc", ring.seal("encounter", name, encounter.id, getattr(note, name) or None))
    encounter.diagnoses_enc = ring.seal("encounter", "diagnoses", encounter.id,
                                        json.dumps(note.diagnoses) if note.diagnoses else None)
    encounter.key_version = ring.active.version


def _touch(encounter: Encounter, by: uuid.UUID) -> None:
    encounter.version += 1
    encounter.updated_at = utcnow()
    encounter.updated_by = by


def _add_revision(db: Session, ring: Keyring, encounter: Encounter, changes: dict, by: uuid.UUID) -> None:
    revision = EncounterRevision(clinic_id=encounter.clinic_id, id=new_id(), encounter_id=encounter.id,
                                 version=encounter.version, changed=",".join(changes)[:120],
                                 key_version=ring.active.version, at=utcnow(), by=by)
    revision.changes_enc = ring.seal("encounter_revision", "changes", revision.id, json.dumps(changes))
    db.add(revision)
    db.flush()


def _check_open(encounter: Encounter) -> None:
    if encounter.locked:
        raise Locked("This consultation is signed and can no longer be changed. Add an addendum instead.")


# --- Diagnoses ------------------------------------------------------------------------------------------

def diagnosis(text: str, code: str) -> dict:
    """A diagnosis entry from what was typed: free text, an optional ICD-10 code (text from it if empty)."""
    try:
        code = icd.normalise(code or "")
    except icd.UnknownCode as exc:
        raise EncounterError(str(exc)) from None
    text = " ".join((text or "").split())[:300]
    if not text and not code:
        raise EncounterError("Type the diagnosis, or its ICD-10 code.")
    return {"text": text or icd.title(code), "code": code}


def add_diagnosis(db: Session, encounter: Encounter, entry: dict, *, by: uuid.UUID) -> None:
    """Add one diagnosis to the encounter (a revision like any note change)."""
    note = open_note(db, encounter)
    if len(note.diagnoses) >= MAX_DIAGNOSES:
        raise EncounterError(f"An encounter holds at most {MAX_DIAGNOSES} diagnoses.")
    if entry in note.diagnoses:
        raise EncounterError("That diagnosis is already listed.")
    note.diagnoses = [*note.diagnoses, entry]
    save_note(db, encounter, note, version=encounter.version, by=by)


def remove_diagnosis(db: Session, encounter: Encounter, index: int, expected: dict, *, by: uuid.UUID) -> None:
    """Remove the diagnosis at `index`, if it is still the one the user saw (`expected`), while the
    encounter is open (kept in the revisions)."""
    note = open_note(db, encounter)
    if not 0 <= index < len(note.diagnoses) or note.diagnoses[index] != expected:
        raise EncounterError("That diagnosis is no longer listed as shown: the list has changed meanwhile.")
    note.diagnoses = note.diagnoses[:index] + note.diagnoses[index + 1:]
    save_note(db, encounter, note, version=encounter.version, by=by)


# --- Follow-up, signing, addenda ------------------------------------------------------------------------

def set_follow_up(db: Session, encounter: Encounter, day: date | None, *, today: date, by: uuid.UUID) -> None:
    """Set (or clear) the follow-up date; it must lie ahead."""
    _check_open(encounter)
    if day is not None and day <= today:
        raise EncounterError("The follow-up date must be after today.")
    if encounter.follow_up_on != day:
        changes = {"follow_up": [_iso(encounter.follow_up_on), _iso(day)]}
        encounter.follow_up_on = day
        _touch(encounter, by)
        _add_revision(db, keyring(db, encounter.clinic_id), encounter, changes, by)


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def draft_prescriptions(db: Session, encounter: Encounter) -> list[Prescription]:
    return list(db.scalars(select(Prescription).where(
        Prescription.clinic_id == encounter.clinic_id, Prescription.encounter_id == encounter.id,
        Prescription.status == RxStatus.DRAFT)))


def sign(db: Session, *, clinic: Clinic, encounter: Encounter, by: uuid.UUID) -> Appointment | None:
    """Sign and lock the encounter, and complete its visit; returns the appointment it completed."""
    _check_open(encounter)
    if open_note(db, encounter).empty:
        raise EncounterError("The note is empty: write at least one section or a diagnosis before signing.")
    if draft_prescriptions(db, encounter):
        raise EncounterError("A prescription is still a draft: sign it or discard it before signing the note.")
    now = utcnow()
    encounter.status, encounter.signed_at, encounter.signed_by = EncounterStatus.SIGNED, now, by
    _touch(encounter, by)
    db.flush()
    timeline.add(db, clinic_id=clinic.id, patient_id=encounter.patient_id, kind=Kind.ENCOUNTER, action="signed",
                 ref_id=encounter.id, by=by, doctor_id=encounter.doctor_id, at=now)
    return _complete_visit(db, clinic, encounter, by)


def _complete_visit(db: Session, clinic: Clinic, encounter: Encounter, by: uuid.UUID) -> Appointment | None:
    if encounter.appointment_id is None:
        return None
    appointment = db.get(Appointment, (clinic.id, encounter.appointment_id), with_for_update=True)
    if appointment is None or appointment.status is not Status.IN_CONSULTATION:
        return None
    if "complete" in booking.allowed_actions(clinic, appointment):
        return booking.change_status(db, clinic=clinic, appointment=appointment, action="complete", by=by)
    # Left "in consultation" past its day (the desk may only complete a visit on its day): the note
    # being signed says the visit happened, so it completes all the same.
    now = utcnow()
    appointment.status, appointment.finished_at = Status.COMPLETED, now
    appointment.version, appointment.updated_at, appointment.updated_by = appointment.version + 1, now, by
    booking.add_history(db, appointment, "complete", by, before=Status.IN_CONSULTATION, at=now)
    db.flush()
    return appointment


def add_addendum(db: Session, encounter: Encounter, text: str, *, by: uuid.UUID) -> Addendum:
    """Append a correction or late entry to a signed encounter."""
    if not encounter.locked:
        raise EncounterError("The consultation is not signed yet: change the note itself.")
    text = (text or "").strip()
    if not text:
        raise EncounterError("Write the addendum before saving it.")
    if len(text) > MAX_ADDENDUM:
        raise EncounterError(f"An addendum holds at most {MAX_ADDENDUM} characters.")
    ring = keyring(db, encounter.clinic_id)
    addendum = Addendum(clinic_id=encounter.clinic_id, id=new_id(), encounter_id=encounter.id,
                        patient_id=encounter.patient_id, key_version=ring.active.version, at=utcnow(), by=by)
    addendum.text_enc = ring.seal("encounter_addendum", "text", addendum.id, text)
    db.add(addendum)
    db.flush()
    timeline.add(db, clinic_id=encounter.clinic_id, patient_id=encounter.patient_id, kind=Kind.ENCOUNTER,
                 action="addendum", ref_id=addendum.id, by=by, doctor_id=encounter.doctor_id, at=addendum.at)
    return addendum


def unsigned(db: Session, clinic_id: uuid.UUID, doctor_id: uuid.UUID, limit: int = 20) -> list[Encounter]:
    """The doctor's consultations still open (not signed), oldest first: notes left to finish."""
    return list(db.scalars(select(Encounter).where(
        Encounter.clinic_id == clinic_id, Encounter.doctor_id == doctor_id, Encounter.status == EncounterStatus.OPEN)
        .order_by(Encounter.started_at).limit(limit)))


def addenda(db: Session, encounter: Encounter) -> list[tuple[Addendum, str]]:
    """The encounter's addenda, oldest first, decrypted."""
    ring = keyring(db, encounter.clinic_id)
    rows = db.scalars(select(Addendum).where(Addendum.clinic_id == encounter.clinic_id,
                                             Addendum.encounter_id == encounter.id).order_by(Addendum.at))
    return [(a, ring.open("encounter_addendum", "text", a.id, a.text_enc)) for a in rows]


def revisions(db: Session, encounter: Encounter) -> list[tuple[EncounterRevision, dict]]:
    """The note's saved revisions, newest first, decrypted (before/after per section)."""
    ring = keyring(db, encounter.clinic_id)
    rows = db.scalars(select(EncounterRevision).where(
        EncounterRevision.clinic_id == encounter.clinic_id, EncounterRevision.encounter_id == encounter.id)
        .order_by(EncounterRevision.version.desc()))
    return [(r, json.loads(ring.open("encounter_revision", "changes", r.id, r.changes_enc))) for r in rows]
