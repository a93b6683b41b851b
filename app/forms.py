"""Forms: every form is a Flask-WTF form (its token checked by the guard: app/security/csrf.py). Pages
whose templates are written over plain dicts show a refused form as `Shown`: what was typed, and one
message per field ("form" for a message about the form as a whole)."""

from dataclasses import dataclass, field

from flask_wtf import FlaskForm
from wtforms import BooleanField


@dataclass(frozen=True)
class Shown:
    """A form as a dict-based template shows it: `typed` values and `errors` by field name."""

    typed: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)


def stripped(value: str | None) -> str:
    """No whitespace at the ends (a filter)."""
    return (value or "").strip()


def trimmed(value):
    """No whitespace at the ends, an absent value left absent (a filter)."""
    return value.strip() if isinstance(value, str) else value


def squeeze(value) -> str:
    """Runs of whitespace as one space, none at the ends (a filter; also for any value printed as text)."""
    return " ".join(str(value or "").split())


def squeezed(limit: int):
    """A filter: whitespace squeezed, then cut to `limit` characters."""
    return lambda value: squeeze(value)[:limit]


class KeptForm(FlaskForm):
    """A Flask-WTF form that gives what was typed and its messages back as plain dicts."""

    def typed(self) -> dict:
        """Each field as the user left it (a box: ticked or not)."""
        return {name: f.data if isinstance(f, BooleanField) else f._value()
                for name, f in self._fields.items() if name != "csrf_token"}

    def messages(self) -> dict[str, str]:
        """The first error of each field, and the form's own under "form"."""
        out = {name: f.errors[0] for name, f in self._fields.items() if f.errors}
        if self.form_errors:
            out["form"] = self.form_errors[0]
        return out

    def shown(self) -> Shown:
        return Shown(self.typed(), self.messages())
