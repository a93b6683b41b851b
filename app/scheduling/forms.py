"""Booking, walk-in, status and reschedule forms. Each keeps every typed value when it comes back."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from app.forms import trimmed
from app.patients.forms import RegisterForm
from app.scheduling.models import AppointmentType
from app.scheduling.services import Doctor


def parse_uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def parse_local(text: str | None, tz: str) -> datetime | None:
    """'2026-11-21T10:30' as an aware time in the clinic's zone, or None (also for a time too far from now
    to be a real booking)."""
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    moment = moment.replace(tzinfo=ZoneInfo(tz)) if moment.tzinfo is None else moment
    return moment if abs(moment - datetime.now(UTC)) <= timedelta(days=5 * 366) else None


class PickForm(FlaskForm):
    """Who the appointment is for: a patient found by search, or a new one registered inline."""

    q = StringField("Find the patient", filters=[trimmed], render_kw={"autocomplete": "off"})
    patient_id = HiddenField()
    new_patient = BooleanField("New patient: register now")
    type_id = SelectField("Type")
    reason = StringField("Reason for the visit", validators=[Optional(), Length(max=200)], filters=[trimmed],
                         render_kw={"autocomplete": "off"})

    def set_types(self, types: list[AppointmentType], *, optional: bool = False) -> None:
        choices = [SelectChoice(str(t.id), f"{t.name} ({t.duration_minutes} min)") for t in types]
        self.type_id.choices = ([SelectChoice("", "—")] if optional else []) + choices

    def chosen_patient_id(self) -> uuid.UUID | None:
        return parse_uuid(self.patient_id.data)


class BookForm(PickForm):
    doctor_id = HiddenField(validators=[DataRequired()])
    start = HiddenField(validators=[DataRequired()])
    confirm_overlap = BooleanField("Book anyway: the patient has another appointment at this time")
    overbook = BooleanField("Overbook: the doctor is already booked (or not available) at this time")
    overbook_reason = StringField("Why overbook", validators=[Optional(), Length(max=200)], filters=[trimmed])


class WalkInForm(PickForm):
    doctor_id = SelectField("Doctor")

    def set_doctors(self, doctors: list[Doctor]) -> None:
        self.doctor_id.choices = [SelectChoice(str(d.id), d.name) for d in doctors]


class NewPatientForm(RegisterForm):
    """The registration form, used inside a booking (its CSRF token is the booking form's)."""

    class Meta:
        csrf = False


class StatusForm(FlaskForm):
    action = HiddenField(validators=[DataRequired()])
    reason = StringField("Reason", validators=[Optional(), Length(max=200)], filters=[trimmed])
    next = HiddenField()


class RescheduleForm(FlaskForm):
    doctor_id = HiddenField(validators=[DataRequired()])
    start = HiddenField(validators=[DataRequired()])
    confirm_overlap = BooleanField("Move anyway: the patient has another appointment at that time")
    overbook = BooleanField("Overbook: the doctor is already booked (or not available) at this time")
    overbook_reason = StringField("Why overbook", validators=[Optional(), Length(max=200)], filters=[trimmed])
