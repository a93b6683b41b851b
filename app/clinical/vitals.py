"""Vital signs: describing a set with out-of-normal flags, recording and voiding sets, and the panel (latest
set, trends, form) the encounter and patient pages show. The form and its plausible ranges: app/clinical/forms.py.

A set is one sealed JSON object in canonical units (keys only for what was measured): systolic and
diastolic (mmHg), pulse (/min), temperature_c (°C, 1 dp; temperature_unit says what was typed), spo2
(%), resp_rate (/min), weight_kg and height_cm (1 dp), glucose_mg_dl with glucose_context. BMI is
computed, never stored.

Normal ranges, adults only (a patient under 18 gets no flags: children's ranges depend on age):
- Blood pressure: high from 140 systolic or 90 diastolic (office BP; ISH 2020 guideline and the Indian
  guidelines on hypertension), low below 90 systolic or 60 diastolic (the usual hypotension cut-off).
- Pulse: 60-100 /min at rest (AHA). Respiratory rate: 12-20 /min (the NEWS2 normal band).
- Temperature: high from 37.5 °C (the fever threshold NICE and WHO use), low below 35 °C (hypothermia).
- SpO2: low below 95 % (the BTS target range is 94-98 %; below 95 in room air deserves a look).
- BMI: the WHO Asia-Pacific cut-offs that India's consensus guideline adopts (Misra et al., JAPI 2009):
  below 18.5 underweight, from 23 overweight, from 25 obese.
- Blood glucose: fasting 70-99 mg/dL (ADA: 100-125 impaired, 126+ diabetes); random or after a meal
  below 140 (the ADA two-hour value); below 70 is low in any context (ADA level 1 hypoglycaemia).
"""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from flask import g
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.policy import Permission, Role, can
from app.clinical.access import Access
from app.clinical.models import Encounter, Vitals
from app.clinical.trends import outside, trends_of, trim
from app.db import new_id, utcnow
from app.forms import Shown
from app.patients.models import Patient
from app.patients.services import staff_names
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

PANEL_SETS = 24  # the panel reads this many newest sets; trends use the valid ones among them
TREND_POINTS = 20
LISTED = 5  # sets listed on the encounter and patient pages (the vitals page lists all it read)
GLUCOSE_CONTEXTS = {"fasting": "Fasting", "random": "Random", "post_meal": "After a meal"}
TENTH = Decimal("0.1")


# --- Describing a set ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """One measure of a set as shown: "Blood pressure", "150/95 mmHg", flag "high" (None when normal)."""

    label: str
    text: str
    flag: str | None = None
    note: str = ""  # what the flag means when it is more than low/high ("Obese")

    @property
    def badge(self) -> str:
        """The words on the flag's badge ("High", "Low", "Overweight"); empty when normal."""
        return self.note or (self.flag or "").title()


def _bp_flag(systolic: int, diastolic: int) -> str | None:
    if systolic >= 140 or diastolic >= 90:
        return "high"
    return "low" if systolic < 90 or diastolic < 60 else None


def _glucose_flag(value: int, context: str | None) -> str | None:
    return outside(value, 70, 100 if context == "fasting" else 140)


def fahrenheit(celsius) -> Decimal:
    return (Decimal(str(celsius)) * 9 / 5 + 32).quantize(TENTH, ROUND_HALF_UP)


def bmi(values: Mapping) -> Decimal | None:
    """Body-mass index of a set that has both weight and height, 1 dp."""
    if "weight_kg" not in values or "height_cm" not in values:
        return None
    metres = Decimal(str(values["height_cm"])) / 100
    return (Decimal(str(values["weight_kg"])) / (metres * metres)).quantize(TENTH, ROUND_HALF_UP)


def _bmi_reading(value: Decimal, adult: bool) -> Reading:
    text = f"{value} kg/m²"
    if not adult:
        return Reading("BMI", text)
    if value < Decimal("18.5"):
        return Reading("BMI", text, "low", "Underweight")
    if value >= 25:
        return Reading("BMI", text, "high", "Obese")
    return Reading("BMI", text, "high", "Overweight") if value >= 23 else Reading("BMI", text)


def _temperature_text(values: Mapping) -> str:
    text = f"{values['temperature_c']:.1f} °C"
    return text + f" ({fahrenheit(values['temperature_c'])} °F)" if values.get("temperature_unit") == "F" else text


def describe(values: Mapping, *, adult: bool = True) -> list[Reading]:
    """The readings of a set in the usual order, flagged against adult ranges (no flags when not `adult`)."""
    v, out = values, []

    def add(label, text, flag=None):
        out.append(Reading(label, text, flag if adult else None))

    if "systolic" in v and "diastolic" in v:
        add("Blood pressure", f"{v['systolic']}/{v['diastolic']} mmHg", _bp_flag(v["systolic"], v["diastolic"]))
    if "pulse" in v:
        add("Pulse", f"{v['pulse']} /min", outside(v["pulse"], 60, 101))
    if "temperature_c" in v:
        add("Temperature", _temperature_text(v), outside(v["temperature_c"], 35, 37.5))
    if "spo2" in v:
        add("SpO2", f"{v['spo2']} %", outside(v["spo2"], 95, None))
    if "resp_rate" in v:
        add("Respiratory rate", f"{v['resp_rate']} /min", outside(v["resp_rate"], 12, 21))
    if "weight_kg" in v:
        add("Weight", f"{trim(v['weight_kg'])} kg")
    if "height_cm" in v:
        add("Height", f"{trim(v['height_cm'])} cm")
    if (index := bmi(v)) is not None:
        out.append(_bmi_reading(index, adult))
    if "glucose_mg_dl" in v:
        context = v.get("glucose_context")
        when = GLUCOSE_CONTEXTS.get(context, "context not given").lower()
        add("Blood glucose", f"{v['glucose_mg_dl']} mg/dL ({when})", _glucose_flag(v["glucose_mg_dl"], context))
    return out


def is_adult(dob: date | None, on: date) -> bool:
    """Whether someone born on `dob` is 18 or older on `on` (unknown birth date: treated as adult)."""
    if dob is None:
        return True
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day)) >= 18


# --- Recording and voiding ----------------------------------------------------------------------------

def record_set(db: Session, *, patient: Patient, values: dict, by: uuid.UUID, encounter: Encounter | None = None,
               appointment_id: uuid.UUID | None = None, doctor_id: uuid.UUID | None = None) -> Vitals:
    """Store one set of vitals (sealed) and put it on the patient's timeline."""
    ring = keyring(db, patient.clinic_id)
    row = Vitals(clinic_id=patient.clinic_id, id=new_id(), patient_id=patient.id, taken_at=utcnow(), taken_by=by,
                 encounter_id=encounter.id if encounter else None, appointment_id=appointment_id,
                 key_version=ring.active.version)
    row.values_enc = ring.seal("vitals", "values", row.id, json.dumps(values, sort_keys=True))
    db.add(row)
    timeline.add(db, clinic_id=row.clinic_id, patient_id=row.patient_id, kind=Kind.VITALS, action="recorded",
                 ref_id=row.id, by=by, doctor_id=doctor_id, at=row.taken_at)
    db.flush()
    return row


def may_void(role: Role | None, user_id: uuid.UUID, row: Vitals) -> bool:
    """Its recorder, or any doctor, may mark a set entered in error (once)."""
    return row.voided_at is None and can(role, Permission.VITALS_WRITE) and (
        row.taken_by == user_id or role is Role.DOCTOR)


def void_set(db: Session, row: Vitals, *, by: uuid.UUID) -> None:
    """Mark a set entered in error: it stays listed, struck through, and leaves the trends."""
    row.voided_at, row.voided_by = utcnow(), by
    timeline.add(db, clinic_id=row.clinic_id, patient_id=row.patient_id, kind=Kind.VITALS, action="voided",
                 ref_id=row.id, by=by, at=row.voided_at)
    db.flush()


def open_values(db: Session, row: Vitals) -> dict:
    """A set's values (PHI: the caller audits the read)."""
    return json.loads(keyring(db, row.clinic_id).open("vitals", "values", row.id, row.values_enc))


def date_of_birth(db: Session, patient: Patient) -> date | None:
    """Only the patient's date of birth, decrypted (for age-dependent ranges)."""
    text = keyring(db, patient.clinic_id).open("patient", "dob", patient.id, patient.dob_enc)
    return date.fromisoformat(text) if text else None


# --- The panel ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VitalsSet:
    row: Vitals
    values: dict
    readings: list[Reading]
    adult: bool

    @property
    def voided(self) -> bool:
        return self.row.voided_at is not None

    @property
    def flagged(self) -> list[Reading]:
        return [r for r in self.readings if r.flag]


@dataclass(frozen=True)
class VitalsPanel:
    """Everything clinical/_vitals.html shows; built by `panel`."""

    patient_id: uuid.UUID
    sets: list[VitalsSet]  # newest first, entered-in-error ones included
    trends: list  # list[Trend]
    adult: bool  # today; False: "adult ranges not applied"
    can_record: bool
    voidable: frozenset  # ids of the sets this user may mark entered in error
    staff: dict
    entry: Shown  # the form: empty, or refused as typed (app/clinical/forms.py)
    encounter_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None
    more: bool = False  # older sets exist beyond the ones read
    full: bool = False  # on the vitals page: every set read is listed
    problem: str | None = None  # why the last request was refused
    notice: str | None = None  # what the last request did

    @property
    def listed(self) -> list[VitalsSet]:
        return self.sets if self.full else self.sets[:LISTED]

    @property
    def latest(self) -> VitalsSet | None:
        return next((s for s in self.sets if not s.voided), None)


def recent_sets(db: Session, patient: Patient, limit: int) -> list[Vitals]:
    """The patient's newest sets, entered-in-error ones included (one query)."""
    return list(db.scalars(select(Vitals).where(Vitals.clinic_id == patient.clinic_id,
                                                Vitals.patient_id == patient.id)
                           .order_by(Vitals.taken_at.desc(), Vitals.id.desc()).limit(limit)))


def panel(db: Session, *, clinic, patient: Patient, access: Access, encounter: Encounter | None = None,
          appointment_id: uuid.UUID | None = None, entry: Shown | None = None, limit: int = PANEL_SETS,
          full: bool = False, role: Role | None = None, user_id: uuid.UUID | None = None) -> VitalsPanel | None:
    """The vitals panel for this user (None without triage access). Reads, never audits: the page
    that shows it writes its audit record."""
    if not access.triage:
        return None
    role = role if role is not None else g.role
    user_id = user_id or current_user.id
    zone, dob = ZoneInfo(clinic.timezone), date_of_birth(db, patient)
    rows = recent_sets(db, patient, limit + 1)
    sets = []
    for row in rows[:limit]:
        values, adult = open_values(db, row), is_adult(dob, row.taken_at.astimezone(zone).date())
        sets.append(VitalsSet(row, values, describe(values, adult=adult), adult))
    adult_now = is_adult(dob, datetime.now(zone).date())
    latest_unit = next((s.values["temperature_unit"] for s in sets if "temperature_unit" in s.values), "F")
    return VitalsPanel(
        patient_id=patient.id, sets=sets, adult=adult_now,
        trends=trends_of([s for s in sets if not s.voided][:TREND_POINTS], zone, bands=adult_now),
        can_record=can(role, Permission.VITALS_WRITE),
        voidable=frozenset(s.row.id for s in sets if may_void(role, user_id, s.row)),
        staff=staff_names(db, {s.row.taken_by for s in sets} | {s.row.voided_by for s in sets}),
        entry=entry or Shown(typed={"temperature_unit": latest_unit}),
        encounter_id=encounter.id if encounter else None,
        appointment_id=appointment_id or (encounter.appointment_id if encounter else None),
        more=len(rows) > limit, full=full)
