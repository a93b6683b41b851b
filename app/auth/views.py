"""Sign-in (password, then TOTP or a recovery code), MFA enrolment, the account page and sessions."""

import base64
import uuid

import pyotp
import segno
from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from app.auth import services
from app.auth.forms import (
    REAUTH_ERRORS,
    CodeForm,
    LoginForm,
    PasswordChangeForm,
    ReauthForm,
    RecoveryForm,
    reauth_status,
)
from app.auth.models import AuthEventKind, StaffUser
from app.auth.passwords import password_problem
from app.auth.policy import PUBLIC, SIGN_IN_STEP, Permission, requires
from app.db import get_session, set_tenant
from app.htmx import client_redirect, render, safe_next
from app.security.crypto import master_key
from app.security.sessions import end_sessions_of, note_password, seconds_left

bp = Blueprint("auth", __name__)


def _pending_user() -> StaffUser:
    db = get_session()
    user = db.get(StaffUser, uuid.UUID(session["pending_user_id"]))
    if user is None or not user.is_active:
        session.destroy()
        abort(403)
    return user


@bp.get("/auth/login")
@requires(PUBLIC)
def login():
    """The sign-in page."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    return render_template("auth/login.html", form=LoginForm(), next=safe_next(request.args.get("next")))


@bp.post("/auth/login")
@requires(PUBLIC)
def login_post():
    """Check e-mail and password; on success the session rotates and waits for the second factor."""
    form = LoginForm()
    nxt = safe_next(request.form.get("next"))
    if not form.validate():
        return render_template("auth/login.html", form=form, next=nxt), 422
    db = get_session()
    outcome, user = services.check_password(db, form.email.data, form.password.data)
    db.commit()
    if outcome != "ok":
        status = 429 if outcome == "locked" else 422
        message = ("Too many sign-in attempts. Please wait a few minutes and try again." if outcome == "locked"
                   else "That e-mail and password do not match an active account.")
        return render_template("auth/login.html", form=form, next=nxt, error=message), status
    session.clear()
    session.rotate()
    note_password(session)
    session["pending_user_id"] = str(user.id)
    session["next"] = nxt
    return redirect(url_for("auth.mfa" if user.mfa_enrolled else "auth.enrol"), code=303)


def _finish_sign_in(db, user: StaffUser):
    """Both factors passed: rotate the session again and sign the user in."""
    nxt, password_at = session.get("next"), session.get("password_at")
    session.clear()
    session.rotate()
    session["password_at"] = password_at
    login_user(user)
    services.record_event(db, AuthEventKind.MFA_OK, user_id=user.id)
    return nxt


@bp.get("/auth/mfa")
@requires(SIGN_IN_STEP)
def mfa():
    """Ask for the authenticator code."""
    user = _pending_user()
    if not user.mfa_enrolled:
        return redirect(url_for("auth.enrol"))
    return render_template("auth/mfa.html", form=CodeForm())


def _code_failed(template: str, form, outcome: str, **context):
    messages = {
        "locked": "Too many wrong codes. Please wait a few minutes and try again.",
        "replay": "That code was already used. Wait for the next code from your authenticator app.",
        "invalid": "That code is not correct. Check the time on your phone and try the newest code.",
    }
    form.code.errors = [messages[outcome]]
    return render_template(template, form=form, **context), 429 if outcome == "locked" else 422


@bp.post("/auth/mfa")
@requires(SIGN_IN_STEP)
def mfa_post():
    """Check the TOTP code (each code works once) and finish signing in."""
    user = _pending_user()
    if not user.mfa_enrolled:  # e.g. a tab left open while an admin reset the authenticator
        return redirect(url_for("auth.enrol"), code=303)
    form = CodeForm()
    if not form.validate():
        return render_template("auth/mfa.html", form=form), 422
    db = get_session()
    outcome = services.check_totp(db, user, form.code.data)
    if outcome != "ok":
        db.commit()
        return _code_failed("auth/mfa.html", form, outcome)
    nxt = _finish_sign_in(db, user)
    db.commit()
    return redirect(nxt or url_for("dashboard.home"), code=303)


@bp.get("/auth/recovery")
@requires(SIGN_IN_STEP)
def recovery():
    """Sign in with a recovery code instead of the authenticator."""
    _pending_user()
    return render_template("auth/recovery.html", form=RecoveryForm())


@bp.post("/auth/recovery")
@requires(SIGN_IN_STEP)
def recovery_post():
    """Spend one recovery code and finish signing in."""
    user = _pending_user()
    form = RecoveryForm()
    if not form.validate() or not user.mfa_enrolled:
        return render_template("auth/recovery.html", form=form), 422
    db = get_session()
    outcome = services.use_recovery_code(db, user, form.code.data)
    if outcome != "ok":
        db.commit()
        form.code.errors = ["That recovery code is not valid or was already used." if outcome == "invalid"
                            else "Too many wrong codes. Please wait a few minutes and try again."]
        return render_template("auth/recovery.html", form=form), 429 if outcome == "locked" else 422
    _finish_sign_in(db, user)
    left = services.recovery_codes_left(db, user)
    db.commit()
    flash(f"You signed in with a recovery code. {left} codes are left; set up a new authenticator "
          "or new codes from your account page if you lost your phone.", "warning")
    return redirect(url_for("auth.account"), code=303)


def _enrol_secret(user: StaffUser) -> str:
    """The authenticator key being set up, kept in the session sealed under the master key."""
    aad = f"enrol|{user.id}".encode()
    sealed = session.get("enrol_secret")
    if sealed:
        return master_key().unseal("enrol-secret", base64.b64decode(sealed), aad).decode()
    secret = pyotp.random_base32(32)
    session["enrol_secret"] = base64.b64encode(master_key().seal("enrol-secret", secret.encode(), aad)).decode()
    return secret


def _enrol_context(user: StaffUser) -> dict:
    secret = _enrol_secret(user)
    uri = services.provisioning_uri(user, secret)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return {"qr": qr, "secret": grouped, "user": user}


@bp.get("/auth/enrol")
@requires(SIGN_IN_STEP)
def enrol():
    """First sign-in: set up the authenticator app (QR code and the key as text)."""
    user = _pending_user()
    if user.mfa_enrolled:
        return redirect(url_for("auth.mfa"))
    return render_template("auth/enrol.html", form=CodeForm(), **_enrol_context(user))


@bp.post("/auth/enrol")
@requires(SIGN_IN_STEP)
def enrol_post():
    """Confirm the authenticator with a code, then show the recovery codes once."""
    user = _pending_user()
    if user.mfa_enrolled or "enrol_secret" not in session:
        return redirect(url_for("auth.mfa"), code=303)
    form = CodeForm()
    if not form.validate():
        return render_template("auth/enrol.html", form=form, **_enrol_context(user)), 422
    db = get_session()
    secret = _enrol_secret(user)
    outcome = services.check_totp(db, user, form.code.data, secret=secret)
    if outcome != "ok":
        db.commit()
        return _code_failed("auth/enrol.html", form, outcome, **_enrol_context(user))
    codes = services.enrol_mfa(db, user, secret)
    nxt = _finish_sign_in(db, user)
    db.commit()
    following = url_for("auth.password") if user.must_change_password else (nxt or url_for("dashboard.home"))
    return render_template("auth/recovery_codes.html", codes=codes, next_url=following)


@bp.post("/auth/logout")
@requires(PUBLIC)
def logout():
    """End the session on the server; the old cookie is useless afterwards."""
    if current_user.is_authenticated:
        db = get_session()
        services.record_event(db, AuthEventKind.SIGNED_OUT, user_id=current_user.id)
        db.commit()
    session.destroy()
    return client_redirect(url_for("auth.login", signed_out=1))


@bp.get("/account")
@requires(Permission.ACCOUNT_MANAGE)
def account():
    """The user's own account: password, recovery codes, recent sign-ins."""
    db = get_session()
    return render_template("auth/account.html", codes_left=services.recovery_codes_left(db, current_user),
                           events=services.recent_events(db, current_user.id), reauth=ReauthForm())


@bp.get("/account/password")
@requires(Permission.ACCOUNT_MANAGE)
def password():
    """Change password (required after a temporary password)."""
    return render("auth/password.html", "password_form", form=PasswordChangeForm())


@bp.post("/account/password")
@requires(Permission.ACCOUNT_MANAGE)
def password_post():
    """Set a new password; every other session of the user ends."""
    form = PasswordChangeForm()
    db = get_session()
    status = 422
    if form.validate():
        problem = password_problem(form.new.data, email=current_user.email, name=current_user.full_name)
        outcome = services.verify_current_password(db, current_user, form.current.data, purpose="password change")
        if outcome != "ok":
            form.current.errors = [REAUTH_ERRORS[outcome].replace("Your password", "Your current password")]
            status = reauth_status(outcome)
        elif problem:
            form.new.errors = [problem]
        else:
            services.set_password(db, current_user, form.new.data, actor=current_user)
            db.commit()
            end_sessions_of(current_user.id, keep=session.token)
            flash("Your password was changed. Your other sessions were signed out.", "success")
            return client_redirect(url_for("auth.account"))
    db.commit()
    return render("auth/password.html", "password_form", status=status, form=form)


@bp.post("/account/recovery-codes")
@requires(Permission.ACCOUNT_MANAGE)
def recovery_codes_post():
    """Replace all recovery codes (after re-entering the password); shows the new ones once."""
    form = ReauthForm()
    db = get_session()
    outcome = services.verify_current_password(db, current_user, form.password.data or "",
                                               purpose="new recovery codes") if form.validate() else "invalid"
    if outcome != "ok":
        db.commit()
        form.password.errors = [REAUTH_ERRORS[outcome]]
        return render_template("auth/account.html", codes_left=services.recovery_codes_left(db, current_user),
                               events=services.recent_events(db, current_user.id), reauth=form), reauth_status(outcome)
    codes = services.issue_recovery_codes(db, current_user)
    db.commit()
    return render_template("auth/recovery_codes.html", codes=codes, next_url=url_for("auth.account"))


@bp.get("/session/status")
@requires(PUBLIC, background=True)
def session_status():
    """Seconds left in this session, for the idle warning; polling this is not activity."""
    if not current_user.is_authenticated:
        return jsonify(signed_in=False, seconds_left=0)
    return jsonify(signed_in=True, seconds_left=seconds_left(session))


@bp.post("/session/extend")
@requires(Permission.HOME_VIEW)
def session_extend():
    """'Stay signed in': a deliberate action, so it counts as activity."""
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) != "application/json":
        return redirect(url_for("dashboard.home"), code=303)
    return jsonify(signed_in=True, seconds_left=current_app.config["SESSION_IDLE_SECONDS"])


@bp.post("/session/clinic")
@requires(Permission.HOME_VIEW)
def switch_clinic():
    """Work in another of the user's clinics."""
    wanted = request.form.get("clinic_id", "")
    membership = next((m for m in g.memberships if str(m.clinic_id) == wanted), None)
    if membership is None:
        abort(404)
    session["clinic_id"] = wanted
    db = get_session()
    set_tenant(db, clinic_id=membership.clinic_id, user_id=current_user.id)
    services.record_event(db, AuthEventKind.CLINIC_SWITCHED, user_id=current_user.id, clinic_id=membership.clinic_id,
                          detail=membership.clinic.name[:200])
    db.commit()
    flash(f"You are now working in {membership.clinic.name} as {membership.role.label}.", "success")
    return client_redirect(url_for("dashboard.home"))

