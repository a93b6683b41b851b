"""Registering, finding and changing patients; their history and consent ledger.

Plain values exist only in memory: they are sealed per field before they reach the database and
searched through blind-index tokens. Callers audit what they show (see app/audit/services.py).
"""

import json
import re
import unicodedata
import uuid
from dataclasses import dataclass, fields
from datetime import date

import phonenumbers
from sqlalchemy import Integer, String, column, delete, distinct, func, select, values
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from app.counters import next_number
from app.db import new_id, utcnow
from app.patients.models import PHI_FIELDS, ConsentEvent, Patient, PatientHistory, PatientToken
from app.security.fields import Keyring, keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

CONSENT_PURPOSES = {
    "treatment": "Treatment and care",
    "whatsapp": "WhatsApp reminders",
    "sms": "SMS reminders",
    "data_sharing": "Sharing records with other providers",
}
CONSENT_METHODS = {"in_person": "In person", "reply": "Reply to a message (STOP/START)", "link": "Patient link",
                   "phone": "Phone call"}
SEARCH_LIMIT = 20


@dataclass
class PatientData:
    """A patient's demographics in plain form (memory only)."""

    full_name: str
    sex: str
    dob: date
    dob_estimated: bool = False
    phone: str | None = None
    alt_phone: str | None = None
    email: str | None = None
    address_line: str | None = None
    city: str | None = None
    pin_code: str | None = None
    state_code: str | None = None
    language: str = "en"
    abha_number: str | None = None
    guardian_name: str | None = None
    guardian_relation: str | None = None
    guardian_phone: str | None = None
    mrn: str | None = None

    @property
    def age(self) -> int:
        today = date.today()
        return today.year - self.dob.year - ((today.month, today.day) < (self.dob.month, self.dob.day))

    @property
    def first_name(self) -> str:
        return self.full_name.split()[0]


# --- Normalisation for blind indexes ------------------------------------------------------------

def name_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [w for w in re.split(r"[^\w]+", folded) if w]


def name_prefix_tokens(ring: Keyring, full_name: str) -> set[str]:
    """Tokens for every 2-to-12-character prefix of every word of the name."""
    out = set()
    for word in name_words(full_name):
        for n in range(min(2, len(word)), min(len(word), 12) + 1):
            out.add(ring.token("name", word[:n]))
    return out


def phone_digits(e164: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def mrn_number(mrn: str) -> str | None:
    digits = re.sub(r"\D", "", mrn)
    return str(int(digits)) if digits else None


def _tokens(ring: Keyring, data: PatientData) -> set[tuple[str, str]]:
    out = {("name", t) for t in name_prefix_tokens(ring, data.full_name)}
    out.add(("name_dob", ring.token("name_dob", " ".join(name_words(data.full_name)) + "|" + data.dob.isoformat())))
    for number in filter(None, (data.phone, data.alt_phone, data.guardian_phone)):
        digits = phone_digits(number)
        out.add(("phone", ring.token("phone", digits)))
        national = digits[-10:]
        for n in range(4, len(national)):
            out.add(("tail", ring.token("tail", national[-n:])))
    if data.mrn:
        out.add(("mrn", ring.token("mrn", mrn_number(data.mrn))))
    if data.abha_number:
        out.add(("abha", ring.token("abha", re.sub(r"\D", "", data.abha_number))))
    return out


def write_tokens(db: Session, ring: Keyring, patient: Patient, data: PatientData) -> None:
    """Replace the patient's blind-index tokens with ones under the active key."""
    db.execute(delete(PatientToken).where(PatientToken.clinic_id == patient.clinic_id,
                                          PatientToken.patient_id == patient.id))
    rows = [{"clinic_id": patient.clinic_id, "patient_id": patient.id, "key_version": ring.active.version,
             "kind": kind, "token": token} for kind, token in _tokens(ring, data)]
    db.execute(insert(PatientToken), rows)


# --- Sealing and opening ------------------------------------------------------------------------

def _plain(data: PatientData, name: str) -> str | None:
    value = getattr(data, name)
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def seal_into(ring: Keyring, patient: Patient, data: PatientData) -> None:
    """Encrypt every PHI field of `data` into the patient row under the active key."""
    for name in PHI_FIELDS:
        setattr(patient, f"{name}_enc", ring.seal("patient", name, patient.id, _plain(data, name)))
    patient.dob_estimated = data.dob_estimated
    patient.state_code = data.state_code
    patient.language = data.language
    patient.key_version = ring.active.version
    flag_modified(patient, "key_version")  # written even if unchanged in memory: a rotation may have moved it

CONTACT_FIELDS = ("mrn", "full_name", "phone", "alt_phone", "email", "guardian_name", "guardian_phone")


def open_patient(db: Session, patient: Patient, *, contact_only: bool = False) -> PatientData:
    """Decrypt a patient row (PHI: the caller audits the read). Contact-only roles (billing) get
    name and contact details decrypted and nothing else."""
    ring = keyring(db, patient.clinic_id)
    names = CONTACT_FIELDS if contact_only else PHI_FIELDS
    values = dict.fromkeys(PHI_FIELDS)
    values.update({name: ring.open("patient", name, patient.id, getattr(patient, f"{name}_enc")) for name in names})
    values["dob"] = date.fromisoformat(values["dob"]) if values["dob"] else None
    return PatientData(dob_estimated=patient.dob_estimated, state_code=patient.state_code,
                       language=patient.language, **values)


# --- Register, update ----------------------------------------------------------------------------

def register(db: Session, *, clinic_id: uuid.UUID, data: PatientData, by: uuid.UUID,
             consents: dict[str, bool], method: str = "in_person") -> Patient:
    """Create the patient with a new MRN, its search tokens, history and initial consents."""
    ring = keyring(db, clinic_id)
    data.mrn = f"MRN-{next_number(db, clinic_id, 'mrn'):06d}"
    patient = Patient(clinic_id=clinic_id, id=new_id(), created_by=by, updated_by=by, version=1)
    seal_into(ring, patient, data)
    db.add(patient)
    db.flush()
    write_tokens(db, ring, patient, data)
    _add_history(db, ring, patient, "created", {k: [None, v] for k, v in _as_text(data).items() if v is not None}, by)
    db.flush()
    for purpose, granted in consents.items():
        if not granted:
            continue  # not asked or declined: nothing to record, and nothing to withdraw
        _add_consent(db, patient, purpose, granted, method, by)
    db.flush()
    return patient


def _as_text(data: PatientData) -> dict[str, str | None]:
    return {f.name: _plain(data, f.name) for f in fields(data)}


def update(db: Session, patient: Patient, data: PatientData, by: uuid.UUID) -> list[str]:
    """Apply new demographics; records before/after of each changed field. Returns the changed names."""
    before = open_patient(db, patient)
    data.mrn = before.mrn
    old, new = _as_text(before), _as_text(data)
    changes = {k: [old[k], new[k]] for k in new if old[k] != new[k]}
    if not changes:
        return []
    ring = keyring(db, patient.clinic_id)
    seal_into(ring, patient, data)
    patient.version += 1
    patient.updated_at, patient.updated_by = utcnow(), by
    write_tokens(db, ring, patient, data)
    _add_history(db, ring, patient, "updated", changes, by)
    db.flush()
    return sorted(changes)


def _add_history(db: Session, ring: Keyring, patient: Patient, action: str, changes: dict, by: uuid.UUID) -> None:
    entry = PatientHistory(clinic_id=patient.clinic_id, id=new_id(), patient_id=patient.id, version=patient.version,
                           action=action, changed_fields=",".join(sorted(changes))[:400], changed_by=by,
                           key_version=ring.active.version, changed_at=utcnow())
    entry.changes_enc = ring.seal("patient_history", "changes", entry.id, json.dumps(changes))
    db.add(entry)
    timeline.add(db, clinic_id=patient.clinic_id, patient_id=patient.id, kind=Kind.RECORD, action=action,
                 ref_id=entry.id, by=by, at=entry.changed_at)


def history(db: Session, patient: Patient) -> list[tuple[PatientHistory, dict]]:
    """The record's versions, newest first, with decrypted before/after values."""
    ring = keyring(db, patient.clinic_id)
    rows = db.scalars(select(PatientHistory).where(PatientHistory.clinic_id == patient.clinic_id,
                                                   PatientHistory.patient_id == patient.id)
                      .order_by(PatientHistory.version.desc(), PatientHistory.changed_at.desc())).all()
    return [(r, json.loads(ring.open("patient_history", "changes", r.id, r.changes_enc))) for r in rows]


# --- Finding ------------------------------------------------------------------------------------

def _match(db: Session, clinic_id: uuid.UUID, groups: list[list[str]], limit: int = SEARCH_LIMIT
           ) -> list[uuid.UUID]:
    """Up to `limit` patients having, under one key version, a token from every group (in SQL)."""
    pairs = [(token, index) for index, group in enumerate(groups) for token in group]
    if not pairs:
        return []
    wanted = values(column("token", String), column("grp", Integer), name="wanted").data(pairs)
    stmt = (select(PatientToken.patient_id)
            .join(wanted, wanted.c.token == PatientToken.token)
            .where(PatientToken.clinic_id == clinic_id)
            .group_by(PatientToken.patient_id, PatientToken.key_version)
            .having(func.count(distinct(wanted.c.grp)) == len(groups))
            .limit(limit))
    return list(dict.fromkeys(db.scalars(stmt)))


def search_groups(ring: Keyring, query: str) -> list[list[str]]:
    """Blind-index token groups for a typed query: name prefixes, phone, last digits, MRN or ABHA."""
    query = query.strip()
    digits = re.sub(r"\D", "", query)
    letters = re.sub(r"[\W\d_]", "", query)
    if not query:
        return []
    if re.fullmatch(r"mrn[\s:#-]*\d+", query, re.IGNORECASE) or (digits and not letters and len(digits) <= 9):
        number = mrn_number(query)
        group = list(ring.tokens_all("mrn", number).values()) if number else []
        if not letters and 4 <= len(digits) <= 9:
            group += ring.tokens_all("tail", digits).values()
        return [group] if group else []
    if digits and not letters:
        group = list(ring.tokens_all("abha", digits).values()) if len(digits) == 14 else []
        try:
            parsed = phonenumbers.parse(query, "IN")
            group += ring.tokens_all("phone", phone_digits(
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))).values()
        except phonenumbers.NumberParseException:
            pass
        group += ring.tokens_all("tail", digits[-9:]).values()
        return [group]
    return [list(ring.tokens_all("name", w[:12]).values()) for w in name_words(query) if len(w) >= 2]


def search(db: Session, clinic_id: uuid.UUID, query: str) -> list[tuple[Patient, PatientData]]:
    """Up to SEARCH_LIMIT matching patients, decrypted, by name."""
    ids = _match(db, clinic_id, search_groups(keyring(db, clinic_id), query))
    return load_many(db, clinic_id, ids)


def load_many(db: Session, clinic_id: uuid.UUID, ids: list[uuid.UUID]) -> list[tuple[Patient, PatientData]]:
    if not ids:
        return []
    patients = db.scalars(select(Patient).where(Patient.clinic_id == clinic_id, Patient.id.in_(ids))).all()
    opened = [(p, open_patient(db, p)) for p in patients]
    return sorted(opened, key=lambda pair: pair[1].full_name.casefold())


def possible_duplicates(db: Session, clinic_id: uuid.UUID, data: PatientData,
                        exclude: uuid.UUID | None = None) -> list[tuple[Patient, PatientData]]:
    """Patients with the same phone, or the same name and date of birth."""
    ring = keyring(db, clinic_id)
    groups = []
    if data.phone:
        groups.append(list(ring.tokens_all("phone", phone_digits(data.phone)).values()))
    key = " ".join(name_words(data.full_name)) + "|" + data.dob.isoformat()
    groups.append(list(ring.tokens_all("name_dob", key).values()))
    ids = {pid for group in groups for pid in _match(db, clinic_id, [group])} - {exclude}
    return load_many(db, clinic_id, list(ids)[:SEARCH_LIMIT])


# --- Consent ------------------------------------------------------------------------------------

def consent_ledger(db: Session, patient: Patient) -> list[ConsentEvent]:
    return list(db.scalars(select(ConsentEvent).where(ConsentEvent.clinic_id == patient.clinic_id,
                                                      ConsentEvent.patient_id == patient.id)
                           .order_by(ConsentEvent.at.desc())))


def current_consents(ledger: list[ConsentEvent]) -> dict[str, ConsentEvent | None]:
    """The latest event per purpose (the ledger is newest first)."""
    current: dict[str, ConsentEvent | None] = dict.fromkeys(CONSENT_PURPOSES)
    for event in reversed(ledger):
        current[event.purpose] = event
    return current


def set_consent(db: Session, patient: Patient, purpose: str, granted: bool, method: str, by: uuid.UUID) -> None:
    """Append a grant or withdrawal; effective at once, nothing rewritten."""
    _add_consent(db, patient, purpose, granted, method, by)
    db.flush()


def _add_consent(db: Session, patient: Patient, purpose: str, granted: bool, method: str, by: uuid.UUID) -> None:
    event = ConsentEvent(clinic_id=patient.clinic_id, id=new_id(), patient_id=patient.id, purpose=purpose,
                         granted=granted, method=method, recorded_by=by, at=utcnow())
    db.add(event)
    timeline.add(db, clinic_id=patient.clinic_id, patient_id=patient.id, kind=Kind.CONSENT,
                 action="given" if granted else "withdrawn", ref_id=event.id, by=by, at=event.at)


def staff_names(db: Session, ids: set) -> dict:
    """Names of the staff who recorded entries, in one query."""
    from app.auth.models import StaffUser

    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.execute(select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(ids))).all())


def mrns_of(db: Session, clinic_id: uuid.UUID, patient_ids: list) -> dict:
    """The MRNs of some of the clinic's patients (decrypting that field only), in one query."""
    if not patient_ids:
        return {}
    ring = keyring(db, clinic_id)
    rows = db.execute(select(Patient.id, Patient.mrn_enc)
                      .where(Patient.clinic_id == clinic_id, Patient.id.in_(set(patient_ids))))
    return {pid: ring.open("patient", "mrn", pid, blob) for pid, blob in rows}


@dataclass(frozen=True)
class PatientLabel:
    """What a schedule shows of a patient: name, MRN, sex and age (decrypting only those fields)."""

    full_name: str
    mrn: str
    sex: str | None = None  # None for roles that see name and contact details only
    age: int | None = None


def labels_of(db: Session, clinic_id: uuid.UUID, patient_ids, *,
              contact_only: bool = False) -> dict[uuid.UUID, PatientLabel]:
    """Schedule labels for some of the clinic's patients, in one query (name and MRN only when
    `contact_only`: sex and date of birth are not even decrypted)."""
    if not patient_ids:
        return {}
    ring = keyring(db, clinic_id)
    rows = db.execute(select(Patient.id, Patient.full_name_enc, Patient.mrn_enc, Patient.sex_enc, Patient.dob_enc)
                      .where(Patient.clinic_id == clinic_id, Patient.id.in_(set(patient_ids))))
    labels = {}
    for pid, name, mrn, sex, dob in rows:
        label = PatientLabel(ring.open("patient", "full_name", pid, name), ring.open("patient", "mrn", pid, mrn))
        if not contact_only:
            born = date.fromisoformat(ring.open("patient", "dob", pid, dob))
            label = PatientLabel(label.full_name, label.mrn, ring.open("patient", "sex", pid, sex),
                                 PatientData(full_name="", sex="", dob=born).age)
        labels[pid] = label
    return labels
