"""Reminder settings, the outbox transport's messages and the 'needs a call' list (staff pages).

The settings hold no PHI and are not read-audited; every save is (field names only, never a value or
the token). The outbox and the call list open patients' numbers and names: each page or fragment
writes one audit record listing the patients shown.
"""

from flask import Blueprint, flash, g, redirect, request, url_for
from flask_login import current_user

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, requires
from app.db import get_session
from app.htmx import client_redirect, is_htmx, render
from app.messaging import desk, texts
from app.messaging import settings as reminder_settings
from app.messaging.forms import SettingsForm
from app.messaging.models import Reminder
from app.messaging.outbox import settings_of

bp = Blueprint("messaging_desk", __name__, url_prefix="/reminders")
SETTINGS = "messaging/settings.html"
OUTBOX = "messaging/outbox.html"
CALLS = "messaging/calls.html"
MAX_PAGE = 1000


# --- Settings ------------------------------------------------------------------------------------

def _settings_page(values: dict, status: int = 200, errors: dict | None = None, problem: str | None = None):
    db = get_session()
    return render(SETTINGS, "settings_form", status=status, values=values, errors=errors or {}, problem=problem,
                  token_stored=reminder_settings.has_token(db, g.clinic.id),
                  webhooks=reminder_settings.webhook_urls(g.clinic.id), channels=reminder_settings.CHANNELS,
                  transports=reminder_settings.TRANSPORTS, languages=reminder_settings.LANGUAGE_NAMES,
                  limits=reminder_settings.SEGMENT_LIMITS, whatsapp_texts=texts.WHATSAPP_TEMPLATES)


@bp.get("/settings")
@requires(Permission.REMINDERS_MANAGE)
def settings():
    """When reminders go, on which channels, through what, and what they say in each language."""
    return _settings_page(reminder_settings.form_values(get_session(), g.clinic.id))


@bp.post("/settings")
@requires(Permission.REMINDERS_MANAGE)
def settings_post():
    """Save the reminder settings and templates; messages planned from now on use them."""
    db = get_session()
    form = SettingsForm(clinic=g.clinic, token_stored=reminder_settings.has_token(db, g.clinic.id))
    if not form.validate():
        return _settings_page(form.typed(), 422, form.messages(), "Check the highlighted fields; nothing was saved.")
    changed = reminder_settings.save(db, g.clinic.id, form.cleaned(), by=current_user.id)
    record(db, "reminders.settings", object_type="clinic", object_id=g.clinic.id,
           reason="changed: " + (", ".join(changed) or "nothing"))
    db.commit()
    flash("Reminder settings saved. Messages planned from now on follow them.", "success")
    return client_redirect(url_for("messaging_desk.settings"))


# --- The outbox ----------------------------------------------------------------------------------

def _page_number(text: str | None) -> int:
    return int(text) if text and text.isdecimal() and 1 <= int(text) <= MAX_PAGE else 1


@bp.get("/outbox")
@requires(Permission.REMINDERS_VIEW)
def outbox():
    """The messages the outbox transport 'sent', newest first, as the patient would read them."""
    page = _page_number(request.args.get("page"))
    db = get_session()
    messages, more = desk.outbox_page(db, g.clinic.id, page)
    transport = settings_of(db, g.clinic.id).transport
    record(db, "reminders.outbox", patient_ids=sorted({m.patient_id for m in messages}), object_type="reminder",
           reason=f"page {page}")
    db.commit()
    return render(OUTBOX, "outbox_list", messages=messages, page=page, more=more, transport=transport,
                  kind_label=desk.kind_label)


# --- Needs a call --------------------------------------------------------------------------------

def _calls_page():
    db = get_session()
    found = desk.calls(db, g.clinic.id)
    record(db, "reminders.calls", patient_ids=sorted({c.patient_id for c in found}), object_type="reminder")
    db.commit()
    return render(CALLS, "calls_list", calls=found, kind_label=desk.kind_label)


@bp.get("/calls")
@requires(Permission.REMINDERS_VIEW)
def calls():
    """Upcoming appointments whose reminders did not reach the patient: phone them."""
    return _calls_page()


@bp.post("/calls/<uuid:reminder_id>/done")
@requires(Permission.REMINDERS_VIEW)
def call_done(reminder_id):
    """Someone phoned the patient: the appointment leaves the list."""
    db = get_session()
    reminder = load_or_404(Reminder, reminder_id, "reminders.call_done", for_update=True)
    count = desk.acknowledge(db, reminder, by=current_user.id)
    record(db, "reminders.call_done", patient_id=reminder.patient_id, object_type="reminder", object_id=reminder.id,
           reason=f"{count} message(s) acknowledged")
    if is_htmx():
        return _calls_page()  # the list without that appointment (its commit covers this record too)
    db.commit()
    flash("Done: that appointment has left the list." if count else "That appointment was already done.",
          "success")
    return redirect(url_for("messaging_desk.calls"), code=303)
