"""Schedule setup forms: opening hours, closures, appointment types, doctors' sessions and exceptions.

Every form that can take availability away has a `confirm` box: ticked once the admin has seen the
booked appointments the change leaves outside availability.
"""

from datetime import date, time

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, IntegerField, SelectField, StringField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from app.formats import weekday_names
from app.forms import trimmed
from app.scheduling.models import COLOURS

WEEKDAYS = weekday_names()
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]  # browsers send seconds when the input's step asks for them



def _time(label: str, *validators) -> TimeField:
    return TimeField(label, validators=list(validators) or [Optional()], format=TIME_FORMATS)


def overlaps(a: tuple[time, time], b: tuple[time, time]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class ConfirmForm(FlaskForm):
    """A button-only change (delete, toggle) that may still need the admin's confirmation."""

    confirm = BooleanField("I have seen these appointments")


class HoursForm(ConfirmForm):
    """Opening hours per weekday: both times, or closed. Fields `opens_0`..`closes_6` (0 = Monday)."""

    def days(self):
        """(weekday number, name, opens, closes, closed) for Monday..Sunday."""
        return [(i, name, self[f"opens_{i}"], self[f"closes_{i}"], self[f"closed_{i}"])
                for i, name in enumerate(WEEKDAYS)]

    def fill(self, hours: dict[int, tuple[time, time]]) -> None:
        for i, _, opens, closes, closed in self.days():
            opens.data, closes.data = hours.get(i, (None, None))
            closed.data = i not in hours

    def hours(self) -> dict[int, tuple[time, time]]:
        return {i: (o.data, c.data) for i, _, o, c, closed in self.days() if not closed.data}

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for _, name, opens, closes, closed in self.days():
            if closed.data or opens.errors or closes.errors:
                continue
            if opens.data is None or closes.data is None:
                (opens if opens.data is None else closes).errors.append(
                    f"Enter when the clinic opens and closes on {name}, or tick Closed.")
                valid = False
            elif closes.data <= opens.data:
                closes.errors.append(f"On {name} the clinic must close after it opens.")
                valid = False
        return valid


for _i, _name in enumerate(WEEKDAYS):
    setattr(HoursForm, f"opens_{_i}", _time(f"{_name} opens"))
    setattr(HoursForm, f"closes_{_i}", _time(f"{_name} closes"))
    setattr(HoursForm, f"closed_{_i}", BooleanField(f"Closed on {_name}"))


class DayForm(ConfirmForm):
    """Close the clinic on one day, or open it on a public holiday."""

    day = DateField("Date", validators=[InputRequired(message="Enter the date.")])
    is_open = HiddenField(default="0")
    note = StringField("Note", validators=[Optional(), Length(max=120)], filters=[trimmed],
                       render_kw={"autocomplete": "off"})

    @property
    def opening(self) -> bool:
        return self.is_open.data == "1"


class TypeForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Give the type a name."), Length(max=60)],
                       filters=[trimmed], render_kw={"autocomplete": "off"})
    duration_minutes = IntegerField("Duration (minutes)", validators=[
        InputRequired(message="Enter the duration in minutes."),
        NumberRange(5, 480, message="The duration is between 5 and 480 minutes.")])
    colour = SelectField("Colour on the board", choices=[SelectChoice(k, v) for k, v in COLOURS.items()])
    billable_item = StringField("Default billable item", validators=[Optional(), Length(max=80)], filters=[trimmed],
                                render_kw={"autocomplete": "off"})
    active = BooleanField("Active (offered when booking)", default=True)

    def apply(self, type_) -> None:
        type_.name, type_.duration_minutes, type_.colour = self.name.data, self.duration_minutes.data, self.colour.data
        type_.billable_item, type_.active = self.billable_item.data or None, self.active.data


class SessionForm(ConfirmForm):
    """One weekly session of a doctor."""

    weekday = SelectField("Weekday", coerce=int, choices=[SelectChoice(i, n) for i, n in enumerate(WEEKDAYS)])
    starts = _time("Starts", InputRequired(message="Enter the start time."))
    ends = _time("Ends", InputRequired(message="Enter the end time."))
    slot_minutes = IntegerField("Slot (minutes)", default=15, validators=[
        InputRequired(message="Enter the slot length."),
        NumberRange(5, 240, message="A slot is between 5 and 240 minutes.")])
    room = StringField("Room", validators=[Optional(), Length(max=40)], filters=[trimmed],
                       render_kw={"autocomplete": "off"})

    def validate_ends(self, field):
        if self.starts.data and field.data and field.data <= self.starts.data:
            raise ValidationError("The session must end after it starts.")

    def apply(self, session) -> None:
        session.weekday, session.starts, session.ends = self.weekday.data, self.starts.data, self.ends.data
        session.slot_minutes, session.room = self.slot_minutes.data, self.room.data or None

    def check_overlap(self, others) -> bool:
        """Refuse a time that overlaps another session of the doctor's on the same weekday."""
        for other in others:
            if other.weekday == self.weekday.data and overlaps((self.starts.data, self.ends.data),
                                                                (other.starts, other.ends)):
                self.starts.errors.append(
                    f"Overlaps the {WEEKDAYS[other.weekday]} session {other.starts:%H:%M} to {other.ends:%H:%M}.")
                return False
        return True


def _not_past(form, field):
    if field.data and field.data < form.today:
        raise ValidationError("The date has already passed.")


class LeaveForm(ConfirmForm):
    """Leave: whole days, or some hours of one day."""

    first_day = DateField("First day", validators=[InputRequired(message="Enter the first day."), _not_past])
    last_day = DateField("Last day", validators=[Optional()])
    starts = _time("From")
    ends = _time("To")
    note = StringField("Note", validators=[Optional(), Length(max=120)], filters=[trimmed],
                       render_kw={"autocomplete": "off"})

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def validate_last_day(self, field):
        if field.data and self.first_day.data and field.data < self.first_day.data:
            raise ValidationError("The last day cannot be before the first day.")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not (self.starts.errors or self.ends.errors) and (self.starts.data is None) != (self.ends.data is None):
            self.ends.errors.append("For leave of some hours, enter both times; for whole days, neither.")
            return False
        return valid

    def validate_ends(self, field):
        if self.starts.data and field.data <= self.starts.data:
            raise ValidationError("The leave must end after it starts.")
        if self.last_day.data not in (None, self.first_day.data):
            raise ValidationError("Leave of some hours is for a single day; leave the last day empty.")


class ExtraForm(ConfirmForm):
    """An extra session on one day."""

    day = DateField("Day", validators=[InputRequired(message="Enter the day."), _not_past])
    starts = _time("Starts", InputRequired(message="Enter the start time."))
    ends = _time("Ends", InputRequired(message="Enter the end time."))
    slot_minutes = IntegerField("Slot (minutes)", default=15, validators=[
        InputRequired(message="Enter the slot length."),
        NumberRange(5, 240, message="A slot is between 5 and 240 minutes.")])
    room = StringField("Room", validators=[Optional(), Length(max=40)], filters=[trimmed],
                       render_kw={"autocomplete": "off"})
    note = StringField("Note", validators=[Optional(), Length(max=120)], filters=[trimmed],
                       render_kw={"autocomplete": "off"})

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def validate_ends(self, field):
        if self.starts.data and field.data and field.data <= self.starts.data:
            raise ValidationError("The session must end after it starts.")
