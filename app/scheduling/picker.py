"""Choosing the patient for a booking or a walk-in: search (the registry's search) or register inline.

Shared by the booking and walk-in views. Inline registration happens in the same transaction as the
booking, so a refused booking leaves no half-registered patient behind.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Response, g, request
from sqlalchemy.orm import Session

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, can
from app.htmx import render_partial, target
from app.patients import services as patients
from app.patients.models import Patient
from app.scheduling.forms import NewPatientForm, PickForm


@dataclass
class Pick:
    """What the picker shows: search results or possible duplicates, and the chosen patient."""

    results: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
    chosen: tuple | None = None  # (Patient, PatientData)
    error: str | None = None


def wants_search(form: PickForm) -> bool:
    """A search was asked for: the Search button, or Enter in the search box without a patient chosen."""
    if request.form.get("intent") == "search":
        return True
    return bool(form.q.data and not form.patient_id.data and not form.new_patient.data
                and not request.form.get("use_patient"))


def new_patient_form(formdata=None) -> NewPatientForm:
    return NewPatientForm(formdata=formdata, prefix="new", state_code=g.clinic.state_code, language="en")


def search(db: Session, form: PickForm) -> Pick:
    """The registry's search for what was typed (audited like the registry's own search)."""
    query = (form.q.data or "")[:100]
    results = patients.search(db, g.clinic.id, query) if query else []
    if query:
        record(db, "patient.search", patient_ids=[p.id for p, _ in results], object_type="patient")
    return Pick(results=results)


def search_response(db: Session, form: PickForm, page: Callable[[Pick], Response]) -> Response:
    """Answer a search: the results list alone for search-as-you-type, else the whole form (`page`), as
    for the Search button or "Choose someone else"."""
    pick = search(db, form)
    db.commit()
    if target() == "picker-results":
        return render_partial("scheduling/_pick_results.html", form=form, pick=pick,
                              can_register=can(g.role, Permission.PATIENT_EDIT))
    return page(pick)


def take_duplicate_choice(form: PickForm) -> None:
    """The desk chose an existing patient from the possible duplicates of a new one."""
    if request.form.get("use_patient"):
        form.patient_id.data, form.new_patient.data = request.form["use_patient"], False


def chosen(db: Session, patient_id: uuid.UUID | None) -> tuple | None:
    """The chosen patient, opened for display; None if none was chosen. A patient id that is not one of
    this clinic's is refused like any other look at another clinic's patient: a denied record and 404."""
    if patient_id is None:
        return None
    patient = load_or_404(Patient, patient_id, "patient.view")
    return patient, patients.open_patient(db, patient, contact_only=True)


def resolve(db: Session, form: PickForm, new_form: NewPatientForm, by: uuid.UUID) -> tuple[Patient | None, Pick]:
    """The patient to book: the chosen one, or a newly registered one (after the duplicate check)."""
    if not form.new_patient.data:
        pick = chosen(db, form.chosen_patient_id())
        if pick is None:
            return None, Pick(error="Choose the patient: search by name, phone or MRN, or register a new patient.")
        return pick[0], Pick(chosen=pick)
    if not can(g.role, Permission.PATIENT_EDIT):
        return None, Pick(error="Your role may not register patients: ask the front desk, or choose a registered "
                                "patient.")
    if not new_form.validate():
        return None, Pick(error="Check the new patient's details below.")
    data = new_form.to_data()
    duplicates = patients.possible_duplicates(db, g.clinic.id, data)
    if duplicates and not new_form.confirm_new.data:
        record(db, "patient.duplicate_check", patient_ids=[p.id for p, _ in duplicates], object_type="patient")
        return None, Pick(duplicates=duplicates, error="This may be a patient who is already registered: "
                          "choose them below, or confirm that this is a new patient.")
    patient = patients.register(db, clinic_id=g.clinic.id, data=data, by=by, consents=new_form.consents())
    record(db, "patient.create", patient_id=patient.id, object_type="patient", object_id=patient.id)
    return patient, Pick(chosen=(patient, data))
