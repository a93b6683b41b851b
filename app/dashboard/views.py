"""The signed-in home page."""

from flask import Blueprint, g, render_template
from flask_login import current_user

from app.auth.policy import Permission, can, requires
from app.auth.services import recent_events
from app.clinics.states import BY_CODE
from app.db import get_session

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@requires(Permission.HOME_VIEW)
def home():
    """Where each role starts: the clinic, the user's tools and their recent sign-ins."""
    db = get_session()
    return render_template(
        "dashboard/home.html", state=BY_CODE.get(g.clinic.state_code),
        events=recent_events(db, current_user.id, limit=5),
        can_staff=can(g.role, Permission.STAFF_MANAGE), can_settings=can(g.role, Permission.SETTINGS_MANAGE),
        can_audit=can(g.role, Permission.AUDIT_VIEW),
    )
