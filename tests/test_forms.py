"""The one form idiom (app/forms.py): a refused Flask-WTF form gives back what was typed and one message per
field, as the dict-based templates show them; never its CSRF token."""

from flask import Flask
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from app.forms import KeptForm, squeezed


class Sample(KeptForm):
    name = StringField(filters=[squeezed(8)], validators=[DataRequired("Name it.")])
    code = StringField(validators=[Length(min=3, message="First.")])
    ticked = BooleanField()

    def validate_code(self, field):
        raise ValidationError("Second.")

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        self.form_errors.append("The form as a whole.")
        return False


def test_a_refused_form_gives_back_what_was_typed_and_its_first_messages():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=True)
    with app.test_request_context(method="POST", data={"name": "  Asha   Rao  ", "code": "x", "ticked": "y"}):
        form = Sample()
        assert not form.validate()
        assert form.typed() == {"name": "Asha Rao", "code": "x", "ticked": True}  # no csrf_token
        assert form.messages() == {"csrf_token": "The CSRF token is missing.", "code": "First.",
                                   "form": "The form as a whole."}
        assert form.shown().typed == form.typed() and form.shown().errors == form.messages()
