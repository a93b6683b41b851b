"""Demo clinical records: each visit completed before today has its vitals, a signed note with
diagnoses and, often, a signed prescription; some patients have allergies and problems on record.

Written at the visits' own times (the services stamp "now", which would stack a week of history on
the seed's minute), sealed with the clinic's key like everything else.
"""

import json
import random
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.clinical import rx_code, rx_text
from app.clinical.models import (
    SOAP,
    ChartItem,
    ChartKind,
    Encounter,
    EncounterRevision,
    EncounterStatus,
    Prescription,
    RxStatus,
    Vitals,
)
from app.clinics.models import Clinic
from app.counters import next_number
from app.db import new_id
from app.patients.models import Patient
from app.patients.services import open_patient
from app.scheduling.models import Appointment, Status
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind

PARACETAMOL = {"drug": "Paracetamol", "strength": "650 mg", "form": "tablet", "dose": "1 tablet",
               "frequency": "1-1-1", "duration": "3 days", "timing": "after_food",
               "instructions": "Only if the fever is above 100 °F"}
# (subjective, objective, assessment, plan, diagnoses [(text, ICD-10)], prescription items, vitals)
VISITS = [
    ("Fever and sore throat for 2 days, no cough.", "Throat congested, no exudate. Chest clear.",
     "Acute pharyngitis, likely viral.", "Warm saline gargles, fluids. Review if fever beyond 3 days.",
     [("Acute pharyngitis", "J02.9")], [PARACETAMOL],
     {"temperature_c": 38.4, "temperature_unit": "F", "pulse": 96, "systolic": 118, "diastolic": 76, "spo2": 98}),
    ("Follow-up of blood pressure. Occasional headache in the mornings.", "BP 148/94 seated, repeated 146/92.",
     "Essential hypertension, not at target.", "Start amlodipine. Reduce salt. Home BP log for 2 weeks.",
     [("Essential hypertension", "I10")],
     [{"drug": "Amlodipine", "strength": "5 mg", "form": "tablet", "dose": "1 tablet", "frequency": "1-0-0",
       "duration": "30 days", "timing": "after_food", "instructions": ""}],
     {"systolic": 148, "diastolic": 94, "pulse": 82, "weight_kg": 78.5, "height_cm": 170}),
    ("Known diabetic, here for sugar review. No hypoglycaemia.", "Feet: sensation intact. No oedema.",
     "Type 2 diabetes mellitus, fair control.", "Continue metformin. HbA1c in 3 months. Diet advice given.",
     [("Type 2 diabetes mellitus without complications", "E11.9")],
     [{"drug": "Metformin", "strength": "500 mg", "form": "tablet", "dose": "1 tablet", "frequency": "1-0-1",
       "duration": "90 days", "timing": "after_food", "instructions": ""}],
     {"glucose_mg_dl": 162, "glucose_context": "fasting", "systolic": 128, "diastolic": 82, "weight_kg": 72.0}),
    ("Itchy rash on both forearms for a week after a new detergent.", "Erythematous papules, no vesicles.",
     "Contact dermatitis.", "Avoid the detergent. Antihistamine at night. Emollient.",
     [("Contact dermatitis", "L25.9")],
     [{"drug": "Cetirizine", "strength": "10 mg", "form": "tablet", "dose": "1 tablet", "frequency": "0-0-1",
       "duration": "7 days", "timing": "at_bedtime", "instructions": "May cause drowsiness"}],
     {"temperature_c": 36.8, "temperature_unit": "F", "pulse": 74, "systolic": 122, "diastolic": 78}),
    ("Routine check-up, no complaints.", "General examination normal.", "Healthy adult.",
     "Annual blood tests advised.", [], [], {"systolic": 116, "diastolic": 74, "pulse": 70, "spo2": 99,
                                             "weight_kg": 64.0, "height_cm": 162}),
]
ALLERGIES = [{"substance": "Penicillin", "reaction": "Hives", "severity": "moderate"},
             {"substance": "Sulfonamides", "reaction": "Rash", "severity": "mild"}]


def seed_clinical(db: Session, clinic: Clinic, patients: list[uuid.UUID], rng: random.Random) -> int:
    """Notes, vitals and prescriptions for the clinic's finished visits; allergies for a few patients."""
    visits = db.scalars(select(Appointment).where(Appointment.clinic_id == clinic.id,
                                                  Appointment.status == Status.COMPLETED,
                                                  Appointment.finished_at.is_not(None))
                        .order_by(Appointment.starts_at)).all()
    for appointment in visits:
        _visit(db, clinic, appointment, rng.choice(VISITS), rng)
    _allergies(db, clinic, patients)
    db.flush()
    return len(visits)


def _visit(db: Session, clinic: Clinic, a: Appointment, visit: tuple, rng: random.Random) -> None:
    *sections, diagnoses, items, values = visit
    ring = keyring(db, clinic.id)
    taken = a.arrived_at + timedelta(minutes=4)
    vitals = Vitals(clinic_id=clinic.id, id=new_id(), patient_id=a.patient_id, appointment_id=a.id,
                    key_version=ring.active.version, taken_at=taken, taken_by=a.doctor_id)
    vitals.values_enc = ring.seal("vitals", "values", vitals.id, json.dumps(values, sort_keys=True))
    e = Encounter(clinic_id=clinic.id, id=new_id(), patient_id=a.patient_id, doctor_id=a.doctor_id,
                  appointment_id=a.id, started_at=a.started_at, key_version=ring.active.version, version=2,
                  created_by=a.doctor_id, updated_at=a.finished_at, updated_by=a.doctor_id,
                  follow_up_on=a.day + timedelta(days=14) if items and rng.random() < 0.5 else None)
    vitals.encounter_id = e.id
    note = dict(zip(SOAP, sections, strict=True))
    dx = [{"text": text, "code": code} for text, code in diagnoses]
    for name in SOAP:
        setattr(e, f"{name}_enc", ring.seal("encounter", name, e.id, note[name]))
    e.diagnoses_enc = ring.seal("encounter", "diagnoses", e.id, json.dumps(dx)) if dx else None
    db.add_all([vitals, e])
    db.flush()
    changes = {name: ["", note[name]] for name in SOAP} | ({"diagnoses": [[], dx]} if dx else {})
    revision = EncounterRevision(clinic_id=clinic.id, id=new_id(), encounter_id=e.id, version=2,
                                 changed=",".join(changes), key_version=ring.active.version,
                                 at=a.finished_at - timedelta(minutes=2), by=a.doctor_id)
    revision.changes_enc = ring.seal("encounter_revision", "changes", revision.id, json.dumps(changes))
    db.add(revision)
    for kind, action, ref, at in ((Kind.VITALS, "recorded", vitals.id, taken),
                                  (Kind.ENCOUNTER, "opened", e.id, a.started_at)):
        timeline.add(db, clinic_id=clinic.id, patient_id=a.patient_id, kind=kind, action=action, ref_id=ref,
                     by=a.doctor_id, doctor_id=a.doctor_id, at=at)
    if items:
        _prescription(db, clinic, e, items, a.finished_at - timedelta(minutes=1))
    e.status, e.signed_at, e.signed_by = EncounterStatus.SIGNED, a.finished_at, a.doctor_id
    db.flush()
    timeline.add(db, clinic_id=clinic.id, patient_id=a.patient_id, kind=Kind.ENCOUNTER, action="signed",
                 ref_id=e.id, by=a.doctor_id, doctor_id=a.doctor_id, at=a.finished_at)


def _prescription(db: Session, clinic: Clinic, e: Encounter, items: list[dict], at) -> None:
    ring = keyring(db, clinic.id)
    patient = db.get(Patient, (clinic.id, e.patient_id))
    advice = "Drink plenty of water. Come back at once if the symptoms get worse."
    rx = Prescription(clinic_id=clinic.id, id=new_id(), patient_id=e.patient_id, encounter_id=e.id,
                      doctor_id=e.doctor_id, number=next_number(db, clinic.id, "rx"), revision=1,
                      status=RxStatus.SIGNED, language=rx_text.language_for(patient.language),
                      key_version=ring.active.version, version=1, created_at=at, created_by=e.doctor_id,
                      signed_at=at, signed_by=e.doctor_id)
    rx.items_enc = ring.seal("prescription", "items", rx.id, json.dumps(items))
    rx.advice_enc = ring.seal("prescription", "advice", rx.id, advice)
    doctor = db.get(StaffUser, e.doctor_id)
    printed = rx_code.content(rx, items, advice, doctor, open_patient(db, patient), e.follow_up_on)
    rx_code.seal_printed(db, rx, printed)
    db.add(rx)
    db.flush()
    timeline.add(db, clinic_id=clinic.id, patient_id=e.patient_id, kind=Kind.PRESCRIPTION, action="signed",
                 ref_id=rx.id, by=e.doctor_id, doctor_id=e.doctor_id, at=at)


def _allergies(db: Session, clinic: Clinic, patients: list[uuid.UUID]) -> None:
    ring = keyring(db, clinic.id)
    for patient_id, details in zip(patients[:2], ALLERGIES, strict=False):
        item = ChartItem(clinic_id=clinic.id, id=new_id(), patient_id=patient_id, kind=ChartKind.ALLERGY,
                         key_version=ring.active.version)
        item.details_enc = ring.seal("chart_item", "details", item.id, json.dumps(details))
        db.add(item)
        db.flush()
        timeline.add(db, clinic_id=clinic.id, patient_id=patient_id, kind=Kind.CHART, action="recorded",
                     ref_id=item.id, by=None, at=item.recorded_at)
    for patient_id in patients[2:4]:
        item = ChartItem(clinic_id=clinic.id, id=new_id(), patient_id=patient_id, kind=ChartKind.NO_KNOWN_ALLERGIES,
                         key_version=ring.active.version)
        db.add(item)
        db.flush()
        timeline.add(db, clinic_id=clinic.id, patient_id=patient_id, kind=Kind.CHART, action="recorded",
                     ref_id=item.id, by=None, at=item.recorded_at)
