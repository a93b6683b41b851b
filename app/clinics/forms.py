"""The clinic settings form."""

from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from app.clinics.states import STATES, InvalidGstin, validate_clinic_gstin, validate_gstin

CODES = {s.code for s in STATES}
TIMEZONES = sorted(tz for tz in available_timezones() if "/" in tz and not tz.startswith("Etc/"))


class ClinicForm(FlaskForm):
    name = StringField("Clinic name", validators=[DataRequired(), Length(max=120)])
    legal_name = StringField("Legal name (as registered for GST)", validators=[DataRequired(), Length(max=200)])
    address_line = StringField("Address", validators=[DataRequired(), Length(max=300)])
    city = StringField("City", validators=[DataRequired(), Length(max=100)])
    pin_code = StringField("PIN code", validators=[
        DataRequired(), Regexp(r"^[1-9][0-9]{5}$", message="A PIN code is 6 digits, not starting with 0.")])
    state_code = SelectField("State", choices=[SelectChoice(s.code, f"{s.name} ({s.code})") for s in STATES])
    gstin = StringField("GSTIN", render_kw={"maxlength": 15})
    timezone = SelectField("Time zone", choices=[SelectChoice(tz) for tz in TIMEZONES], default="Asia/Kolkata")

    def validate_gstin(self, field):
        """Empty (not registered for GST), or a GSTIN of the clinic's state, saved upper-cased."""
        if not (field.data or "").strip():
            field.data = ""
            return
        try:
            field.data = (validate_clinic_gstin(field.data, self.state_code.data) if self.state_code.data in CODES
                          else validate_gstin(field.data))
        except InvalidGstin as exc:
            raise ValidationError(str(exc)) from exc
