"""Schedule setup (clinic admin): opening hours, closures and holidays, doctors' sessions, appointment types.

A change that takes availability away never silently orphans a booked appointment: the appointments
it would newly leave outside their doctor's availability are listed first (409, nothing saved), and
the change is saved only once the admin confirms having seen them. They stay booked, and the
overview and the board keep flagging them until the desk has dealt with each.
"""

import uuid
from datetime import date

from flask import Blueprint, abort, flash, g, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import formats
from app.audit.services import deny_not_found, load_or_404, record
from app.auth.policy import Permission, requires
from app.db import get_session, new_id, utcnow
from app.htmx import client_redirect, render
from app.scheduling import services
from app.scheduling.models import (
    COLOURS,
    Appointment,
    AppointmentType,
    ClinicDay,
    DoctorSession,
    ExceptionKind,
    SessionException,
)
from app.scheduling.setup_forms import (
    WEEKDAYS,
    ConfirmForm,
    DayForm,
    ExtraForm,
    HoursForm,
    LeaveForm,
    SessionForm,
    TypeForm,
)
from app.scheduling.setup_services import Conflict, change_availability, set_day, set_hours, upcoming_holidays
from app.scheduling.slots import public_holidays

bp = Blueprint("scheduling_setup", __name__, url_prefix="/schedule/setup")


def _saved(db: Session, object_type: str, object_id: uuid.UUID, reason: str, newly: list[Appointment],
           message: str, to: str):
    """Audit, commit once, tell the admin (and about appointments kept outside availability), redirect."""
    if newly:
        reason += f"; {len(newly)} booked appointment(s) kept outside availability"
        message += (f" {len(newly)} booked appointment(s) are now outside availability; they are listed "
                    "under “Appointments outside a doctor's availability” for follow-up.")
    record(db, "schedule.setup", object_type=object_type, object_id=object_id, reason=reason)
    db.commit()
    flash(message, "warning" if newly else "success")
    return client_redirect(to)


def _doctor_names(db: Session) -> dict[uuid.UUID, str]:
    return {d.id: d.name for d in services.doctors(db, g.clinic.id, include_disabled=True)}


def _overview(status: int = 200, *, hours_form=None, closure_form=None, conflict=None):
    db = get_session()
    clinic = g.clinic
    today = services.today(clinic)
    if hours_form is None:
        hours_form = HoursForm(formdata=None)
        hours_form.fill(services.weekly_hours(db, clinic.id))
    overrides = {d.day: d for d in db.scalars(select(ClinicDay).where(
        ClinicDay.clinic_id == clinic.id, ClinicDay.day >= today).order_by(ClinicDay.day))}
    active = {d.id for d in services.doctors(db, clinic.id)}
    sessions = db.scalars(select(DoctorSession).where(DoctorSession.clinic_id == clinic.id)
                          .order_by(DoctorSession.weekday, DoctorSession.starts))
    weekly = {}
    for s in sessions:
        weekly.setdefault(s.doctor_id, []).append(s)
    return render("scheduling/setup/index.html", "main", status=status, hours_form=hours_form,
                  closure_form=closure_form or DayForm(formdata=None), conflict=conflict, today=today,
                  holidays=upcoming_holidays(clinic.state_code, today), overrides=overrides,
                  closures=[d for d in overrides.values() if not d.is_open],
                  types=services.appointment_types(db, clinic.id, active_only=False),
                  names=_doctor_names(db), active=active, weekly=weekly, colours=COLOURS, weekdays=WEEKDAYS,
                  outside=services.upcoming_outside_availability(db, clinic))


@bp.get("/")
@requires(Permission.SETTINGS_MANAGE)
def index():
    """The setup overview: hours, closures and holidays, appointment types, doctors, follow-ups."""
    return _overview()


@bp.post("/hours")
@requires(Permission.SETTINGS_MANAGE)
def hours_post():
    """Save the weekly opening hours."""
    form = HoursForm()
    if not form.validate():
        return _overview(422, hours_form=form)
    db = get_session()
    hours = form.hours()
    applied, newly = change_availability(db, lambda: set_hours(db, g.clinic.id, hours), confirmed=form.confirm.data)
    if not applied:
        return _overview(409, hours_form=form, conflict=Conflict("hours", newly))
    summary = ", ".join(f"{name[:3]} " + (f"{hours[i][0]:%H:%M}-{hours[i][1]:%H:%M}" if i in hours else "closed")
                        for i, name in enumerate(WEEKDAYS))
    return _saved(db, "clinic_hours", g.clinic.id, f"opening hours: {summary}", newly, "Opening hours saved.",
                  url_for("scheduling_setup.index"))


@bp.post("/days")
@requires(Permission.SETTINGS_MANAGE)
def days_post():
    """Close the clinic on a day, or open it anyway on a public holiday."""
    form = DayForm()
    valid = form.validate()
    day, today = form.day.data, services.today(g.clinic)
    holiday = public_holidays(g.clinic.state_code, day.year).get(day) if day else None
    if valid and day < today:
        form.day.errors.append("The date has already passed.")
    elif valid and form.opening and not holiday:
        form.day.errors.append("Only a public holiday can be marked “open anyway”.")
    if not valid or form.day.errors:
        return _overview(422, closure_form=form)
    db = get_session()
    note = form.note.data or holiday or "Closed"
    applied, newly = change_availability(
        db, lambda: set_day(db, g.clinic.id, day, form.opening, note, current_user.id), confirmed=form.confirm.data)
    if not applied:
        return _overview(409, closure_form=form, conflict=Conflict("closure", newly))
    what = f"open on {formats.day(day)} ({holiday})" if form.opening else f"closed on {formats.day(day)}"
    return _saved(db, "clinic_day", g.clinic.id, what, newly, f"The clinic is {what}.",
                  url_for("scheduling_setup.index"))


@bp.post("/days/<day>/delete")
@requires(Permission.SETTINGS_MANAGE)
def day_delete(day):
    """Remove a day's closure or "open anyway" decision: the weekly hours and holidays apply again."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        abort(404)
    db = get_session()
    row = db.get(ClinicDay, (g.clinic.id, when))
    if row is None:
        abort(404)
    form = ConfirmForm()
    applied, newly = change_availability(db, lambda: db.delete(row), confirmed=form.confirm.data)
    if not applied:
        return _overview(409, conflict=Conflict(f"day-{when.isoformat()}-delete", newly))
    return _saved(db, "clinic_day", g.clinic.id, f"decision for {formats.day(when)} removed", newly,
                  f"{formats.day(when)} follows the weekly hours and public holidays again.",
                  url_for("scheduling_setup.index"))


# --- Appointment types ---------------------------------------------------------------------------

def _name_taken(db: Session, name: str, exclude: uuid.UUID | None) -> bool:
    query = select(AppointmentType.id).where(AppointmentType.clinic_id == g.clinic.id, AppointmentType.active,
                                             func.lower(AppointmentType.name) == name.lower())
    if exclude is not None:
        query = query.where(AppointmentType.id != exclude)
    return db.scalar(query.limit(1)) is not None


def _type_form_valid(db: Session, form: TypeForm, type_id: uuid.UUID | None = None) -> bool:
    if not form.validate():
        return False
    if form.active.data and _name_taken(db, form.name.data, type_id):
        form.name.errors.append(f"An active type is already called “{form.name.data}”. "
                                "Choose another name, or deactivate that type first.")
        return False
    return True


def _type_page(form: TypeForm, type_=None, status: int = 200):
    return render("scheduling/setup/type.html", "type_form", status=status, form=form, type_=type_, colours=COLOURS)


def _save_type(db: Session, type_: AppointmentType, form: TypeForm, verb: str):
    form.apply(type_)
    db.add(type_)
    db.flush()
    state = "" if type_.active else " (inactive)"
    record(db, "schedule.setup", object_type="appointment_type", object_id=type_.id,
           reason=f"appointment type {verb}: {type_.name}, {type_.duration_minutes} min{state}")
    db.commit()
    flash(f"Appointment type “{type_.name}” {verb}{state}.", "success")
    return client_redirect(url_for("scheduling_setup.index"))


@bp.get("/types/new")
@requires(Permission.SETTINGS_MANAGE)
def type_new():
    """The form for a new appointment type."""
    return _type_page(TypeForm())


@bp.post("/types/new")
@requires(Permission.SETTINGS_MANAGE)
def type_create():
    """Add an appointment type."""
    form, db = TypeForm(), get_session()
    if not _type_form_valid(db, form):
        return _type_page(form, status=422)
    return _save_type(db, AppointmentType(clinic_id=g.clinic.id, id=new_id()), form, "added")


@bp.get("/types/<uuid:type_id>")
@requires(Permission.SETTINGS_MANAGE)
def type_edit(type_id):
    """Edit an appointment type (deactivate it rather than delete: appointments keep pointing at it)."""
    type_ = load_or_404(AppointmentType, type_id, "schedule.setup")
    return _type_page(TypeForm(obj=type_), type_)


@bp.post("/types/<uuid:type_id>")
@requires(Permission.SETTINGS_MANAGE)
def type_update(type_id):
    """Save an appointment type."""
    type_, form, db = load_or_404(AppointmentType, type_id, "schedule.setup"), TypeForm(), get_session()
    if not _type_form_valid(db, form, type_.id):
        return _type_page(form, type_, status=422)
    return _save_type(db, type_, form, "saved")


# --- A doctor's weekly sessions and exceptions ------------------------------------------------------

def _get_doctor(doctor_id: uuid.UUID) -> services.Doctor:
    db = get_session()
    found = [d for d in services.doctors(db, g.clinic.id, include_disabled=True) if d.id == doctor_id]
    if not found:
        deny_not_found(db, "schedule.setup", object_type="staff", object_id=doctor_id)
    return found[0]


def _sessions(db: Session, doctor_id: uuid.UUID) -> list[DoctorSession]:
    return list(db.scalars(select(DoctorSession).where(DoctorSession.clinic_id == g.clinic.id,
                                                       DoctorSession.doctor_id == doctor_id)
                           .order_by(DoctorSession.weekday, DoctorSession.starts)))


def _doctor_page(doctor: services.Doctor, status: int = 200, *, editing=None, new_session=None, leave_form=None,
                 extra_form=None, conflict=None):
    """The doctor's page; `editing` is (session id, its submitted form) when one comes back."""
    db = get_session()
    today = services.today(g.clinic)
    rows = [(s, editing[1] if editing and editing[0] == s.id else SessionForm(formdata=None, obj=s))
            for s in _sessions(db, doctor.id)]
    exceptions = db.scalars(select(SessionException).where(
        SessionException.clinic_id == g.clinic.id, SessionException.doctor_id == doctor.id,
        SessionException.last_day >= today).order_by(SessionException.first_day, SessionException.starts))
    return render("scheduling/setup/doctor.html", "main", status=status, doctor=doctor, rows=rows,
                  exceptions=list(exceptions), conflict=conflict, names=_doctor_names(db),
                  new_session=new_session or SessionForm(formdata=None),
                  leave_form=leave_form or LeaveForm(formdata=None, today=today),
                  extra_form=extra_form or ExtraForm(formdata=None, today=today), kinds=ExceptionKind)


def _session_text(s: DoctorSession) -> str:
    return f"{WEEKDAYS[s.weekday]} {s.starts:%H:%M}-{s.ends:%H:%M}, {s.slot_minutes}-min slots"


@bp.get("/doctors/<uuid:doctor_id>")
@requires(Permission.SETTINGS_MANAGE)
def doctor(doctor_id):
    """A doctor's weekly sessions, leave and extra sessions."""
    return _doctor_page(_get_doctor(doctor_id))


@bp.post("/doctors/<uuid:doctor_id>/sessions")
@requires(Permission.SETTINGS_MANAGE)
def session_create(doctor_id):
    """Add a weekly session."""
    doctor_, form, db = _get_doctor(doctor_id), SessionForm(), get_session()
    if not form.validate() or not form.check_overlap(_sessions(db, doctor_.id)):
        return _doctor_page(doctor_, 422, new_session=form)
    session = DoctorSession(clinic_id=g.clinic.id, id=new_id(), doctor_id=doctor_.id,
                            updated_by=current_user.id)
    form.apply(session)
    db.add(session)
    db.flush()
    return _saved(db, "doctor_session", session.id, f"session added for a doctor: {_session_text(session)}", [],
                  f"Session added for {doctor_.name}.", url_for("scheduling_setup.doctor", doctor_id=doctor_.id))


@bp.post("/doctors/<uuid:doctor_id>/sessions/<uuid:session_id>")
@requires(Permission.SETTINGS_MANAGE)
def session_update(doctor_id, session_id):
    """Change a weekly session."""
    doctor_, db = _get_doctor(doctor_id), get_session()
    session = load_or_404(DoctorSession, session_id, "schedule.setup", where={"doctor_id": doctor_.id})
    form = SessionForm()
    others = [s for s in _sessions(db, doctor_.id) if s.id != session.id]
    if not form.validate() or not form.check_overlap(others):
        return _doctor_page(doctor_, 422, editing=(session.id, form))

    def change():
        form.apply(session)
        session.updated_by, session.updated_at = current_user.id, utcnow()

    applied, newly = change_availability(db, change, confirmed=form.confirm.data, doctor_ids=[doctor_.id])
    if not applied:
        return _doctor_page(doctor_, 409, editing=(session_id, form), conflict=Conflict(f"session-{session_id}", newly))
    return _saved(db, "doctor_session", session.id, f"session changed: {_session_text(session)}", newly,
                  f"Session saved for {doctor_.name}.", url_for("scheduling_setup.doctor", doctor_id=doctor_.id))


@bp.post("/doctors/<uuid:doctor_id>/sessions/<uuid:session_id>/delete")
@requires(Permission.SETTINGS_MANAGE)
def session_delete(doctor_id, session_id):
    """Remove a weekly session."""
    return _delete(doctor_id, DoctorSession, session_id, "session",
                   lambda s: (f"session removed: {_session_text(s)}", "Session removed"))


def _delete(doctor_id: uuid.UUID, model, row_id: uuid.UUID, form_prefix: str, describe):
    """Remove one of a doctor's sessions or exceptions, through the orphaned-appointment guard.
    `describe(row)` gives the audit reason and the start of the message to the admin."""
    doctor_, db = _get_doctor(doctor_id), get_session()
    row, form = load_or_404(model, row_id, "schedule.setup", where={"doctor_id": doctor_.id}), ConfirmForm()
    reason, message = describe(row)
    applied, newly = change_availability(db, lambda: db.delete(row), confirmed=form.confirm.data,
                                         doctor_ids=[doctor_.id])
    if not applied:
        return _doctor_page(doctor_, 409, conflict=Conflict(f"{form_prefix}-{row_id}-delete", newly))
    return _saved(db, model.__tablename__, row_id, reason, newly, f"{message} for {doctor_.name}.",
                  url_for("scheduling_setup.doctor", doctor_id=doctor_.id))


def _exception(form: LeaveForm | ExtraForm, doctor_id: uuid.UUID) -> SessionException:
    common = dict(clinic_id=g.clinic.id, id=new_id(), doctor_id=doctor_id, starts=form.starts.data,
                  ends=form.ends.data, note=form.note.data or None, created_by=current_user.id, created_at=utcnow())
    if isinstance(form, LeaveForm):
        return SessionException(kind=ExceptionKind.LEAVE, first_day=form.first_day.data,
                                last_day=form.last_day.data or form.first_day.data, **common)
    return SessionException(kind=ExceptionKind.EXTRA, first_day=form.day.data, last_day=form.day.data,
                            slot_minutes=form.slot_minutes.data, room=form.room.data or None, **common)


def _exception_text(e: SessionException) -> str:
    days = f"{formats.day(e.first_day)}" + (f" to {formats.day(e.last_day)}" if e.last_day != e.first_day else "")
    hours = f" {e.starts:%H:%M}-{e.ends:%H:%M}" if e.starts else ""
    return f"{'leave' if e.kind == ExceptionKind.LEAVE else 'extra session'} {days}{hours}"


@bp.post("/doctors/<uuid:doctor_id>/exceptions")
@requires(Permission.SETTINGS_MANAGE)
def exception_create(doctor_id):
    """Add leave (whole days or some hours of one day) or an extra session on one day."""
    doctor_, db, today = _get_doctor(doctor_id), get_session(), services.today(g.clinic)
    is_extra = request.form.get("kind") == ExceptionKind.EXTRA.value
    form = ExtraForm(today=today) if is_extra else LeaveForm(today=today)
    forms = {"extra_form" if is_extra else "leave_form": form}
    if not form.validate():
        return _doctor_page(doctor_, 422, **forms)
    exception = _exception(form, doctor_.id)
    applied, newly = change_availability(db, lambda: db.add(exception), confirmed=form.confirm.data,
                                         doctor_ids=[doctor_.id])
    if not applied:
        return _doctor_page(doctor_, 409, conflict=Conflict("extra" if is_extra else "leave", newly), **forms)
    text = _exception_text(exception)
    return _saved(db, "doctor_exception", exception.id, f"{text} added for a doctor", newly,
                  f"{text[0].upper()}{text[1:]} added for {doctor_.name}.",
                  url_for("scheduling_setup.doctor", doctor_id=doctor_.id))


@bp.post("/doctors/<uuid:doctor_id>/exceptions/<uuid:exception_id>/delete")
@requires(Permission.SETTINGS_MANAGE)
def exception_delete(doctor_id, exception_id):
    """Remove leave or an extra session."""
    def describe(e):
        text = _exception_text(e)
        return f"{text} removed", f"{text[0].upper()}{text[1:]} removed"

    return _delete(doctor_id, SessionException, exception_id, "exception", describe)
