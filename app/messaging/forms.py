"""The reminder settings form: schedule, quiet hours, transport and Twilio senders, and each language's
templates. It is built for a clinic (its SMS texts are measured with the clinic's own longest values) and
knows whether an auth token is stored (a blank one then keeps it); `cleaned()` is what the service saves."""

import re
from datetime import time

from wtforms import BooleanField, StringField
from wtforms.validators import AnyOf, Regexp, ValidationError

from app.forms import KeptForm, squeeze, squeezed, stripped
from app.messaging import plan, texts
from app.messaging.models import Transport
from app.messaging.settings import CHANNELS, TRANSPORTS, Cleaned, parse_offsets, sms_problem

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9]{1,11}")
HEX32 = "[0-9a-fA-F]{32}"
TEMPLATE_SIDS = ("whatsapp_content_sid", "offer_content_sid")
DLT_IDS = ("dlt_template_id", "offer_dlt_template_id")
SMS_TEXTS = ("sms_text", "offer_sms_text")


def _sid(prefix: str, what: str) -> StringField:
    return StringField(filters=[squeezed(40)], validators=[Regexp(f"^({prefix}{HEX32})?$", message=(
        f"“{prefix}” followed by 32 letters and digits (0-9, a-f){what}"))])


def _whatsapp_number(text: str) -> str:
    return text.removeprefix("whatsapp:").replace(" ", "")


def _whatsapp_from(form, field):
    if field.data and not E164.fullmatch(_whatsapp_number(field.data)):
        raise ValidationError("The WhatsApp sender's number with its country code, e.g. +14155238886.")


def _sms_from(form, field):
    sms = field.data.replace(" ", "")
    if sms and not (E164.fullmatch(sms) or SENDER_ID.fullmatch(sms)):
        raise ValidationError("A number with its country code (e.g. +14155238886) or a sender ID of up to 11 letters.")


def _clock() -> StringField:
    return StringField(filters=[squeezed(8)], validators=[
        Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", message="A time of day as HH:MM, e.g. 21:00.")])


def _sms_text(language: str):
    def check(form, field):
        problem = sms_problem(field.data, form.clinic, language)
        if problem:
            raise ValidationError(problem)
    return check


class SettingsForm(KeptForm):
    """Reminder settings: fields as app/messaging/settings.py names them, templates as `<language>_<name>`."""

    enabled = BooleanField()
    channels = StringField(validators=[AnyOf(CHANNELS, message="Choose which channels to use.")])
    offsets_minutes = StringField(filters=[squeezed(60)])
    quiet_start, quiet_end = _clock(), _clock()
    transport = StringField(validators=[AnyOf(TRANSPORTS, message="Choose where messages go.")])
    account_sid = _sid("AC", ", as Twilio's console shows it.")
    auth_token = StringField(filters=[stripped], validators=[
        Regexp(f"^({HEX32})?$", message="Twilio's auth token is 32 letters and digits (0-9, a-f).")])
    whatsapp_from = StringField(filters=[squeezed(40)], validators=[_whatsapp_from])
    sms_from = StringField(filters=[squeezed(40)], validators=[_sms_from])
    messaging_service_sid = _sid("MG", ", as Twilio's console shows it.")

    def __init__(self, *args, clinic, token_stored: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic, self.token_stored = clinic, token_stored

    def typed(self) -> dict:
        """What was typed, never the auth token."""
        return {name: value for name, value in super().typed().items() if name != "auth_token"}

    def validate_offsets_minutes(self, field):
        """Offsets checked by the planner's own rules (app/messaging/plan.py), said with the offset as typed."""
        if not field.data:
            raise ValidationError("Give at least one time before the appointment (or turn reminders off).")
        try:
            offsets = parse_offsets(field.data)
            for offset in offsets:
                if not plan.MIN_LEAD <= offset <= plan.MAX_OFFSET:
                    said = plan.kind_of(offset) if offset else "0"
                    raise ValueError(f"{said} is not allowed: a reminder goes 30 minutes to 14 days before the "
                                     "appointment.")
            plan.Schedule(offsets=tuple(offsets), timezone=self.clinic.timezone)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.transport.data == Transport.TWILIO.value:
            self._twilio_required()
        return valid and not self.messages()

    def _twilio_required(self) -> None:
        """What the Twilio transport will use: the account, a token, a sender per channel, the English template."""
        channels = self.channels.data or ""
        required = "Required to send through Twilio."
        needed = [(self.account_sid, not self.account_sid.data, required),
                  (self.auth_token, not (self.auth_token.data or self.token_stored), required),
                  (self.whatsapp_from, "whatsapp" in channels and not self.whatsapp_from.data,
                   "Required to send WhatsApp messages (or choose SMS only)."),
                  (self.sms_from, "sms" in channels and not (self.sms_from.data or self.messaging_service_sid.data),
                   "An SMS sender or a Messaging Service SID is required to send SMS (or choose WhatsApp only)."),
                  (self.en_whatsapp_content_sid, "whatsapp" in channels and not self.en_whatsapp_content_sid.data,
                   "Required to send WhatsApp through Twilio: the approved English template's ContentSid.")]
        for field, missing, message in needed:
            if missing and not field.errors:
                field.errors.append(message)

    def cleaned(self) -> Cleaned:
        """The values to save, a new auth token (None keeps the stored one), each language's templates."""
        minutes = sorted({int(o.total_seconds()) // 60 for o in parse_offsets(self.offsets_minutes.data)},
                         reverse=True)
        whatsapp = _whatsapp_number(self.whatsapp_from.data)
        settings = {"enabled": self.enabled.data, "channels": self.channels.data,
                    "transport": Transport(self.transport.data), "offsets_minutes": ",".join(map(str, minutes)),
                    "quiet_start": time.fromisoformat(self.quiet_start.data),
                    "quiet_end": time.fromisoformat(self.quiet_end.data),
                    "account_sid": self.account_sid.data or None,
                    "messaging_service_sid": self.messaging_service_sid.data or None,
                    "whatsapp_from": f"whatsapp:{whatsapp}" if whatsapp else None,
                    "sms_from": self.sms_from.data.replace(" ", "") or None}
        return Cleaned(settings, self.auth_token.data or None,
                       {language: self._template(language) for language in texts.LANGUAGES})

    def _template(self, language: str) -> dict:
        values = {name: self[f"{language}_{name}"].data or None for name in (*TEMPLATE_SIDS, *DLT_IDS)}
        return values | {name: self[f"{language}_{name}"].data for name in SMS_TEXTS}


for _language in texts.LANGUAGES:
    for _name in TEMPLATE_SIDS:
        setattr(SettingsForm, f"{_language}_{_name}",
                _sid("HX", ": the approved template's ContentSid."))
    for _name in DLT_IDS:
        setattr(SettingsForm, f"{_language}_{_name}", StringField(filters=[squeezed(40)], validators=[
            Regexp(r"^([0-9]{1,30})?$", message="Digits only, as the DLT portal shows the template ID (usually 19).")]))
    for _name in SMS_TEXTS:
        setattr(SettingsForm, f"{_language}_{_name}", StringField(filters=[squeeze], validators=[_sms_text(_language)]))
