"""Sign-in and account-security events of the clinic's staff (auditor, admin)."""

from datetime import datetime

from flask import Blueprint, g, request
from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.auth.models import AuthEvent, AuthEventKind, StaffUser
from app.auth.policy import Permission, requires
from app.clinics.models import Membership
from app.db import get_session
from app.htmx import render

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE = 50


def _parse_time(value: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else None


@bp.get("/sign-ins")
@requires(Permission.AUDIT_VIEW)
def sign_ins():
    """Sign-in events of this clinic's staff, newest first, filterable by kind; 'older' pages."""
    kind = request.args.get("kind") or None
    before = _parse_time(request.args.get("before"))
    subject, actor = aliased(StaffUser), aliased(StaffUser)
    members = select(Membership.user_id).where(Membership.clinic_id == g.clinic.id)
    stmt = (select(AuthEvent, subject.full_name, actor.full_name)
            .join(subject, subject.id == AuthEvent.user_id)
            .outerjoin(actor, actor.id == AuthEvent.actor_user_id)
            .where(AuthEvent.user_id.in_(members))
            .order_by(AuthEvent.at.desc()).limit(PAGE + 1))
    if kind in AuthEventKind._value2member_map_:
        stmt = stmt.where(AuthEvent.kind == AuthEventKind(kind))
    if before:
        stmt = stmt.where(AuthEvent.at < before)
    rows = get_session().execute(stmt).all()
    more = rows[PAGE].AuthEvent.at.isoformat() if len(rows) > PAGE else None
    return render("audit/sign_ins.html", "events", rows=rows[:PAGE], more=more, kind=kind,
                  kinds=list(AuthEventKind))
