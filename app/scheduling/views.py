"""The day board, week view, day sheet, booking, and one appointment's page with its status changes.

Every page or fragment that shows patients writes one audit record listing them. The board polls
in the background (not user activity) and gets 204 while nothing changed.
"""

from datetime import date, timedelta

from flask import Blueprint, Response, flash, g, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from jinja2_fragments.flask import render_block
from markupsafe import Markup

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, can, requires
from app.db import get_session, utcnow
from app.htmx import client_redirect, is_htmx, render, safe_next
from app.messaging.desk import reminder_rows
from app.patients.models import Patient
from app.scheduling import board_cache, booking, picker, services
from app.scheduling.forms import BookForm, RescheduleForm, StatusForm, parse_local, parse_uuid
from app.scheduling.models import Appointment
from app.scheduling.pages import board_changed, contact_only, doctor_or_404

bp = Blueprint("scheduling", __name__, url_prefix="/schedule")
MAX_DAYS_AWAY = 5 * 366  # the schedule pages show days within about five years of today
# The reason typed for an overbooking may be clinical ("chest pain"): it is sealed in the appointment's
# history; the audit trail, which auditors read, says only that one was given.
OVERBOOK_AUDIT = "overbooked; reason in the appointment's history"


def day_param(source=None) -> date:
    """The `day` parameter (of the query string unless another source is given), or today at the clinic
    (also for a day too far away to make sense)."""
    today = services.today(g.clinic)
    try:
        day = date.fromisoformat((request.args if source is None else source).get("day", ""))
    except ValueError:
        return today
    return day if abs((day - today).days) <= MAX_DAYS_AWAY else today


def _overbook_reason(form: BookForm | RescheduleForm) -> str | None:
    """The form's overbooking reason, through the one rule (booking.overbook_reason); a missing reason is also
    marked on its field."""
    try:
        return booking.overbook_reason(form.overbook.data, form.overbook_reason.data,
                                       can_overbook=can(g.role, Permission.SCHEDULE_OVERBOOK))
    except booking.OverbookNeedsReason as exc:
        form.overbook_reason.errors.append(str(exc))
        raise


def _overbook_status(exc: booking.ScheduleError) -> int:
    """The status of a refused overbooking: forbidden to the role, or incomplete."""
    return 403 if isinstance(exc, booking.MayNotOverbook) else 422


# --- Day board, week, sheet ---------------------------------------------------------------------------

def _board_response(the_day: date) -> Response:
    """The day board (the page, or the board alone for htmx), from this process's board cache when the
    same board in the same view was rendered since its stamp last moved (board_cache.py)."""
    db = get_session()
    patient_id = parse_uuid(request.args.get("patient_id"))
    view = {"day": the_day, "today": services.today(g.clinic), "patient_id": patient_id, "timedelta": timedelta,
            "can_book": can(g.role, Permission.SCHEDULE_BOOK), "can_setup": can(g.role, Permission.SETTINGS_MANAGE)}
    stamp = services.board_stamp(db, g.clinic, the_day)
    key = (g.clinic.id, the_day, stamp, contact_only(), view["can_book"], view["can_setup"], patient_id,
           view["today"])
    cached = board_cache.boards.get(key)
    if cached is None:
        board = services.board(db, g.clinic, the_day, contact_only=contact_only())
        html = render_block("scheduling/day.html", "board", board=board, **view).replace(generate_csrf(),
                                                                                        board_cache.CSRF_MARK)
        if board.stamp == stamp:  # nothing changed while it was read: the next desk may have it
            board_cache.boards.put(key, html, board.patient_ids)
        cached = html, board.patient_ids
    html, patient_ids = cached
    record(db, "schedule.day", patient_ids=patient_ids, object_type="schedule", reason=the_day.isoformat())
    db.commit()
    board_html = Markup(html.replace(board_cache.CSRF_MARK, generate_csrf()))  # noqa: S704 (our own rendering)
    return render("scheduling/day.html", "board", board_html=board_html, **view)


@bp.get("/")
@requires(Permission.SCHEDULE_VIEW)
def day():
    """The day board: a column per doctor working that day."""
    return _board_response(day_param())


@bp.get("/board")
@requires(Permission.SCHEDULE_VIEW, background=True)
def board_poll():
    """The board, polled every few seconds: 204 while nothing changed (no PHI read, no audit)."""
    the_day = day_param()
    if request.args.get("v") == services.board_stamp(get_session(), g.clinic, the_day):
        return Response(status=204)
    return _board_response(the_day)


@bp.get("/week")
@requires(Permission.SCHEDULE_VIEW)
def week():
    """One doctor's week."""
    db = get_session()
    doctors = services.doctors(db, g.clinic.id)
    doctor_id = parse_uuid(request.args.get("doctor_id")) or (doctors[0].id if doctors else None)
    if doctor_id is None:
        return render("scheduling/week.html", "main", doctor=None, doctors=doctors)
    doctor = doctor_or_404(doctor_id)
    the_day = day_param()
    days, columns, statuses, patient_ids = services.week(db, g.clinic, doctor, the_day, contact_only=contact_only())
    record(db, "schedule.week", patient_ids=patient_ids, object_type="schedule", object_id=doctor.id,
           reason=days[0].isoformat())
    db.commit()
    return render("scheduling/week.html", "main", doctor=doctor, doctors=doctors, days=days, columns=columns,
                  statuses=statuses, day=the_day, today=services.today(g.clinic), timedelta=timedelta,
                  can_book=can(g.role, Permission.SCHEDULE_BOOK),
                  back=url_for("scheduling.week", doctor_id=doctor.id, day=the_day.isoformat()))


@bp.get("/sheet/<uuid:doctor_id>")
@requires(Permission.SCHEDULE_VIEW)
def sheet(doctor_id):
    """A doctor's printable day sheet."""
    db = get_session()
    doctor = doctor_or_404(doctor_id)
    the_day = day_param()
    board = services.board(db, g.clinic, the_day, [doctor.id], contact_only=contact_only())
    cards = [c for column in board.columns for c in
             [r.card for r in column.rows if r.card] + column.walk_ins + column.not_held]
    # Visit reasons are what the patient told the desk: not for roles that see contact details only.
    full = can(g.role, Permission.PATIENT_VIEW)
    reasons = {c.appointment.id: services.reason_of(db, c.appointment) for c in cards} if full else None
    record(db, "schedule.print", patient_ids=board.patient_ids, object_type="schedule", object_id=doctor.id,
           reason=the_day.isoformat())
    db.commit()
    return render("scheduling/sheet.html", "main", doctor=doctor, day=the_day, board=board, cards=cards,
                  reasons=reasons, printed_at=utcnow())


# --- Booking ----------------------------------------------------------------------------------------------

def _book_context(form: BookForm, new_form, pick: picker.Pick, **extra) -> dict:
    db = get_session()
    doctor_id = parse_uuid(form.doctor_id.data)
    doctor = next((d for d in services.doctors(db, g.clinic.id) if d.id == doctor_id), None)
    return {"form": form, "new_form": new_form, "pick": pick, "doctor": doctor,
            "starts": parse_local(form.start.data, g.clinic.timezone),
            "board_day": day_param({"day": (form.start.data or "")[:10]}),  # an unbookable link's way back
            "can_overbook": can(g.role, Permission.SCHEDULE_OVERBOOK), "overlaps": [], "booked": None,
            "can_register": can(g.role, Permission.PATIENT_EDIT),
            "problem": pick.error, **extra}


def _types_for(form) -> list:
    types = services.appointment_types(get_session(), g.clinic.id)
    form.set_types(types)
    return types


@bp.get("/book")
@requires(Permission.SCHEDULE_BOOK)
def book_form():
    """The booking form for a slot (opens in the board's side panel)."""
    form = BookForm(formdata=None, doctor_id=request.args.get("doctor_id"), start=request.args.get("start"),
                    patient_id=request.args.get("patient_id"))
    _types_for(form)
    db = get_session()
    pick = picker.Pick(chosen=picker.chosen(db, form.chosen_patient_id()))
    if pick.chosen:
        record(db, "patient.view", patient_id=pick.chosen[0].id, object_type="patient", reason="booking")
    response = render("scheduling/book.html", "book_form", **_book_context(form, picker.new_patient_form(), pick))
    db.commit()  # the audit record, if any; and the connection goes back before the session row is saved
    return response


@bp.post("/book")
@requires(Permission.SCHEDULE_BOOK)
def book():
    """Search for the patient (intent=search), or book the slot."""
    form = BookForm()
    types = _types_for(form)
    new_form = picker.new_patient_form(request.form)
    db = get_session()
    if picker.wants_search(form):
        return picker.search_response(db, form, lambda pick: render(
            "scheduling/book.html", "book_form", **_book_context(form, new_form, pick)))
    picker.take_duplicate_choice(form)
    return _save_booking(form, new_form, types)


def _refuse(form, new_form, pick, status: int, problem: str, **extra) -> Response:
    """The booking form again with the desk's input and why it was refused. The chosen patient stays
    chosen (and is shown, so the view is audited)."""
    db = get_session()
    if form.new_patient.data:
        pick = picker.Pick(duplicates=pick.duplicates)  # the inline registration was not kept
    elif pick.chosen is None:
        pick = picker.Pick(chosen=picker.chosen(db, form.chosen_patient_id()))
    if pick.chosen:
        record(db, "patient.view", patient_id=pick.chosen[0].id, object_type="patient", reason="booking")
    response = render("scheduling/book.html", "book_form", status=status,
                      **_book_context(form, new_form, pick, **{**extra, "problem": problem}))
    db.commit()  # the audit record; and the connection goes back before the session row is saved
    return response


def _unbookable(form, new_form) -> Response:
    """A booking link (or a tampered form) whose doctor or time is no slot: the form says so, shows no patient
    and offers no Book, only the way back to the board."""
    response = render("scheduling/book.html", "book_form", status=422, **_book_context(form, new_form, picker.Pick()))
    get_session().commit()  # the connection goes back before the session row is saved
    return response


def _save_booking(form: BookForm, new_form, types) -> Response:
    db = get_session()
    starts = parse_local(form.start.data, g.clinic.timezone)
    doctor_id = parse_uuid(form.doctor_id.data)
    if starts is None or doctor_id not in {d.id for d in services.doctors(db, g.clinic.id)}:
        return _unbookable(form, new_form)
    if not form.validate():
        return _refuse(form, new_form, picker.Pick(), 422, "Check the highlighted fields.")
    try:
        overbooking = _overbook_reason(form)
    except booking.ScheduleError as exc:
        return _refuse(form, new_form, picker.Pick(), _overbook_status(exc), str(exc))
    patient, pick = picker.resolve(db, form, new_form, current_user.id)
    if patient is None:
        db.commit()  # only the duplicate check's audit record
        return render("scheduling/book.html", "book_form", status=422, **_book_context(form, new_form, pick))
    type_ = next(t for t in types if str(t.id) == form.type_id.data)
    ends = starts + timedelta(minutes=type_.duration_minutes)
    try:
        booking.check_patient_free(db, g.clinic.id, patient.id, starts, ends, confirmed=form.confirm_overlap.data)
    except booking.PatientBusy as exc:
        db.rollback()
        return _refuse(form, new_form, pick, 409, str(exc), overlaps=exc.overlaps)
    try:
        appointment = booking.book(db, clinic=g.clinic, patient=patient, doctor_id=doctor_id, starts=starts,
                                   type_=type_, reason=form.reason.data, by=current_user.id,
                                   overbook_reason=overbooking)
    except booking.ScheduleError as exc:
        db.rollback()
        status = 409 if isinstance(exc, booking.SlotTaken) else 422
        return _refuse(form, new_form, pick, status, exc.for_role(can(g.role, Permission.SCHEDULE_OVERBOOK)),
                       conflict=True)
    record(db, "appointment.book", patient_id=patient.id, object_type="appointment", object_id=appointment.id)
    if overbooking:
        record(db, "appointment.overbook", patient_id=patient.id, object_type="appointment",
               object_id=appointment.id, reason=OVERBOOK_AUDIT, flagged=True)
    if is_htmx():
        response = board_changed(render("scheduling/book.html", "book_form",
                                        **_book_context(form, new_form, pick, booked=appointment)))
        db.commit()
        return response
    db.commit()
    flash("The appointment is booked.", "success")
    return redirect(url_for("scheduling.appointment", appointment_id=appointment.id), code=303)


# --- One appointment --------------------------------------------------------------------------------------

def _appointment_context(appointment: Appointment, **extra) -> dict:
    db = get_session()
    label = services.labels_of_one(db, appointment, contact_only=contact_only())
    events = booking.history(db, appointment)
    # Visit and cancellation reasons are what the patient told the desk: not for contact-only roles.
    full = can(g.role, Permission.PATIENT_VIEW)
    events = events if full else [(e, None) for e, _ in events]
    people = {e.by for e, _ in events}
    return {
        "a": appointment, "patient": label, "doctor": doctor_or_404(appointment.doctor_id),
        "type": services.type_of(db, appointment),
        "reason": services.reason_of(db, appointment) if full else None,
        "events": events, "staff": services.staff_names(db, people), "previous_id": appointment.rescheduled_from,
        "next_appointment": services.successor(db, appointment),
        "actions": booking.allowed_actions(g.clinic, appointment) if can(g.role, Permission.SCHEDULE_BOOK) else [],
        "labels": booking.ACTION_LABELS, "can_book": can(g.role, Permission.SCHEDULE_BOOK),
        "status_form": StatusForm(formdata=None), "problem": None,
        "reminders": reminder_rows(db, appointment), **extra,
    }


def _show(appointment: Appointment, status: int = 200, *, audit: bool = True, **extra) -> Response:
    """The appointment page or panel, with its one audit record (unless the caller wrote it)."""
    context = _appointment_context(appointment, **extra)
    db = get_session()
    if audit:
        record(db, "appointment.view", patient_id=appointment.patient_id, object_type="appointment",
               object_id=appointment.id)
    db.commit()
    return render("scheduling/appointment.html", "appointment_panel", status=status, **context)


@bp.get("/appointments/<uuid:appointment_id>")
@requires(Permission.SCHEDULE_VIEW)
def appointment(appointment_id):
    """One appointment: patient, time, status and its history; the actions its status allows."""
    return _show(load_or_404(Appointment, appointment_id, "appointment.view"))


@bp.post("/appointments/<uuid:appointment_id>/status")
@requires(Permission.SCHEDULE_BOOK)
def change_status(appointment_id):
    """Confirm, check in, start, complete, cancel, mark no-show, or undo a no-show."""
    appointment = load_or_404(Appointment, appointment_id, "appointment.status", for_update=True)
    form = StatusForm()
    db = get_session()
    action = form.action.data or ""
    try:
        if not form.validate() and form.reason.errors:
            raise booking.ScheduleError("Keep the reason to 200 characters.")
        booking.change_status(db, clinic=g.clinic, appointment=appointment, action=action, by=current_user.id,
                              reason=form.reason.data)
    except booking.ScheduleError as exc:
        db.rollback()
        appointment = load_or_404(Appointment, appointment_id, "appointment.status")
        return _show(appointment, 409, problem=str(exc), status_form=form)  # with the typed reason
    # The stated reason is PHI: it is sealed in the appointment's history, never copied into the trail.
    record(db, f"appointment.{action}", patient_id=appointment.patient_id, object_type="appointment",
           object_id=appointment.id)
    if is_htmx():  # the panel shows the patient this record already names
        return board_changed(_show(appointment, audit=False))
    db.commit()
    flash(_done_message(appointment, action), "success")
    return redirect(safe_next(form.next.data) or url_for("scheduling.appointment", appointment_id=appointment.id),
                    code=303)


def _done_message(appointment: Appointment, action: str) -> str:
    if action == "check_in":
        return f"Checked in: token {appointment.token}."
    return f"{booking.ACTION_LABELS[action]}: done."


@bp.get("/appointments/<uuid:appointment_id>/reschedule")
@requires(Permission.SCHEDULE_BOOK)
def reschedule_form(appointment_id):
    """Free slots to move the appointment to (same doctor by default; any day)."""
    appointment = load_or_404(Appointment, appointment_id, "appointment.reschedule_form")
    return _reschedule_page(appointment, RescheduleForm(formdata=None))


def _reschedule_page(appointment: Appointment, form: RescheduleForm, status: int = 200, problem=None,
                     overlaps=()) -> Response:
    db = get_session()
    doctors = services.doctors(db, g.clinic.id)
    source = request.form if request.method == "POST" else request.args  # a refused move keeps its choices
    doctor_id = parse_uuid(source.get("doctor_id"))
    doctor_id = doctor_id if doctor_id in {d.id for d in doctors} else appointment.doctor_id
    the_day = day_param(source) if source.get("day") else max(appointment.day, services.today(g.clinic))
    free = services.free_slots(db, g.clinic, doctor_id, the_day)
    label = services.labels_of_one(db, appointment, contact_only=contact_only())
    record(db, "appointment.view", patient_id=appointment.patient_id, object_type="appointment",
           object_id=appointment.id, reason="reschedule")
    db.commit()
    return render("scheduling/reschedule.html", "main", status=status, a=appointment, patient=label,
                  doctors=doctors, doctor_id=doctor_id, day=the_day, free=free, form=form, problem=problem,
                  overlaps=overlaps,
                  can_overbook=can(g.role, Permission.SCHEDULE_OVERBOOK), timedelta=timedelta)


@bp.post("/appointments/<uuid:appointment_id>/reschedule")
@requires(Permission.SCHEDULE_BOOK)
def reschedule(appointment_id):
    """Move the appointment: the old one is kept as 'rescheduled' and linked to the new one."""
    appointment = load_or_404(Appointment, appointment_id, "appointment.reschedule", for_update=True)
    form = RescheduleForm()
    if not form.start.data and request.form.get("overbook_time"):  # "overbook at this time"
        form.start.data = f"{request.form.get('day', '')}T{request.form['overbook_time']}"
    db = get_session()
    starts = parse_local(form.start.data, g.clinic.timezone)
    doctor_id = parse_uuid(form.doctor_id.data)
    if not form.validate() or starts is None or doctor_id not in {d.id for d in services.doctors(db, g.clinic.id)}:
        return _reschedule_page(appointment, form, 422, "Choose one of the free slots.")
    try:
        overbooking = _overbook_reason(form)
    except booking.ScheduleError as exc:
        return _reschedule_page(appointment, form, _overbook_status(exc), str(exc))
    patient = load_or_404(Patient, appointment.patient_id, "appointment.reschedule")
    type_ = services.type_of(db, appointment)
    ends = starts + timedelta(minutes=type_.duration_minutes)
    try:
        booking.check_patient_free(db, g.clinic.id, patient.id, starts, ends, confirmed=form.confirm_overlap.data,
                                   exclude=appointment.id)
    except booking.PatientBusy as exc:
        return _reschedule_page(appointment, form, 409, str(exc), overlaps=exc.overlaps)
    try:
        new = booking.reschedule(db, clinic=g.clinic, appointment=appointment, patient=patient, doctor_id=doctor_id,
                                 starts=starts, type_=type_, by=current_user.id, overbook_reason=overbooking)
    except booking.ScheduleError as exc:
        db.rollback()
        appointment = load_or_404(Appointment, appointment_id, "appointment.reschedule")
        return _reschedule_page(appointment, form, 409, exc.for_role(can(g.role, Permission.SCHEDULE_OVERBOOK)))
    record(db, "appointment.reschedule", patient_id=patient.id, object_type="appointment", object_id=new.id,
           reason=f"from {appointment.id}")
    if overbooking:
        record(db, "appointment.overbook", patient_id=patient.id, object_type="appointment", object_id=new.id,
               reason=OVERBOOK_AUDIT, flagged=True)
    db.commit()
    flash("The appointment is moved; the old one is kept as rescheduled.", "success")
    return client_redirect(url_for("scheduling.appointment", appointment_id=new.id))
