"""What a reminder says: the SMS text and the WhatsApp template variables, in English or Hindi.

Pure functions, no clock; tests/messaging/test_texts.py pins the texts. Research:
shared/reference/reminders.md §0, §2.4, §3, §4 and §7 (cases 22, 23, 25).

What a message carries (PRODUCT §7): the clinic's name, the date, the time and the patient's link.
Never the patient's name, a diagnosis, a speciality or the doctor's name: Reminder has no field for
any of them, so no caller can leak one. The doctor is left out on purpose: phones are shared and read
on lock screens by family, and in a small town a doctor's name tells everyone the speciality (the
oncologist, the psychiatrist). The page behind the link shows the doctor to the patient alone. A
clinic whose own name reveals a speciality should register a neutral name for its messages.

Languages: "en" and "hi" ("hi-IN" counts as "hi"); any other gets English, because every text must be
approved (WhatsApp) or registered (DLT) per language, and these two are. Digits stay Latin in Hindi,
as in Indian SMS and in the numbers a patient types back.
- English: "Tue 24 Nov", "10:30 am" (noon is "12:00 pm", midnight "12:00 am").
- Hindi: "मंगलवार, 24 नवंबर" and the part of the day before a 12-hour time: सुबह 4:00-11:59,
  दोपहर 12:00-15:59, शाम 16:00-19:59, रात 20:00-3:59; "सुबह 10:30", "शाम 6:15". Both through
  app/formats.py (Babel's en_IN and hi_IN: CLDR's names and its Hindi day periods, pattern "B").
  CLDR's Indian English writes September "Sept".

SMS (SMS_TEXTS): links only. Twilio's SMS to India is one-way (§0.3), so it never says "reply".
Registered with DLT as these texts with {#var#} for each value (each ≤ 30 characters), the link's
whitelisted domain written out and only its token a variable; a changed word means a silent drop.
A GSM-7 text has 160 characters in one segment, 153 in each of several; one character outside GSM-7
makes it UCS-2, 70 and 67 (segments). English stays within 2 segments. Hindi is UCS-2 and the link
alone takes about 50 of its 134 characters in 2 segments, so Hindi is allowed 3 (201 characters).

WhatsApp (WHATSAPP_TEMPLATES): one approved utility template per language, sent as ContentSid with
whatsapp_variables as ContentVariables. Meta refuses a template that starts or ends with a variable,
and variables holding newlines, tabs or runs of spaces, so values are squeezed to single spaces. The
link is a body variable (not a URL button) so one template serves every deployment's domain. Quick-
reply buttons, if added, send the payloads CONFIRM, CANCEL_APPT and RESCHEDULE, never CANCEL, which
is a Twilio opt-out keyword (§2.4).

Replies (parse_reply) mirror Twilio: one word, any case, surrounding spaces ignored; "STOP PLEASE"
is not a keyword there, so not here either, and the app's consent stays in step with Twilio's block
list. Pass ButtonPayload when there is one, never ButtonText: a button titled "Cancel" would read as
STOP. "YES" is Twilio's opt-in keyword, so it means start, not confirm. Twilio knows no Hindi, so the
common Hindi ways of saying stop ("रोकें", "बंद", "बंद करो", also typed in Latin letters) and start
("शुरू") are read here, whole and alone as Twilio's keywords are, with runs of spaces squeezed.
"""

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from app import formats

SMS_TEXTS = {
    "en": "{clinic}: your appointment is on {date} at {time}. To confirm, cancel or reschedule: {link}",
    "hi": "{clinic}: आपका अपॉइंटमेंट {date} को {time} बजे है। पुष्टि, रद्द या समय बदलने के लिए: {link}",
}
WHATSAPP_TEMPLATES = {
    "en": "Reminder from {{1}}: your appointment is on {{2}} at {{3}}.\n"
    "Reply 1 to confirm, 2 to cancel, 3 to reschedule.\nDetails and changes: {{4}} (this link is for you only).",
    "hi": "याद दिलाना: {{1}} में आपका अपॉइंटमेंट {{2}} को {{3}} बजे है।\n"
    "पुष्टि के लिए 1, रद्द करने के लिए 2, समय बदलने के लिए 3 भेजें।\nविवरण और बदलाव: {{4}} (यह लिंक सिर्फ़ आपके लिए है)।",
}
# A freed earlier time offered to a patient on the waitlist (SMS; the WhatsApp template has the same words).
OFFER_SMS_TEXTS = {
    "en": "{clinic}: an earlier time is free on {date} at {time}. To take it before someone else does: {link}",
    "hi": "{clinic}: {date} को {time} बजे का समय खाली हुआ है। यह समय लेने के लिए: {link}",
}
# The answer to a "3" reply: sent inside WhatsApp's 24-hour window, so as free text, not a template.
RELINK_TEXTS = {
    "en": "{clinic}: choose a new time for your appointment on {date} at {time} here: {link}",
    "hi": "{clinic}: {date} को {time} बजे के अपॉइंटमेंट का नया समय यहाँ चुनें: {link}",
}
TEXT_FIELDS = ("clinic", "date", "time", "link")
LANGUAGES = tuple(SMS_TEXTS)

DATE_PATTERNS = {"en": "EEE d MMM", "hi": "EEEE, d MMMM"}  # CLDR patterns for app/formats.py
TIME_PATTERNS = {"en": "h:mm a", "hi": "B h:mm"}  # B: the day period (सुबह, दोपहर, शाम, रात)

# GSM 03.38: the basic table (ESC left out: it only introduces the extension table), and the extension
# table, whose characters take two septets (ESC + the character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def language_of(tag: str) -> str:
    """The language a reminder goes out in: "en" or "hi", English for anything else."""
    base = (tag or "").split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else "en"


@dataclass(frozen=True)
class Reminder:
    """All a reminder may say: which clinic, when (in the clinic's time), the patient's link, the language."""

    clinic_name: str
    starts_at_local: datetime
    link: str
    language: str = "en"

    def __post_init__(self) -> None:
        object.__setattr__(self, "clinic_name", _squeeze(self.clinic_name))
        object.__setattr__(self, "language", language_of(self.language))
        if not self.clinic_name or not _is_web_link(self.link):
            raise ValueError("A reminder needs the clinic's name and an http(s) link.")


def format_date(when: datetime, language: str = "en") -> str:
    """The day as a reminder says it: "Tue 24 Nov" or "मंगलवार, 24 नवंबर"."""
    language = language_of(language)
    return formats.day(when, DATE_PATTERNS[language], language)


def format_time(when: datetime, language: str = "en") -> str:
    """The time as a reminder says it: "10:30 am" or "सुबह 10:30" (the wall time `when` carries)."""
    language = language_of(language)
    return formats.moment(when, pattern=TIME_PATTERNS[language], language=language)


def _values(reminder: Reminder) -> dict[str, str]:
    when, language = reminder.starts_at_local, reminder.language
    date, time = format_date(when, language), format_time(when, language)
    return {"clinic": reminder.clinic_name, "date": date, "time": time, "link": reminder.link}


def sms_text(reminder: Reminder) -> str:
    """The SMS for this reminder, in its language."""
    return SMS_TEXTS[reminder.language].format(**_values(reminder))


def fill(text: str, reminder: Reminder) -> str:
    """A clinic's own registered text with this reminder's values ({clinic}, {date}, {time}, {link})."""
    return text.format(**_values(reminder))


def whatsapp_text(template: str, reminder: Reminder) -> str:
    """What the patient reads of an approved template ({{1}}…{{4}} filled), for the outbox page."""
    for key, value in whatsapp_variables(reminder).items():
        template = template.replace("{{" + key + "}}", value)
    return template


def whatsapp_variables(reminder: Reminder) -> dict[str, str]:
    """ContentVariables for the approved template in the reminder's language (WHATSAPP_TEMPLATES)."""
    values = _values(reminder)
    return {"1": values["clinic"], "2": values["date"], "3": values["time"], "4": values["link"]}


def _squeeze(text: str) -> str:
    return " ".join(str(text).split())


def _is_web_link(link: str) -> bool:
    parts = urlsplit(link)  # http too: the outbox transport of a local demo links to localhost
    return parts.scheme in ("https", "http") and bool(parts.netloc) and not any(char.isspace() for char in link)


def segments(text: str) -> int:
    """How many SMS segments `text` takes: GSM-7 when every character allows it, else UCS-2."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        costs, single, part = [2 if char in GSM7_EXTENSION else 1 for char in text], 160, 153
    else:  # UCS-2 as UTF-16: a character beyond the BMP (an emoji) takes two units
        costs, single, part = [len(char.encode("utf-16-le")) // 2 for char in text], 70, 67
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:  # an escape pair or a surrogate pair is never split between two segments
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return count


class Reply(StrEnum):
    CONFIRM = "confirm"
    CANCEL = "cancel"  # the appointment, by "2" or the CANCEL_APPT button; the word CANCEL means STOP
    RESCHEDULE = "reschedule"
    STOP = "stop"
    START = "start"


_REPLIES = {
    "1": Reply.CONFIRM, "2": Reply.CANCEL, "3": Reply.RESCHEDULE,
    "CONFIRM": Reply.CONFIRM, "CANCEL_APPT": Reply.CANCEL, "RESCHEDULE": Reply.RESCHEDULE,
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), Reply.STOP),
    **dict.fromkeys(("START", "YES", "UNSTOP"), Reply.START),
    **dict.fromkeys(("रोकें", "रोको", "रोक दो", "रोक दें", "बंद", "बन्द", "बंद करो", "बन्द करो", "बंद करें", "बन्द करें",
                     "बंद कीजिए", "बंद कर दो", "ROKO", "ROKEN", "BAND KARO", "BAND KAREN", "BAND KAR DO"), Reply.STOP),
    **dict.fromkeys(("शुरू", "शुरू करो", "शुरू करें", "SHURU", "SHURU KARO"), Reply.START),
}  # fmt: skip
_DEVANAGARI_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")


def parse_reply(body: str | None) -> Reply | None:
    """What a patient's reply or button payload asks for, or None when it is not one of ours or Twilio's keywords."""
    words = " ".join(unicodedata.normalize("NFC", body or "").split())
    return _REPLIES.get(words.translate(_DEVANAGARI_DIGITS).upper())
