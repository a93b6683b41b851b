"""Staff and roles of the current clinic (clinic admin)."""

import uuid

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user

from app.audit.services import load_or_404
from app.auth.forms import REAUTH_ERRORS, ReauthForm, reauth_status
from app.auth.models import StaffUser
from app.auth.policy import Permission, Role, requires
from app.auth.services import verify_current_password
from app.clinics.models import Membership
from app.db import get_session
from app.staff import services
from app.staff.forms import ProfessionalForm, RoleForm, StaffForm

bp = Blueprint("staff", __name__, url_prefix="/staff")


def _member_or_404(user_id: uuid.UUID) -> tuple[Membership, StaffUser]:
    """The clinic's staff member and their account, or a denied audit record and 404."""
    membership = load_or_404(Membership, user_id, "staff.view", object_type="staff")
    return membership, get_session().get(StaffUser, user_id)


@bp.get("/")
@requires(Permission.STAFF_MANAGE)
def index():
    """Everyone with a role in this clinic."""
    return render_template("staff/index.html", rows=services.staff_of(get_session(), g.clinic.id))


@bp.get("/new")
@requires(Permission.STAFF_MANAGE)
def new():
    """Form to give a person a role in this clinic."""
    return render_template("staff/new.html", form=StaffForm())


@bp.post("/new")
@requires(Permission.STAFF_MANAGE)
def create():
    """Add the person; a new account's temporary password is shown once."""
    form = StaffForm()
    db = get_session()
    if form.validate():
        existing = db.query(StaffUser).filter_by(email=form.email.data.strip().lower()).one_or_none()
        if existing and services.is_member(db, g.clinic.id, existing.id):
            form.email.errors = ["This person already has a role in this clinic."]
        else:
            try:
                user, password = services.add_staff(db, clinic=g.clinic, email=form.email.data,
                                                    full_name=form.full_name.data, role=Role(form.role.data),
                                                    actor=current_user)
            except services.AccountElsewhere:
                db.rollback()
                form.email.errors = ["This e-mail already has a ClinicDesk account at a clinic you do not administer. "
                                     "Ask that clinic's admin to add this clinic to it."]
                return render_template("staff/new.html", form=form), 422
            db.commit()
            if password is None:
                flash(f"{user.full_name} now also has a role here.", "success")
                return redirect(url_for("staff.show", user_id=user.id), code=303)
            return render_template("staff/created.html", user=user, password=password)
    return render_template("staff/new.html", form=form), 422


def _show(membership, user, *, reauth=None, role_form=None, professional=None, status=200):
    db = get_session()
    return render_template("staff/show.html", membership=membership, person=user,
                           reauth=reauth or ReauthForm(),
                           role_form=role_form or RoleForm(role=membership.role.value),
                           professional=professional or ProfessionalForm(obj=user),
                           is_self=user.id == current_user.id,
                           manages_account=services.may_manage_account(db, current_user.id, user.id)), status


@bp.get("/<uuid:user_id>")
@requires(Permission.STAFF_MANAGE)
def show(user_id):
    """One staff member: role, MFA, status, and the actions on their account."""
    return _show(*_member_or_404(user_id))


@bp.post("/<uuid:user_id>/professional")
@requires(Permission.STAFF_MANAGE)
def professional(user_id):
    """Set a doctor's qualifications, speciality and registration (printed on prescriptions)."""
    membership, user = _member_or_404(user_id)
    if not services.may_manage_account(get_session(), current_user.id, user.id) or membership.role is not Role.DOCTOR:
        abort(403, description="Only the admin of every clinic this doctor works at can change their registration.")
    form = ProfessionalForm()
    if not form.validate():
        return _show(membership, user, professional=form, status=422)
    db = get_session()
    services.set_professional(db, user, form.data)
    db.commit()
    flash(f"{user.full_name}'s professional details are saved.", "success")
    return redirect(url_for("staff.show", user_id=user.id), code=303)


@bp.post("/<uuid:user_id>/role")
@requires(Permission.STAFF_MANAGE)
def role(user_id):
    """Change the person's role in this clinic."""
    membership, user = _member_or_404(user_id)
    form = RoleForm()
    if not form.validate() or user.id == current_user.id:
        form.role.errors = ["You cannot change your own role."] if user.id == current_user.id else form.role.errors
        return _show(membership, user, role_form=form, status=422)
    db = get_session()
    services.change_role(db, membership, Role(form.role.data), current_user)
    db.commit()
    flash(f"{user.full_name} is now {membership.role.label}.", "success")
    return redirect(url_for("staff.show", user_id=user.id), code=303)


def _account_action(user_id, action, done_message, *, account_wide=True):
    membership, user = _member_or_404(user_id)
    form = ReauthForm()
    db = get_session()
    if user.id == current_user.id:
        abort(403, "You cannot do this to your own account.")
    if account_wide and not services.may_manage_account(db, current_user.id, user.id):
        abort(403, "This person also works at a clinic you do not administer; ask that clinic's admin. "
                   "You can remove them from this clinic.")
    outcome = verify_current_password(db, current_user, form.password.data or "",
                                      purpose=f"{action.__name__} for {user.email}") if form.validate() else "invalid"
    if outcome != "ok":
        db.commit()
        form.password.errors = [REAUTH_ERRORS[outcome]]
        return _show(membership, user, reauth=form, status=reauth_status(outcome))
    action(db, membership if not account_wide else user, current_user)
    db.commit()
    flash(done_message.format(name=user.full_name), "success")
    if not account_wide:
        return redirect(url_for("staff.index"), code=303)
    return redirect(url_for("staff.show", user_id=user.id), code=303)


@bp.post("/<uuid:user_id>/disable")
@requires(Permission.STAFF_MANAGE)
def disable(user_id):
    """Disable the account; its sessions end at once."""
    return _account_action(user_id, services.disable,
                           "{name}'s account is disabled and their sessions have ended.")


@bp.post("/<uuid:user_id>/enable")
@requires(Permission.STAFF_MANAGE)
def enable(user_id):
    """Re-enable a disabled account."""
    return _account_action(user_id, services.enable, "{name}'s account is enabled again.")


@bp.post("/<uuid:user_id>/reset-mfa")
@requires(Permission.STAFF_MANAGE)
def reset_mfa(user_id):
    """Remove the person's authenticator; they enrol again at next sign-in."""
    return _account_action(user_id, services.reset_mfa,
                           "{name}'s authenticator was removed; they will set up a new one at next sign-in.")


@bp.post("/<uuid:user_id>/remove")
@requires(Permission.STAFF_MANAGE)
def remove(user_id):
    """Take away the person's role in this clinic (their account and other clinics stay)."""
    return _account_action(user_id, services.remove_from_clinic, "{name} no longer has a role in this clinic.",
                           account_wide=False)
