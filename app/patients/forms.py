"""Patient registration/edit and consent forms, with validation that keeps every typed value."""

import re
from datetime import date

import phonenumbers
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, HiddenField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, Regexp, ValidationError

from app.clinics.states import STATES
from app.forms import trimmed
from app.patients.services import CONSENT_METHODS, CONSENT_PURPOSES, PatientData

SEXES = {"F": "Female", "M": "Male", "O": "Other"}
LANGUAGES = {"en": "English", "hi": "हिन्दी (Hindi)", "kn": "ಕನ್ನಡ (Kannada)", "mr": "मराठी (Marathi)",
             "ta": "தமிழ் (Tamil)", "te": "తెలుగు (Telugu)", "bn": "বাংলা (Bengali)", "gu": "ગુજરાતી (Gujarati)",
             "ml": "മലയാളം (Malayalam)"}
ADULT_AGE = 18



def to_e164(text: str) -> str:
    """An Indian-by-default phone number in E.164, or ValueError with a reason."""
    try:
        number = phonenumbers.parse(text, "IN")
    except phonenumbers.NumberParseException as exc:
        raise ValueError("This is not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("This phone number is not valid; an Indian mobile has 10 digits.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str | None) -> str:
    if not e164:
        return ""
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


class PhoneField(StringField):
    """A phone number typed any common way, stored in E.164."""

    def post_validate(self, form, validation_stopped):
        if self.data and not validation_stopped and not self.errors:
            try:
                self.data = to_e164(self.data)
            except ValueError as exc:
                self.errors.append(str(exc))


class PatientForm(FlaskForm):
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=120)], filters=[trimmed],
                            render_kw={"autocomplete": "off"})
    sex = SelectField("Sex", choices=[SelectChoice(k, v) for k, v in SEXES.items()])
    dob = DateField("Date of birth", validators=[Optional()])
    age_years = IntegerField("or age in years", validators=[Optional(), NumberRange(0, 120)],
                             render_kw={"inputmode": "numeric"})
    phone = PhoneField("Mobile phone", validators=[Optional(), Length(max=20)], filters=[trimmed],
                       render_kw={"inputmode": "tel", "autocomplete": "off"})
    alt_phone = PhoneField("Alternate phone", validators=[Optional(), Length(max=20)], filters=[trimmed],
                           render_kw={"inputmode": "tel", "autocomplete": "off"})
    email = EmailField("E-mail", validators=[Optional(), Email(check_deliverability=False), Length(max=254)],
                       filters=[trimmed], render_kw={"autocomplete": "off"})
    address_line = StringField("Address", validators=[Optional(), Length(max=300)], filters=[trimmed],
                               render_kw={"autocomplete": "off"})
    city = StringField("City / town", validators=[Optional(), Length(max=100)], filters=[trimmed])
    pin_code = StringField("PIN code", filters=[trimmed], validators=[
        Optional(), Regexp(r"^[1-9][0-9]{5}$", message="A PIN code is 6 digits, not starting with 0.")],
        render_kw={"inputmode": "numeric"})
    state_code = SelectField("State", choices=[SelectChoice("", "—")] + [SelectChoice(s.code, s.name) for s in STATES])
    language = SelectField("Preferred language", choices=[SelectChoice(k, v) for k, v in LANGUAGES.items()])
    abha_number = StringField("ABHA number", filters=[trimmed], validators=[Optional()],
                              render_kw={"inputmode": "numeric", "autocomplete": "off"})
    guardian_name = StringField("Guardian's name", validators=[Optional(), Length(max=120)], filters=[trimmed])
    guardian_relation = StringField("Relation", validators=[Optional(), Length(max=40)], filters=[trimmed])
    guardian_phone = PhoneField("Guardian's phone", validators=[Optional(), Length(max=20)], filters=[trimmed],
                                render_kw={"inputmode": "tel"})
    version = HiddenField()

    def validate(self, extra_validators=None) -> bool:
        """Field checks, then the rules that span fields (which Optional() would otherwise skip)."""
        valid = super().validate(extra_validators)
        if not self.dob.data and self.age_years.data is None and not (self.dob.errors or self.age_years.errors):
            self.dob.errors.append("Enter the date of birth, or the age if the date is not known.")
            valid = False
        no_phone_errors = not (self.phone.errors or self.guardian_phone.errors)
        if not self.phone.data and not self.guardian_phone.data and no_phone_errors:
            self.phone.errors.append("Enter the patient's or the guardian's phone number.")
            valid = False
        age = self._age()
        if not self.guardian_name.data and age is not None and age < ADULT_AGE:
            self.guardian_name.errors.append("A patient under 18 needs a guardian.")
            valid = False
        return valid

    def validate_dob(self, field):
        if field.data and field.data > date.today():
            raise ValidationError("The date of birth cannot be in the future.")
        if field.data and field.data.year < date.today().year - 120:
            raise ValidationError("Please check the year.")

    def validate_abha_number(self, field):
        digits = re.sub(r"[\s-]", "", field.data or "")
        if digits and not re.fullmatch(r"\d{14}", digits):
            raise ValidationError("An ABHA number has 14 digits (xx-xxxx-xxxx-xxxx).")
        field.data = f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}" if digits else None

    def _age(self) -> int | None:
        if self.dob.data:
            today = date.today()
            dob = self.dob.data
            return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
        return self.age_years.data

    def to_data(self) -> PatientData:
        """The validated input as PatientData (an age becomes an estimated date of birth)."""
        estimated = self.dob.data is None
        dob = self.dob.data or date(date.today().year - self.age_years.data, 1, 1)
        return PatientData(
            full_name=" ".join(self.full_name.data.split()), sex=self.sex.data, dob=dob, dob_estimated=estimated,
            phone=self.phone.data or None, alt_phone=self.alt_phone.data or None, email=self.email.data or None,
            address_line=self.address_line.data or None, city=self.city.data or None,
            pin_code=self.pin_code.data or None, state_code=self.state_code.data or None,
            language=self.language.data, abha_number=self.abha_number.data or None,
            guardian_name=self.guardian_name.data or None, guardian_relation=self.guardian_relation.data or None,
            guardian_phone=self.guardian_phone.data or None,
        )

    def fill_from(self, data: PatientData, version: int) -> None:
        """Pre-fill for editing (GET)."""
        for name in ("full_name", "sex", "phone", "alt_phone", "email", "address_line", "city", "pin_code",
                     "abha_number", "guardian_name", "guardian_relation", "guardian_phone", "language"):
            getattr(self, name).data = getattr(data, name)
        self.state_code.data = data.state_code or ""
        if data.dob_estimated:
            self.age_years.data = data.age
        else:
            self.dob.data = data.dob
        self.version.data = str(version)


class RegisterForm(PatientForm):
    consent_treatment = BooleanField("Treatment and care", default=True)
    consent_whatsapp = BooleanField("WhatsApp reminders")
    consent_sms = BooleanField("SMS reminders")
    consent_data_sharing = BooleanField("Sharing records with other providers")
    confirm_new = BooleanField("None of these is the patient: register a new record")

    def consents(self) -> dict[str, bool]:
        return {purpose: bool(getattr(self, f"consent_{purpose}").data) for purpose in CONSENT_PURPOSES}


class ConsentForm(FlaskForm):
    purpose = SelectField("Purpose", choices=[SelectChoice(k, v) for k, v in CONSENT_PURPOSES.items()])
    granted = SelectField("Decision", choices=[SelectChoice("1", "Given"), SelectChoice("0", "Withdrawn")])
    method = SelectField("How", choices=[SelectChoice(k, v) for k, v in CONSENT_METHODS.items()])
