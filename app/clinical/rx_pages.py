"""What a prescription looks like: its document (the page and the PDF share it), the panel on the
encounter page, and the public check of a printed code."""

import hmac
import uuid
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from flask_login import current_user
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.clinical import allergy_check, rx_text
from app.clinical.access import Access
from app.clinical.models import Encounter, Prescription
from app.clinical.prescriptions import draft_of, item_line, of_encounter, open_rx, replacement
from app.clinical.rx_code import (
    CODE_CHARS,
    PrintedDoctor,
    PrintedPatient,
    age_on,
    current_code,
    grouped,
    initials,
    normal_code,
    printed_of,
    printed_people,
)
from app.clinics.models import Clinic
from app.patients.models import Patient
from app.patients.services import PatientData, open_patient
from app.security.crypto import DecryptionError


@dataclass
class Verified:
    """What the public check of a genuine code shows: no more than the pharmacist needs."""

    rx: Prescription
    doctor: PrintedDoctor
    issued: date
    lines: list[str]
    initials: str
    age: int | None
    sex: str
    replaced_by: int | None


def verify(db: Session, clinic: Clinic, rx_id: uuid.UUID, typed: str | None) -> Verified | None:
    """The prescription if `typed` is its code and the stored content still yields it; else None."""
    rx = db.get(Prescription, (clinic.id, rx_id))
    given = normal_code(typed)
    if rx is None or not rx.locked or not rx.code or len(given) != CODE_CHARS:
        return None
    try:
        recomputed = current_code(db, rx)
    except DecryptionError:
        return None
    # Both compared in constant time, and both always: the stored code and the content's own.
    matches = hmac.compare_digest(given, rx.code) & hmac.compare_digest(given, recomputed)
    return _verified(db, clinic, rx) if matches else None


def _verified(db: Session, clinic: Clinic, rx: Prescription) -> Verified:
    printed = printed_of(db, rx)
    doctor, patient = printed_people(printed)
    issued = rx.signed_at.astimezone(ZoneInfo(clinic.timezone)).date()
    newer = replacement(db, rx)
    return Verified(rx=rx, doctor=doctor, issued=issued, lines=[item_line(i) for i in printed["items"]],
                    initials=initials(patient.full_name), age=age_on(patient.dob, issued),
                    sex=rx_text.SEXES.get(patient.sex, ("",))[0], replaced_by=newer.revision if newer else None)


# --- The document (page and PDF) -----------------------------------------------------------------------

@dataclass
class RxDocument:
    """Everything the prescription's page and PDF show."""

    rx: Prescription
    clinic: Clinic
    doctor: StaffUser | PrintedDoctor
    patient: PatientData | PrintedPatient
    day: date  # the day signed (today for a draft)
    items: list[rx_text.ItemView]
    advice: str
    follow_up: date | None
    replaced_by: Prescription | None
    t: rx_text.Text
    allergies: allergy_check.Recorded | None = None  # None: signed before allergies were printed
    override: dict | None = None  # the doctor's reason for prescribing despite an allergy, and the alerts

    @property
    def age(self) -> int | None:
        return age_on(self.patient.dob, self.day)

    @property
    def sex(self) -> rx_text.Phrase:
        return self.t.sex(self.patient.sex)

    @property
    def code(self) -> str:
        return grouped(self.rx.code)


def document(db: Session, *, clinic: Clinic, rx: Prescription, today: date) -> RxDocument:
    """The prescription as printed (PHI and clinical content: the caller checks access and audits).

    A signed one shows exactly what was sealed at signing; a draft shows the details as they are now.
    """
    t = rx_text.Text(rx.language)
    printed = printed_of(db, rx) if rx.locked else None
    if printed is not None:
        doctor, patient = printed_people(printed)
        items, advice = printed["items"], printed["advice"]
        follow_up = date.fromisoformat(printed["follow_up"]) if printed.get("follow_up") else None
        day = rx.signed_at.astimezone(ZoneInfo(clinic.timezone)).date()
        allergies, override = allergy_check.from_printed(printed.get("allergies")), printed.get("allergy_override")
    else:
        items, advice = open_rx(db, rx)
        doctor = db.get(StaffUser, rx.doctor_id)
        record = db.get(Patient, (rx.clinic_id, rx.patient_id))
        patient = open_patient(db, record)
        follow_up, day = db.get(Encounter, (rx.clinic_id, rx.encounter_id)).follow_up_on, today
        allergies, override = allergy_check.recorded(db, record), None
    return RxDocument(rx=rx, clinic=clinic, doctor=doctor, patient=patient, day=day,
                      items=[rx_text.item_view(t, i) for i in items], advice=advice, follow_up=follow_up,
                      replaced_by=replacement(db, rx) if rx.locked else None, t=t, allergies=allergies,
                      override=override)


# --- The panel on the encounter page --------------------------------------------------------------

@dataclass
class RxEntry:
    """One prescription version with its items, advice, and the revision that replaced it."""

    rx: Prescription
    items: list[dict]
    advice: str
    replaced_by: int | None = None

    @property
    def lines(self) -> list[str]:
        return [item_line(i) for i in self.items]


@dataclass
class RxPanel:
    """What the prescription panel shows: the signed versions, the draft, and the editor's state."""

    encounter: Encounter
    signed: list[RxEntry] = field(default_factory=list)  # newest first
    draft: RxEntry | None = None
    can_write: bool = False
    language: str = "en"
    item: dict = field(default_factory=dict)  # what was typed, kept when an add is refused
    errors: dict = field(default_factory=dict)
    problem: str | None = None
    sign_form: dict | None = None  # what the sign form held, kept when signing is refused
    review: allergy_check.Review | None = None  # the draft's allergy check, for its writer
    text = rx_text

    @property
    def can_add(self) -> bool:
        """The add form shows for a draft, or while the open consultation has no prescription at all."""
        return self.can_write and (self.draft is not None or not (self.signed or self.encounter.locked))


def panel(db: Session, *, clinic: Clinic, patient: Patient, access: Access, encounter: Encounter,
          user_id: uuid.UUID | None = None, **state) -> RxPanel:
    """The encounter's prescriptions for `clinical/_prescription.html` (no audit: the including page writes it).

    Only the encounter's own doctor with write access gets the editor (`user_id`: the signed-in user
    unless given). `state` carries a refused form back (item, errors, problem).
    """
    user_id = user_id or current_user.id
    result = RxPanel(encounter=encounter, language=rx_text.language_for(patient.language),
                     can_write=access.write and encounter.doctor_id == user_id, **state)
    if not access.summary:
        return result
    rows = of_encounter(db, encounter)
    newer = {r.replaces_id: r.revision for r in rows if r.locked and r.replaces_id}
    for rx in rows:
        entry = RxEntry(rx, *open_rx(db, rx), replaced_by=newer.get(rx.id))
        if rx.locked:
            result.signed.insert(0, entry)
        else:
            result.draft, result.language = entry, rx.language
    if result.can_write and (result.draft or result.can_add):
        result.review = allergy_check.review(allergy_check.recorded(db, patient),
                                             result.draft.items if result.draft else [])
    return result


def check_one(db: Session, *, patient: Patient, encounter: Encounter, drug: str) -> allergy_check.Review:
    """A medicine not yet added, checked against the allergies and the draft's medicines: its own alerts, and
    the duplicates it would make (clinical content: the caller audits)."""
    draft = draft_of(db, encounter)
    items = [*(open_rx(db, draft)[0] if draft else []), {"drug": drug}]
    full = allergy_check.review(allergy_check.recorded(db, patient), items)
    return allergy_check.Review(full.recorded, full.of(len(items) - 1),
                                tuple(d for d in full.duplicates if drug in d.drugs),
                                tuple(n for n in full.unchecked if n.index in (None, len(items) - 1)))
