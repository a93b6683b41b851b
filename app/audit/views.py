"""Sign-in and account-security events of the clinic's staff (auditor, admin)."""

import uuid
from datetime import datetime

from flask import Blueprint, g, request
from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.orm import aliased

from app.auth.models import AuthEvent, AuthEventKind, StaffUser
from app.auth.policy import Permission, requires
from app.clinics.models import Membership
from app.db import get_session
from app.htmx import render

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE = 50


def _cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    """An 'older than' cursor `<iso time>_<event id>`, or None when absent or malformed."""
    try:
        at, event_id = (value or "").rsplit("_", 1)
        parsed = datetime.fromisoformat(at)
        return (parsed, uuid.UUID(event_id)) if parsed.tzinfo else None
    except ValueError:
        return None


@bp.get("/sign-ins")
@requires(Permission.AUDIT_VIEW)
def sign_ins():
    """Sign-in events of this clinic's staff, newest first, filterable by kind; 'older' pages."""
    kind = request.args.get("kind") or None
    before = _cursor(request.args.get("before"))
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
