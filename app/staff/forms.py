"""Forms for adding staff and changing their role."""

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from app.auth.policy import Role
from app.forms import trimmed
from app.security.text import printable

ROLE_CHOICES = [SelectChoice(r.value, r.label) for r in Role]


class StaffForm(FlaskForm):
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=120)], filters=[trimmed],
                            render_kw={"autocomplete": "off"})
    email = EmailField("E-mail", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
                       filters=[trimmed], render_kw={"autocomplete": "off"})
    role = SelectField("Role", choices=ROLE_CHOICES)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


def _printable(value):
    return printable(value, 200) if isinstance(value, str) else value


class ProfessionalForm(FlaskForm):
    """A doctor's details printed on prescriptions."""

    qualifications = StringField("Qualifications", validators=[Optional(), Length(max=120)],
                                 filters=[_printable, trimmed])
    speciality = StringField("Speciality", validators=[Optional(), Length(max=60)], filters=[_printable, trimmed])
    registration_number = StringField(
        "Registration number", filters=[_printable, trimmed],
        validators=[Optional(), Length(max=40), Regexp(r"^[A-Za-z0-9][A-Za-z0-9 ./-]*$",
                                                       message="Use letters, digits, spaces, '.', '/' or '-'.")])
    registration_council = StringField("Registered with", validators=[Optional(), Length(max=80)],
                                       filters=[_printable, trimmed])
