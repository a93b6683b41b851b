"""The patient registry: search, register (with duplicate check), view, edit, consents.

Every page or fragment that shows PHI writes exactly one audit record; a patient of another clinic
(or none) is a 404 with a denied audit record.
"""


from flask import Blueprint, flash, g, redirect, request, url_for
from flask_login import current_user

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, can, requires
from app.clinical.access import access_for
from app.clinical.pages import panels
from app.db import get_session
from app.htmx import client_redirect, render
from app.patients import services
from app.patients.forms import ConsentForm, PatientForm, RegisterForm
from app.patients.models import Patient

bp = Blueprint("patients", __name__, url_prefix="/patients")


@bp.get("/")
@requires(Permission.PATIENT_VIEW_CONTACT)
def index():
    """The search page."""
    return render("patients/index.html", "results", q="", results=[],
                  can_register=can(g.role, Permission.PATIENT_EDIT))


@bp.post("/search")
@requires(Permission.PATIENT_VIEW_CONTACT)
def search():
    """Find a patient by name, phone or its last digits, MRN or ABHA (search as you type).

    A POST so what was typed (a name, a phone number) never sits in a URL, history or access log.
    """
    query = request.form.get("q", "").strip()[:100]
    db = get_session()
    results = services.search(db, g.clinic.id, query) if query else []
    if query:
        record(db, "patient.search", patient_ids=[p.id for p, _ in results], object_type="patient")
        db.commit()
    return render("patients/index.html", "results", q=query, results=results,
                  can_register=can(g.role, Permission.PATIENT_EDIT))


@bp.get("/new")
@requires(Permission.PATIENT_EDIT)
def new():
    """The registration form (also reached from search with the typed name)."""
    form = RegisterForm(state_code=g.clinic.state_code)
    return render("patients/new.html", "patient_form", form=form, duplicates=[])


@bp.post("/new")
@requires(Permission.PATIENT_EDIT)
def create():
    """Register the patient; possible duplicates are shown first and the user chooses."""
    form = RegisterForm()
    if not form.validate():
        return render("patients/new.html", "patient_form", status=422, form=form, duplicates=[])
    db = get_session()
    data = form.to_data()
    duplicates = services.possible_duplicates(db, g.clinic.id, data)
    if duplicates and not form.confirm_new.data:
        record(db, "patient.duplicate_check", patient_ids=[p.id for p, _ in duplicates], object_type="patient")
        db.commit()
        return render("patients/new.html", "patient_form", form=form, duplicates=duplicates)
    patient = services.register(db, clinic_id=g.clinic.id, data=data, by=current_user.id,
                                consents=form.consents())
    record(db, "patient.create", patient_id=patient.id, object_type="patient", object_id=patient.id)
    db.commit()
    flash("The patient is registered.", "success")  # no PHI: flashes sit in the session row
    return client_redirect(url_for("patients.show", patient_id=patient.id))


@bp.get("/<uuid:patient_id>")
@requires(Permission.PATIENT_VIEW_CONTACT)
def show(patient_id):
    """The patient's page: demographics, consents and the record's history."""
    patient = load_or_404(Patient, patient_id, "patient.view")
    db = get_session()
    full = can(g.role, Permission.PATIENT_VIEW)
    data = services.open_patient(db, patient, contact_only=not full)
    ledger = services.consent_ledger(db, patient) if full else []
    history = services.history(db, patient) if full else []
    people = {e.recorded_by for e in ledger} | {h.changed_by for h, _ in history}
    context = {
        "patient": patient, "data": data, "full": full, "ledger": ledger, "history": history,
        "consents": services.current_consents(ledger), "staff": services.staff_names(db, people),
        "purposes": services.CONSENT_PURPOSES, "methods": services.CONSENT_METHODS,
        "can_edit": can(g.role, Permission.PATIENT_EDIT),
        "can_book": can(g.role, Permission.SCHEDULE_BOOK),
        "appointments": appointment_list(db, patient) if can(g.role, Permission.SCHEDULE_VIEW) else None,
    }
    access = access_for(db, clinic_id=g.clinic.id, user_id=current_user.id, role=g.role, patient_id=patient.id)
    context.update(access=access, next_url=request.path, **panels(patient, access, None))
    record(db, "patient.view", patient_id=patient.id, object_type="patient", object_id=patient.id,
           reason=(access.reason if access.any_clinical else None) if full else "contact details only",
           flagged=access.flagged)
    db.commit()
    return render("patients/show.html", "consents", **context)


def appointment_list(db, patient: Patient) -> list:
    """The patient's latest appointments with their doctors' names and types (for the patient page)."""
    from app.scheduling import services as schedule

    appointments = schedule.patient_appointments(db, patient.clinic_id, patient.id)
    doctors = services.staff_names(db, {a.doctor_id for a in appointments})
    types = {t.id: t for t in schedule.appointment_types(db, patient.clinic_id, active_only=False)}
    return [(a, doctors.get(a.doctor_id, "—"), types.get(a.type_id)) for a in appointments]


@bp.get("/<uuid:patient_id>/edit")
@requires(Permission.PATIENT_EDIT)
def edit(patient_id):
    """The edit form, filled with the current record."""
    patient = load_or_404(Patient, patient_id, "patient.edit_form")
    db = get_session()
    form = PatientForm()
    form.fill_from(services.open_patient(db, patient), patient.version)
    record(db, "patient.edit_form", patient_id=patient.id, object_type="patient", object_id=patient.id)
    db.commit()
    return render("patients/edit.html", "patient_form", form=form, patient=patient)


@bp.post("/<uuid:patient_id>/edit")
@requires(Permission.PATIENT_EDIT)
def update(patient_id):
    """Save changes; a record changed meanwhile by someone else is not overwritten."""
    # Locked for the edit: a concurrent edit or key-rotation batch waits or skips this row.
    patient = load_or_404(Patient, patient_id, "patient.update", for_update=True)
    form = PatientForm()
    if not form.validate():
        return render("patients/edit.html", "patient_form", status=422, form=form, patient=patient)
    if form.version.data != str(patient.version):
        form.form_errors.append("Someone else changed this record while you were editing. "
                                "Your changes are below; reload the page to see theirs before saving again.")
        return render("patients/edit.html", "patient_form", status=409, form=form, patient=patient)
    db = get_session()
    changed = services.update(db, patient, form.to_data(), current_user.id)
    record(db, "patient.update", patient_id=patient.id, object_type="patient", object_id=patient.id,
           reason=("changed: " + ", ".join(changed)) if changed else "no changes")
    db.commit()
    flash("Saved." if changed else "Nothing was changed.", "success")
    return client_redirect(url_for("patients.show", patient_id=patient.id))


@bp.post("/<uuid:patient_id>/consents")
@requires(Permission.PATIENT_EDIT)
def consent(patient_id):
    """Record a consent given or withdrawn (effective at once; the ledger keeps every entry)."""
    patient = load_or_404(Patient, patient_id, "consent.change")
    form = ConsentForm()
    if not form.validate():
        flash("Choose a purpose, a decision and how it was given.", "error")
        return redirect(url_for("patients.show", patient_id=patient.id), code=303)
    db = get_session()
    granted = form.granted.data == "1"
    services.set_consent(db, patient, form.purpose.data, granted, form.method.data, current_user.id)
    record(db, "consent.change", patient_id=patient.id, object_type="consent", object_id=patient.id,
           reason=f"{form.purpose.data}: {'given' if granted else 'withdrawn'} ({form.method.data})")
    db.commit()
    flash(f"{services.CONSENT_PURPOSES[form.purpose.data]}: consent {'given' if granted else 'withdrawn'}.",
          "success")
    return client_redirect(url_for("patients.show", patient_id=patient.id))
