"""The PHI audit trail and sign-in activity of the clinic's staff (auditor, admin).

Opening the trail or exporting it is itself recorded (`audit.view`, `audit.export`).
"""

from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, g, redirect, request, stream_with_context, url_for
from flask_login import current_user
from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.orm import aliased

from app.audit import shipping, trail
from app.audit.chain import latest_verification, record_verification, verify
from app.audit.services import record
from app.auth.models import AuthEvent, AuthEventKind, StaffUser
from app.auth.policy import Permission, recent_password, requires
from app.clinics.models import Membership
from app.db import get_session, utcnow
from app.htmx import is_htmx, render

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE = 50


@bp.get("/sign-ins")
@requires(Permission.AUDIT_VIEW)
def sign_ins():
    """Sign-in events of this clinic's staff, newest first, filterable by kind; 'older' pages."""
    kind = request.args.get("kind") or None
    before = trail.cursor(request.args.get("before"))
    subject, actor = aliased(StaffUser), aliased(StaffUser)
    # This clinic's events, and account-wide ones (sign-ins, passwords, MFA) of its staff from the
    # day they joined; never what happened to them in another clinic.
    stmt = (select(AuthEvent, subject.full_name, actor.full_name)
            .join(subject, subject.id == AuthEvent.user_id)
            .join(Membership, and_(Membership.user_id == AuthEvent.user_id, Membership.clinic_id == g.clinic.id))
            .outerjoin(actor, actor.id == AuthEvent.actor_user_id)
            .where(or_(AuthEvent.clinic_id == g.clinic.id,
                       and_(AuthEvent.clinic_id.is_(None), AuthEvent.at >= Membership.created_at)))
            .order_by(AuthEvent.at.desc(), AuthEvent.id.desc()).limit(PAGE + 1))
    if kind in AuthEventKind._value2member_map_:
        stmt = stmt.where(AuthEvent.kind == AuthEventKind(kind))
    if before:
        stmt = stmt.where(tuple_(AuthEvent.at, AuthEvent.id) < before)
    rows = get_session().execute(stmt).all()
    last = rows[PAGE - 1].AuthEvent if len(rows) > PAGE else None
    more = f"{last.at.isoformat()}_{last.id}" if last else None
    return render("audit/sign_ins.html", "events", rows=rows[:PAGE], more=more, kind=kind,
                  kinds=list(AuthEventKind))


def _filters(db, source=None):
    staff = trail.staff_choices(db, g.clinic.id)
    return trail.parse_filters(db, g.clinic, source if source is not None else request.args, staff), staff


def _record(db, action: str, f: trail.Filters, extra: str = "") -> None:
    """Audit the auditor: what kind of filter, and the patient when one was asked about."""
    ids = f.patient_ids or []
    record(db, action, object_type="audit_trail", patient_id=ids[0] if len(ids) == 1 else None,
           patient_ids=ids if len(ids) > 1 else None, reason=f.describe() + extra)
    db.commit()


@bp.get("/")
@requires(Permission.AUDIT_VIEW)
def index(f: "trail.Filters | None" = None):
    """The audit trail, newest first, filterable (who looked at a patient), with the chain's status."""
    db = get_session()
    if f is None and request.args.get("mrn"):  # an MRN typed into a URL: answer with the id instead
        f, _ = _filters(db)
        if f.patient_ids:
            return redirect(url_for("audit.index", **f.args()), code=303)
    f, staff = (f, trail.staff_choices(db, g.clinic.id)) if f is not None else _filters(db)
    before = trail.cursor(request.args.get("before"))
    rows, more = trail.page(db, g.clinic.id, f, before)
    _record(db, "audit.view", f, "; older page" if before else "")
    integrity = None if is_htmx() else latest_verification(db, g.clinic.id)
    db.commit()  # ends the read; unlike a rollback it does not expire the rows about to be shown
    return render("audit/trail.html", "events", rows=rows, more=more, f=f, staff=staff, actions=trail.ACTIONS,
                  integrity=integrity, shipped=None if is_htmx() else shipping.last_shipped(g.clinic.id),
                  same_disk=None if is_htmx() else shipping.same_disk_warning())


@bp.post("/verify")
@requires(Permission.AUDIT_VIEW)
def verify_now():
    """Check the whole trail now and keep the result (the checkpoint job also does, every few minutes)."""
    db = get_session()
    result = verify(db, g.clinic.id)
    record_verification(db, result, by=current_user.id)
    record(db, "audit.verify", object_type="audit_trail", reason="intact" if result.ok else "problem found")
    db.commit()
    flash("The trail is intact." if result.ok else "The trail failed verification: see below.",
          "success" if result.ok else "error")
    return redirect(url_for("audit.index"), code=303)


@bp.post("/")
@requires(Permission.AUDIT_VIEW)
def find_patient():
    """'Who looked at this patient?': the MRN comes in the form body and leaves as the patient's id,
    so no MRN sits in a URL, the browser history or a log."""
    db = get_session()
    f, _ = _filters(db, request.form)
    if f.patient_ids or (not f.mrn and not f.errors):
        return redirect(url_for("audit.index", **f.args()), code=303)
    return index(f)  # no such MRN (or not an MRN): say so on the page, without a redirect


@bp.get("/export.csv")
@requires(Permission.AUDIT_VIEW)
@recent_password
def export():
    """The filtered trail as CSV (cells a spreadsheet would run as formulas are quoted)."""
    db = get_session()
    f, _ = _filters(db)
    _record(db, "audit.export", f)
    name = trail.export_filename(g.clinic, utcnow().astimezone(ZoneInfo(g.clinic.timezone)).date())
    response = Response(stream_with_context(_stream(db, trail.csv_lines(db, g.clinic, f))), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _stream(db, lines):
    """Yield the lines, then close the session: the request's teardown ran before streaming began."""
    try:
        yield from lines
    finally:
        db.close()
