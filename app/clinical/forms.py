"""The clinical forms: a medicine on a prescription, a set of vitals, an allergy and a problem. Each gives
the clean values its service takes; a refused one is shown as typed (app/forms.py)."""

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from wtforms import StringField
from wtforms.validators import DataRequired, Length, StopValidation, ValidationError

from app.clinical import rx_text
from app.clinical.chart import SEVERITIES, icd10
from app.clinical.vitals import GLUCOSE_CONTEXTS, TENTH
from app.forms import KeptForm, squeeze, stripped

DRUG_LENGTH = 120


def _keep(limit: int, message: str = "Keep it to {limit} characters.") -> Length:
    return Length(max=limit, message=message.format(limit=limit))


# --- A medicine -----------------------------------------------------------------------------------------

def _text(limit: int, *validators, filters=(squeeze,)) -> StringField:
    return StringField(validators=[*validators, _keep(limit, "Keep this to {limit} characters.")], filters=filters)


def _known_timing(form, field):
    if field.data and field.data not in rx_text.TIMINGS:
        raise ValidationError("Choose when to take it from the list.")


def normal_frequency(value: str) -> str:
    """'bd' -> 'BD'; '1 - 0 - 1' -> '1-0-1'; anything else as typed."""
    if value.upper() in rx_text.FREQUENCY_CODES:
        return value.upper()
    squeezed = value.replace(" ", "")
    return squeezed if re.fullmatch(r"[0-9½¼¾./]+(-[0-9½¼¾./]+){2,3}", squeezed) else value


class ItemForm(KeptForm):
    """One medicine: drug, dose and frequency required; timing one of the listed ones."""

    drug = _text(DRUG_LENGTH, DataRequired("Name the medicine."))
    strength = _text(40)
    form = _text(30)
    dose = _text(40, DataRequired("Give the dose (e.g. 1 tablet, 5 ml)."))
    frequency = _text(40, DataRequired("Say how often (e.g. 1-0-1, BD, SOS)."))
    duration = _text(40)
    timing = StringField(validators=[_known_timing], filters=[squeeze])
    instructions = _text(300, filters=(stripped,))

    def item(self) -> dict:
        """The item as stored: the frequency and a known form written the usual way."""
        item = {name: f.data for name, f in self._fields.items() if name != "csrf_token"}
        item["frequency"] = normal_frequency(item["frequency"])
        item["form"] = item["form"].lower() if item["form"].lower() in rx_text.FORMS else item["form"]
        return item


# --- Vitals ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """A form field with its plausible range (what a living patient can have; beyond it is a typo)."""

    name: str
    label: str
    unit: str
    low: Decimal
    high: Decimal
    whole: bool = True

    def __call__(self, form, field) -> None:
        """Validate `field` as this measure (empty: not measured)."""
        if not field.data:
            return
        if not (WHOLE if self.whole else NUMBER).fullmatch(field.data):
            raise ValidationError("Enter a whole number." if self.whole else "Enter a number, such as 72.5.")
        if not self.low <= Decimal(field.data) <= self.high:
            raise ValidationError(f"{self.label} must be between {self.low} and {self.high} {self.unit}.")


MEASURES = [
    Measure("systolic", "Systolic pressure", "mmHg", Decimal(50), Decimal(300)),
    Measure("diastolic", "Diastolic pressure", "mmHg", Decimal(20), Decimal(200)),
    Measure("pulse", "Pulse", "/min", Decimal(20), Decimal(300)),
    Measure("spo2", "SpO2", "%", Decimal(50), Decimal(100)),
    Measure("resp_rate", "Respiratory rate", "/min", Decimal(4), Decimal(80)),
    Measure("weight_kg", "Weight", "kg", Decimal("0.3"), Decimal(400), whole=False),
    Measure("height_cm", "Height", "cm", Decimal(30), Decimal(250), whole=False),
    Measure("glucose_mg_dl", "Blood glucose", "mg/dL", Decimal(10), Decimal(1500)),
]
TEMPERATURE = {"C": Measure("temperature", "Temperature", "°C", Decimal(30), Decimal(45), whole=False),
               "F": Measure("temperature", "Temperature", "°F", Decimal(86), Decimal(113), whole=False)}
WHOLE = re.compile(r"\d{1,5}")
NUMBER = re.compile(r"\d{1,5}(\.\d{1,3})?|\.\d{1,3}")


def _typed(value: str | None) -> str:
    return stripped(value)[:12]


def _unit(value: str | None) -> str:
    return value if value in TEMPERATURE else "F"


def _measured(measure: Measure) -> StringField:
    return StringField(validators=[measure], filters=[_typed])


class VitalsForm(KeptForm):
    """A set of vitals: each value in its plausible range, blood pressure whole and consistent, glucose
    with its context; at least one value. `values()` gives it in canonical units."""

    systolic, diastolic, pulse, spo2, resp_rate, weight_kg, height_cm, glucose_mg_dl = map(_measured, MEASURES)
    temperature = StringField(filters=[_typed])
    temperature_unit = StringField(filters=[_unit])
    glucose_context = StringField(filters=[_typed])

    def validate_temperature(self, field):
        TEMPERATURE[self.temperature_unit.data](self, field)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        self._check_pairs()
        if not self.numbers() and not any(f.errors for f in self):
            self.form_errors.append("Enter at least one measurement.")
        return valid and not self.messages()

    def _check_pairs(self) -> None:
        systolic, diastolic = self.systolic, self.diastolic
        if bool(systolic.data) != bool(diastolic.data):
            (diastolic if systolic.data else systolic).errors.append("Enter both numbers of the blood pressure.")
        elif not (systolic.errors or diastolic.errors) and systolic.data and \
                Decimal(diastolic.data) >= Decimal(systolic.data):
            diastolic.errors.append("The diastolic pressure must be lower than the systolic.")
        if self.glucose_mg_dl.data and self.glucose_context.data not in GLUCOSE_CONTEXTS:
            self.glucose_context.errors.append("Say when the glucose was measured.")

    def numbers(self) -> dict[str, Decimal]:
        """What was measured, as numbers (only valid ones)."""
        names = [m.name for m in MEASURES] + ["temperature"]
        return {name: Decimal(self[name].data) for name in names if self[name].data and not self[name].errors}

    def values(self) -> dict:
        """The set in canonical units, as stored."""
        numbers, values = self.numbers(), {}
        for name in ("systolic", "diastolic", "pulse", "spo2", "resp_rate", "glucose_mg_dl"):
            if name in numbers:
                values[name] = int(numbers[name])
        for name in ("weight_kg", "height_cm"):
            if name in numbers:
                values[name] = float(numbers[name].quantize(TENTH, ROUND_HALF_UP))
        if "temperature" in numbers:
            values.update(_temperature(numbers["temperature"], self.temperature_unit.data))
        if "glucose_mg_dl" in values:
            values["glucose_context"] = self.glucose_context.data
        return values


def _temperature(degrees: Decimal, unit: str) -> dict:
    celsius = (degrees - 32) * 5 / 9 if unit == "F" else degrees
    # Two decimals, so a temperature typed in °F reads back as typed (101.2 °F -> 38.44 °C -> 101.2 °F).
    return {"temperature_c": float(celsius.quantize(Decimal("0.01"), ROUND_HALF_UP)), "temperature_unit": unit}


# --- Allergies and problems ----------------------------------------------------------------------------

def _lines(value: str | None) -> str:
    return "\n".join(squeeze(line) for line in stripped(value).splitlines())


def _severity(value: str | None) -> str:
    return value if value in SEVERITIES else ""


def _icd_code(form, field):
    if field.data and icd10(field.data) is None:
        raise StopValidation(f"“{field.data}” is not an ICD-10 code. Check it, or leave the code empty.")


class AllergyForm(KeptForm):
    """Substance (required), reaction, severity."""

    substance = StringField(validators=[DataRequired("Name the substance (a drug, food or other)."), _keep(120)],
                            filters=[squeeze])
    reaction = StringField(validators=[_keep(200)], filters=[squeeze])
    severity = StringField(filters=[_severity])

    def details(self) -> dict:
        return self.typed()


class ProblemForm(KeptForm):
    """Condition or an ICD-10 code (or both; the code normalised, its title the condition when none is
    given), since when (free text), a note."""

    condition = StringField(validators=[_keep(200)], filters=[squeeze])
    code = StringField(validators=[_icd_code, _keep(12)], filters=[squeeze])
    since = StringField(validators=[_keep(40)], filters=[squeeze])
    note = StringField(validators=[_keep(500)], filters=[_lines])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        found = icd10(self.code.data) if self.code.data else None
        if found:
            self.code.data, self.condition.data = found[0], self.condition.data or found[1]
        if not self.condition.data and not self.code.errors:
            self.condition.errors.append("Name the condition, or give its ICD-10 code.")
            valid = False
        return valid

    def details(self) -> dict:
        return self.typed()
