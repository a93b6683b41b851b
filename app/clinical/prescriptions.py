"""Prescriptions: drafting in an encounter, signing (locks it, numbers it, seals a verification code),
new versions, and checking a printed code.

A draft belongs to an encounter and is written by the encounter's doctor; signing locks it for good
(the database refuses any later change). A change after signing is a new version: a draft copying
the items, `replaces_id` set, the same number and the next revision; once signed, the older one is
replaced (derived from the newer row: the old row cannot change).

The verification code is an HMAC-SHA256, under a per-clinic key derived from the master key, of a
canonical JSON of everything the paper carries; an altered record or paper no longer matches it.
"""

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.auth.models import StaffUser
from app.clinical import rx_text
from app.clinical.access import Access
from app.clinical.models import Encounter, Prescription, RxStatus
from app.clinics.models import Clinic
from app.db import new_id, utcnow
from app.patients.models import Patient
from app.patients.services import PatientData, next_number, open_patient
from app.security.crypto import DecryptionError, master_key
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

FIELDS = ("drug", "strength", "form", "dose", "frequency", "duration", "timing", "instructions")
REQUIRED = {"drug": "Name the medicine.", "dose": "Give the dose (e.g. 1 tablet, 5 ml).",
            "frequency": "Say how often (e.g. 1-0-1, BD, SOS)."}
LIMITS = {"drug": 120, "strength": 40, "form": 30, "dose": 40, "frequency": 40, "duration": 40, "timing": 20,
          "instructions": 300}
MAX_ITEMS = 30
MAX_ADVICE = 2000
CODE_CHARS = 12  # 60 bits, shown as three groups of four
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Failed checks of printed codes allowed per address and clinic in the window (then 429).
VERIFY_FAILURES, VERIFY_WINDOW = 20, timedelta(minutes=15)


class RxError(ValueError):
    """A refused change to a prescription, with a message for the user."""


class Locked(RxError):
    """The prescription is signed: only a new version can change it."""


class Stale(RxError):
    """The draft changed in another window since this one was shown."""


class Invalid(RxError):
    """An item with missing or too long fields (`errors` per field)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("Check the highlighted fields.")
        self.errors = errors


# --- Items ------------------------------------------------------------------------------------------

def _clean(value) -> str:
    return " ".join(str(value or "").split())


def item_line(item: dict) -> str:
    """One item as one line of English: drug, strength, form — dose, frequency, timing, then a times
    sign and the duration ("Paracetamol 500 mg tablet — 1 tablet 1-0-1 after food, 5 days" with it)."""
    what = " ".join(v for v in (_clean(item.get(k)) for k in ("drug", "strength", "form")) if v)
    timing = item.get("timing") or ""
    timing = "" if timing == "any_time" else rx_text.TIMINGS.get(timing, (_clean(timing).replace("_", " "),))[0]
    how = " ".join(v for v in (_clean(item.get("dose")), _clean(item.get("frequency")), timing) if v)
    duration = _clean(item.get("duration"))
    if duration:
        how = f"{how} \N{MULTIPLICATION SIGN} {duration}" if how else duration
    line = f"{what} — {how}" if how else what
    instructions = _clean(item.get("instructions"))
    return f"{line}; {instructions}" if instructions else line


def _normal_frequency(value: str) -> str:
    """'bd' -> 'BD'; '1 - 0 - 1' -> '1-0-1'; anything else as typed."""
    if value.upper() in rx_text.FREQUENCY_CODES:
        return value.upper()
    squeezed = value.replace(" ", "")
    return squeezed if re.fullmatch(r"[0-9½¼¾./]+(-[0-9½¼¾./]+){2,3}", squeezed) else value


def clean_item(form: Mapping) -> dict:
    """An item from what was typed, or Invalid with a message per field."""
    item = {name: _clean(form.get(name, "")) for name in FIELDS}
    item["instructions"] = str(form.get("instructions", "")).strip()
    errors = {name: message for name, message in REQUIRED.items() if not item[name]}
    errors.update({name: f"Keep this to {limit} characters." for name, limit in LIMITS.items()
                   if len(item[name]) > limit})
    if item["timing"] and item["timing"] not in rx_text.TIMINGS:
        errors["timing"] = "Choose when to take it from the list."
    if errors:
        raise Invalid(errors)
    item["frequency"] = _normal_frequency(item["frequency"])
    item["form"] = item["form"].lower() if item["form"].lower() in rx_text.FORMS else item["form"]
    return item


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

def sign(db: Session, *, rx: Prescription, patient: Patient, version: int | None, language: str, advice: str,
         by: uuid.UUID) -> Prescription:
    """Save the advice as typed, then sign and lock the draft: number it (first version), fix its
    language, seal its verification code."""
    _check_draft(rx)
    _check_version(rx, version)
    set_advice(db, rx, advice)
    items, advice = open_rx(db, rx)
    if not items:
        raise RxError("Add at least one medicine before signing.")
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
    seal_printed(db, rx, content(rx, items, advice, doctor, open_patient(db, patient), encounter.follow_up_on))
    _touch(rx)
    db.flush()
    timeline.add(db, clinic_id=rx.clinic_id, patient_id=rx.patient_id, kind=Kind.PRESCRIPTION, action="signed",
                 ref_id=rx.id, by=by, doctor_id=rx.doctor_id, at=rx.signed_at)
    return rx


def content(rx: Prescription, items: list[dict], advice: str, doctor: StaffUser, patient: PatientData,
            follow_up: date | None = None) -> dict:
    """Everything the paper carries, as it is at signing: what the code vouches for and reprints show."""
    return {
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


def initials(name: str) -> str:
    """'Sunita Devi Sharma' -> 'S. D. S.'"""
    return " ".join(f"{word[0].upper()}." for word in name.split() if word)


def age_on(born: date | None, day: date) -> int | None:
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def too_many_failures(db: Session, clinic_id: uuid.UUID, ip: str | None) -> bool:
    """Whether this address failed too many code checks at this clinic lately (counted from the audit trail)."""
    db.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"rx-verify:{clinic_id}:{ip}", 0))))
    count = db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.clinic_id == clinic_id, AuditEvent.at > utcnow() - VERIFY_WINDOW,
        AuditEvent.action == "prescription.verify", AuditEvent.outcome == "denied", AuditEvent.ip == ip))
    return count >= VERIFY_FAILURES


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
    else:
        items, advice = open_rx(db, rx)
        doctor = db.get(StaffUser, rx.doctor_id)
        patient = open_patient(db, db.get(Patient, (rx.clinic_id, rx.patient_id)))
        follow_up, day = db.get(Encounter, (rx.clinic_id, rx.encounter_id)).follow_up_on, today
    return RxDocument(rx=rx, clinic=clinic, doctor=doctor, patient=patient, day=day,
                      items=[rx_text.item_view(t, i) for i in items], advice=advice, follow_up=follow_up,
                      replaced_by=replacement(db, rx) if rx.locked else None, t=t)


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
    return result
