"""The clinic settings form."""

from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from app.clinics.states import STATES, gstin_problem

TIMEZONES = sorted(tz for tz in available_timezones() if "/" in tz and not tz.startswith("Etc/"))


class ClinicForm(FlaskForm):
    name = StringField("Clinic name", validators=[DataRequired(), Length(max=120)])
    legal_name = StringField("Legal name (as registered for GST)", validators=[DataRequired(), Length(max=200)])
    address_line = StringField("Address", validators=[DataRequired(), Length(max=300)])
    city = StringField("City", validators=[DataRequired(), Length(max=100)])
    pin_code = StringField("PIN code", validators=[
        DataRequired(), Regexp(r"^[1-9][0-9]{5}$", message="A PIN code is 6 digits, not starting with 0.")])
    state_code = SelectField("State", choices=[SelectChoice(s.code, f"{s.name} ({s.code})") for s in STATES])
    gstin = StringField("GSTIN", validators=[Optional(), Length(max=15)],
                        filters=[lambda v: v.strip().upper() if v else v])
    timezone = SelectField("Time zone", choices=[SelectChoice(tz) for tz in TIMEZONES], default="Asia/Kolkata")

    def validate_gstin(self, field):
        if not field.data:
            return
        problem = gstin_problem(field.data)
        if problem:
            raise ValidationError(problem)
        if field.data[:2] != self.state_code.data:
            raise ValidationError("The GSTIN's state code does not match the clinic's state.")
