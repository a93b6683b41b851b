"""The structured parts of a prescription in the patient's language, with English always alongside.

Forms, frequencies (the Indian 1-0-1 notation and OD/BD/TDS/…), timings, durations, doses and the
document's headings are translated where we have a translation (Hindi today); anything else, and
every free text the doctor typed (drug, strength, instructions, advice), is printed as typed.
"""

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from app.forms import squeeze

# Languages a prescription can be printed in (the rest fall back to English).
LANGUAGES = {"en": "English", "hi": "हिन्दी (Hindi) + English"}

FORMS = {
    "tablet": "गोली", "capsule": "कैप्सूल", "syrup": "सिरप", "suspension": "सस्पेंशन", "injection": "इंजेक्शन",
    "drops": "ड्रॉप्स", "ointment": "मरहम", "cream": "क्रीम", "gel": "जेल", "inhaler": "इनहेलर",
    "spray": "स्प्रे", "powder": "पाउडर", "sachet": "पाउच", "lotion": "लोशन", "mouthwash": "कुल्ला करने की दवा",
}

# Frequency codes: (what it means in English, in Hindi).
FREQUENCY_CODES = {
    "OD": ("once a day", "दिन में एक बार"),
    "BD": ("twice a day", "दिन में दो बार"),
    "TDS": ("three times a day", "दिन में तीन बार"),
    "QID": ("four times a day", "दिन में चार बार"),
    "HS": ("at bedtime", "सोते समय"),
    "SOS": ("only when needed", "ज़रूरत होने पर ही"),
    "STAT": ("at once", "तुरंत"),
    "WEEKLY": ("once a week", "हफ़्ते में एक बार"),
}
# The 1-0-1 notation, slot by slot: three slots (morning, afternoon, night) or four (… evening …).
SLOTS = {
    3: (("morning", "सुबह"), ("afternoon", "दोपहर"), ("night", "रात")),
    4: (("morning", "सुबह"), ("afternoon", "दोपहर"), ("evening", "शाम"), ("night", "रात")),
}
PATTERNS = ("1-0-1", "1-0-0", "0-0-1", "0-1-0", "1-1-1", "1-1-0", "0-1-1", "1-1-1-1", "½-0-½")

TIMINGS = {
    "after_food": ("after food", "खाने के बाद"),
    "before_food": ("before food", "खाने से पहले"),
    "with_food": ("with food", "खाने के साथ"),
    "at_bedtime": ("at bedtime", "सोते समय"),
    "empty_stomach": ("on an empty stomach", "खाली पेट"),
    "any_time": ("any time", "किसी भी समय"),
}

# Duration units: (singular, plural) in English, (singular, plural) in Hindi.
DURATION_UNITS = {
    "day": (("day", "days"), ("दिन", "दिन")),
    "week": (("week", "weeks"), ("हफ़्ता", "हफ़्ते")),
    "month": (("month", "months"), ("महीना", "महीने")),
}
UNIT_ALIASES = {"d": "day", "day": "day", "days": "day", "w": "week", "wk": "week", "wks": "week", "week": "week",
                "weeks": "week", "m": "month", "mo": "month", "month": "month", "months": "month"}
ONGOING = {"continue": ("continue", "जारी रखें"), "ongoing": ("continue", "जारी रखें"),
           "till review": ("until the next visit", "अगली बार दिखाने तक")}
DURATIONS = ("3 days", "5 days", "7 days", "10 days", "2 weeks", "1 month", "continue", "till review")

# Dose units: (singular, plural) in English, Hindi.
DOSE_UNITS = {
    "tablet": (("tablet", "tablets"), "गोली"), "capsule": (("capsule", "capsules"), "कैप्सूल"),
    "ml": (("ml", "ml"), "मि.ली."), "drop": (("drop", "drops"), "बूँद"), "puff": (("puff", "puffs"), "पफ़"),
    "teaspoon": (("teaspoon", "teaspoons"), "छोटा चम्मच"), "sachet": (("sachet", "sachets"), "पाउच"),
    "unit": (("unit", "units"), "यूनिट"),
}
DOSE_ALIASES = {"tab": "tablet", "tabs": "tablet", "tablet": "tablet", "tablets": "tablet", "cap": "capsule",
                "caps": "capsule", "capsule": "capsule", "capsules": "capsule", "ml": "ml", "drop": "drop",
                "drops": "drop", "puff": "puff", "puffs": "puff", "tsp": "teaspoon", "teaspoon": "teaspoon",
                "teaspoons": "teaspoon", "sachet": "sachet", "sachets": "sachet", "unit": "unit", "units": "unit"}

HEADINGS = {
    "prescription": ("Prescription", "दवा का पर्चा"),
    "patient": ("Patient", "मरीज़"),
    "age_sex": ("Age / sex", "आयु / लिंग"),
    "date": ("Date", "दिनांक"),
    "medicine": ("Medicine", "दवा"),
    "dose": ("Dose", "खुराक"),
    "how_often": ("How often", "कब-कब"),
    "when": ("When", "कब लें"),
    "how_long": ("How long", "कितने दिन"),
    "instructions": ("Instructions", "निर्देश"),
    "advice": ("Advice", "सलाह"),
    "follow_up": ("Follow-up", "दोबारा दिखाएँ"),
    "verify": ("Verification code", "सत्यापन कोड"),
    "version": ("Version", "संस्करण"),
    "allergies": ("Allergies", "एलर्जी"),
    "allergies_none": ("No known allergies", "कोई ज्ञात एलर्जी नहीं"),
    "allergies_unknown": ("Not recorded", "दर्ज नहीं"),
    "allergy_override": ("Prescribed despite the allergy. The doctor's reason", "एलर्जी के बावजूद दी गई। डॉक्टर का कारण"),
}
SEXES = {"F": ("F", "महिला"), "M": ("M", "पुरुष"), "O": ("Other", "अन्य")}
NUMBER = r"(\d+(?:[.,/]\d+)?|½|¼|¾|1½)"


@dataclass(frozen=True)
class Phrase:
    """One structured value: in English, and in the patient's language when it differs."""

    english: str
    local: str = ""
    lang: str = "en"

    def __str__(self) -> str:
        return f"{self.local} / {self.english}" if self.local else self.english

    def __html__(self) -> str:
        if not self.local:
            return str(escape(self.english))
        return str(Markup('<span lang="{}">{}</span> <span class="rx-en">{}</span>').format(
            self.lang, self.local, self.english))


def language_for(preferred: str | None) -> str:
    """The language a patient's prescription is printed in: theirs if we have it, else English."""
    return preferred if preferred in LANGUAGES else "en"


class Text:
    """The translations of one language (English: every phrase is English only)."""

    def __init__(self, language: str):
        self.language = language_for(language)
        self.hindi = self.language == "hi"

    def _phrase(self, english: str, hindi: str) -> Phrase:
        return Phrase(english, hindi, "hi") if self.hindi and hindi else Phrase(english)

    def heading(self, key: str) -> Phrase:
        return self._phrase(*HEADINGS[key])

    def form(self, value: str) -> Phrase:
        value = squeeze(value)
        return self._phrase(value, FORMS.get(value.lower(), ""))

    def timing(self, value: str) -> Phrase:
        english, hindi = TIMINGS.get(value, (squeeze(value).replace("_", " "), ""))
        return self._phrase(english, hindi)

    def sex(self, value: str | None) -> Phrase:
        english, hindi = SEXES.get(value or "", (value or "", ""))
        return self._phrase(english, hindi)

    def frequency(self, value: str) -> Phrase:
        """'BD' -> 'BD (twice a day)'; '1-0-1' -> '1-0-1 (morning 1, night 1)'; anything else as typed."""
        value = squeeze(value)
        code = FREQUENCY_CODES.get(value.upper())
        if code:
            return self._phrase(f"{value.upper()} ({code[0]})", f"{code[1]}")
        parts = value.replace(" ", "").split("-")
        slots = SLOTS.get(len(parts))
        if slots and all(re.fullmatch(NUMBER, p) for p in parts):
            taken = [(slot, p) for slot, p in zip(slots, parts, strict=True) if p != "0"]
            english = ", ".join(f"{slot[0]} {p}" for slot, p in taken)
            hindi = ", ".join(f"{slot[1]} {p}" for slot, p in taken)
            return self._phrase(f"{value} ({english})" if taken else value, hindi)
        return Phrase(value)

    def duration(self, value: str) -> Phrase:
        """'5 days' -> '5 दिन / 5 days'; 'continue' -> 'जारी रखें / continue'; else as typed."""
        value = squeeze(value)
        if value.lower() in ONGOING:
            return self._phrase(*ONGOING[value.lower()])
        match = re.fullmatch(NUMBER + r"\s*([a-z]+)", value.lower())
        unit = UNIT_ALIASES.get(match.group(2)) if match else None
        if unit is None:
            return Phrase(value)
        count = match.group(1)
        (en_one, en_many), (hi_one, hi_many) = DURATION_UNITS[unit]
        single = count == "1"
        return self._phrase(f"{count} {en_one if single else en_many}", f"{count} {hi_one if single else hi_many}")

    def dose(self, value: str) -> Phrase:
        """'1 tab' -> '1 गोली / 1 tablet'; '5 ml' -> '5 मि.ली. / 5 ml'; else as typed."""
        value = squeeze(value)
        match = re.fullmatch(NUMBER + r"\s*([a-z]+)", value.lower())
        unit = DOSE_ALIASES.get(match.group(2)) if match else None
        if unit is None:
            return Phrase(value)
        count = match.group(1)
        (one, many), hindi = DOSE_UNITS[unit]
        return self._phrase(f"{count} {one if count in ('1', '½', '¼', '¾') else many}", f"{count} {hindi}")


@dataclass(frozen=True)
class ItemView:
    """An item as printed: the structured parts in the prescription's language, free text as typed."""

    drug: str
    strength: str
    form: Phrase
    dose: Phrase
    frequency: Phrase
    timing: Phrase | None
    duration: Phrase
    instructions: str


def item_view(text: Text, item: dict) -> ItemView:
    """An item of the sealed list, ready to print in `text`'s language."""
    timing = item.get("timing") or ""
    return ItemView(drug=item.get("drug", ""), strength=item.get("strength", ""), form=text.form(item.get("form", "")),
                    dose=text.dose(item.get("dose", "")), frequency=text.frequency(item.get("frequency", "")),
                    timing=text.timing(timing) if timing else None, duration=text.duration(item.get("duration", "")),
                    instructions=item.get("instructions", ""))
