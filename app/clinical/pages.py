"""What the consultation screen shows: its context, the fragments htmx swaps, and the no-access page.

The panels of other parts (vitals, allergies and problems, prescriptions, timeline) are built by
their own modules' `panel` functions; the page writes the one audit record for all of it.
"""

import uuid

from flask import abort, g, render_template, request
from flask_login import current_user

from app.audit.services import record
from app.clinical import chart, encounters, rx_pages, vitals
from app.clinical.access import Access, access_for
from app.clinical.models import SOAP, Encounter
from app.db import get_session
from app.htmx import html, is_htmx, render
from app.patients import services as patients
from app.patients.models import Patient
from app.scheduling import services as schedule
from app.scheduling.models import Appointment
from app.timeline import services as timeline

SECTION_LABELS = {"subjective": "Subjective", "objective": "Objective", "assessment": "Assessment", "plan": "Plan"}
SECTION_HINTS = {
    "subjective": "Complaints and history, in the patient's words",
    "objective": "Examination findings",
    "assessment": "Your impression",
    "plan": "Investigations, treatment, advice",
}


def refuse(action: str, patient_id: uuid.UUID, *, object_type: str, object_id, reason: str,
           message: str | None = None):
    """A refused clinical access or write: a denied audit record, committed, then 403 with `message`
    (which never holds clinical content)."""
    db = get_session()
    record(db, action, patient_id=patient_id, object_type=object_type, object_id=object_id, outcome="denied",
           reason=reason)
    db.commit()
    abort(403, description=message)


def panels(patient: Patient, access: Access, encounter: Encounter | None) -> dict:
    """The other parts' panels for a page about this patient (no audit: the page audits)."""
    db, clinic = get_session(), g.clinic
    return {
        "vitals_panel": vitals.panel(db, clinic=clinic, patient=patient, access=access, encounter=encounter)
        if access.triage else None,
        "chart_panel": chart.panel(db, clinic=clinic, patient=patient, access=access, encounter=encounter)
        if access.triage else None,
        "rx_panel": rx_pages.panel(db, clinic=clinic, patient=patient, access=access, encounter=encounter)
        if encounter is not None and access.summary else None,
        "timeline_panel": timeline.panel(db, clinic=clinic, patient=patient, access=access, user_id=current_user.id,
                                         role=g.role),
    }


def _base(encounter: Encounter, access: Access) -> dict:
    db = get_session()
    writable = access.write and encounter.doctor_id == current_user.id and not encounter.locked
    return {"encounter": encounter, "access": access, "writable": writable,
            "note": encounters.open_note(db, encounter), "labels": SECTION_LABELS, "hints": SECTION_HINTS,
            "staff": patients.staff_names(db, {encounter.doctor_id, encounter.signed_by} - {None}),
            "today": schedule.today(g.clinic)}


def encounter_context(encounter: Encounter, access: Access) -> dict:
    """Everything the consultation screen shows (decrypts; the caller audits)."""
    db = get_session()
    patient = db.get(Patient, (encounter.clinic_id, encounter.patient_id))
    appointment = (db.get(Appointment, (encounter.clinic_id, encounter.appointment_id))
                   if encounter.appointment_id else None)
    context = _base(encounter, access)
    context.update({
        "patient": patient, "person": patients.open_patient(db, patient), "appointment": appointment,
        "type": schedule.type_of(db, appointment) if appointment else None,
        "addenda": encounters.addenda(db, encounter), "next_url": f"/encounters/{encounter.id}",
        **panels(patient, access, encounter),
    })
    context["staff"].update(patients.staff_names(db, {a.by for a, _ in context["addenda"]} - {None}))
    return context


def note_status(encounter: Encounter, *, saved: bool = False, problem: str | None = None, status: int = 200):
    """The note's save status line (and its new version, swapped out of band)."""
    return render("clinical/encounter.html", "note_status", status=status, encounter=encounter, saved=saved,
                  problem=problem, conflict=status == 409)


def note_problem(encounter: Encounter, error: Exception):
    """A refused save or sign: for htmx the status line (the text stays typed in the page), else the page
    again with the sections as they were typed. A save from a stale version is a 409."""
    status = 409 if isinstance(error, encounters.StaleVersion) else 422
    if is_htmx():
        return note_status(encounter, problem=str(error), status=status)
    typed = encounters.open_note(get_session(), encounter)
    for name in SOAP:
        setattr(typed, name, request.form.get(name, getattr(typed, name))[:encounters.MAX_SECTION])
    return _page_with_problem(encounter, "note_problem", str(error), status, note=typed)


def _audit_read(encounter: Encounter, access: Access) -> None:
    db = get_session()
    record(db, "encounter.view", patient_id=encounter.patient_id, object_type="encounter", object_id=encounter.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()


def _page_with_problem(encounter: Encounter, key: str, problem: str, status: int, **extra):
    db = get_session()
    access = access_for(db, clinic_id=g.clinic.id, user_id=current_user.id, role=g.role,
                        patient_id=encounter.patient_id)
    context = encounter_context(encounter, access)
    context.update(extra)
    context[key] = problem
    record(db, "encounter.view", patient_id=encounter.patient_id, object_type="encounter", object_id=encounter.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    return render("clinical/encounter.html", "note", status=status, **context)


def diagnoses_block(encounter: Encounter, access: Access, problem: str | None = None, status: int = 200, **typed):
    return render("clinical/encounter.html", "diagnoses", status=status, diagnoses_problem=problem, typed=typed,
                  **_base(encounter, access))


def diagnoses_problem(encounter: Encounter, access: Access, problem: str):
    typed = {"text": request.form.get("text", ""), "code": request.form.get("code", "")}
    if is_htmx():
        _audit_read(encounter, access)  # the refusal shows the diagnoses listed: a read like any other
        return diagnoses_block(encounter, access, problem, 422, **typed)
    return _page_with_problem(encounter, "diagnoses_problem", problem, 422, typed=typed)


def follow_up_block(encounter: Encounter, access: Access, problem: str | None = None, status: int = 200):
    return render("clinical/encounter.html", "follow_up", status=status, follow_up_problem=problem,
                  **_base(encounter, access))


def follow_up_problem(encounter: Encounter, access: Access, problem: str):
    if is_htmx():
        return follow_up_block(encounter, access, problem, 422)
    return _page_with_problem(encounter, "follow_up_problem", problem, 422)


def addenda_block(encounter: Encounter, access: Access, problem: str | None = None, status: int = 200, typed=""):
    db = get_session()
    context = _base(encounter, access)
    context["addenda"] = encounters.addenda(db, encounter)
    context["staff"].update(patients.staff_names(db, {a.by for a, _ in context["addenda"]} - {None}))
    return render("clinical/encounter.html", "addenda", status=status, addendum_problem=problem,
                  addendum_text=typed, **context)


def addenda_problem(encounter: Encounter, access: Access, problem: str):
    if is_htmx():
        _audit_read(encounter, access)  # the refusal shows the addenda: a read like any other
        return addenda_block(encounter, access, problem, 422, request.form.get("text", ""))
    return _page_with_problem(encounter, "addendum_problem", problem, 422, addendum_text=request.form.get("text", ""))


def revisions_context(encounter: Encounter) -> dict:
    db = get_session()
    rows = encounters.revisions(db, encounter)
    patient = db.get(Patient, (encounter.clinic_id, encounter.patient_id))
    labels = {**SECTION_LABELS, "diagnoses": "Diagnoses", "follow_up": "Follow-up"}
    return {"encounter": encounter, "rows": rows, "labels": labels,
            "person": patients.open_patient(db, patient, contact_only=True),
            "staff": patients.staff_names(db, {r.by for r, _ in rows} - {None})}


def no_access(patient_id: uuid.UUID, access: Access, *, action: str = "clinical.view", object_id=None,
              problem: str | None = None, status: int = 403, reason: str = ""):
    """403 (audited) with, for clinical staff, the break-the-glass form."""
    db = get_session()
    if status == 403:
        record(db, action, patient_id=patient_id, object_type="encounter", object_id=object_id,
               outcome="denied", reason="no care relationship")
        db.commit()
    body = render_template("clinical/no_access.html", patient_id=patient_id, access=access, problem=problem,
                           reason=reason, next_url=request.form.get("next") or request.path)
    return html(body, status)
