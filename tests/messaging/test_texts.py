"""What reminders say, as tables: texts, dates and times per language, SMS segments, replies.

The rules are in app/messaging/texts.py's docstring; Twilio's keywords and India's SMS limits are in
shared/reference/reminders.md §2.4 and §4.
"""

import re
from dataclasses import fields
from datetime import datetime

import pytest

from app.messaging.texts import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SMS_TEXTS,
    WHATSAPP_TEMPLATES,
    Reminder,
    Reply,
    format_date,
    format_time,
    parse_reply,
    segments,
    sms_text,
    whatsapp_variables,
)

LINK = "https://asha.clinicdesk.in/r/Qx7vT2mR9kLp4sWz8nYb3c"  # a 128-bit token, base64url: 22 characters
TUESDAY = datetime(2026, 11, 24, 10, 30)
DEVANAGARI = re.compile("[\u0900-\u097f]")


def reminder(language="en", clinic="Asha Family Clinic", when=TUESDAY, link=LINK) -> Reminder:
    return Reminder(clinic, when, link, language)


def test_english_sms():
    assert sms_text(reminder()) == (
        "Asha Family Clinic: your appointment is on Tue 24 Nov at 10:30 am. "
        f"To confirm, cancel or reschedule: {LINK}"
    )


def test_hindi_sms():
    text = sms_text(reminder("hi"))
    assert text == (
        "Asha Family Clinic: आपका अपॉइंटमेंट मंगलवार, 24 नवंबर को सुबह 10:30 बजे है। "
        f"पुष्टि, रद्द या समय बदलने के लिए: {LINK}"
    )
    assert DEVANAGARI.search(text)


def test_sms_never_offers_a_reply():  # Twilio's SMS to India is one-way
    for language in ("en", "hi"):
        assert "reply" not in sms_text(reminder(language)).lower()
        assert "भेजें" not in sms_text(reminder(language))


@pytest.mark.parametrize(("tag", "language"), [
    ("en", "en"), ("hi", "hi"), ("HI", "hi"), ("hi-IN", "hi"), ("hi_IN", "hi"), ("en-GB", "en"),
    ("ta", "en"), ("", "en"),
])
def test_language_falls_back_to_english(tag, language):
    assert reminder(tag).language == language
    assert bool(DEVANAGARI.search(sms_text(reminder(tag)))) is (language == "hi")


def test_a_reminder_has_no_field_for_a_name_diagnosis_speciality_or_doctor():
    assert {f.name for f in fields(Reminder)} == {"clinic_name", "starts_at_local", "link", "language"}
    for extra in ("patient_name", "diagnosis", "speciality", "doctor"):
        with pytest.raises(TypeError):
            Reminder("Asha Family Clinic", TUESDAY, LINK, "en", **{extra: "Ramesh Kumar, oncology"})


def test_everything_said_comes_from_the_four_fields():
    for language in ("en", "hi"):
        text = sms_text(reminder(language))
        words = {"Asha Family Clinic", format_date(TUESDAY, language), format_time(TUESDAY, language), LINK}
        leftover = text
        for word in words:
            leftover = leftover.replace(word, "")
        assert leftover == re.sub(r"\{\w+\}", "", SMS_TEXTS[language])  # nothing else slipped in


@pytest.mark.parametrize("kwargs", [
    {"clinic": "   "}, {"link": "javascript:alert(1)"}, {"link": "asha.clinicdesk.in/r/x"},
    {"link": "https://asha.clinicdesk.in/r/x y"}, {"link": "https://"},
])
def test_invalid_reminders(kwargs):
    with pytest.raises(ValueError):
        reminder(**kwargs)


def test_clinic_name_is_squeezed_to_single_spaces():  # Meta refuses variables with newlines, tabs, runs of spaces
    assert whatsapp_variables(reminder(clinic=" Asha\n Family\t\tClinic "))["1"] == "Asha Family Clinic"


# (local time, English date, English time, Hindi date, Hindi time); CLDR's Indian English writes "Sept"
WHEN = [
    (datetime(2026, 11, 24, 10, 30), "Tue 24 Nov", "10:30 am", "मंगलवार, 24 नवंबर", "सुबह 10:30"),
    (datetime(2026, 1, 5, 0, 5), "Mon 5 Jan", "12:05 am", "सोमवार, 5 जनवरी", "रात 12:05"),
    (datetime(2026, 2, 4, 3, 59), "Wed 4 Feb", "3:59 am", "बुधवार, 4 फ़रवरी", "रात 3:59"),
    (datetime(2026, 3, 5, 4, 0), "Thu 5 Mar", "4:00 am", "गुरुवार, 5 मार्च", "सुबह 4:00"),
    (datetime(2026, 4, 3, 11, 59), "Fri 3 Apr", "11:59 am", "शुक्रवार, 3 अप्रैल", "सुबह 11:59"),
    (datetime(2026, 5, 2, 12, 0), "Sat 2 May", "12:00 pm", "शनिवार, 2 मई", "दोपहर 12:00"),
    (datetime(2026, 6, 7, 15, 45), "Sun 7 Jun", "3:45 pm", "रविवार, 7 जून", "दोपहर 3:45"),
    (datetime(2026, 7, 1, 16, 0), "Wed 1 Jul", "4:00 pm", "बुधवार, 1 जुलाई", "शाम 4:00"),
    (datetime(2026, 8, 15, 19, 59), "Sat 15 Aug", "7:59 pm", "शनिवार, 15 अगस्त", "शाम 7:59"),
    (datetime(2026, 9, 30, 20, 0), "Wed 30 Sept", "8:00 pm", "बुधवार, 30 सितंबर", "रात 8:00"),
    (datetime(2026, 10, 2, 23, 15), "Fri 2 Oct", "11:15 pm", "शुक्रवार, 2 अक्टूबर", "रात 11:15"),
    (datetime(2026, 12, 31, 9, 5), "Thu 31 Dec", "9:05 am", "गुरुवार, 31 दिसंबर", "सुबह 9:05"),
]


@pytest.mark.parametrize(("when", "en_date", "en_time", "hi_date", "hi_time"), WHEN)
def test_dates_and_times(when, en_date, en_time, hi_date, hi_time):
    assert (format_date(when), format_time(when)) == (en_date, en_time)
    assert (format_date(when, "hi"), format_time(when, "hi")) == (hi_date, hi_time)


def test_whatsapp_variables():
    assert whatsapp_variables(reminder()) == {"1": "Asha Family Clinic", "2": "Tue 24 Nov", "3": "10:30 am", "4": LINK}
    assert whatsapp_variables(reminder("hi")) == {
        "1": "Asha Family Clinic", "2": "मंगलवार, 24 नवंबर", "3": "सुबह 10:30", "4": LINK,
    }


@pytest.mark.parametrize("language", ["en", "hi"])
def test_templates_take_exactly_the_variables(language):
    template = WHATSAPP_TEMPLATES[language]
    assert re.findall(r"\{\{(\d+)\}\}", template) == ["1", "2", "3", "4"]
    assert not template.startswith("{{") and not template.endswith("}}")  # Meta refuses either
    filled = template
    for key, value in whatsapp_variables(reminder(language)).items():
        filled = filled.replace("{{%s}}" % key, value)  # noqa: UP031 -- braces everywhere make an f-string unreadable
    assert "{{" not in filled and LINK in filled and "1" in filled


def test_gsm7_tables():
    assert len(GSM7_BASIC) == 127 and len(GSM7_EXTENSION) == 10  # 128 codes less ESC; 10 two-septet extras
    assert not GSM7_BASIC & GSM7_EXTENSION


G, U = "a", "अ"
SEGMENTS = [
    pytest.param("", 1, id="empty-is-one"),
    pytest.param(G * 160, 1, id="gsm-160"),
    pytest.param(G * 161, 2, id="gsm-161"),
    pytest.param(G * 306, 2, id="gsm-2x153"),
    pytest.param(G * 307, 3, id="gsm-307"),
    pytest.param("€" * 80, 1, id="euro-counts-double-160"),
    pytest.param("€" * 81, 2, id="euro-counts-double-162"),
    pytest.param(G * 159 + "[", 2, id="bracket-tips-over"),
    pytest.param(G * 152 + "€" + G * 152, 3, id="escape-pair-never-split"),
    pytest.param("Dr Rao's clinic @ 5 pm: £20, ¥, é, Ñ, §, ¿", 1, id="gsm-accents-and-symbols"),
    pytest.param(U * 70, 1, id="ucs2-70"),
    pytest.param(U * 71, 2, id="ucs2-71"),
    pytest.param(U * 134, 2, id="ucs2-2x67"),
    pytest.param(U * 135, 3, id="ucs2-135"),
    pytest.param(G * 69 + U, 1, id="one-devanagari-switches-all"),
    pytest.param(G * 160 + "ç", 3, id="lowercase-c-cedilla-is-not-gsm"),
    pytest.param(G * 100 + "\u2019", 2, id="curly-quote-is-not-gsm"),
    pytest.param("😀" * 35, 1, id="emoji-two-units"),
    pytest.param("😀" * 36, 2, id="emoji-72-units"),
    pytest.param(G * 66 + "😀" + G * 67, 3, id="surrogate-pair-never-split"),
]


@pytest.mark.parametrize(("text", "count"), SEGMENTS)
def test_segments(text, count):
    assert segments(text) == count


LONG_CLINIC = "Shree Sai Multispeciality Care"  # 30 characters: the most a DLT variable holds
LONG_LINK = "https://reminders.ashaclinic.in/r/Qx7vT2mR9kLp4sWz8nYb3c"


@pytest.mark.parametrize("clinic", ["Asha Family Clinic", LONG_CLINIC])
@pytest.mark.parametrize("link", [LINK, LONG_LINK])
@pytest.mark.parametrize("when", [row[0] for row in WHEN])
def test_typical_sms_fit(clinic, link, when):
    assert segments(sms_text(reminder("en", clinic, when, link))) <= 2
    assert segments(sms_text(reminder("hi", clinic, when, link))) <= 3


REPLIES = [
    ("1", Reply.CONFIRM), ("2", Reply.CANCEL), ("3", Reply.RESCHEDULE),
    (" 1 ", Reply.CONFIRM), ("\n2\n", Reply.CANCEL),
    ("१", Reply.CONFIRM), ("२", Reply.CANCEL), (" ३", Reply.RESCHEDULE),
    ("CONFIRM", Reply.CONFIRM), ("confirm", Reply.CONFIRM), ("CANCEL_APPT", Reply.CANCEL),
    ("RESCHEDULE", Reply.RESCHEDULE),
    ("STOP", Reply.STOP), ("stop", Reply.STOP), (" Stop ", Reply.STOP), ("STOPALL", Reply.STOP),
    ("UNSUBSCRIBE", Reply.STOP), ("END", Reply.STOP), ("QUIT", Reply.STOP),
    ("CANCEL", Reply.STOP), ("cancel", Reply.STOP),  # Twilio's opt-out keyword, never "cancel my appointment"
    ("START", Reply.START), ("yes", Reply.START), ("UNSTOP", Reply.START),
    ("रोकें", Reply.STOP), ("बंद", Reply.STOP), ("बन्द", Reply.STOP), ("बंद करो", Reply.STOP), (" बंद  करें ", Reply.STOP),
    ("Band karo", Reply.STOP), ("roko", Reply.STOP), ("शुरू", Reply.START), ("shuru karo", Reply.START),
    ("बंद करो प्लीज़", None), ("कल", None),
    ("4", None), ("12", None), ("1 2", None), ("1.", None), ("STOP PLEASE", None), ("please stop", None),
    ("HELP", None), ("INFO", None), ("ok", None), ("", None), ("   ", None), (None, None), ("४", None),
]


@pytest.mark.parametrize(("body", "reply"), REPLIES)
def test_parse_reply(body, reply):
    assert parse_reply(body) == reply


def test_replies_are_plain_strings():
    assert [str(reply) for reply in Reply] == ["confirm", "cancel", "reschedule", "stop", "start"]
