"""Consultations: open an encounter from an appointment, the consultation screen, the SOAP note with
autosave, diagnoses, follow-up, signing, addenda, the note's revisions, and break-the-glass.

Clinical content is shown only to those `access_for` allows; every read and write writes one audit
record (flagged under break-the-glass). Only the encounter's own doctor writes the note; once it is
signed, any doctor caring for the patient may add an addendum (who and when are kept with it).
"""

import uuid
from datetime import date

from flask import Blueprint, flash, g, redirect, request, url_for
from flask_login import current_user

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, requires
from app.clinical import encounters, pages
from app.clinical.access import Access, access_for
from app.clinical.encounters import EncounterError, Note
from app.clinical.models import SOAP, Encounter
from app.db import get_session
from app.htmx import client_redirect, is_htmx, render
from app.patients import break_glass
from app.patients.models import Patient
from app.scheduling import services as schedule
from app.scheduling.booking import ScheduleError
from app.scheduling.models import Appointment

bp = Blueprint("clinical", __name__)


def _access(patient_id: uuid.UUID) -> Access:
    return access_for(get_session(), clinic_id=g.clinic.id, user_id=current_user.id, role=g.role,
                      patient_id=patient_id)


def locked_for_writing(encounter_id: uuid.UUID, action: str) -> tuple[Encounter, Access]:
    """The clinic's encounter, locked for this transaction, and the access to write in it (else 404/403)."""
    found = load_or_404(Encounter, encounter_id, action, for_update=True)
    return found, writable(found, action)


def writable(encounter: Encounter, action: str) -> Access:
    """Access to write in this encounter: its own doctor, with clinical access, or 403 (audited)."""
    access = _access(encounter.patient_id)
    if not access.write or encounter.doctor_id != current_user.id:
        pages.refuse(action, encounter.patient_id, object_type="encounter", object_id=encounter.id,
                     reason="not the consultation's doctor",
                     message="Only the consultation's own doctor can write in it.")
    return access


@bp.post("/appointments/<uuid:appointment_id>/consultation")
@requires(Permission.CLINICAL_WRITE)
def open_consultation(appointment_id):
    """Open (or resume) the consultation of an appointment: the patient goes in to the doctor."""
    db = get_session()
    appointment = load_or_404(Appointment, appointment_id, "encounter.open", for_update=True)
    if appointment.doctor_id != current_user.id:
        pages.refuse("encounter.open", appointment.patient_id, object_type="appointment", object_id=appointment.id,
                     reason="another doctor's appointment",
                     message="This appointment is with another doctor: only they can open its consultation.")
    try:
        encounter = encounters.open_encounter(db, clinic=g.clinic, appointment=appointment, by=current_user.id)
    except (EncounterError, ScheduleError) as exc:
        db.rollback()
        flash(str(exc), "error")
        return client_redirect(url_for("scheduling.appointment", appointment_id=appointment_id))
    record(db, "encounter.open", patient_id=encounter.patient_id, object_type="encounter", object_id=encounter.id)
    db.commit()
    return client_redirect(url_for("clinical.encounter", encounter_id=encounter.id))


@bp.get("/encounters/<uuid:encounter_id>")
@requires(Permission.CLINICAL_READ)
def encounter(encounter_id):
    """The consultation screen: the note, diagnoses, prescriptions, vitals, allergies and the history."""
    found = load_or_404(Encounter, encounter_id, "encounter.view")
    access = _access(found.patient_id)
    if not access.notes:
        return pages.no_access(found.patient_id, access, action="encounter.view", object_id=found.id)
    context = pages.encounter_context(found, access)
    db = get_session()
    record(db, "encounter.view", patient_id=found.patient_id, object_type="encounter", object_id=found.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    return render("clinical/encounter.html", "note", **context)


def _note_from_form(encounter: Encounter) -> Note:
    note = encounters.open_note(get_session(), encounter)
    for name in SOAP:
        if name in request.form:
            setattr(note, name, request.form[name].replace("\r\n", "\n")[:encounters.MAX_SECTION])
    return note


def _version() -> int:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdecimal() and len(raw) < 9 else -1


@bp.post("/encounters/<uuid:encounter_id>/note")
@requires(Permission.CLINICAL_WRITE)
def save_note(encounter_id):
    """Save the note (autosave after a pause in typing, or the Save button); never overwrites a newer save."""
    db = get_session()
    found, _ = locked_for_writing(encounter_id, "encounter.save")
    try:
        changed = encounters.save_note(db, found, _note_from_form(found), version=_version(), by=current_user.id)
    except EncounterError as exc:
        db.rollback()
        return pages.note_problem(found, exc)
    record(db, "encounter.save", patient_id=found.patient_id, object_type="encounter", object_id=found.id,
           reason=("changed: " + ", ".join(changed)) if changed else "no changes")
    db.commit()
    if is_htmx():
        return pages.note_status(found, saved=True)
    flash("The note is saved.", "success")
    return redirect(url_for("clinical.encounter", encounter_id=found.id), code=303)


@bp.post("/encounters/<uuid:encounter_id>/diagnoses")
@requires(Permission.CLINICAL_WRITE)
def add_diagnosis(encounter_id):
    """Add a diagnosis: free text with an optional ICD-10 code."""
    return _diagnoses_change(encounter_id, lambda db, e: encounters.add_diagnosis(
        db, e, encounters.diagnosis(request.form.get("text", ""), request.form.get("code", "")),
        by=current_user.id), "diagnosis.add")


@bp.post("/encounters/<uuid:encounter_id>/diagnoses/remove")
@requires(Permission.CLINICAL_WRITE)
def remove_diagnosis(encounter_id):
    """Remove a diagnosis from the open encounter (kept in its revisions)."""
    raw = request.form.get("index", "")
    index = int(raw) if raw.isdecimal() and len(raw) < 4 else -1
    shown = {"text": request.form.get("text", ""), "code": request.form.get("code", "")}
    return _diagnoses_change(encounter_id, lambda db, e: encounters.remove_diagnosis(
        db, e, index, shown, by=current_user.id), "diagnosis.remove")


def _diagnoses_change(encounter_id, change, action: str):
    db = get_session()
    found, access = locked_for_writing(encounter_id, action)
    try:
        change(db, found)
    except EncounterError as exc:
        db.rollback()
        return pages.diagnoses_problem(found, access, str(exc))
    record(db, action, patient_id=found.patient_id, object_type="encounter", object_id=found.id)
    db.commit()
    if is_htmx():
        return pages.diagnoses_block(found, access)
    return redirect(url_for("clinical.encounter", encounter_id=found.id) + "#diagnoses", code=303)


@bp.post("/encounters/<uuid:encounter_id>/follow-up")
@requires(Permission.CLINICAL_WRITE)
def follow_up(encounter_id):
    """Set or clear the follow-up date; the page then offers to book it."""
    db = get_session()
    found, access = locked_for_writing(encounter_id, "encounter.follow_up")
    try:
        day = _follow_up_day()
        encounters.set_follow_up(db, found, day, today=schedule.today(g.clinic), by=current_user.id)
    except EncounterError as exc:
        db.rollback()
        return pages.follow_up_problem(found, access, str(exc))
    record(db, "encounter.follow_up", patient_id=found.patient_id, object_type="encounter", object_id=found.id)
    db.commit()
    if is_htmx():
        return pages.follow_up_block(found, access)
    return redirect(url_for("clinical.encounter", encounter_id=found.id) + "#follow-up", code=303)


def _follow_up_day() -> date | None:
    """The follow-up day from the form: a date, or 'in N days/weeks' (N in days), or empty to clear."""
    raw, after = request.form.get("day", "").strip(), request.form.get("after_days", "").strip()
    if after:
        if not after.isdecimal() or not 1 <= int(after) <= 730:
            raise EncounterError("Choose a number of days between 1 and 730.")
        return date.fromordinal(schedule.today(g.clinic).toordinal() + int(after))
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise EncounterError("Give the follow-up date as a date.") from None


@bp.post("/encounters/<uuid:encounter_id>/sign")
@requires(Permission.CLINICAL_WRITE)
def sign(encounter_id):
    """Save what is typed, sign and lock the note, and complete the visit."""
    db = get_session()
    found, _ = locked_for_writing(encounter_id, "encounter.sign")
    try:
        encounters.save_note(db, found, _note_from_form(found), version=_version(), by=current_user.id)
        completed = encounters.sign(db, clinic=g.clinic, encounter=found, by=current_user.id)
    except (EncounterError, ScheduleError) as exc:
        db.rollback()
        return pages.note_problem(found, exc)
    record(db, "encounter.sign", patient_id=found.patient_id, object_type="encounter", object_id=found.id)
    if completed is not None:
        record(db, "appointment.complete", patient_id=found.patient_id, object_type="appointment",
               object_id=completed.id, reason="consultation signed")
    db.commit()
    flash("The note is signed and the visit is complete." if completed else "The note is signed.", "success")
    if completed:
        return client_redirect(url_for("scheduling_queue.mine"))
    return client_redirect(url_for("clinical.encounter", encounter_id=found.id))


@bp.post("/encounters/<uuid:encounter_id>/addenda")
@requires(Permission.CLINICAL_WRITE)
def add_addendum(encounter_id):
    """Append an addendum to a signed note (the note itself never changes)."""
    db = get_session()
    found = load_or_404(Encounter, encounter_id, "encounter.addendum")
    access = _access(found.patient_id)
    if not access.write:
        pages.refuse("encounter.addendum", found.patient_id, object_type="encounter", object_id=found.id,
                     reason="no care relationship", message="You have no care relationship with this patient.")
    try:
        added = encounters.add_addendum(db, found, request.form.get("text", ""), by=current_user.id)
    except EncounterError as exc:
        db.rollback()
        return pages.addenda_problem(found, access, str(exc))
    record(db, "encounter.addendum", patient_id=found.patient_id, object_type="encounter", object_id=added.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    if is_htmx():
        return pages.addenda_block(found, access)
    flash("The addendum is added.", "success")
    return redirect(url_for("clinical.encounter", encounter_id=found.id) + "#addenda", code=303)


@bp.get("/encounters/<uuid:encounter_id>/revisions")
@requires(Permission.CLINICAL_READ)
def revisions(encounter_id):
    """Every saved revision of the note: who, when, each section before and after."""
    found = load_or_404(Encounter, encounter_id, "encounter.revisions")
    access = _access(found.patient_id)
    if not access.notes:
        return pages.no_access(found.patient_id, access, action="encounter.revisions", object_id=found.id)
    db = get_session()
    context = pages.revisions_context(found)
    record(db, "encounter.revisions", patient_id=found.patient_id, object_type="encounter", object_id=found.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    return render("clinical/revisions.html", "revisions", **context)


@bp.post("/patients/<uuid:patient_id>/break-glass")
@requires(Permission.BREAK_GLASS)
def break_the_glass(patient_id):
    """Open time-boxed emergency access to a patient's clinical record, with a stated reason."""
    patient = load_or_404(Patient, patient_id, "break_glass.open")
    db = get_session()
    try:
        break_glass.open_grant(db, clinic_id=g.clinic.id, user_id=current_user.id, patient_id=patient.id,
                               reason=request.form.get("reason", ""))
    except break_glass.ReasonRequired as exc:
        db.rollback()
        return pages.no_access(patient.id, _access(patient.id), problem=str(exc), status=422,
                               reason=request.form.get("reason", ""))
    db.commit()
    minutes = int(break_glass.TIME_BOX.total_seconds() // 60)
    flash(f"Emergency access is open for {minutes} minutes. It is recorded, and the clinic admin is told.", "warning")
    target = request.form.get("next", "")
    allowed = target.startswith(("/encounters/", "/patients/")) and "//" not in target
    return client_redirect(target if allowed else url_for("patients.show", patient_id=patient.id))
