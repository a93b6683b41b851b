"""Confirming the password again before an export (catalogue case 32, ASVS 3.7.1).

Routes marked `recent_password` need the password typed within REAUTH_SECONDS; the guard sends an
older session here with the page asked for as `next`, and a confirmed password goes on to it. Wrong
passwords count against the account's re-authentication limit; both outcomes are recorded in the
sign-in events and the audit trail.
"""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, request, session, url_for
from flask_login import current_user

from app.audit.services import record
from app.auth import services
from app.auth.forms import REAUTH_ERRORS, ReauthForm, reauth_status
from app.auth.models import AuthEventKind
from app.auth.policy import Permission, requires
from app.db import get_session
from app.htmx import client_redirect, render, safe_next
from app.security.sessions import note_password

bp = Blueprint("auth_reauth", __name__)


def _page(form: ReauthForm, nxt: str | None, status: int = 200):
    return render("auth/confirm.html", "confirm_form", status=status, form=form, next=nxt,
                  minutes=current_app.config["REAUTH_SECONDS"] // 60)


@bp.get("/auth/confirm")
@requires(Permission.HOME_VIEW)
def confirm():
    """Ask for the password again before going on to `next` (a download)."""
    return _page(ReauthForm(), safe_next(request.args.get("next")))


@bp.post("/auth/confirm")
@requires(Permission.HOME_VIEW)
def confirm_post():
    """Check the password (rate-limited, recorded either way); when right, go on to `next`."""
    form, nxt = ReauthForm(), safe_next(request.form.get("next"))
    if not form.validate():
        return _page(form, nxt, 422)
    wanted = urlsplit(nxt).path if nxt else "the home page"
    db = get_session()
    outcome = services.verify_current_password(db, current_user, form.password.data, purpose=f"confirm for {wanted}")
    if outcome != "ok":
        record(db, "auth.reauth", outcome="denied", reason=f"{outcome} password, for {wanted}")
        db.commit()
        form.password.errors = [REAUTH_ERRORS[outcome]]
        return _page(form, nxt, reauth_status(outcome))
    services.record_event(db, AuthEventKind.REAUTH_OK, user_id=current_user.id, detail=wanted[:200])
    record(db, "auth.reauth", reason=f"password confirmed, for {wanted}")
    db.commit()
    note_password(session)  # the session's absolute lifetime still runs from the sign-in with both factors
    return client_redirect(nxt or url_for("dashboard.home"))
