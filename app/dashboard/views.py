"""The signed-in home page."""

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, can, requires
from app.auth.services import recent_events
from app.clinics.states import BY_CODE
from app.db import get_session
from app.patients import break_glass
from app.patients.models import BreakGlass
from app.patients.services import mrns_of, staff_names

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@requires(Permission.HOME_VIEW)
def home():
    """Where each role starts: the clinic, the user's tools, notices for admins, recent sign-ins."""
    db = get_session()
    reviews = break_glass.awaiting_review(db, g.clinic.id) if can(g.role, Permission.BREAK_GLASS_REVIEW) else []
    if reviews:
        record(db, "break_glass.list", patient_ids=[r.patient_id for r in reviews], object_type="break_glass")
        db.commit()
    return render_template(
        "dashboard/home.html", state=BY_CODE.get(g.clinic.state_code),
        events=recent_events(db, current_user.id, limit=5), reviews=reviews,
        reviewers=staff_names(db, {r.user_id for r in reviews}),
        mrns=mrns_of(db, g.clinic.id, [r.patient_id for r in reviews]),
        can_staff=can(g.role, Permission.STAFF_MANAGE), can_settings=can(g.role, Permission.SETTINGS_MANAGE),
        can_audit=can(g.role, Permission.AUDIT_VIEW), can_find=can(g.role, Permission.PATIENT_VIEW_CONTACT),
        can_register=can(g.role, Permission.PATIENT_EDIT), can_schedule=can(g.role, Permission.SCHEDULE_VIEW),
        can_own_queue=can(g.role, Permission.QUEUE_OWN),
    )


@bp.post("/break-glass/<uuid:grant_id>/review")
@requires(Permission.BREAK_GLASS_REVIEW)
def review_break_glass(grant_id):
    """An admin marks a break-the-glass access as reviewed."""
    db = get_session()
    grant = load_or_404(BreakGlass, grant_id, "break_glass.review")
    if grant.user_id == current_user.id:
        abort(403, "Another admin must review your own break-the-glass access.")
    if grant.reviewed_at is not None:
        flash("This access was already reviewed.", "info")
        return redirect(url_for("dashboard.home"), code=303)
    break_glass.review(db, grant, by=current_user.id)
    db.commit()
    flash("Marked as reviewed.", "success")
    return redirect(url_for("dashboard.home"), code=303)
