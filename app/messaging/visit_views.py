"""The patient's link and page: exchange the token for a narrow session, confirm, cancel, reschedule, waitlist.

Every page works without JavaScript and reads the same in English or Hindi. Nothing changes on GET:
each change is a POST with the form's CSRF token and the appointment's version, so a replayed or stale
form (a double tap, the back button, a second tab) changes nothing and says so. A bad, expired or
revoked link and a missing or ended session all get the same page, so a guesser learns nothing.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote_plus

from flask import Blueprint, Response, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.audit.services import record
from app.auth.policy import PUBLIC, requires
from app.clinics.models import Clinic
from app.db import get_session, utcnow
from app.messaging import actions, links, texts, visits, waitlist
from app.messaging.visit_words import NOTICES, OTHER, STATUS, WORDS
from app.scheduling import booking, services
from app.scheduling.models import Appointment, Status
from app.security.client import client_network

bp = Blueprint("messaging_visit", __name__, url_prefix="/p")
LANG_COOKIE = "cd_lang"
DAYS_AHEAD = 60  # how far ahead a patient may move their appointment
QUICK_DAYS = 7
REASON_MAX = 200


@bp.after_request
def _private(response: Response) -> Response:
    """Nothing here is cached, indexed or passed on as a referrer: the link is a credential. Past the link
    (token-free pages), `same-origin`: with `no-referrer` a browser sends `Origin: null` with the page's forms,
    which the origin check (app/security/csrf.py) refuses."""
    response.headers["Cache-Control"] = "no-store"
    opening = request.endpoint == "messaging_visit.open_link"
    response.headers["Referrer-Policy"] = "no-referrer" if opening else "same-origin"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.errorhandler(CSRFError)
def _stale_form(exc: CSRFError) -> Response:
    """A form kept open past its session, or not from this page: nothing done, try again."""
    return _notice("stale", 400)


def _notice(kind: str, status: int) -> Response:
    """A page in both languages that names no clinic and no appointment (expired, limited, stale)."""
    en, hi = NOTICES[kind]
    return make_response(render_template("visit/notice.html", kind=kind, en=en, hi=hi), status)


# --- Opening a link --------------------------------------------------------------------------------

@bp.get("/<token>")
@requires(PUBLIC)
def open_link(token):
    """A patient's link: swapped for a narrow session and a token-free address; changes nothing else."""
    db = get_session()
    current_user.is_authenticated  # noqa: B018 (loading a signed-in user resets the tenant: do it first)
    ip = client_network() or "unknown"
    if visits.too_many_opens(db, ip):
        db.rollback()  # not counted: an address kept at the limit must not grow the table without end
        return _notice("limited", 429)
    found = links.find(db, token)
    visits.note_attempt(db, ip, found is not None)
    if found is None:
        db.commit()
        return _notice("expired", 404)
    visit, cookie = visits.start(db, found)
    record(db, "link.open", clinic_id=visit.clinic_id, patient_id=found.appointment.patient_id,
           object_type="appointment", object_id=found.appointment.id)
    db.commit()
    response = redirect(url_for("messaging_visit.page"), code=303)
    response.set_cookie(visits.COOKIE, cookie, expires=visit.expires_at, path=visits.COOKIE_PATH,
                        secure=current_app.config["HTTPS"], httponly=True, samesite="Lax")
    return response


# --- The patient's page ----------------------------------------------------------------------------

def _visit(*, for_update: bool = False) -> visits.Visit | None:
    current_user.is_authenticated  # noqa: B018 (as in open_link: before the tenant is set)
    return visits.current(get_session(), request.cookies.get(visits.COOKIE), for_update=for_update)


def _language(here: visits.Visit) -> str:
    asked = request.args.get("lang")
    if asked in WORDS:
        return asked
    saved = request.cookies.get(LANG_COOKIE)
    return saved if saved in WORDS else texts.language_of(here.patient.language)


@dataclass(frozen=True)
class When:
    date: str
    time: str


def _when(clinic: Clinic, moment: datetime, lang: str) -> When:
    local = moment.astimezone(services.zone(clinic))
    return When(f"{texts.format_date(local, lang)} {local.year}", texts.format_time(local, lang))


def _changeable(appointment: Appointment) -> bool:
    return not appointment.walk_in and appointment.status in actions.OPEN and appointment.starts_at > utcnow()


def _show(template: str, here: visits.Visit, status: int = 200, *, switch: str = "messaging_visit.page",
          switch_args=None, **context) -> Response:
    """Render one of the patient's pages in their language (remembering a language they chose); the
    language link goes to the page `switch` (a refused POST's answer links to its page, not to itself)."""
    lang = _language(here)
    a, clinic = here.appointment, here.clinic
    doctor = services.find_doctor(get_session(), clinic.id, a.doctor_id)
    body = render_template(template, lang=lang, t=WORDS[lang], clinic=clinic, a=a,
                           when=_when(clinic, a.starts_at, lang) if a.starts_at else None,
                           doctor=doctor.name if doctor else "", status_label=STATUS[lang][a.status],
                           changeable=_changeable(a), other_lang=OTHER[lang],
                           switch_url=url_for(switch, **(switch_args or {}), lang=OTHER[lang]), **context)
    response = make_response(body, status)
    if request.args.get("lang") in WORDS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=visits.COOKIE_PATH,
                            secure=current_app.config["HTTPS"], httponly=True, samesite="Lax")
    return response


def _page(here: visits.Visit, status: int = 200, *, problem: str | None = None, reason: str = "") -> Response:
    """The appointment page, its view audited and committed."""
    db = get_session()
    lang, a, clinic = _language(here), here.appointment, here.clinic
    offers = [(offer, _when(clinic, offer.starts_at, lang)) for offer in waitlist.open_offers(db, a)]
    notice = {Status.RESCHEDULED: "moved", Status.CANCELLED: "rebook", Status.NO_SHOW: "ended"}.get(a.status)
    address = f"{clinic.address_line}, {clinic.city} {clinic.pin_code}"
    context = {"offers": offers, "waiting": waitlist.is_waiting(db, a), "notice": notice, "problem": problem,
               "reason": reason, "map_url": "https://www.google.com/maps/search/?api=1&query=" + quote_plus(address)}
    _audit_view(here)
    db.commit()
    return _show("visit/page.html", here, status, **context)


def _audit_view(here: visits.Visit, reason: str = "patient link") -> None:
    record(get_session(), "appointment.view", clinic_id=here.clinic.id, patient_id=here.patient.id,
           object_type="appointment", object_id=here.appointment.id, reason=reason)


@bp.get("/visit")
@requires(PUBLIC)
def page():
    """The patient's appointment: clinic, doctor, date, time, address, and what they may do with it."""
    here = _visit()
    return _notice("expired", 404) if here is None else _page(here)


# --- Changes ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Done:
    action: str  # the audit action
    message: str  # the key of what the page then says
    appointment: Appointment


def _is_current(appointment: Appointment) -> bool:
    """Whether the form was made from the appointment as it is now (the same one, the same version)."""
    raw = request.form.get("version", "")
    return request.form.get("appointment") == str(appointment.id) and raw.isdecimal() and len(raw) < 9 \
        and int(raw) == appointment.version


def _refusal(exc: booking.ScheduleError) -> str:
    """What to tell the patient (the services' messages are worded for the front desk)."""
    if isinstance(exc, waitlist.Gone):
        return "gone"
    return "slot_taken" if isinstance(exc, booking.SlotTaken) else "cannot_change"


def _change(change, refused=None) -> Response:
    """Apply one change for the patient; a stale or replayed form, or one already made, changes nothing."""
    db = get_session()
    here = _visit(for_update=True)
    if here is None:
        return _notice("expired", 404)
    try:
        if not _is_current(here.appointment):
            raise actions.Unchanged("The form was out of date.")
        if not _changeable(here.appointment):  # begun, past, ended: the buttons are gone, a forged form too
            raise booking.ScheduleError("This appointment can no longer be changed here.")
        done = change(db, here)
    except actions.Unchanged:
        db.rollback()
        return _show("visit/already.html", here, 409)
    except booking.ScheduleError as exc:
        db.rollback()
        return (refused or _page)(here, 409, problem=WORDS[_language(here)][_refusal(exc)])
    record(db, done.action, clinic_id=here.clinic.id, patient_id=here.patient.id, object_type="appointment",
           object_id=done.appointment.id, reason="by the patient's link")
    db.commit()
    flash(WORDS[_language(here)][done.message], "success")
    return redirect(url_for("messaging_visit.page"), code=303)


@bp.post("/visit/confirm")
@requires(PUBLIC)
def confirm():
    """The patient says they will come."""
    return _change(lambda db, here: Done("appointment.confirm", "done_confirm", actions.confirm(
        db, clinic=here.clinic, appointment=here.appointment, via="link")))


@bp.post("/visit/cancel")
@requires(PUBLIC)
def cancel():
    """The patient cancels, with an optional reason; the time goes to the waitlist."""
    reason = request.form.get("reason", "")
    if len(reason) > REASON_MAX:
        here = _visit()
        if here is None:
            return _notice("expired", 404)
        return _page(here, 422, problem=WORDS[_language(here)]["reason_too_long"], reason=reason)
    return _change(lambda db, here: Done("appointment.cancel", "done_cancel", actions.cancel(
        db, clinic=here.clinic, appointment=here.appointment, reason=reason, via="link")))


def _waitlist(db, here: visits.Visit) -> Done:
    if request.form.get("do") == "leave":
        if not waitlist.leave(db, here.appointment, "left"):
            raise actions.Unchanged("Not on the waitlist.")
        return Done("waitlist.leave", "done_leave", here.appointment)
    if not waitlist.join(db, here.appointment):
        raise actions.Unchanged("Already on the waitlist.")
    return Done("waitlist.join", "done_join", here.appointment)


@bp.post("/visit/waitlist")
@requires(PUBLIC)
def waitlist_change():
    """Join or leave the doctor's waitlist for an earlier time."""
    return _change(_waitlist)


@bp.post("/visit/offer/<uuid:offer_id>")
@requires(PUBLIC)
def take_offer(offer_id):
    """Take an earlier time offered from the waitlist (the first patient to take it gets it)."""
    def take(db, here):
        new = waitlist.take(db, here.clinic, here.appointment, offer_id)
        visits.follow(db, here, new)
        return Done("waitlist.take", "done_take", new)
    return _change(take)


# --- Rescheduling ----------------------------------------------------------------------------------

def _day(clinic: Clinic, appointment: Appointment):
    """The day asked for (default: the appointment's, or today), and whether it was out of range."""
    today = services.today(clinic)
    last = today + timedelta(days=DAYS_AHEAD)
    raw = (request.form if request.method == "POST" else request.args).get("day", "")
    if not raw:
        return min(max(appointment.day, today), last), False
    try:
        asked = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        return today, True
    return (asked, False) if today <= asked <= last else (today, True)


def _picker(here: visits.Visit, status: int = 200, *, problem: str | None = None) -> Response:
    """Days to choose from and the doctor's free times on the chosen one."""
    db = get_session()
    lang, clinic = _language(here), here.clinic
    day, bad = _day(clinic, here.appointment)
    if bad and problem is None:
        status, problem = 422, WORDS[lang]["pick_bad_day"]
    free = actions.free_slots(db, clinic, here.appointment.doctor_id, day) if _changeable(here.appointment) else []
    today = services.today(clinic)
    quick = [(d, texts.format_date(d, lang)) for d in (today + timedelta(days=i) for i in range(QUICK_DAYS))]
    _audit_view(here, "reschedule")
    db.commit()
    return _show("visit/reschedule.html", here, status, switch="messaging_visit.pick",
                 switch_args={"day": day.isoformat()},
                 day=day, day_label=texts.format_date(day, lang), quick=quick,
                 last_day=today + timedelta(days=DAYS_AHEAD), problem=problem,
                 free=[(slot.starts.isoformat(), _when(clinic, slot.starts, lang).time) for slot in free])


@bp.get("/visit/reschedule")
@requires(PUBLIC)
def pick():
    """Choose a day, then one of the doctor's free times on it (a GET form: works without JavaScript)."""
    here = _visit()
    return _notice("expired", 404) if here is None else _picker(here)


def _starts() -> datetime | None:
    raw = request.form.get("starts", "")
    try:
        starts = datetime.fromisoformat(raw) if 0 < len(raw) <= 40 else None
    except ValueError:
        return None
    if starts is None or starts.tzinfo is None:
        return None
    # Only times the picker can offer: ahead, within DAYS_AHEAD (and far from datetime's limits).
    return starts if utcnow() < starts < utcnow() + timedelta(days=DAYS_AHEAD + 1) else None


@bp.post("/visit/reschedule")
@requires(PUBLIC)
def reschedule():
    """Move the appointment to the free time chosen; the session follows the new appointment."""
    starts = _starts()
    if starts is None:
        here = _visit()
        if here is None:
            return _notice("expired", 404)
        return _picker(here, 422, problem=WORDS[_language(here)]["pick_slot"])

    def move(db, here):
        new = actions.reschedule(db, clinic=here.clinic, appointment=here.appointment, patient=here.patient,
                                 starts=starts)
        visits.follow(db, here, new)
        return Done("appointment.reschedule", "done_reschedule", new)
    return _change(move, refused=_picker)
