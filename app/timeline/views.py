"""The unified patient timeline: one page per patient, newest first, filtered by kind, doctor or
speciality; htmx asks for the next page's items as the list scrolls, a plain "Older" link does the
same without JavaScript. Every page or fragment writes one audit record."""

from flask import Blueprint, abort, g, render_template, request
from flask_login import current_user
from jinja2_fragments.flask import render_block

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, requires
from app.clinical.access import access_for
from app.db import get_session
from app.htmx import html, is_htmx
from app.patients.models import Patient
from app.timeline import services

bp = Blueprint("timeline", __name__)


@bp.get("/patients/<uuid:patient_id>/timeline")
@requires(Permission.PATIENT_VIEW_CONTACT)
def index(patient_id):
    """A page of the patient's timeline (the next page's items alone for htmx's infinite scroll)."""
    patient = load_or_404(Patient, patient_id, "timeline.view")
    try:
        filters = services.parse_filters(request.args)
        before = services.decode_cursor(request.args.get("before"))
    except services.BadRequest as exc:
        abort(400, description=str(exc))
    db = get_session()
    access = access_for(db, clinic_id=g.clinic.id, user_id=current_user.id, role=g.role, patient_id=patient.id)
    timeline_panel = services.panel(db, clinic=g.clinic, patient=patient, access=access, user_id=current_user.id,
                                    role=g.role, filters=filters, before=before)
    label = None if is_htmx() else services.heading(db, patient)
    record(db, "timeline.view", patient_id=patient.id, object_type="patient", object_id=patient.id,
           reason=access.reason, flagged=access.flagged)
    db.commit()
    if label is None:
        body = render_block("timeline/_timeline.html", "timeline_items", timeline_panel=timeline_panel)
    else:
        body = render_template("timeline/index.html", patient=patient, label=label, timeline_panel=timeline_panel)
    return html(body)
