"""Writing PHI audit records. If the record cannot be written, the request fails with it.

Records hold who, role, clinic, patient(s), action, object, outcome, purpose or reason, address,
agent and time — never PHI values. Each row carries an HMAC of its contents under a per-clinic key
derived from the master key (outside the database); the chain job links rows afterwards.
"""

import hashlib
import hmac
import json
import uuid
from datetime import UTC

from flask import abort, g, has_request_context, request
from flask_login import current_user
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.db import get_session, new_id, utcnow
from app.security.client import client_address
from app.security.crypto import master_key
from app.security.text import printable


def audit_key(clinic_id: uuid.UUID) -> bytes:
    return master_key().derive(f"audit-chain|{clinic_id}")


def canonical(event: AuditEvent) -> bytes:
    """The bytes an event's MAC covers: every column but seq and the MAC itself, as a JSON list
    (unambiguous whatever the values contain)."""
    ids = sorted(str(p) for p in (event.patient_ids or []))
    fields = [event.clinic_id, event.id, event.at.astimezone(UTC).isoformat(), event.user_id, event.role, event.action,
              event.object_type, event.object_id, event.patient_id, ids, event.outcome, event.reason,
              bool(event.flagged), event.ip, event.user_agent]
    return json.dumps([f if f is None or isinstance(f, (bool, list)) else str(f) for f in fields],
                      separators=(",", ":")).encode()



def event_mac(event: AuditEvent) -> str:
    return hmac.new(audit_key(event.clinic_id), canonical(event), hashlib.sha256).hexdigest()


def record(db: Session, action: str, *, patient_id=None, patient_ids=None, object_type=None, object_id=None,
           outcome: str = "allowed", reason: str | None = None, flagged: bool = False,
           clinic_id: uuid.UUID | None = None) -> AuditEvent:
    """Append one audit record in the current transaction (flushed now, so a failure fails the request)."""
    signed_in = has_request_context() and current_user.is_authenticated
    event = AuditEvent(
        id=new_id(), clinic_id=clinic_id or g.clinic.id, at=utcnow(),
        user_id=current_user.id if signed_in else None,
        role=g.role.value if signed_in and g.get("role") else None,
        action=action, object_type=object_type, object_id=object_id, patient_id=patient_id,
        patient_ids=list(patient_ids) if patient_ids is not None else None, outcome=outcome,
        reason=printable(reason, 300) or None, flagged=flagged,
        ip=client_address(),  # as PostgreSQL will store it, so the MAC survives the round trip
        user_agent=printable(request.user_agent.string, 200) if has_request_context() else None,
    )
    event.mac = event_mac(event)
    db.add(event)
    db.flush()
    return event


def deny_not_found(db: Session, action: str, *, object_type: str, object_id) -> None:
    """Record a refused look at something not in this clinic, commit that, and answer 404."""
    record(db, action, object_type=object_type, object_id=object_id, outcome="denied",
           reason="not found in this clinic")
    db.commit()
    abort(404)


def load_or_404(model, object_id: uuid.UUID, action: str, *, object_type: str | None = None,
                for_update: bool = False, where: dict | None = None):
    """The current clinic's row of `model` with this id (locked if `for_update`), else a denied record and 404.

    `where` names columns the row must also match (a doctor's session under that doctor's address); the
    record names the table unless `object_type` says otherwise. No hint whether the id exists elsewhere."""
    db = get_session()
    row = db.get(model, (g.clinic.id, object_id), with_for_update=for_update)
    if row is None or any(getattr(row, column) != value for column, value in (where or {}).items()):
        deny_not_found(db, action, object_type=object_type or model.__tablename__, object_id=object_id)
    return row
