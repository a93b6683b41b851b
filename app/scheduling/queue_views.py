"""Today's queue: the front desk's board (every doctor), a doctor's own queue, "call next", walk-ins.

The boards poll in the background (not user activity) and get 204 while nothing changed.
"""

from flask import Blueprint, Response, flash, g, redirect, request, url_for
from flask_login import current_user

from app.audit.services import record
from app.auth.policy import Permission, can, requires
from app.clinical import encounters
from app.db import get_session, utcnow
from app.htmx import client_redirect, is_htmx, render
from app.patients.services import labels_of
from app.scheduling import booking, picker, services
from app.scheduling.forms import WalkInForm, parse_uuid
from app.scheduling.pages import board_changed, contact_only, doctor_or_404

bp = Blueprint("scheduling_queue", __name__, url_prefix="/queue")


def _queues_context(doctor_ids=None, *, mine: bool = False, also_shown=()) -> dict:
    db = get_session()
    day = services.today(g.clinic)
    # The stamp first: a change committed while the queue is read makes the next poll fetch it again.
    stamp = services.queue_stamp(db, g.clinic, day)
    queues = services.queues(db, g.clinic, day, doctor_ids, contact_only=contact_only())
    shown = dict.fromkeys([*(c.appointment.patient_id for q in queues for c in q.waiting + q.current + q.done),
                           *also_shown])
    record(db, "queue.view", patient_ids=list(shown), object_type="queue", reason=day.isoformat())
    db.commit()
    return {"queues": queues, "day": day, "mine": mine, "stamp": stamp,
            "can_call": can(g.role, Permission.SCHEDULE_BOOK), "now": utcnow(),
            "can_consult": mine and can(g.role, Permission.CLINICAL_WRITE),
            "can_vitals": can(g.role, Permission.VITALS_WRITE)}


@bp.get("/")
@requires(Permission.SCHEDULE_VIEW)
def board():
    """Every doctor's queue today: waiting (token, minutes waited), in consultation, done."""
    return render("scheduling/queue.html", "queues", **_queues_context())


@bp.get("/mine")
@requires(Permission.QUEUE_OWN)
def mine():
    """The signed-in doctor's own queue, and their consultations whose notes are not signed yet."""
    db = get_session()
    open_notes = encounters.unsigned(db, g.clinic.id, current_user.id) if can(g.role, Permission.CLINICAL_WRITE) else []
    labels = labels_of(db, g.clinic.id, [e.patient_id for e in open_notes], contact_only=True)
    context = _queues_context([current_user.id], mine=True, also_shown=[e.patient_id for e in open_notes])
    context["unsigned"] = [(e, labels.get(e.patient_id)) for e in open_notes]
    return render("scheduling/queue.html", "queues", **context)


@bp.get("/poll")
@requires(Permission.SCHEDULE_VIEW, background=True)
def poll():
    """A queue board polled every few seconds: 204 while nothing changed."""
    db = get_session()
    if request.args.get("v") == services.queue_stamp(db, g.clinic, services.today(g.clinic)):
        return Response(status=204)
    mine = request.args.get("mine") == "1" and can(g.role, Permission.QUEUE_OWN)
    return render("scheduling/queue.html", "queues",
                  **_queues_context([current_user.id] if mine else None, mine=mine))


@bp.post("/<uuid:doctor_id>/next")
@requires(Permission.SCHEDULE_BOOK)
def call_next(doctor_id):
    """Finish the current consultation (if any) and call in the next waiting patient."""
    doctor = doctor_or_404(doctor_id)
    db = get_session()
    mine = request.form.get("mine") == "1"
    token = request.form.get("token", "")
    try:
        finished, called = booking.call_next(db, clinic=g.clinic, doctor_id=doctor.id, by=current_user.id,
                                             token=int(token) if token.isdecimal() and len(token) < 7 else None)
    except booking.ScheduleError as exc:
        db.rollback()
        if is_htmx():
            return render("scheduling/queue.html", "queues", status=409, problem=str(exc),
                          **_queues_context([current_user.id] if mine else None, mine=mine))
        flash(str(exc), "error")
        return redirect(url_for("scheduling_queue.mine" if mine else "scheduling_queue.board"), code=303)
    for appointment in finished:  # each status change is on the trail, like any other
        record(db, "appointment.complete", patient_id=appointment.patient_id, object_type="appointment",
               object_id=appointment.id, reason="call next")
    if called:
        record(db, "appointment.start", patient_id=called.patient_id, object_type="appointment",
               object_id=called.id, reason="call next")
    if called and mine and called.doctor_id == current_user.id and can(g.role, Permission.CLINICAL_WRITE):
        # The doctor calling their own next patient goes straight to the consultation screen.
        encounter = encounters.open_encounter(db, clinic=g.clinic, appointment=called, by=current_user.id)
        record(db, "encounter.open", patient_id=called.patient_id, object_type="encounter", object_id=encounter.id)
        db.commit()
        return client_redirect(url_for("clinical.encounter", encounter_id=encounter.id))
    db.commit()
    if is_htmx():
        return board_changed(render("scheduling/queue.html", "queues",
                                    **_queues_context([current_user.id] if mine else None, mine=mine)))
    if called:
        flash(f"Token {called.token} called in to {doctor.name}.", "success")
    else:
        flash(f"Nobody is waiting for {doctor.name}.", "info")
    return redirect(url_for("scheduling_queue.mine" if mine else "scheduling_queue.board"), code=303)


# --- Walk-ins -------------------------------------------------------------------------------------------

def _walk_in_context(form: WalkInForm, new_form, pick: picker.Pick, **extra) -> dict:
    return {"form": form, "new_form": new_form, "pick": pick, "problem": pick.error, "added": None,
            "can_register": can(g.role, Permission.PATIENT_EDIT), **extra}


def _prepare(form: WalkInForm) -> list:
    db = get_session()
    doctors = services.doctors(db, g.clinic.id)
    form.set_doctors(doctors)
    types = services.appointment_types(db, g.clinic.id)
    form.set_types(types, optional=True)
    return types


@bp.get("/walk-in")
@requires(Permission.SCHEDULE_BOOK)
def walk_in_form():
    """Add a walk-in: find or register the patient, choose the doctor; a token is given at once."""
    form = WalkInForm(formdata=None, doctor_id=request.args.get("doctor_id"),
                      patient_id=request.args.get("patient_id"))
    _prepare(form)
    db = get_session()
    pick = picker.Pick(chosen=picker.chosen(db, form.chosen_patient_id()))
    if pick.chosen:
        record(db, "patient.view", patient_id=pick.chosen[0].id, object_type="patient", reason="walk-in")
        db.commit()
    return render("scheduling/walk_in.html", "walk_in_form",
                  **_walk_in_context(form, picker.new_patient_form(), pick))


@bp.post("/walk-in")
@requires(Permission.SCHEDULE_BOOK)
def walk_in():
    """Search (intent=search), or add the walk-in to the doctor's queue with the next token."""
    form = WalkInForm()
    types = _prepare(form)
    new_form = picker.new_patient_form(request.form)
    db = get_session()
    if picker.wants_search(form):
        return picker.search_response(db, form, lambda pick: render(
            "scheduling/walk_in.html", "walk_in_form", **_walk_in_context(form, new_form, pick)))
    picker.take_duplicate_choice(form)
    if not form.validate():
        return render("scheduling/walk_in.html", "walk_in_form", status=422,
                      **_walk_in_context(form, new_form, picker.Pick(), problem="Check the highlighted fields."))
    patient, pick = picker.resolve(db, form, new_form, current_user.id)
    if patient is None:
        db.commit()
        return render("scheduling/walk_in.html", "walk_in_form", status=422, **_walk_in_context(form, new_form, pick))
    type_ = next((t for t in types if str(t.id) == form.type_id.data), None)
    try:
        added = booking.add_walk_in(db, clinic=g.clinic, patient=patient, doctor_id=parse_uuid(form.doctor_id.data),
                                    type_=type_, reason=form.reason.data, by=current_user.id)
    except booking.ScheduleError as exc:
        db.rollback()
        pick = picker.Pick(chosen=None if form.new_patient.data else picker.chosen(db, form.chosen_patient_id()))
        return render("scheduling/walk_in.html", "walk_in_form", status=409,
                      **_walk_in_context(form, new_form, pick, problem=str(exc)))
    record(db, "appointment.walk_in", patient_id=patient.id, object_type="appointment", object_id=added.id)
    db.commit()
    if is_htmx():
        return board_changed(render("scheduling/walk_in.html", "walk_in_form",
                                    **_walk_in_context(form, new_form, pick, added=added)))
    flash(f"Walk-in added: token {added.token}.", "success")
    return redirect(url_for("scheduling_queue.board"), code=303)
