"""Patients as the app's `register` writes them: sealed field by field with the clinic's keyring
(`seal_into`), the blind-index tokens of `_tokens` (so search finds them), the 'created' history entry
and the consents given at the desk. Families register together and share the family mobile.
"""

import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from app.messaging.texts import language_of
from app.patients.models import PHI_FIELDS, Patient
from app.patients.services import PatientData, _as_text, _tokens, seal_into
from app.security.fields import Keyring
from bench import clinics, names
from bench.clinics import ClinicPlan, uuid7
from bench.plan import Plan

COLUMNS = {
    "patient": ("clinic_id", "id", *(f"{f}_enc" for f in PHI_FIELDS), "dob_estimated", "state_code", "language",
                "key_version", "version", "created_at", "created_by", "updated_at", "updated_by"),
    "patient_token": ("clinic_id", "patient_id", "key_version", "token", "kind"),
    "patient_history": ("clinic_id", "id", "patient_id", "version", "action", "changed_fields", "changes_enc",
                        "key_version", "changed_at", "changed_by"),
    "consent_event": ("clinic_id", "id", "patient_id", "purpose", "granted", "method", "at", "recorded_by"),
}


def _registered_span(plan: Plan) -> tuple[int, int, int]:
    """(ms) Registrations run from two years before the first appointment day to an hour ago; 40% of
    the patients came before the first day (records the clinic brought along)."""
    start = datetime.combine(plan.first, datetime.min.time(), UTC)
    return (int((start - timedelta(days=730)).timestamp() * 1000), int(start.timestamp() * 1000),
            int((plan.now - timedelta(hours=1)).timestamp() * 1000))


def created_ms(plan: Plan, cp: ClinicPlan, n: int) -> int:
    """When patient number `n` (1-based, MRN order) of the clinic registered."""
    a, b, c = _registered_span(plan)
    early = 0.4 * cp.patients
    if n <= early:
        return int(a + (b - a) * n / max(early, 1))
    return int(b + (c - b) * (n - early) / max(cp.patients - early, 1))


def registered_by(plan: Plan, cp: ClinicPlan, ms: int) -> int:
    """How many of the clinic's patients had registered by `ms`."""
    a, b, c = _registered_span(plan)
    early = 0.4 * cp.patients
    if ms < b:
        n = early * (ms - a) / (b - a)
    else:
        n = early + (cp.patients - early) * (ms - b) / max(c - b, 1)
    return max(1, min(cp.patients, int(n)))


def patient_id(plan: Plan, cp: ClinicPlan, n: int) -> uuid.UUID:
    """Patient `n`'s id: the same for the patient generator and the appointments that refer to it."""
    digest = hashlib.blake2b(f"{plan.size.seed}|{cp.index}|{n}".encode(), digest_size=10).digest()
    return uuid7(created_ms(plan, cp, n), int.from_bytes(digest, "big") >> 6)


class Contact(NamedTuple):
    """What a bill prints of a patient and where a reminder goes (handed to the appointment pieces)."""

    name: str
    address_line: str | None
    city: str | None
    pin_code: str | None
    phone: str | None
    language: str  # the reminders' language ("en" or "hi")
    channel: str | None  # the first channel the patient agreed to reminders on


def make(plan: Plan, cp: ClinicPlan, ring: Keyring, low: int, high: int,
         contacts: dict[int, Contact] | None = None) -> dict[str, list[tuple]]:
    """Patients `low`..`high - 1` of a clinic, registered family by family, with their search tokens,
    'created' history entry and consents, as the app's `register` writes them; each one's contact
    details into `contacts` (by number) when given."""
    rng = names.seeded(plan.size.seed, "patients", cp.index, low)
    rows = {t: [] for t in ("patient", "patient_token", "patient_history", "consent_event")}
    contacts = {} if contacts is None else contacts
    family: list[PatientData] = []
    for n in range(low, high):
        created = datetime.fromtimestamp(created_ms(plan, cp, n) / 1000, UTC)
        if not family:
            family = names.household(rng, cp.spec.place, created.astimezone(ZoneInfo(clinics.TZ)).date())
        data = family.pop(0)
        data.mrn = f"MRN-{n:06d}"
        consents = _patient_rows(rows, ring, cp, patient_id(plan, cp, n), data, created, rng.choice(cp.desks), rng)
        contacts[n] = Contact(data.full_name, data.address_line, data.city, data.pin_code, data.phone,
                              language_of(data.language), next((c for c in ("whatsapp", "sms") if c in consents), None))
    return rows


def _patient_rows(rows: dict, ring: Keyring, cp: ClinicPlan, pid: uuid.UUID, data: PatientData,
                  created: datetime, desk: uuid.UUID, rng: random.Random) -> set[str]:
    patient = Patient(clinic_id=cp.id, id=pid)
    seal_into(ring, patient, data)
    version = ring.active.version
    rows["patient"].append((cp.id, pid, *(getattr(patient, f"{f}_enc") for f in PHI_FIELDS), patient.dob_estimated,
                            patient.state_code, patient.language, version, 1, created, desk, created, desk))
    rows["patient_token"] += [(cp.id, pid, version, token, kind) for kind, token in _tokens(ring, data)]
    changes = {k: [None, v] for k, v in _as_text(data).items() if v is not None}
    history_id = uuid7(int(created.timestamp() * 1000), rng)
    rows["patient_history"].append((
        cp.id, history_id, pid, 1, "created", ",".join(sorted(changes))[:400],
        ring.seal("patient_history", "changes", history_id, json.dumps(changes)), version, created, desk))
    given = set()
    for purpose, chance in (("treatment", 0.97), ("whatsapp", 0.55), ("sms", 0.35), ("data_sharing", 0.05)):
        if rng.random() < chance:
            given.add(purpose)
            rows["consent_event"].append((cp.id, uuid7(int(created.timestamp() * 1000), rng), pid, purpose, True,
                                          "in_person", created, desk))
    return given


class CachingRing(Keyring):
    """The clinic's keyring, remembering name-prefix tokens: families and regions share words."""

    def __init__(self, ring: Keyring):
        self.__dict__.update(ring.__dict__)
        self._seen: dict[str, str] = {}

    def token(self, kind: str, value: str, version: int | None = None) -> str:
        if kind != "name" or version is not None:
            return super().token(kind, value, version)
        if value not in self._seen:
            self._seen[value] = super().token(kind, value)
        return self._seen[value]
