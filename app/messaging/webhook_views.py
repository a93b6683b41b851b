"""Twilio's status callbacks and inbound replies (signed; no session, no CSRF).

Each clinic has its own two addresses, /twilio/<clinic id>/status and /inbound, so the clinic (and
the auth token that must have signed the request) is known before anything is read. A request is
accepted only with a valid X-Twilio-Signature over the URL Twilio called and every posted field:
that URL is PUBLIC_URL + path + query (what Twilio was given; behind a proxy that ends TLS the app
itself sees http), or the URL as the app sees it (correct once ProxyFix trusts the proxy). An unknown
clinic, a clinic without Twilio credentials or a bad signature gets 403 and nothing is read; the
clinic's refusals are audited (no rate limit: a 403 costs one HMAC).

Answers are 200 whatever the message turned out to be (unknown SID, a reply not understood), so
Twilio does not retry them; a reply gets empty TwiML: no automatic answer goes back to the patient.
"""

import logging
import uuid

from flask import Blueprint, Response, abort, current_app, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.services import record
from app.auth.policy import PUBLIC, requires
from app.clinics.models import Clinic, ClinicRegistry
from app.db import get_session, set_tenant
from app.messaging import replies
from app.messaging.models import ReminderSettings
from app.messaging.twilio_client import signature_valid
from app.security.csrf import csrf
from app.security.fields import keyring

bp = Blueprint("messaging_webhook", __name__)
log = logging.getLogger(__name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _called_urls() -> list[str]:
    """The URLs Twilio may have signed: the public address of this path, and the URL as the app sees it."""
    query = request.query_string.decode("latin-1")
    public = current_app.config["PUBLIC_URL"].rstrip("/") + request.path + (f"?{query}" if query else "")
    return list(dict.fromkeys((public, request.url)))


def _auth_token(db: Session, clinic_id: uuid.UUID) -> str | None:
    """The clinic's Twilio auth token, or None when it has no Twilio credentials."""
    settings = db.get(ReminderSettings, clinic_id)
    if settings is None or not (settings.account_sid and settings.auth_token_enc):
        return None
    return keyring(db, clinic_id).open("reminder_settings", "auth_token", clinic_id, settings.auth_token_enc)


def signed_clinic(db: Session, clinic_id: uuid.UUID, action: str) -> Clinic:
    """The clinic this request is for, with the tenant set to it, when Twilio signed it with the clinic's
    auth token; otherwise 403 (audited when the clinic exists)."""
    if db.get(ClinicRegistry, clinic_id) is None:
        log.info("twilio %s for an unknown clinic refused", action)
        abort(403)
    current_user.is_authenticated  # noqa: B018 (loading a signed-in user resets the tenant: do it first)
    set_tenant(db, clinic_id=clinic_id, user_id=None)
    clinic = db.scalar(select(Clinic).where(Clinic.id == clinic_id))
    token = _auth_token(db, clinic_id)
    signature = request.headers.get("X-Twilio-Signature", "")
    if token is None:
        reason = "no Twilio credentials"
    elif not any(signature_valid(token, url, request.form, signature) for url in _called_urls()):
        reason = "bad signature" if signature else "no signature"
    else:
        return clinic
    record(db, action, clinic_id=clinic_id, object_type="clinic", object_id=clinic_id, outcome="denied",
           reason=reason)
    db.commit()
    log.info("twilio %s refused for clinic %s: %s", action, clinic_id, reason)
    abort(403)


def _message_sid() -> str:
    """The MessageSid Twilio posted (400 without one: a signed request that is not a message callback)."""
    sid = request.form.get("MessageSid", "")[:40]
    if not sid:
        abort(400)
    return sid


def _error_code() -> int | None:
    raw = request.form.get("ErrorCode", "").strip()
    return int(raw) if raw.isdecimal() and len(raw) < 9 else None


@bp.post("/twilio/<uuid:clinic_id>/status")
@requires(PUBLIC)
@csrf.exempt
def status(clinic_id):
    """Twilio reports what became of a message: its row moves forward (never back)."""
    db = get_session()
    clinic, sid = signed_clinic(db, clinic_id, "reminder.status"), _message_sid()
    outcome = replies.apply_status(db, clinic, sid=sid, status=request.form.get("MessageStatus", ""),
                                   error_code=_error_code(), to=request.form.get("To", ""))
    db.commit()
    log.info("twilio status for %s in clinic %s: %s", sid, clinic_id, outcome)
    return Response("", mimetype="text/plain")


@bp.post("/twilio/<uuid:clinic_id>/inbound")
@requires(PUBLIC)
@csrf.exempt
def inbound(clinic_id):
    """A patient's reply: act on it once (confirm, cancel, a new link, stop, start), answer nothing."""
    db = get_session()
    clinic, sid = signed_clinic(db, clinic_id, "reminder.reply"), _message_sid()
    incoming = replies.Incoming(sid=sid, sender=request.form.get("From", ""),
                                says=request.form.get("ButtonPayload") or request.form.get("Body"))
    try:
        outcome = replies.receive(db, clinic, incoming)
    except replies.Replayed:
        db.rollback()
        outcome = "replayed"
    else:
        db.commit()
    log.info("twilio reply %s in clinic %s: %s", sid[:40], clinic_id, outcome)
    return Response(EMPTY_TWIML, mimetype="text/xml")
