"""A clinic's reminder settings and message templates: the form's values, checking what was typed, saving.

The form (app/messaging/forms.py) gives the cleaned values; saving flushes, never commits (the view
audits, then commits). The Twilio auth token is write-only: it is sealed with the
clinic's key, never put back into a form, and a blank field keeps the one stored.

SMS texts are checked the way an operator's DLT scrubber and the phone will meet them: only the four
fields in braces, the link always there, and the text filled with the longest values this clinic can
produce (its own name, the longest date and time in that language, a link at PUBLIC_URL) within the
segments texts.py allows each language (English 2, Hindi 3).
"""

import re
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy.orm import Session

from app.clinics.models import Clinic
from app.db import utcnow
from app.messaging import links, outbox, plan, texts
from app.messaging.models import ReminderSettings, ReminderTemplate, Transport
from app.security.fields import keyring

CHANNELS = {"whatsapp,sms": "WhatsApp first, SMS when WhatsApp cannot reach the patient",
            "sms,whatsapp": "SMS first, WhatsApp when SMS cannot reach the patient",
            "whatsapp": "WhatsApp only", "sms": "SMS only"}
TRANSPORTS = {Transport.OUTBOX.value: "Outbox: messages are kept on the Outbox page, nothing leaves the clinic",
              Transport.TWILIO.value: "Twilio: messages go to patients' phones"}
SEGMENT_LIMITS = {"en": 2, "hi": 3}
LANGUAGE_NAMES = {"en": "English", "hi": "Hindi"}
TWILIO_FIELDS = ("account_sid", "whatsapp_from", "sms_from", "messaging_service_sid")
TEMPLATE_FIELDS = ("whatsapp_content_sid", "offer_content_sid", "sms_text", "offer_sms_text", "dlt_template_id",
                   "offer_dlt_template_id")
_OFFSET = re.compile(r"(?:(\d{1,3})\s*d(?:ays?)?)?\s*(?:(\d{1,4})\s*h(?:ours?|rs?)?)?\s*"
                     r"(?:(\d{1,5})\s*m(?:ins?|inutes?)?)?", re.IGNORECASE)
_TOKEN_CHARS = 22  # a link token: 16 random bytes in URL-safe base64 (app/messaging/links.py)


@dataclass
class Cleaned:
    """What the form says, checked: the settings row's values, a new auth token (None keeps the stored
    one) and each language's template values."""

    settings: dict
    auth_token: str | None
    templates: dict[str, dict]


# --- The form's values ---------------------------------------------------------------------------

def _field(language: str, name: str) -> str:
    return f"{language}_{name}"


def format_offsets(minutes_csv: str) -> str:
    """"1440,120" as the form shows it: "24h, 2h"."""
    return ", ".join(plan.kind_of(timedelta(minutes=int(m))) for m in minutes_csv.split(",") if m)


def form_values(db: Session, clinic_id: uuid.UUID) -> dict:
    """The settings form's values as saved (the defaults where nothing is), never the auth token."""
    saved = outbox.settings_of(db, clinic_id)
    values = {name: getattr(saved, name) or "" for name in TWILIO_FIELDS}
    values.update(enabled="y" if saved.enabled else "", channels=saved.channels, transport=saved.transport.value,
                  offsets_minutes=format_offsets(saved.offsets_minutes),
                  quiet_start=saved.quiet_start.strftime("%H:%M"), quiet_end=saved.quiet_end.strftime("%H:%M"))
    for language in texts.LANGUAGES:
        template = outbox.template_of(db, clinic_id, language)
        values.update({_field(language, name): getattr(template, name) or "" for name in TEMPLATE_FIELDS})
    return values


def has_token(db: Session, clinic_id: uuid.UUID) -> bool:
    """Whether an auth token is stored (the form says so, without showing it)."""
    return outbox.settings_of(db, clinic_id).auth_token_enc is not None


def webhook_urls(clinic_id: uuid.UUID) -> dict[str, str]:
    """The addresses the clinic pastes into Twilio: status callbacks and incoming messages."""
    base = f"{current_app.config['PUBLIC_URL'].rstrip('/')}/twilio/{clinic_id}"
    return {"status": f"{base}/status", "inbound": f"{base}/inbound"}


# --- Checking what was typed (the form: app/messaging/forms.py) ----------------------------------

def parse_offsets(text: str) -> list[timedelta]:
    """"24h, 2h" or "3d, 90m, 1h30m": each a time before the appointment (ValueError if one is not)."""
    offsets = []
    for part in (p.strip() for p in text.split(",")):
        match = _OFFSET.fullmatch(part)
        if not part or not match or not any(match.groups()):
            raise ValueError(f"“{part[:20]}” is not a time before the appointment: write e.g. 24h, 2h or 90m.")
        days, hours, minutes = (int(g or 0) for g in match.groups())
        offsets.append(timedelta(days=days, hours=hours, minutes=minutes))
    return offsets


def sms_problem(text: str, clinic: Clinic, language: str) -> str | None:
    """Why an SMS text cannot be used, or None: its fields in braces, the link, and the segments it takes when
    filled with the longest values."""
    if not text:
        return "Required: the text registered on DLT."
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text)
                  if name is not None]
    except ValueError:
        return "A { or } without its pair: the fields are written {clinic}, {date}, {time} and {link}."
    unknown = sorted({f"{{{name}}}" for name, spec, conversion in fields
                      if name not in texts.TEXT_FIELDS or spec or conversion})
    if unknown:
        return f"Only {{clinic}}, {{date}}, {{time}} and {{link}} may be used, not {', '.join(unknown)}."
    if "link" not in {name for name, _, _ in fields}:
        return "The text must contain {link}: SMS carries no replies, the link is how a patient answers."
    filled = text.format(**longest_values(clinic, language))
    count, limit = texts.segments(filled), SEGMENT_LIMITS[language]
    if count > limit:
        return (f"Too long: with the longest date, time and link it takes {count} SMS segments; "
                f"{LANGUAGE_NAMES[language]} texts may take {limit}. Shorten it.")
    return None


def _cost(text: str) -> int:
    return len(text.encode("utf-16-le"))


def longest_values(clinic: Clinic, language: str) -> dict[str, str]:
    """The longest {clinic} {date} {time} {link} this clinic's messages can carry in a language."""
    zone = ZoneInfo(clinic.timezone)
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    dates = (texts.format_date((start + timedelta(days=n)).astimezone(zone), language) for n in range(366))
    times = (texts.format_time(datetime(2025, 1, 1, hour, 59), language) for hour in range(24))
    link = links.url_of("x" * _TOKEN_CHARS)
    return {"clinic": " ".join(clinic.name.split()), "date": max(dates, key=_cost), "time": max(times, key=_cost),
            "link": link}


# --- Saving --------------------------------------------------------------------------------------

def save(db: Session, clinic_id: uuid.UUID, cleaned: Cleaned, *, by: uuid.UUID) -> list[str]:
    """Write the settings and each language's templates (creating rows as needed); the fields changed."""
    row = db.get(ReminderSettings, clinic_id)
    if row is None:
        row = ReminderSettings(clinic_id=clinic_id, key_version=keyring(db, clinic_id).active.version)
        db.add(row)
    changed = [name for name, value in cleaned.settings.items() if getattr(row, name) != value]
    for name, value in cleaned.settings.items():
        setattr(row, name, value)
    if cleaned.auth_token:
        ring = keyring(db, clinic_id)
        row.auth_token_enc = ring.seal("reminder_settings", "auth_token", clinic_id, cleaned.auth_token)
        row.key_version = ring.active.version
        changed.append("auth_token")
    row.updated_at, row.updated_by = utcnow(), by
    for language, values in cleaned.templates.items():
        changed += [f"{language}.{name}" for name in _save_template(db, clinic_id, language, values, by)]
    db.flush()
    return changed


def _save_template(db: Session, clinic_id: uuid.UUID, language: str, values: dict, by: uuid.UUID) -> list[str]:
    row = db.get(ReminderTemplate, (clinic_id, language))
    if row is None:
        row = outbox.template_of(db, clinic_id, language)  # the built-in texts, so "changed" means changed
        db.add(row)
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by = utcnow(), by
    return changed
