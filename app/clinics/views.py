"""Clinic settings (clinic admin)."""

from flask import Blueprint, flash, g, render_template, url_for

from app.auth.policy import Permission, requires
from app.clinics.forms import ClinicForm
from app.clinics.services import update_clinic
from app.clinics.states import BY_CODE
from app.db import get_session
from app.htmx import client_redirect

bp = Blueprint("clinics", __name__, url_prefix="/clinic")


@bp.get("/settings")
@requires(Permission.SETTINGS_MANAGE)
def settings():
    """The clinic's name, address, state, GSTIN and time zone."""
    return render_template("clinics/settings.html", form=ClinicForm(obj=g.clinic))


@bp.post("/settings")
@requires(Permission.SETTINGS_MANAGE)
def settings_post():
    """Save the clinic's settings."""
    form = ClinicForm()
    if not form.validate():
        return render_template("clinics/settings.html", form=form), 422
    db = get_session()
    outside = update_clinic(db, g.clinic, form.data)
    db.commit()
    flash(f"Settings saved for {g.clinic.name} ({BY_CODE[g.clinic.state_code].name}).", "success")
    if outside:
        flash(f"{outside} booked appointment(s) now fall outside their doctor's hours (the new time zone or "
              "state's holidays): they stay booked and are listed under Schedule setup for follow-up.", "warning")
    return client_redirect(url_for("clinics.settings"))
