"""Deny by default: every request passes here before its view.

A route without a declared permission answers 403. Public routes pass. Sign-in-step routes need a
password-verified (pending) session and nothing more; every other route needs a full session
(password and MFA) and the route's permission for the user's role in the current clinic, which is
also set as the database tenant for the request. Unsafe requests have their CSRF token and origin checked
here (app/security/csrf.py), after the session and before the permission.
"""

import uuid

from flask import Flask, abort, current_app, flash, g, request, session, url_for
from flask_login import LoginManager, current_user

from app.auth.models import AuthEventKind, StaffUser
from app.auth.policy import PUBLIC, SIGN_IN_STEP, can
from app.auth.services import memberships_of, record_event
from app.db import get_session, set_tenant
from app.htmx import client_redirect
from app.security.csrf import csrf
from app.security.sessions import password_within

# Reachable while a user must still replace a temporary password.
PASSWORD_CHANGE_ENDPOINTS = {"auth.password", "auth.password_post", "auth.logout", "auth.session_status"}


class SessionOnlyLoginManager(LoginManager):
    """Flask-Login that knows a user only from the server-side session.

    Its remember-me cookie and request/header loaders are switched off: a cookie signed with
    SECRET_KEY must never stand in for a password and an authenticator code.
    """

    def _load_user_from_remember_cookie(self, cookie):
        return None

    def _load_user_from_header(self, header):
        return None

    def _load_user_from_request(self, request):
        return None


def init_app(app: Flask) -> None:
    manager = SessionOnlyLoginManager()
    manager.session_protection = None  # sessions are server-side and rotated explicitly
    manager.user_loader(_load_user)
    manager.init_app(app)
    app.before_request(enforce)


def _load_user(user_id: str) -> StaffUser | None:
    db = get_session()
    set_tenant(db, clinic_id=None, user_id=uuid.UUID(user_id))
    user = db.get(StaffUser, uuid.UUID(user_id))
    return user if user is not None and user.is_active and user.mfa_enrolled else None


def enforce():
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return None  # Flask answers 404/405 itself
    permission = "public" if request.endpoint == "static" else getattr(view, "permission", None)
    g.background_request = getattr(view, "background", False)
    ended = _note_expiry()
    if permission is None:
        abort(403)
    if _must_sign_in(permission, ended):
        return to_sign_in()
    csrf.check()  # only now: the form of a session that has ended goes to sign in, not to "this form has expired"
    if permission in (PUBLIC, SIGN_IN_STEP):
        return None
    if not _enter_clinic():
        abort(403, "Your account has no access to any clinic. Ask your clinic admin.")
    if current_user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return client_redirect(url_for("auth.password"))
    if not can(g.role, permission):
        deny(f"{request.method} {request.endpoint}")
    if getattr(view, "recent_password", False) and not password_within(session, current_app.config["REAUTH_SECONDS"]):
        return client_redirect(url_for("auth_reauth.confirm", next=request.full_path.rstrip("?")))
    return None


def _must_sign_in(permission: str, ended: bool) -> bool:
    """No live session where the route needs one; or Sign out (or in) from a page whose session has just ended
    (its form's token ended with it)."""
    if ended and request.blueprint == "auth" and request.method in current_app.config["WTF_CSRF_METHODS"]:
        return True
    if permission == SIGN_IN_STEP:
        return not session.get("pending_user_id")
    return permission != PUBLIC and not current_user.is_authenticated


def deny(what: str):
    """Record an access refused and answer 403 (the records are committed even though we abort)."""
    from app.audit.services import record

    db = get_session()
    record_event(db, AuthEventKind.ACCESS_DENIED, user_id=current_user.id, detail=what[:200], clinic_id=g.clinic.id)
    patient_id = (request.view_args or {}).get("patient_id")
    record(db, f"denied:{request.endpoint}"[:48], patient_id=patient_id, object_id=patient_id,
           object_type="patient" if patient_id else None, outcome="denied", reason="role not permitted")
    db.commit()
    abort(403)


def _enter_clinic() -> bool:
    """Pick the session's clinic among the user's memberships and make it the DB tenant."""
    db = get_session()
    memberships = memberships_of(db, current_user.id)
    if not memberships:
        return False
    wanted = session.get("clinic_id")
    membership = next((m for m in memberships if str(m.clinic_id) == wanted), memberships[0])
    if wanted != str(membership.clinic_id):
        session["clinic_id"] = str(membership.clinic_id)
    g.memberships, g.membership = memberships, membership
    g.clinic, g.role = membership.clinic, membership.role
    set_tenant(db, clinic_id=membership.clinic_id, user_id=current_user.id)
    return True


def _note_expiry() -> bool:
    """Record a user's session that this request found expired; True when there was one."""
    reason = getattr(session, "expired_reason", None)
    stale = getattr(session, "stale_row", None)
    if reason not in ("idle", "max") or stale is None or stale["user_id"] is None:
        return False
    db = get_session()
    record_event(db, AuthEventKind.SESSION_EXPIRED, user_id=stale["user_id"], detail=reason)
    db.commit()
    session.stale_row = None
    return True


def to_sign_in():
    """Send the browser to the sign-in page (HX-Redirect for htmx requests)."""
    reason = getattr(session, "expired_reason", None)
    if reason in ("idle", "max"):
        flash("You were signed out because the session expired. Please sign in again.", "info")
    nxt = request.full_path if request.method == "GET" and not g.background_request else None
    return client_redirect(url_for("auth.login", next=nxt.rstrip("?") if nxt else None))
