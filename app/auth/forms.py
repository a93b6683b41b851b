"""Sign-in, MFA and password forms."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)],
                       render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


class CodeForm(FlaskForm):
    code = StringField("Authentication code", validators=[DataRequired(), Length(max=40)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric",
                                  "autofocus": True, "spellcheck": "false"})


class RecoveryForm(FlaskForm):
    code = StringField("Recovery code", validators=[DataRequired(), Length(max=40)],
                       render_kw={"autocomplete": "one-time-code", "spellcheck": "false",
                                  "autocapitalize": "characters"})


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField("New password", validators=[DataRequired()],
                        render_kw={"autocomplete": "new-password", "minlength": 12, "maxlength": 128})
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("new", message="The two passwords differ.")],
                            render_kw={"autocomplete": "new-password"})


REAUTH_ERRORS = {
    "invalid": "Your password is not correct.",
    "locked": "Too many wrong passwords. Please wait a few minutes and try again.",
}


def reauth_status(outcome: str) -> int:
    """422 for a wrong password, 429 once the account's attempts are used up."""
    return 429 if outcome == "locked" else 422


class ReauthForm(FlaskForm):
    password = PasswordField("Your password, to confirm", validators=[DataRequired()],
                             render_kw={"autocomplete": "current-password"})
