"""Schedule setup over HTTP (clinic admin): opening hours, closures and holidays, appointment types,
doctors' sessions and exceptions, and the warning before a change orphans booked appointments."""

import html
import uuid
from datetime import date, datetime, time, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import formats
from app.auth.policy import Role
from app.scheduling.slots import holiday_name, public_holidays
from tests.conftest import patient_id
from tests.scheduling.conftest import add_sessions, add_type, high_water, insert_appointment

TZ = ZoneInfo("Asia/Kolkata")
SETUP = "/schedule/setup/"
SLOT_RANGE = "A slot is between 5 and 240 minutes."


class _Controls(HTMLParser):
    """What a user sees in each control, by id: an input's value, a select's chosen option, a box ticked."""

    def __init__(self, text: str):
        super().__init__()
        self.values: dict[str, str | bool | None] = {}
        self._select = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("id"):
            checkbox = attrs.get("type") == "checkbox"
            self.values[attrs["id"]] = "checked" in attrs if checkbox else attrs.get("value")
        elif tag == "select":
            self._select = attrs.get("id")
        elif tag == "option" and self._select and "selected" in attrs:
            self.values[self._select] = attrs.get("value")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def controls(response) -> dict:
    return _Controls(response.get_data(as_text=True)).values


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def today() -> date:
    return datetime.now(TZ).date()


def working_day(after: int = 7) -> date:
    """A day at least `after` days ahead that is not a Karnataka public holiday."""
    day = today() + timedelta(days=after)
    while holiday_name("29", day):
        day += timedelta(days=1)
    return day


def every_day_open(**changes) -> dict:
    values = {f"{edge}_{i}": hhmm for i in range(7) for edge, hhmm in (("opens", "08:00"), ("closes", "20:00"))}
    values.update(changes)
    return values


def session_data(**changes) -> dict:
    values = {"weekday": "0", "starts": "09:00", "ends": "13:00", "slot_minutes": "15", "room": "Room 1"}
    values.update(changes)
    return values


@pytest.fixture
def doctor(factory, clinic):
    return factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")


@pytest.fixture
def doctor_url(doctor):
    return f"{SETUP}doctors/{doctor.id}"


def sessions_of(sql, doctor):
    return sql("SELECT weekday, starts, ends, slot_minutes, room FROM doctor_session WHERE doctor_id = :d "
               "ORDER BY weekday, starts", d=doctor.id)


def audit_reasons(sql, object_type):
    return [r for (r,) in sql("SELECT reason FROM audit_event WHERE action = 'schedule.setup' AND object_type = :t "
                              "ORDER BY at", t=object_type)]


# --- Overview and opening hours --------------------------------------------------------------------

def test_overview_shows_every_section(as_admin, doctor):
    response = as_admin.get(SETUP)
    assert response.status_code == 200
    page = text(response)
    for heading in ("Opening hours", "Closures and public holidays", "Appointment types", "Doctors' availability",
                    "Appointments outside a doctor's availability"):
        assert heading in page, heading
    assert [day in page for day in ("Monday", "Sunday")] == [True, True]
    assert f'href="/schedule/setup/doctors/{doctor.id}"' in page and "Dr Meera Rao" in page
    assert 'href="/schedule/setup/types/new"' in page


def test_admin_sets_opening_hours(as_admin, clinic, sql):
    data = every_day_open(opens_0="09:30", closes_0="18:00", closed_6="y")
    response = as_admin.post(f"{SETUP}hours", data, page=SETUP)
    assert response.status_code == 303 and response.headers["Location"] == SETUP
    rows = sql("SELECT weekday, opens, closes FROM clinic_hours WHERE clinic_id = :c ORDER BY weekday", c=clinic.id)
    assert rows[0] == (0, time(9, 30), time(18)) and [r.weekday for r in rows] == [0, 1, 2, 3, 4, 5]
    after = as_admin.get(SETUP)
    assert "Opening hours saved." in text(after)
    shown = controls(after)
    assert (shown["opens_0"], shown["closes_0"]) == ("09:30", "18:00")
    assert (shown["closed_6"], shown["closed_0"]) == (True, False)
    assert audit_reasons(sql, "clinic_hours") == [
        "opening hours: Mon 09:30-18:00, Tue 08:00-20:00, Wed 08:00-20:00, Thu 08:00-20:00, Fri 08:00-20:00, "
        "Sat 08:00-20:00, Sun closed"]


def test_invalid_hours_come_back_with_errors_and_the_typed_times(as_admin, clinic, sql):
    data = every_day_open(opens_0="18:00", closes_0="09:00", closes_1="", opens_2="25:99")
    response = as_admin.post(f"{SETUP}hours", data, page=SETUP)
    assert response.status_code == 422
    page = text(response)
    assert "On Monday the clinic must close after it opens." in page
    assert "Enter when the clinic opens and closes on Tuesday, or tick Closed." in page
    assert 'id="opens_2-error"' in page
    shown = controls(response)
    assert (shown["opens_0"], shown["closes_0"], shown["opens_1"], shown["opens_2"]) == ("18:00", "09:00", "08:00",
                                                                                         "25:99")
    assert sql("SELECT count(*) FROM clinic_hours")[0][0] == 0


# --- Closures and public holidays ------------------------------------------------------------------

def upcoming_karnataka_only_holidays() -> list[tuple[date, str]]:
    """Holidays of Karnataka in the next 12 months that the national calendar does not have."""
    start, end = today(), today() + timedelta(days=365)
    found = []
    for year in range(start.year, end.year + 1):
        national = public_holidays(None, year)
        found += [(d, n) for d, n in public_holidays("29", year).items()
                  if start <= d <= end and national.get(d) != n]
    return sorted(found)


def test_the_holiday_list_shows_karnataka_holidays(as_admin):
    holidays = upcoming_karnataka_only_holidays()
    assert holidays, "the holidays package knows Karnataka's own holidays"
    page = text(as_admin.get(SETUP))
    for day, name in holidays:
        assert name in page and formats.day(day) in page, name


def test_admin_opens_on_a_holiday_and_closes_again(as_admin, clinic, sql):
    day, name = upcoming_karnataka_only_holidays()[0]
    response = as_admin.post(f"{SETUP}days", {"day": day.isoformat(), "is_open": "1"}, page=SETUP)
    assert response.status_code == 303, text(response)[:2000]
    assert sql("SELECT is_open, note FROM clinic_day WHERE clinic_id = :c AND day = :d", c=clinic.id, d=day) == [
        (True, name)]
    page = text(as_admin.get(SETUP))
    assert f"The clinic is open on {formats.day(day)} ({name})." in page and "Open anyway</td>" in page

    response = as_admin.post(f"{SETUP}days/{day.isoformat()}/delete", {}, page=SETUP)
    assert response.status_code == 303
    assert sql("SELECT count(*) FROM clinic_day")[0][0] == 0
    assert len(audit_reasons(sql, "clinic_day")) == 2


def test_admin_adds_a_closure_and_removes_it(as_admin, clinic, sql):
    day = working_day(10)
    response = as_admin.post(f"{SETUP}days", {"day": day.isoformat(), "is_open": "0", "note": "Staff training"},
                             page=SETUP)
    assert response.status_code == 303
    assert sql("SELECT is_open, note FROM clinic_day WHERE day = :d", d=day) == [(False, "Staff training")]
    assert "Staff training" in text(as_admin.get(SETUP))
    assert as_admin.post(f"{SETUP}days/{day.isoformat()}/delete", {}, page=SETUP).status_code == 303
    assert sql("SELECT count(*) FROM clinic_day")[0][0] == 0


@pytest.mark.parametrize("data, message", [
    ({"day": (date.today() - timedelta(days=3)).isoformat(), "note": "Kept note"}, "The date has already passed."),
    ({"day": "", "note": "Kept note"}, "Enter the date."),
    ({"day": working_day(5).isoformat(), "is_open": "1", "note": "Kept note"},
     "Only a public holiday can be marked “open anyway”."),
])
def test_invalid_closures_are_refused(as_admin, sql, data, message):
    response = as_admin.post(f"{SETUP}days", {"is_open": "0", **data}, page=SETUP)
    assert response.status_code == 422
    assert message in text(response)
    assert controls(response)["closure-note"] == "Kept note"
    assert sql("SELECT count(*) FROM clinic_day")[0][0] == 0


# --- Appointment types -------------------------------------------------------------------------------

def type_data(**changes) -> dict:
    values = {"name": "Consultation", "duration_minutes": "15", "colour": "teal", "billable_item": "OPD visit",
              "active": "y"}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def test_admin_adds_and_edits_an_appointment_type(as_admin, clinic, sql):
    response = as_admin.post(f"{SETUP}types/new", type_data(), page=f"{SETUP}types/new")
    assert response.status_code == 303
    (type_id, *saved), = sql("SELECT id, name, duration_minutes, colour, billable_item, active FROM appointment_type")
    assert saved == ["Consultation", 15, "teal", "OPD visit", True]
    page = as_admin.get(SETUP).get_data(as_text=True)
    assert f'href="/schedule/setup/types/{type_id}"' in page and "tc-teal" in page

    edit = as_admin.get(f"{SETUP}types/{type_id}")
    assert controls(edit)["name"] == "Consultation" and controls(edit)["colour"] == "teal"
    response = as_admin.post(f"{SETUP}types/{type_id}", type_data(name="Long consultation", duration_minutes="30",
                                                                   colour="purple", billable_item="", active=None))
    assert response.status_code == 303
    assert sql("SELECT name, duration_minutes, colour, billable_item, active FROM appointment_type") == [
        ("Long consultation", 30, "purple", None, False)]
    assert "Inactive" in text(as_admin.get(SETUP))
    assert audit_reasons(sql, "appointment_type") == ["appointment type added: Consultation, 15 min",
                                                      "appointment type saved: Long consultation, 30 min (inactive)"]


def test_active_type_names_are_unique_per_clinic(as_admin, factory, sql):
    as_admin.post(f"{SETUP}types/new", type_data(), page=f"{SETUP}types/new")
    response = as_admin.post(f"{SETUP}types/new", type_data(name=" consultation ", duration_minutes="20"))
    assert response.status_code == 422
    assert "An active type is already called “consultation”." in text(response)
    assert controls(response)["duration_minutes"] == "20"
    # An inactive one may share the name, and another clinic has its own names.
    assert as_admin.post(f"{SETUP}types/new", type_data(active=None)).status_code == 303
    assert sql("SELECT count(*) FROM appointment_type")[0][0] == 2


@pytest.mark.parametrize("changes, field, message", [
    ({"name": ""}, "name", "Give the type a name."),
    ({"name": "x" * 61}, "name", "Field cannot be longer than 60 characters."),
    ({"duration_minutes": "4"}, "duration_minutes", "The duration is between 5 and 480 minutes."),
    ({"duration_minutes": "481"}, "duration_minutes", "The duration is between 5 and 480 minutes."),
    ({"colour": "#ff0000"}, "colour", "Not a valid choice."),
    ({"billable_item": "y" * 81}, "billable_item", "Field cannot be longer than 80 characters."),
])
def test_invalid_types_are_refused_with_the_typed_values(as_admin, sql, changes, field, message):
    sent = type_data(**{"billable_item": "Kept item", **changes})
    response = as_admin.post(f"{SETUP}types/new", sent, page=f"{SETUP}types/new")
    assert response.status_code == 422
    assert f'id="{field}-error">{message}' in text(response)
    shown = controls(response)
    assert shown["name"] == sent["name"] and shown["duration_minutes"] == sent["duration_minutes"]
    assert sql("SELECT count(*) FROM appointment_type")[0][0] == 0


# --- A doctor's sessions and exceptions --------------------------------------------------------------

def test_admin_adds_changes_and_removes_weekly_sessions(as_admin, doctor, doctor_url, sql):
    assert as_admin.get(doctor_url).status_code == 200
    assert as_admin.post(f"{doctor_url}/sessions", session_data(), page=doctor_url).status_code == 303
    afternoon = session_data(starts="14:00", ends="17:00", room="")
    assert as_admin.post(f"{doctor_url}/sessions", afternoon).status_code == 303
    assert sessions_of(sql, doctor) == [(0, time(9), time(13), 15, "Room 1"), (0, time(14), time(17), 15, None)]

    page = as_admin.get(doctor_url)
    (first, _), (second, _) = sql("SELECT id, starts FROM doctor_session ORDER BY starts")
    shown = controls(page)
    assert (shown[f"session-{first}-starts"], shown[f"session-{first}-room"]) == ("09:00", "Room 1")

    response = as_admin.post(f"{doctor_url}/sessions/{first}", session_data(weekday="2", slot_minutes="20"))
    assert response.status_code == 303
    assert as_admin.post(f"{doctor_url}/sessions/{second}/delete", {}).status_code == 303
    assert sessions_of(sql, doctor) == [(2, time(9), time(13), 20, "Room 1")]
    assert "Wed 09:00\u201313:00" in text(as_admin.get(SETUP))
    assert audit_reasons(sql, "doctor_session") == [
        "session added for a doctor: Monday 09:00-13:00, 15-min slots",
        "session added for a doctor: Monday 14:00-17:00, 15-min slots",
        "session changed: Wednesday 09:00-13:00, 20-min slots", "session removed: Monday 14:00-17:00, 15-min slots"]


@pytest.mark.parametrize("changes, field, message", [
    ({"starts": "12:00", "ends": "14:00"}, "starts", "Overlaps the Monday session 09:00 to 13:00."),
    ({"starts": "08:00", "ends": "09:30"}, "starts", "Overlaps the Monday session 09:00 to 13:00."),
    ({"starts": "15:00", "ends": "14:00"}, "ends", "The session must end after it starts."),
    ({"slot_minutes": "241", "starts": "14:00", "ends": "16:00"}, "slot_minutes", SLOT_RANGE),
    ({"slot_minutes": "4", "starts": "14:00", "ends": "16:00"}, "slot_minutes", SLOT_RANGE),
    ({"starts": "", "ends": "16:00"}, "starts", "Enter the start time."),
])
def test_invalid_sessions_are_refused_with_the_typed_values(as_admin, doctor, doctor_url, sql, changes, field,
                                                            message):
    as_admin.post(f"{doctor_url}/sessions", session_data(), page=doctor_url)
    sent = session_data(room="Kept room", **changes)
    response = as_admin.post(f"{doctor_url}/sessions", sent)
    assert response.status_code == 422
    assert f'id="session-new-{field}-error">{message}' in text(response)
    shown = controls(response)
    assert (shown["session-new-ends"], shown["session-new-room"]) == (sent["ends"], "Kept room")
    assert len(sessions_of(sql, doctor)) == 1


def test_an_edited_session_may_not_overlap_another_that_weekday(as_admin, doctor, doctor_url, sql):
    as_admin.post(f"{doctor_url}/sessions", session_data(), page=doctor_url)
    as_admin.post(f"{doctor_url}/sessions", session_data(weekday="1"))
    (tuesday,), = sql("SELECT id FROM doctor_session WHERE weekday = 1")
    response = as_admin.post(f"{doctor_url}/sessions/{tuesday}", session_data(weekday="0", starts="10:00"))
    assert response.status_code == 422
    assert "Overlaps the Monday session 09:00 to 13:00." in text(response)
    assert controls(response)[f"session-{tuesday}-weekday"] == "0"
    assert [s.weekday for s in sessions_of(sql, doctor)] == [0, 1]


def test_admin_adds_leave_and_an_extra_session(as_admin, doctor, doctor_url, sql):
    first, last = working_day(10), working_day(10) + timedelta(days=4)
    response = as_admin.post(f"{doctor_url}/exceptions", {"kind": "leave", "first_day": first.isoformat(),
                                                          "last_day": last.isoformat(), "note": "Conference"},
                             page=doctor_url)
    assert response.status_code == 303, text(response)[:3000]
    response = as_admin.post(f"{doctor_url}/exceptions", {"kind": "leave", "first_day": first.isoformat(),
                                                          "starts": "10:00", "ends": "11:30"})
    assert response.status_code == 303
    extra = working_day(20)
    response = as_admin.post(f"{doctor_url}/exceptions", {"kind": "extra", "day": extra.isoformat(), "starts": "17:00",
                                                          "ends": "19:00", "slot_minutes": "20", "room": "Room 2"})
    assert response.status_code == 303
    rows = sql("SELECT kind, first_day, last_day, starts, ends, slot_minutes, room, note FROM doctor_exception "
               "ORDER BY first_day, kind, starts NULLS FIRST")
    assert rows == [("leave", first, last, None, None, None, None, "Conference"),
                    ("leave", first, first, time(10), time(11, 30), None, None, None),
                    ("extra", extra, extra, time(17), time(19), 20, "Room 2", None)]
    page = text(as_admin.get(doctor_url))
    assert "Conference" in page and "10:00\u201311:30" in page and "Extra session" in page

    (leave_id,), = sql("SELECT id FROM doctor_exception WHERE note = 'Conference'")
    assert as_admin.post(f"{doctor_url}/exceptions/{leave_id}/delete", {}).status_code == 303
    assert sql("SELECT count(*) FROM doctor_exception")[0][0] == 2


@pytest.mark.parametrize("data, field, message", [
    ({"kind": "leave", "first_day": "PAST", "note": "Kept"}, "leave-first_day", "The date has already passed."),
    ({"kind": "leave", "first_day": "D10", "last_day": "D12", "starts": "10:00", "ends": "12:00", "note": "Kept"},
     "leave-ends", "Leave of some hours is for a single day; leave the last day empty."),
    ({"kind": "leave", "first_day": "D10", "starts": "10:00", "note": "Kept"},
     "leave-ends", "For leave of some hours, enter both times; for whole days, neither."),
    ({"kind": "leave", "first_day": "D12", "last_day": "D10", "note": "Kept"},
     "leave-last_day", "The last day cannot be before the first day."),
    ({"kind": "extra", "day": "D10", "starts": "18:00", "ends": "17:00", "slot_minutes": "15", "note": "Kept"},
     "extra-ends", "The session must end after it starts."),
    ({"kind": "extra", "day": "D10", "starts": "17:00", "ends": "18:00", "slot_minutes": "300", "note": "Kept"},
     "extra-slot_minutes", "A slot is between 5 and 240 minutes."),
    ({"kind": "extra", "day": "PAST", "starts": "17:00", "ends": "18:00", "slot_minutes": "15", "note": "Kept"},
     "extra-day", "The date has already passed."),
])
def test_invalid_exceptions_are_refused_with_the_typed_values(as_admin, doctor_url, sql, data, field, message):
    days = {"PAST": today() - timedelta(days=1), "D10": working_day(10), "D12": working_day(10) + timedelta(days=2)}
    sent = {k: days[v].isoformat() if v in days else v for k, v in data.items()}
    response = as_admin.post(f"{doctor_url}/exceptions", sent, page=doctor_url)
    assert response.status_code == 422
    assert f'id="{field}-error">{message}' in text(response)
    assert controls(response)[f"{sent['kind']}-note"] == "Kept"
    assert sql("SELECT count(*) FROM doctor_exception")[0][0] == 0


def test_only_the_clinics_doctors_have_a_page(as_admin, factory, clinic, other_clinic, admin):
    nurse = factory.person(clinic, Role.NURSE)
    elsewhere = factory.person(other_clinic, Role.DOCTOR)
    for person_id in (nurse.id, elsewhere.id, admin.id, uuid.uuid4()):
        assert as_admin.get(f"{SETUP}doctors/{person_id}").status_code == 404
        assert as_admin.post(f"{SETUP}doctors/{person_id}/sessions", session_data()).status_code == 404


# --- Who may change the setup ----------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.NURSE, Role.BILLING, Role.AUDITOR])
def test_other_roles_cannot_open_or_change_the_setup(browser, factory, clinic, doctor, doctor_url, role, sql):
    browser.sign_in(factory.person(clinic, role))
    for url in (SETUP, f"{SETUP}types/new", doctor_url):
        assert browser.get(url).status_code == 403, url
    browser.get("/")
    day = working_day(10).isoformat()
    for url, data in ((f"{SETUP}hours", every_day_open()), (f"{SETUP}days", {"day": day, "is_open": "0"}),
                      (f"{SETUP}types/new", type_data()), (f"{doctor_url}/sessions", session_data()),
                      (f"{doctor_url}/exceptions", {"kind": "leave", "first_day": day})):
        assert browser.post(url, data).status_code == 403, url
    counts = sql("SELECT (SELECT count(*) FROM clinic_hours), (SELECT count(*) FROM clinic_day), "
                 "(SELECT count(*) FROM appointment_type), (SELECT count(*) FROM doctor_session), "
                 "(SELECT count(*) FROM doctor_exception)")
    assert counts == [(0, 0, 0, 0, 0)]
    assert 'href="/schedule/setup/"' not in browser.get("/").get_data(as_text=True)


# --- Changes that would orphan booked appointments -----------------------------------------------------

@pytest.fixture
def book_at(app, clinic, admin, doctor, register):
    """Book a newly registered patient with the doctor at 10:00 on `day` (the type exists already)."""
    from app.clinics.models import Clinic
    from app.db import get_session, set_tenant
    from app.patients.models import Patient
    from app.scheduling.booking import book
    from app.scheduling.models import AppointmentType

    names = iter(["Sunita Devi Sharma", "Anil Kumar", "Lakshmi Iyer"])

    def run(day: date) -> uuid.UUID:
        pid = uuid.UUID(patient_id(register(full_name=next(names))))
        with app.test_request_context():
            db = get_session()
            set_tenant(db, clinic_id=clinic.id, user_id=admin.id)
            appointment = book(db, clinic=db.get(Clinic, clinic.id), patient=db.get(Patient, (clinic.id, pid)),
                               doctor_id=doctor.id, starts=datetime.combine(day, time(10), TZ),
                               type_=db.scalars(select(AppointmentType)).one(), reason=None, by=admin.id)
            db.commit()
            return appointment.id
    return run


@pytest.fixture
def booked(as_admin, doctor_url, book_at, sql):
    """A clinic open every day 08:00-20:00, the doctor's session 09:00-13:00 on one weekday, and a patient
    booked at 10:00 on that weekday next week. Returns (day, appointment id, session id)."""
    day = working_day(7)
    assert as_admin.post(f"{SETUP}hours", every_day_open(), page=SETUP).status_code == 303
    assert as_admin.post(f"{doctor_url}/sessions", session_data(weekday=str(day.weekday()))).status_code == 303
    assert as_admin.post(f"{SETUP}types/new", type_data()).status_code == 303
    (session_id,), = sql("SELECT id FROM doctor_session")
    return day, book_at(day), session_id


def test_removing_a_session_with_a_booking_warns_first_then_keeps_the_appointment(as_admin, doctor, doctor_url,
                                                                                  booked, sql):
    day, appointment_id, session_id = booked
    link = f'href="/schedule/appointments/{appointment_id}"'
    assert link not in as_admin.get(SETUP).get_data(as_text=True)

    response = as_admin.post(f"{doctor_url}/sessions/{session_id}/delete", {}, page=doctor_url)
    assert response.status_code == 409
    page = text(response)
    assert link in page and f"{formats.day(day)}, 10:00" in page and "Dr Meera Rao" in page
    assert "I have seen these 1 appointment; keep them booked and list them for follow-up" in page
    assert f'form="session-{session_id}-delete"' in page
    assert "Sunita" not in page  # no patient names on the setup pages
    assert len(sessions_of(sql, doctor)) == 1 and audit_reasons(sql, "doctor_session")[-1].startswith("session added")

    response = as_admin.post(f"{doctor_url}/sessions/{session_id}/delete", {"confirm": "y"})
    assert response.status_code == 303
    assert sessions_of(sql, doctor) == []
    assert sql("SELECT status FROM appointment WHERE id = :a", a=appointment_id) == [("booked",)]
    overview = as_admin.get(SETUP)
    assert link in overview.get_data(as_text=True)
    assert "1 booked appointment(s) are now outside availability" in text(overview)
    assert audit_reasons(sql, "doctor_session")[-1] == (
        f"session removed: {day:%A} 09:00-13:00, 15-min slots; 1 booked appointment(s) kept outside availability")


def test_changing_hours_that_orphan_a_booking_comes_back_with_the_typed_hours(as_admin, clinic, booked, sql):
    day, appointment_id, _ = booked
    weekday = day.weekday()
    other = (weekday + 1) % 7  # another day's change, harmless, must come back as typed too
    sent = every_day_open(**{f"opens_{weekday}": "11:00", f"opens_{other}": "07:15"})
    response = as_admin.post(f"{SETUP}hours", sent, page=SETUP)
    assert response.status_code == 409
    assert f'href="/schedule/appointments/{appointment_id}"' in response.get_data(as_text=True)
    shown = controls(response)
    assert (shown[f"opens_{weekday}"], shown[f"opens_{other}"]) == ("11:00", "07:15")
    assert sql("SELECT opens FROM clinic_hours WHERE weekday = :w", w=weekday) == [(time(8),)]

    assert as_admin.post(f"{SETUP}hours", {**sent, "confirm": "y"}).status_code == 303
    assert sql("SELECT opens FROM clinic_hours WHERE weekday = :w", w=weekday) == [(time(11),)]
    assert sql("SELECT status FROM appointment")[0] == ("booked",)


@pytest.mark.parametrize("change", ["leave", "part_leave", "closure", "edit_session"])
def test_every_change_that_takes_availability_away_warns(as_admin, doctor_url, booked, sql, change):
    day, appointment_id, session_id = booked
    url, data = {
        "leave": (f"{doctor_url}/exceptions", {"kind": "leave", "first_day": day.isoformat()}),
        "part_leave": (f"{doctor_url}/exceptions", {"kind": "leave", "first_day": day.isoformat(),
                                                    "starts": "09:45", "ends": "10:05"}),
        "closure": (f"{SETUP}days", {"day": day.isoformat(), "is_open": "0", "note": "Power cut"}),
        "edit_session": (f"{doctor_url}/sessions/{session_id}",
                         session_data(weekday=str(day.weekday()), starts="11:00")),
    }[change]
    before = sql("SELECT (SELECT count(*) FROM doctor_exception), (SELECT count(*) FROM clinic_day), "
                 "(SELECT starts FROM doctor_session)")
    response = as_admin.post(url, data, page=SETUP)
    assert response.status_code == 409
    assert f'href="/schedule/appointments/{appointment_id}"' in response.get_data(as_text=True)
    assert sql("SELECT (SELECT count(*) FROM doctor_exception), (SELECT count(*) FROM clinic_day), "
               "(SELECT starts FROM doctor_session)") == before
    assert as_admin.post(url, {**data, "confirm": "y"}).status_code == 303
    assert sql("SELECT status FROM appointment") == [("booked",)]
    assert f'href="/schedule/appointments/{appointment_id}"' in as_admin.get(SETUP).get_data(as_text=True)


def test_changes_that_leave_bookings_inside_availability_need_no_confirmation(as_admin, doctor_url, booked, sql):
    day, _, session_id = booked
    other_day = working_day(30)
    assert as_admin.post(f"{doctor_url}/exceptions", {"kind": "leave", "first_day": other_day.isoformat()},
                         page=doctor_url).status_code == 303
    response = as_admin.post(f"{doctor_url}/sessions/{session_id}",
                             session_data(weekday=str(day.weekday()), starts="08:30", ends="13:30"))
    assert response.status_code == 303


def test_htmx_save_answers_with_hx_redirect(as_admin, sql):
    as_admin.get(SETUP)
    response = as_admin.client.post(f"{SETUP}hours", data={**every_day_open(), "csrf_token": as_admin.token},
                                    headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == SETUP
    assert sql("SELECT count(*) FROM clinic_hours")[0][0] == 7


def test_removing_an_extra_session_or_a_holiday_opening_warns(as_admin, doctor, doctor_url, book_at, sql):
    holiday = next(d for d, _ in upcoming_karnataka_only_holidays() if d > today() + timedelta(days=1))
    # the extra session's day must not fall on the weekday of the weekly session added below, which would
    # still cover its appointment once the extra session is removed
    extra_day = next(day for day in map(working_day, range(9, 17)) if day.weekday() != holiday.weekday())
    assert as_admin.post(f"{SETUP}hours", every_day_open(), page=SETUP).status_code == 303
    assert as_admin.post(f"{SETUP}types/new", type_data()).status_code == 303
    assert as_admin.post(f"{SETUP}days", {"day": holiday.isoformat(), "is_open": "1"}).status_code == 303
    assert as_admin.post(f"{doctor_url}/sessions", session_data(weekday=str(holiday.weekday()))).status_code == 303
    response = as_admin.post(f"{doctor_url}/exceptions", {"kind": "extra", "day": extra_day.isoformat(),
                                                          "starts": "09:00", "ends": "12:00", "slot_minutes": "15"})
    assert response.status_code == 303
    on_holiday, on_extra = book_at(holiday), book_at(extra_day)
    (extra_id,), = sql("SELECT id FROM doctor_exception")

    for url, appointment_id in ((f"{SETUP}days/{holiday.isoformat()}/delete", on_holiday),
                                (f"{doctor_url}/exceptions/{extra_id}/delete", on_extra)):
        response = as_admin.post(url, {}, page=SETUP)
        assert response.status_code == 409, url
        assert f'href="/schedule/appointments/{appointment_id}"' in response.get_data(as_text=True)
        assert as_admin.post(url, {"confirm": "y"}).status_code == 303
    assert sql("SELECT count(*) FROM clinic_day")[0][0] == 0 and sql("SELECT count(*) FROM doctor_exception")[0][0] == 0
    assert sql("SELECT status FROM appointment") == [("booked",), ("booked",)]
    overview = as_admin.get(SETUP).get_data(as_text=True)
    assert f"/schedule/appointments/{on_holiday}" in overview and f"/schedule/appointments/{on_extra}" in overview


# --- Another clinic's rows ----------------------------------------------------------------------------

def test_another_clinics_setup_rows_are_not_found_and_the_look_is_recorded(as_admin, factory, other_clinic,
                                                                           doctor_url, sql):
    far = factory.person(other_clinic, Role.DOCTOR, name="Dr Far Away")
    type_id = add_type(sql, other_clinic.id)
    add_sessions(sql, other_clinic.id, far.id)
    session_id = sql("SELECT id FROM doctor_session WHERE clinic_id = :c LIMIT 1", c=other_clinic.id)[0][0]
    exception_id = uuid.uuid4()
    sql("INSERT INTO doctor_exception (clinic_id, id, doctor_id, kind, first_day, last_day, created_at) "
        "VALUES (:c, :i, :d, 'leave', :f, :f, now())", c=other_clinic.id, i=exception_id, d=far.id, f=working_day(10))
    before = sql("SELECT (SELECT count(*) FROM doctor_session), (SELECT count(*) FROM doctor_exception), "
                 "(SELECT string_agg(name, ',') FROM appointment_type)")
    attempts = [
        ("get", f"{SETUP}types/{type_id}", {}, "appointment_type"),
        ("post", f"{SETUP}types/{type_id}", type_data(name="Taken over"), "appointment_type"),
        ("get", f"{SETUP}doctors/{far.id}", {}, "staff"),
        ("post", f"{SETUP}doctors/{far.id}/sessions", session_data(), "staff"),
        ("post", f"{SETUP}doctors/{far.id}/exceptions", {"kind": "leave", "first_day": working_day(12).isoformat()},
         "staff"),
        ("post", f"{doctor_url}/sessions/{session_id}", session_data(), "doctor_session"),
        ("post", f"{doctor_url}/sessions/{session_id}/delete", {}, "doctor_session"),
        ("post", f"{doctor_url}/exceptions/{exception_id}/delete", {}, "doctor_exception"),
    ]
    for method, url, data, object_type in attempts:
        as_admin.get(SETUP)
        mark = high_water(sql)
        response = as_admin.get(url) if method == "get" else as_admin.post(url, data)
        assert response.status_code == 404, url
        assert "Dr Far Away" not in response.get_data(as_text=True), url
        assert sql("SELECT action, outcome, object_type FROM audit_event WHERE seq > :s", s=mark) == [
            ("schedule.setup", "denied", object_type)], url
    assert sql("SELECT (SELECT count(*) FROM doctor_session), (SELECT count(*) FROM doctor_exception), "
               "(SELECT string_agg(name, ',') FROM appointment_type)") == before


# --- The clinic's time zone ----------------------------------------------------------------------------

CLINIC_FIELDS = {"name": "Sunrise Clinic", "legal_name": "Sunrise Clinic LLP", "address_line": "1 MG Road",
                 "city": "Bengaluru", "pin_code": "560001", "state_code": "29", "gstin": ""}
OUTSIDE_WARNING = "booked appointment(s) now fall outside their doctor's hours"


def test_a_new_time_zone_redates_appointments_and_warns_of_those_now_outside_hours(as_admin, clinic, setup,
                                                                                  register, sql):
    day = working_day(7)
    patient = patient_id(register(full_name="Zone Patient"))
    morning = insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day, type_id=setup.type_id,
                                 starts_at=datetime.combine(day, time(9), TZ))  # 03:30 UTC
    late = insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=day, type_id=setup.type_id,
                              starts_at=datetime.combine(day, time(23, 50), TZ))  # 18:20 UTC, outside already

    def save(timezone: str) -> str:
        response = as_admin.post("/clinic/settings", {**CLINIC_FIELDS, "timezone": timezone}, page="/clinic/settings")
        assert response.status_code == 303, text(response)[:2000]
        return text(as_admin.get("/clinic/settings"))

    def days() -> tuple:
        return tuple(sql("SELECT day FROM appointment WHERE id = :a", a=a)[0][0] for a in (morning, late))

    # Kathmandu is 15 minutes ahead: 23:50 in India is the next day there; 09:00 stays in the doctor's hours.
    page = save("Asia/Kathmandu")
    assert sql("SELECT timezone FROM clinic WHERE id = :c", c=clinic.id) == [("Asia/Kathmandu",)]
    assert days() == (day, day + timedelta(days=1))
    assert OUTSIDE_WARNING not in page
    # In Los Angeles 03:30 UTC is the evening before: outside the doctor's 09:00-13:00, and said so.
    page = save("America/Los_Angeles")
    assert days() == (day - timedelta(days=1), day)
    assert f"1 {OUTSIDE_WARNING}" in page
    assert sql("SELECT status FROM appointment ORDER BY starts_at") == [("booked",), ("booked",)]
