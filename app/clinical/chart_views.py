"""Vitals, allergies and problems: recording and ending entries, and the patient's vitals and chart pages
(for htmx, the panel alone, which the encounter and patient pages include).

Doctors and nurses of the clinic see and record vitals and allergies (triage); problems are seen with
summary access and changed by a doctor in a care relationship (or under break-the-glass). Everyone
else is refused before a value is read. Every page or fragment writes one view record; every write
audits itself (and its answer shows nothing the write record does not already cover).
"""

import dataclasses
import uuid
from dataclasses import dataclass

from flask import Blueprint, Response, abort, flash, g, redirect, request, url_for
from flask_login import current_user

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, Role, can, requires
from app.clinical import chart, pages, vitals
from app.clinical.access import Access, access_for
from app.clinical.forms import AllergyForm, ProblemForm, VitalsForm
from app.clinical.models import ChartItem, ChartKind, Encounter, Vitals
from app.db import get_session
from app.htmx import is_htmx, render, safe_next
from app.patients.models import Patient
from app.patients.services import labels_of
from app.scheduling.forms import parse_uuid
from app.scheduling.models import Appointment

bp = Blueprint("clinical_chart", __name__)
HISTORY_SETS = 200  # sets listed on the vitals page


# --- Shared ---------------------------------------------------------------------------------------------

def refuse(action: str, patient_id: uuid.UUID, reason: str = "no clinical access to this patient"):
    """Record the refusal, commit it, answer 403 (saying nothing about the record)."""
    pages.refuse(action, patient_id, object_type="patient", object_id=patient_id, reason=reason)


def patient_with_access(patient_id: uuid.UUID, action: str, *, for_update: bool = False) -> tuple[Patient, Access]:
    """The clinic's patient and this user's access to its record; 403 without triage access."""
    patient = load_or_404(Patient, patient_id, action, for_update=for_update)
    access = access_for(get_session(), clinic_id=g.clinic.id, user_id=current_user.id, role=g.role,
                        patient_id=patient.id)
    if not access.triage:
        refuse(action, patient.id)
    return patient, access


@dataclass(frozen=True)
class Links:
    """The consultation (and appointment) an entry is made in, from the form's hidden fields."""

    encounter: Encounter | None = None
    appointment_id: uuid.UUID | None = None
    doctor_id: uuid.UUID | None = None  # the doctor the timeline files the entry under


def links_from(form, patient: Patient) -> Links:
    """The encounter and appointment named by the form; both must be this patient's (else 400)."""
    db = get_session()
    encounter_id, appointment_id = parse_uuid(form.get("encounter_id")), parse_uuid(form.get("appointment_id"))
    encounter = db.get(Encounter, (patient.clinic_id, encounter_id)) if encounter_id else None
    appointment = db.get(Appointment, (patient.clinic_id, appointment_id)) if appointment_id else None
    if (encounter_id and (encounter is None or encounter.patient_id != patient.id)) or (
            appointment_id and (appointment is None or appointment.patient_id != patient.id)):
        abort(400, "That consultation is not this patient's. Reload the page and try again.")
    doctor_id = encounter.doctor_id if encounter else appointment.doctor_id if appointment else None
    if doctor_id is None and g.role is Role.DOCTOR:
        doctor_id = current_user.id
    return Links(encounter, appointment_id or (encounter.appointment_id if encounter else None), doctor_id)


def next_url(default: str) -> str:
    """Where the forms return to: the page that sent them (the encounter, the patient) or `default`."""
    source = request.form if request.method == "POST" else request.args
    return safe_next(source.get("next")) or default


def audit_write(action: str, patient: Patient, access: Access, object_type: str, object_id) -> None:
    record(get_session(), action, patient_id=patient.id, object_type=object_type, object_id=object_id,
           reason=access.reason, flagged=access.flagged)


def audit_view(action: str, patient: Patient, access: Access, object_type: str) -> None:
    record(get_session(), action, patient_id=patient.id, object_type=object_type, reason=access.reason,
           flagged=access.flagged)


def done(message: str, location: str, fragment) -> Response:
    """After a write: htmx gets the panel again (with `message`), a plain form a 303 back."""
    if is_htmx():
        return fragment(message)
    get_session().commit()
    flash(message, "success")
    return redirect(location, code=303)


# name: (page template, audit action, audited object type, the page's endpoint)
PANEL_PAGES = {"vitals": ("clinical/vitals.html", "vitals.view", "vitals", "clinical_chart.vitals_page"),
               "chart": ("clinical/chart.html", "chart.view", "chart_item", "clinical_chart.chart_page")}


def panel_page(name: str, panel, patient: Patient, access: Access, links: Links, status: int, *,
               audit: bool) -> Response:
    """The vitals or chart page, or for htmx its panel alone; audited unless a write record covers it."""
    template, action, object_type, endpoint = PANEL_PAGES[name]
    db = get_session()
    if audit:
        audit_view(action, patient, access, object_type)
    label = None if is_htmx() else labels_of(db, g.clinic.id, [patient.id])[patient.id]
    response = render(template, f"{name}_panel", status=status, patient=patient, label=label, access=access,
                      encounter=links.encounter, next_url=next_url(url_for(endpoint, patient_id=patient.id)),
                      **{f"{name}_panel": panel})
    db.commit()
    return response


# --- Vitals ---------------------------------------------------------------------------------------------

def vitals_response(patient: Patient, access: Access, status: int = 200, *, audit: bool = True, full: bool = True,
                    links: Links = Links(), entry=None, problem=None, notice=None) -> Response:
    """The vitals page, or for htmx its panel alone; audited unless a write record already covers it."""
    db = get_session()
    full = full or not is_htmx()  # a whole page (also a refused form without JavaScript) lists every set
    panel = vitals.panel(db, clinic=g.clinic, patient=patient, access=access, encounter=links.encounter,
                         appointment_id=links.appointment_id, entry=entry, full=full,
                         limit=HISTORY_SETS if full else vitals.PANEL_SETS)
    panel = dataclasses.replace(panel, problem=problem, notice=notice)
    return panel_page("vitals", panel, patient, access, links, status, audit=audit)


@bp.get("/patients/<uuid:patient_id>/vitals")
@requires(Permission.VITALS_READ)
def vitals_page(patient_id):
    """Every set of the patient's vitals, the trends and the form (htmx: the panel alone)."""
    patient, access = patient_with_access(patient_id, "vitals.view")
    return vitals_response(patient, access, links=links_from(request.args, patient))


@bp.post("/patients/<uuid:patient_id>/vitals")
@requires(Permission.VITALS_WRITE)
def record_vitals(patient_id):
    """Record a set of vitals (any measures, at least one); implausible values come back with 422."""
    patient, access = patient_with_access(patient_id, "vitals.record")
    links, full = links_from(request.form, patient), request.form.get("full") == "1"
    form = VitalsForm()
    if not form.validate():
        return vitals_response(patient, access, 422, full=full, links=links, entry=form.shown(),
                               problem="Check the highlighted values: nothing was recorded.")
    row = vitals.record_set(get_session(), patient=patient, values=form.values(), by=current_user.id,
                            encounter=links.encounter, appointment_id=links.appointment_id, doctor_id=links.doctor_id)
    audit_write("vitals.record", patient, access, "vitals", row.id)
    return done("Vitals recorded.", next_url(url_for("clinical_chart.vitals_page", patient_id=patient.id)),
                lambda message: vitals_response(patient, access, audit=False, full=full, links=links, notice=message))


@bp.post("/vitals/<uuid:vitals_id>/void")
@requires(Permission.VITALS_WRITE)
def void_vitals(vitals_id):
    """Mark a set entered in error (its recorder or a doctor): kept, struck through, out of the trends."""
    db = get_session()
    row = load_or_404(Vitals, vitals_id, "vitals.void", for_update=True)
    patient, access = patient_with_access(row.patient_id, "vitals.void")
    links, full = links_from(request.form, patient), request.form.get("full") == "1"
    if row.voided_at is not None:
        return vitals_response(patient, access, 409, full=full, links=links,
                               problem="That set was already marked entered in error.")
    if not vitals.may_void(g.role, current_user.id, row):
        refuse("vitals.void", patient.id, "only the recorder or a doctor may void a set")
    vitals.void_set(db, row, by=current_user.id)
    audit_write("vitals.void", patient, access, "vitals", row.id)
    back = next_url(url_for("clinical_chart.vitals_page", patient_id=patient.id))
    return done("The set is marked entered in error.", back,
                lambda message: vitals_response(patient, access, audit=False, full=full, links=links, notice=message))


# --- Allergies and problems -------------------------------------------------------------------------

def chart_response(patient: Patient, access: Access, status: int = 200, *, audit: bool = True,
                   links: Links = Links(), problem=None, notice=None, **forms) -> Response:
    """The chart page (allergies and problems), or for htmx its panel alone."""
    db = get_session()
    panel = chart.panel(db, clinic=g.clinic, patient=patient, access=access, encounter=links.encounter, **forms)
    panel = dataclasses.replace(panel, problem=problem, notice=notice)
    return panel_page("chart", panel, patient, access, links, status, audit=audit)


def chart_done(patient: Patient, access: Access, links: Links, message: str) -> Response:
    return done(message, next_url(url_for("clinical_chart.chart_page", patient_id=patient.id)),
                lambda text: chart_response(patient, access, audit=False, links=links, notice=text))


@bp.get("/patients/<uuid:patient_id>/chart")
@requires(Permission.VITALS_READ)
def chart_page(patient_id):
    """The patient's allergies and (for those who may see them) problems, with past entries."""
    patient, access = patient_with_access(patient_id, "chart.view")
    return chart_response(patient, access)


@bp.post("/patients/<uuid:patient_id>/allergies")
@requires(Permission.ALLERGY_WRITE)
def record_allergy(patient_id):
    """Record an allergy (ending "no known allergies"), or "no known allergies" itself (nka=1)."""
    # The patient row is locked so an allergy and "no known allergies" cannot cross each other.
    patient, access = patient_with_access(patient_id, "chart.record", for_update=True)
    links, db = links_from(request.form, patient), get_session()
    if request.form.get("nka"):
        try:
            item = chart.record_nka(db, patient=patient, by=current_user.id, encounter=links.encounter,
                                    doctor_id=links.doctor_id)
        except chart.ChartError as exc:
            db.rollback()
            return chart_response(patient, access, 409, links=links, problem=str(exc))
        audit_write("chart.record", patient, access, "chart_item", item.id)
        return chart_done(patient, access, links, "Recorded: no known allergies.")
    form = AllergyForm()
    if not form.validate():
        return chart_response(patient, access, 422, links=links, allergy_form=form.shown(),
                              problem="Check the allergy: nothing was recorded.")
    item, ended = chart.record_allergy(db, patient=patient, details=form.details(), by=current_user.id,
                                       encounter=links.encounter, doctor_id=links.doctor_id)
    audit_write("chart.record", patient, access, "chart_item", item.id)
    for nka in ended:
        audit_write("chart.end", patient, access, "chart_item", nka.id)
    return chart_done(patient, access, links, "Allergy recorded.")


@bp.post("/patients/<uuid:patient_id>/problems")
@requires(Permission.CLINICAL_WRITE)
def record_problem(patient_id):
    """Add a problem (condition and/or ICD-10 code, since when, a note); needs a care relationship."""
    patient, access = patient_with_access(patient_id, "chart.record")
    if not access.write:
        refuse("chart.record", patient.id, "no care relationship")
    links = links_from(request.form, patient)
    form = ProblemForm()
    if not form.validate():
        return chart_response(patient, access, 422, links=links, problem_form=form.shown(),
                              problem="Check the problem: nothing was recorded.")
    item = chart.record_problem(get_session(), patient=patient, details=form.details(), by=current_user.id,
                                encounter=links.encounter, doctor_id=links.doctor_id)
    audit_write("chart.record", patient, access, "chart_item", item.id)
    return chart_done(patient, access, links, "Problem added.")


@bp.post("/chart-items/<uuid:item_id>/end")
@requires(Permission.ALLERGY_WRITE)
def end_item(item_id):
    """End an allergy or problem: resolved, or entered in error (it moves to the past entries)."""
    db = get_session()
    item = load_or_404(ChartItem, item_id, "chart.end", for_update=True)
    patient, access = patient_with_access(item.patient_id, "chart.end")
    links = links_from(request.form, patient)
    if item.kind is ChartKind.PROBLEM and not (access.write and can(g.role, Permission.CLINICAL_WRITE)):
        refuse("chart.end", patient.id, "no care relationship")
    reason = next((r for r in chart.end_reasons(item) if r.value == request.form.get("reason")), None)
    if item.ended_at is not None or reason is None:
        status, text = (409, "That entry has already ended.") if item.ended_at else (422, "Choose how it ended.")
        return chart_response(patient, access, status, links=links, problem=text)
    chart.end(db, item, reason, by=current_user.id, doctor_id=links.doctor_id)
    audit_write("chart.end", patient, access, "chart_item", item.id)
    return chart_done(patient, access, links, f"{chart.END_LABELS[reason]}: moved to past entries.")

