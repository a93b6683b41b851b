"""Prescriptions: the editor panel on the encounter page, the prescription's page and PDF (made from the
page's own `document` block), new versions, and the public check of a printed verification code.

Only the encounter's own doctor writes; doctors in care and nurses with a break-the-glass grant read.
Every response that shows a prescription writes one audit record (flagged under break-the-glass).
"""

import uuid

import segno
from flask import Blueprint, Response, abort, g, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.services import load_or_404, record
from app.auth.policy import PUBLIC, Permission, can, requires
from app.clinical import prescriptions as rx_service
from app.clinical import rx_code, rx_pages, rx_text
from app.clinical.access import Access, access_for
from app.clinical.forms import DRUG_LENGTH, ItemForm
from app.clinical.models import Encounter, Prescription
from app.clinical.pages import refuse
from app.clinical.prescriptions import RxError
from app.clinics.models import Clinic, ClinicRegistry
from app.db import get_session, set_tenant
from app.htmx import client_redirect, is_htmx, render, render_partial, safe_next
from app.patients.models import Patient
from app.pdf import write_pdf
from app.scheduling import services as schedule

bp = Blueprint("clinical_rx", __name__)
# Held by doctors and nurses; `access_for` then decides per patient (doctor in care, or break-the-glass).
READ = Permission.CLINICAL_SUMMARY
PANEL = "clinical/_prescription.html"


# --- Loading and authorising ------------------------------------------------------------------------

def _access(patient_id: uuid.UUID) -> Access:
    return access_for(get_session(), clinic_id=g.clinic.id, user_id=current_user.id, role=g.role,
                      patient_id=patient_id)


def _refuse(action: str, patient_id: uuid.UUID, object_id: uuid.UUID, message: str, reason: str):
    refuse(action, patient_id, object_type="prescription", object_id=object_id, reason=reason, message=message)


def readable(rx: Prescription, action: str) -> Access:
    """Access to read this prescription (the patient's summary), or 403 (audited)."""
    access = _access(rx.patient_id)
    if not access.summary:
        _refuse(action, rx.patient_id, rx.id, "You have no care relationship with this patient. In an emergency, "
                "break the glass from the patient's consultation page.", "no care relationship")
    return access


def writable(encounter: Encounter, action: str, object_id: uuid.UUID) -> Access:
    """Access to prescribe in this encounter: its own doctor, with clinical access, or 403 (audited)."""
    access = _access(encounter.patient_id)
    if not access.write or encounter.doctor_id != current_user.id:
        _refuse(action, encounter.patient_id, object_id, "Only the consultation's own doctor can write its "
                "prescription.", "not the consultation's doctor")
    return access


# --- Responses after a change -----------------------------------------------------------------------

def _next_url(encounter: Encounter) -> str:
    return safe_next(request.form.get("next")) or url_for("clinical.encounter", encounter_id=encounter.id)


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdecimal() and len(raw) < 9 else -1


def _panel_response(encounter: Encounter, patient: Patient, access: Access, status: int = 200,
                    **state) -> Response:
    """The panel (htmx), or for a refused change without JavaScript a full page with the form as typed."""
    db = get_session()
    rx_panel = rx_pages.panel(db, clinic=g.clinic, patient=patient, access=access, encounter=encounter, **state)
    context = {"rx_panel": rx_panel, "patient": patient, "access": access, "encounter": encounter,
               "next_url": _next_url(encounter)}
    if is_htmx():
        response = render_partial(PANEL, status=status, **context)
    else:
        response = render("clinical/prescription.html", "document", status=status, doc=None, **context,
                          **_page_flags(None, access))
    db.commit()
    return response


def _changed(encounter: Encounter, patient: Patient, access: Access) -> Response:
    """After a change: the panel for htmx on the encounter page; otherwise back to where the form was."""
    target = _next_url(encounter)
    if is_htmx() and not target.startswith("/prescriptions/"):
        return _panel_response(encounter, patient, access)
    get_session().commit()
    return client_redirect(target)


def _refused(exc: RxError, action: str, encounter: Encounter, patient: Patient, access: Access,
             **state) -> Response:
    """A change refused with a message (422 for the allergy check's, 409 otherwise)."""
    status = 422 if isinstance(exc, rx_service.Invalid) else 409
    return _not_saved(action, encounter, patient, access, status, type(exc).__name__.lower(), problem=str(exc),
                      **state)


def _not_saved(action: str, encounter: Encounter, patient: Patient, access: Access, status: int, why: str,
               **state) -> Response:
    """The panel again with what was refused; the one audit record notes that nothing was saved."""
    db = get_session()
    db.rollback()
    record(db, action, patient_id=patient.id, object_type="encounter", object_id=encounter.id,
           reason=f"not saved: {why}")
    return _panel_response(encounter, patient, access, status, **state)


# --- The editor -------------------------------------------------------------------------------------

@bp.post("/encounters/<uuid:encounter_id>/prescription/items")
@requires(Permission.CLINICAL_WRITE)
def add_item(encounter_id):
    """Add a medicine to the consultation's draft prescription (started with its first medicine)."""
    encounter = load_or_404(Encounter, encounter_id, "prescription.item_add", for_update=True)
    access = writable(encounter, "prescription.item_add", encounter.id)
    patient = load_or_404(Patient, encounter.patient_id, "prescription.item_add")
    db, form = get_session(), ItemForm()
    if not form.validate():
        return _not_saved("prescription.item_add", encounter, patient, access, 422, "invalid",
                          problem="Check the highlighted fields.", item=form.typed(), errors=form.messages())
    try:
        rx = rx_service.add_item(db, encounter=encounter, item=form.item(), language=patient.language,
                                 by=current_user.id)
    except RxError as exc:
        return _refused(exc, "prescription.item_add", encounter, patient, access, item=form.typed())
    record(db, "prescription.item_add", patient_id=patient.id, object_type="prescription", object_id=rx.id)
    return _changed(encounter, patient, access)


@bp.get("/encounters/<uuid:encounter_id>/prescription/check")
@requires(Permission.CLINICAL_WRITE)
def check_item(encounter_id):
    """While the doctor types a medicine (htmx): its allergy and duplicate alerts before it is added.
    Without JavaScript the alerts show on the panel once it is added: back to the consultation."""
    encounter = load_or_404(Encounter, encounter_id, "prescription.check")
    writable(encounter, "prescription.check", encounter.id)
    if not is_htmx():
        return client_redirect(url_for("clinical.encounter", encounter_id=encounter.id))
    patient = load_or_404(Patient, encounter.patient_id, "prescription.check")
    db = get_session()
    drug = " ".join(request.args.get("drug", "").split())[:DRUG_LENGTH]
    check = rx_pages.check_one(db, patient=patient, encounter=encounter, drug=drug) if drug else None
    if check is not None:
        record(db, "prescription.check", patient_id=patient.id, object_type="encounter", object_id=encounter.id)
    db.commit()
    return render(PANEL, "rx_drug_check", drug_check=check)


def _draft_change(rx_id: uuid.UUID, action: str, change, **typed) -> Response:
    """Load the prescription and its encounter for a writer, apply `change`, answer (a refusal shows the
    panel with `typed`, what the form held)."""
    rx = load_or_404(Prescription, rx_id, action, for_update=True)
    encounter = load_or_404(Encounter, rx.encounter_id, action, for_update=True)
    access = writable(encounter, action, rx.id)
    patient = load_or_404(Patient, rx.patient_id, action)
    db = get_session()
    try:
        change(db, rx, patient)
    except rx_service.Invalid as exc:
        return _refused(exc, action, encounter, patient, access, errors=exc.errors, **typed)
    except RxError as exc:
        return _refused(exc, action, encounter, patient, access, **typed)
    record(db, action, patient_id=patient.id, object_type="prescription", object_id=rx.id)
    return _changed(encounter, patient, access)


def _index() -> int:
    raw = request.form.get("index", "")
    return int(raw) if raw.isdecimal() and len(raw) < 4 else -1


@bp.post("/prescriptions/<uuid:rx_id>/items/remove")
@requires(Permission.CLINICAL_WRITE)
def remove_item(rx_id):
    """Remove a medicine from a draft."""
    return _draft_change(rx_id, "prescription.item_remove", lambda db, rx, patient: rx_service.remove_item(
        db, rx, _index(), version=_version()))


@bp.post("/prescriptions/<uuid:rx_id>/advice")
@requires(Permission.CLINICAL_WRITE)
def save_advice(rx_id):
    """Save a draft's general advice and the language it is printed in."""
    def change(db, rx, patient):
        rx_service.set_advice(db, rx, request.form.get("advice", ""))
        rx.language = rx_text.language_for(request.form.get("language", rx.language))
    return _draft_change(rx_id, "prescription.advice", change)


@bp.post("/prescriptions/<uuid:rx_id>/sign")
@requires(Permission.CLINICAL_WRITE)
def sign(rx_id):
    """Save the advice as typed, then sign the draft: numbered, sealed with its code, locked for good. A
    medicine matching a recorded allergy needs the doctor's reason (422 without it, the form kept)."""
    form = {name: request.form.get(name, "") for name in ("advice", "language", "override")}

    def change(db, rx, patient):
        _, review = rx_service.sign(db, rx=rx, patient=patient, version=_version(),
                                    language=form["language"] or rx.language, advice=form["advice"],
                                    by=current_user.id, override=form["override"])
        if review.blocking:  # the reason itself is clinical content: sealed with the prescription, not here
            record(db, "prescription.allergy_override", patient_id=patient.id, object_type="prescription",
                   object_id=rx.id, reason=f"signed despite {len(review.blocking)} allergy alert(s), "
                                           "with the doctor's reason")
    return _draft_change(rx_id, "prescription.sign", change, sign_form=form)


@bp.post("/prescriptions/<uuid:rx_id>/discard")
@requires(Permission.CLINICAL_WRITE)
def discard(rx_id):
    """Delete a draft (a signed prescription is never deleted)."""
    rx = load_or_404(Prescription, rx_id, "prescription.discard", for_update=True)
    encounter = load_or_404(Encounter, rx.encounter_id, "prescription.discard", for_update=True)
    access = writable(encounter, "prescription.discard", rx.id)
    patient = load_or_404(Patient, rx.patient_id, "prescription.discard")
    db = get_session()
    replaces = rx.replaces_id
    try:
        rx_service.discard(db, rx)
    except RxError as exc:
        return _refused(exc, "prescription.discard", encounter, patient, access)
    record(db, "prescription.discard", patient_id=patient.id, object_type="prescription", object_id=rx_id)
    target = _next_url(encounter)
    if str(rx_id) in target:  # the draft's own page is gone: its predecessor's, or the consultation
        target = url_for("clinical_rx.show", rx_id=replaces) if replaces else url_for(
            "clinical.encounter", encounter_id=encounter.id)
        db.commit()
        return client_redirect(target)
    return _changed(encounter, patient, access)


@bp.post("/prescriptions/<uuid:rx_id>/revise")
@requires(Permission.CLINICAL_WRITE)
def revise(rx_id):
    """Change a signed prescription: a draft of its next version, with its items (same number)."""
    rx = load_or_404(Prescription, rx_id, "prescription.revise", for_update=True)
    encounter = load_or_404(Encounter, rx.encounter_id, "prescription.revise", for_update=True)
    access = writable(encounter, "prescription.revise", rx.id)
    patient = load_or_404(Patient, rx.patient_id, "prescription.revise")
    db = get_session()
    try:
        draft = rx_service.new_version(db, rx, language=patient.language, by=current_user.id)
    except RxError as exc:
        return _refused(exc, "prescription.revise", encounter, patient, access)
    record(db, "prescription.revise", patient_id=patient.id, object_type="prescription", object_id=draft.id,
           reason=f"new version of {rx.id}")
    if request.form.get("next"):
        return _changed(encounter, patient, access)
    db.commit()
    return client_redirect(url_for("clinical_rx.show", rx_id=draft.id))


# --- The prescription's page and PDF ------------------------------------------------------------------

def verify_url(rx: Prescription) -> str:
    """The public address a pharmacist checks the code at (the QR code's content)."""
    return url_for("clinical_rx.verify", clinic_id=rx.clinic_id, rx_id=rx.id, code=rx.code, _external=True)


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG markup (no inline style, no image request, prints sharp)."""
    svg = segno.make(text, error="m").svg_inline(scale=1, border=2, omitsize=True, svgclass="rx-qr-code",
                                                  lineclass=None, title="Verification QR code")
    return Markup(svg)  # noqa: S704 (segno's own markup around a URL it encodes as modules, not text)


def _document_context(rx: Prescription) -> dict:
    doc = rx_pages.document(get_session(), clinic=g.clinic, rx=rx, today=schedule.today(g.clinic))
    signed = {"verify_url": verify_url(rx), "qr": qr_svg(verify_url(rx))} if rx.locked else {}
    return {"doc": doc, "verify_url": None, "qr": None, **signed}


def _page_flags(rx: Prescription | None, access: Access) -> dict:
    writer = rx is not None and access.write and rx.doctor_id == current_user.id
    return {"can_revise": writer and rx.locked, "can_open_encounter": can(g.role, Permission.CLINICAL_READ)}


@bp.get("/prescriptions/<uuid:rx_id>")
@requires(READ)
def show(rx_id):
    """The prescription as printed, with Print / Download PDF / New version; a draft with its editor."""
    rx = load_or_404(Prescription, rx_id, "prescription.view")
    access = readable(rx, "prescription.view")
    patient = load_or_404(Patient, rx.patient_id, "prescription.view")
    db = get_session()
    context = {**_document_context(rx), **_page_flags(rx, access), "patient": patient, "access": access}
    encounter = db.get(Encounter, (rx.clinic_id, rx.encounter_id))
    if not rx.locked:
        rx_panel = rx_pages.panel(db, clinic=g.clinic, patient=patient, access=access, encounter=encounter)
        context.update(encounter=encounter, next_url=url_for("clinical_rx.show", rx_id=rx.id), rx_panel=rx_panel)
    context["can_revise"] = context["can_revise"] and context["doc"].replaced_by is None
    record(db, "prescription.view", patient_id=rx.patient_id, object_type="prescription", object_id=rx.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    return render("clinical/prescription.html", "document", **context)


@bp.get("/prescriptions/<uuid:rx_id>.pdf")
@requires(READ)
def pdf(rx_id):
    """The signed prescription as a PDF, made from the page's own `document` block."""
    rx = load_or_404(Prescription, rx_id, "prescription.download")
    access = readable(rx, "prescription.download")
    if not rx.locked:
        abort(409, description="A draft cannot be printed: sign it first.")
    context = _document_context(rx)
    # The page's own block, rendered (and escaped) by Jinja, is the PDF's body: one markup for both.
    document = Markup(render_block("clinical/prescription.html", "document", **context))  # noqa: S704
    body = write_pdf(render_template("clinical/rx_print.html", document=document, doc=context["doc"]), "rx.css")
    db = get_session()
    record(db, "prescription.download", patient_id=rx.patient_id, object_type="prescription", object_id=rx.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="prescription-{rx.number}-v{rx.revision}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- The public check ------------------------------------------------------------------------------

def _public_clinic(db: Session, clinic_id: uuid.UUID) -> Clinic | None:
    """The clinic, with the request's tenant set to it (a public request has no signed-in clinic)."""
    if db.get(ClinicRegistry, clinic_id) is None:
        return None
    current_user.is_authenticated  # noqa: B018 (loading a signed-in user resets the tenant: do it first)
    set_tenant(db, clinic_id=clinic_id, user_id=None)
    return db.scalar(select(Clinic).where(Clinic.id == clinic_id))


@bp.get("/rx/<uuid:clinic_id>/<uuid:rx_id>")
@requires(PUBLIC)
def verify(clinic_id, rx_id):
    """Anyone (a pharmacist scanning the QR code) checks a printed prescription's code: genuine or not."""
    db = get_session()
    clinic = _public_clinic(db, clinic_id)
    typed = request.args.get("code", "")[:40]
    context = {"clinic_id": clinic_id, "rx_id": rx_id, "typed": typed, "found": None, "clinic": clinic}
    if clinic is None:
        return render_template("clinical/rx_verify.html", **context), 404
    if rx_code.too_many_failures(db, clinic.id):
        # Not audited once limited: the failures that led here are, and an anonymous client must not be
        # able to append to the clinic's trail without end.
        db.rollback()
        abort(429)
    found = rx_pages.verify(db, clinic, rx_id, typed)
    record(db, "prescription.verify", clinic_id=clinic.id, patient_id=found.rx.patient_id if found else None,
           object_type="prescription", object_id=rx_id, outcome="allowed" if found else "denied",
           reason=None if found else "code does not match")
    db.commit()
    context["found"] = found
    return render_template("clinical/rx_verify.html", **context), 200 if found else 404

