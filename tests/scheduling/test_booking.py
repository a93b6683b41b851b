"""Booking a slot (existing or newly registered patient), overbooking, the same patient twice,
rescheduling, and the visit reason sealed at rest."""

from datetime import UTC, datetime, time, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from app import formats
from app.auth.policy import Role
from tests.conftest import patient_form, patient_id
from tests.scheduling.conftest import (
    HTMX,
    add_sessions,
    add_type,
    appointment_id,
    audit_since,
    book,
    book_data,
    high_water,
    slot,
    today,
    working_day,
)
from tests.security.test_field_encryption import leaks

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def patient(register) -> str:
    return patient_id(register(full_name="Kavya Iyer"))


def appointments(sql) -> list[tuple]:
    return sql("SELECT patient_id::text, status, starts_at, overbooked, rescheduled_from::text FROM appointment "
               "ORDER BY created_at")


def test_booking_a_free_slot(desk, setup, patient, sql, reception):
    day = working_day()
    mark = high_water(sql)
    response = book(desk, setup, slot(day, "09:15"), patient)
    assert response.status_code == 303
    aid = appointment_id(response.headers["Location"])
    page = desk.get(response.headers["Location"]).get_data(as_text=True)
    assert "The appointment is booked." in page and "Kavya Iyer" in page and "Dr Meera Rao, Room 1" in page
    assert f"{formats.day(day)}, 09:15\u201309:30" in page and "Consultation" in page
    assert sql("SELECT patient_id::text, doctor_id, day, starts_at, ends_at, status, room, token FROM appointment") == [
        (patient, setup.doctor_id, day, datetime.combine(day, time(9, 15), IST),
         datetime.combine(day, time(9, 30), IST), "booked", "Room 1", None)]
    assert sql("SELECT action, from_status, to_status, by FROM appointment_event") == [
        ("booked", None, "booked", reception.id)]
    assert [(a, p) for a, _o, p, *_ in audit_since(sql, mark)][:1] == [("appointment.book", patient)]
    board = desk.get(f"/schedule/?day={day}").get_data(as_text=True)
    assert f'id="appt-{aid}"' in board and "15 free" in board
    assert f"slot-{setup.doctor_id}-0915" not in board


def test_booking_with_htmx_answers_with_the_form_block_and_refreshes_boards(desk, setup, patient, sql):
    day = working_day()
    desk.get(f"/schedule/book?doctor_id={setup.doctor_id}&start={slot(day, '09:15')}")
    response = desk.post("/schedule/book", book_data(setup, slot(day, "09:15"), patient), headers=HTMX)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "board-changed" and "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="book-form"') and "<html" not in html
    assert "Booked." in html and "Kavya Iyer with Dr Meera Rao" in html
    assert len(appointments(sql)) == 1


def test_the_booking_form_as_a_page_and_as_a_panel(desk, setup, patient):
    day = working_day()
    url = f"/schedule/book?doctor_id={setup.doctor_id}&start={slot(day, '09:15')}&patient_id={patient}"
    page = desk.get(url)
    fragment = desk.get(url, headers=HTMX)
    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    for html in (page.get_data(as_text=True), fragment.get_data(as_text=True)):
        assert "Dr Meera Rao" in html and "09:15" in html and "Kavya Iyer" in html
        assert f'name="patient_id" value="{patient}"' in html


@pytest.mark.parametrize("htmx", [True, False])
def test_searching_for_the_patient_inside_the_booking_form(desk, setup, patient, htmx):
    day = working_day()
    desk.get(f"/schedule/book?doctor_id={setup.doctor_id}&start={slot(day, '09:15')}")
    data = {"doctor_id": str(setup.doctor_id), "start": slot(day, "09:15"), "q": "kavya", "intent": "search"}
    # Search as you type swaps the results list alone; the Search button (htmx or not) the whole form.
    response = desk.post("/schedule/book", data, headers={**HTMX, "HX-Target": "picker-results"} if htmx else {})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'value="{patient}"' in html and "Kavya Iyer" in html
    assert ("<html" in html) is not htmx and ('id="book-form"' in html) is not htmx
    if htmx:
        button = desk.post("/schedule/book", data, headers={**HTMX, "HX-Target": "book-form"})
        html = button.get_data(as_text=True)
        assert "Kavya Iyer" in html and 'id="book-form"' in html and "<html" not in html


def new_patient(name="Rohan Das", **extra) -> dict:
    form = patient_form(full_name=name, dob="1991-02-03", **extra)
    data = {f"new-{k}": v for k, v in form.items()}
    data["new_patient"] = "y"
    return data


def test_registering_a_new_patient_while_booking(desk, setup, sql):
    day = working_day()
    data = book_data(setup, slot(day, "10:00"), "", **new_patient())
    response = desk.post("/schedule/book", data, page=f"/schedule/book?doctor_id={setup.doctor_id}")
    assert response.status_code == 303
    page = desk.get(response.headers["Location"]).get_data(as_text=True)
    assert "Rohan Das" in page
    (pid,) = sql("SELECT id::text FROM patient")[0]
    assert appointments(sql)[0][:2] == (pid, "booked")


def test_a_possible_duplicate_is_shown_before_registering_and_can_be_chosen(desk, setup, register, sql):
    existing = patient_id(register(full_name="Rohan Das", dob="1991-02-03"))
    day = working_day()
    data = book_data(setup, slot(day, "10:00"), "", **new_patient(phone="98450 12345"))
    response = desk.post("/schedule/book", data, page=f"/schedule/book?doctor_id={setup.doctor_id}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "This may be a patient who is already registered" in html and f'value="{existing}"' in html
    assert 'value="+919845012345"' in html and 'value="Rohan Das"' in html  # the typed details come back
    assert sql("SELECT count(*) FROM patient")[0][0] == 1 and appointments(sql) == []
    response = desk.post("/schedule/book", {**data, "use_patient": existing})
    assert response.status_code == 303
    assert sql("SELECT count(*) FROM patient")[0][0] == 1 and appointments(sql)[0][0] == existing


@pytest.mark.parametrize("change, message", [
    ({"type_id": ""}, "Check the highlighted fields."),
    ({"patient_id": ""}, "Choose the patient: search by name, phone or MRN"),
    ({"start": (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT09:00")},
     "That time has already passed; choose a later slot."),
])
def test_an_invalid_booking_comes_back_with_the_typed_input(desk, setup, patient, sql, change, message):
    data = {**book_data(setup, slot(working_day(), "09:15"), patient, reason="sore throat since Monday"), **change}
    response = desk.post("/schedule/book", data, page=f"/schedule/book?doctor_id={setup.doctor_id}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'value="sore throat since Monday"' in html
    assert appointments(sql) == []


UNBOOKABLE = "This time cannot be booked: it is not a slot of one of the clinic's doctors."


def unbookable(html: str, board_day) -> bool:
    """The booking form says the slot cannot be booked, links back to that day's board, and offers no Book."""
    text = " ".join(unescape(html).split())
    return (UNBOOKABLE in text and f'href="/schedule/?day={board_day.isoformat()}"' in html
            and 'value="book"' not in html and 'name="type_id"' not in html)


@pytest.mark.parametrize("start", ["{day}T25:00", "{day}T09:75", "2020-01-06T09:00", "9999-12-31T23:59",
                                   "tomorrow", ""])
def test_a_booking_link_with_an_impossible_time_says_so_and_leads_back_to_the_board(desk, setup, patient, sql,
                                                                                     start):
    day = working_day()
    start = start.format(day=day)
    board_day = day if start.startswith(day.isoformat()) else today()
    for headers in ({}, HTMX):
        response = desk.get(f"/schedule/book?doctor_id={setup.doctor_id}&start={start}", headers=headers)
        assert response.status_code == 200 and unbookable(response.get_data(as_text=True), board_day)
        mark = high_water(sql)
        response = desk.post("/schedule/book", book_data(setup, start, patient), headers=headers)
        assert response.status_code == 422 and unbookable(response.get_data(as_text=True), board_day)
        assert audit_since(sql, mark) == []  # the patient chosen is not shown, so not recorded as seen
    response = desk.get(f"/schedule/book?doctor_id={setup.type_id}&start={slot(day, '09:15')}")  # no such doctor
    assert unbookable(response.get_data(as_text=True), day)
    assert appointments(sql) == []


def test_a_long_type_that_runs_past_the_session_is_refused(desk, setup, patient, sql):
    data = book_data(setup, slot(working_day(), "12:45"), patient, type_id=str(setup.long_type_id))
    response = desk.post("/schedule/book", data, page=f"/schedule/book?doctor_id={setup.doctor_id}")
    assert response.status_code == 422
    assert "The doctor is not available for the whole of that time." in response.get_data(as_text=True)
    assert appointments(sql) == []


@pytest.mark.parametrize("htmx", [True, False])
def test_a_visit_longer_than_the_free_gap_is_refused_naming_the_next_appointment(desk, setup, patient, register, sql,
                                                                               clinic, htmx):
    day = working_day()
    short = add_type(sql, clinic.id, "Dressing", 10)
    other = patient_id(register(full_name="Next Patient"))
    assert book(desk, setup, slot(day, "09:25"), other, type_id=str(short)).status_code == 303  # 09:15-09:25 free
    desk.get("/schedule/book")
    response = desk.post("/schedule/book", book_data(setup, slot(day, "09:15"), patient, reason="fever"),
                         headers=HTMX if htmx else {})
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert "A 15-minute visit does not fit here: the doctor's next appointment starts at 09:25." in html
    assert "Someone else" not in html and 'value="fever"' in html and 'name="overbook"' in html
    assert "Or overbook with a reason." in html
    assert len(appointments(sql)) == 1


def test_a_nurse_told_a_visit_does_not_fit_is_not_told_to_overbook(desk, setup, patient, register, sql, clinic,
                                                                   sign_in):
    """The refusals that suggest overbooking say so only to a role that may overbook."""
    day = working_day()
    short = add_type(sql, clinic.id, "Dressing", 10)
    assert book(desk, setup, slot(day, "09:25"), patient_id(register(full_name="Next Patient")),
                type_id=str(short)).status_code == 303
    assert book(desk, setup, slot(day, "10:00"), patient_id(register(full_name="Ten Patient"))).status_code == 303
    nurse = sign_in(Role.NURSE, name="Nisha Nurse")
    for start, said in (("09:15", "does not fit here"), ("10:00", "Someone else has just booked"),
                        ("13:00", "not available for the whole of that time")):
        nurse.get(f"/schedule/book?doctor_id={setup.doctor_id}")
        response = nurse.post("/schedule/book", book_data(setup, slot(day, start), patient, reason="fever"))
        html = unescape(response.get_data(as_text=True))
        assert response.status_code in (409, 422) and said in html, html[:3000]
        assert "overbook" not in html.lower() and 'value="fever"' in html
    assert len(appointments(sql)) == 2


# --- Overbooking --------------------------------------------------------------------------------------

@pytest.fixture
def taken(desk, setup, register):
    """09:00 on the working day is booked for another patient."""
    day = working_day()
    assert book(desk, setup, slot(day, "09:00"), patient_id(register(full_name="First Come"))).status_code == 303
    return slot(day, "09:00")


def test_a_slot_taken_meanwhile_with_htmx_comes_back_in_the_panel(desk, setup, taken, patient, sql):
    desk.get("/schedule/book")
    response = desk.post("/schedule/book", book_data(setup, taken, patient, reason="came back"), headers=HTMX)
    assert response.status_code == 409 and "HX-Trigger" not in response.headers
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="book-form"') and "<html" not in html
    assert "Someone else has just booked this doctor at this time" in html and 'value="came back"' in html
    assert len(appointments(sql)) == 1


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DOCTOR, Role.RECEPTION])
def test_roles_that_may_overbook_do_so_with_a_reason(sign_in, setup, taken, patient, sql, role):
    browser = sign_in(role)
    refused = book(browser, setup, taken, patient)
    assert refused.status_code == 409
    assert 'name="overbook"' in refused.get_data(as_text=True)  # offered to a role that may
    mark = high_water(sql)
    response = browser.post("/schedule/book", book_data(setup, taken, patient, overbook="y",
                                                        overbook_reason="Doctor asked to fit in"))
    assert response.status_code == 303
    assert sorted(a[3] for a in appointments(sql)) == [False, True]
    records = [(a, p, r, f) for a, _o, p, _ids, r, f in audit_since(sql, mark)]
    # The typed reason may be clinical: it is sealed in the appointment's history, not copied to the trail.
    assert records == [("appointment.book", patient, None, False),
                       ("appointment.overbook", patient, "overbooked; reason in the appointment's history", True)]
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Overbooked" in page and "Doctor asked to fit in" in page  # the stated reason is in its history


def test_overbooking_without_a_reason_is_refused(desk, setup, taken, patient, sql):
    response = desk.post("/schedule/book", book_data(setup, taken, patient, overbook="y", overbook_reason=" "))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Say why this patient must be overbooked." in html
    assert f'name="patient_id" value="{patient}"' in html  # the chosen patient stays chosen
    assert len(appointments(sql)) == 1


def test_a_nurse_may_book_but_not_overbook(sign_in, setup, taken, patient, sql):
    nurse = sign_in(Role.NURSE)
    refused = book(nurse, setup, taken, patient)
    assert refused.status_code == 409 and 'name="overbook"' not in refused.get_data(as_text=True)
    response = nurse.post("/schedule/book", book_data(setup, taken, patient, overbook="y", overbook_reason="Urgent"))
    assert response.status_code == 403
    assert "Your role may not overbook." in response.get_data(as_text=True)
    assert len(appointments(sql)) == 1


@pytest.mark.parametrize(("role", "reason", "status", "message"), [
    (Role.NURSE, "Urgent", 403, "Your role may not overbook."),
    (Role.RECEPTION, " ", 422, "Say why this patient must be overbooked.")])
def test_booking_and_moving_refuse_an_overbooking_in_the_same_words(desk, sign_in, setup, taken, patient, sql, role,
                                                                    reason, status, message):
    """One rule (booking.overbook_reason) for the booking form and the move: the same refusal, the same words."""
    moving = appointment_id(book(desk, setup, slot(working_day(), "11:00"), patient).headers["Location"])
    browser, before = sign_in(role), appointments(sql)
    booked = book(browser, setup, taken, patient, overbook="y", overbook_reason=reason)
    moved = browser.post(f"/schedule/appointments/{moving}/reschedule",
                         {"doctor_id": str(setup.doctor_id), "day": working_day().isoformat(), "start": "",
                          "overbook_time": "09:00", "overbook": "y", "overbook_reason": reason},
                         page=f"/schedule/appointments/{moving}/reschedule")
    assert (booked.status_code, moved.status_code) == (status, status)
    alert = f'<p class="notice notice-error" role="alert">{message}</p>'
    assert alert in booked.get_data(as_text=True) and alert in moved.get_data(as_text=True)
    assert appointments(sql) == before


# --- The same patient twice ---------------------------------------------------------------------------

def test_the_same_patient_at_an_overlapping_time_is_warned_about(desk, setup, patient, factory, clinic, sql):
    second = factory.person(clinic, Role.DOCTOR, name="Dr Neel Second")
    add_sessions(sql, clinic.id, second.id, room="Room 2")
    day = working_day()
    assert book(desk, setup, slot(day, "09:00"), patient, type_id=str(setup.long_type_id)).status_code == 303
    data = book_data(setup, slot(day, "09:15"), patient, doctor_id=str(second.id), reason="follow-up")
    response = desk.post("/schedule/book", data, page=f"/schedule/book?doctor_id={second.id}")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "The patient already has an appointment at that time." in html  # the words the move uses too
    assert f"{formats.day(day)}, 09:00\u201309:30 (Booked)" in html and 'value="follow-up"' in html
    assert 'name="confirm_overlap"' in html
    assert len(appointments(sql)) == 1
    response = desk.post("/schedule/book", {**data, "confirm_overlap": "y"})
    assert response.status_code == 303
    assert sql("SELECT doctor_id FROM appointment ORDER BY created_at") == [(setup.doctor_id,), (second.id,)]


# --- Rescheduling ---------------------------------------------------------------------------------------

def reschedule(browser, aid: str, setup, start: str):
    """Choose a free slot on the reschedule page (without htmx)."""
    return browser.post(f"/schedule/appointments/{aid}/reschedule",
                        {"doctor_id": str(setup.doctor_id), "start": start},
                        page=f"/schedule/appointments/{aid}/reschedule")


def test_rescheduling_moves_the_appointment_and_links_both(desk, setup, patient, register, sql):
    day, later = working_day(), working_day(2)
    old = appointment_id(book(desk, setup, slot(day, "09:00"), patient).headers["Location"])
    form = desk.get(f"/schedule/appointments/{old}/reschedule?day={later}").get_data(as_text=True)
    assert f'value="{slot(later, "11:30")}"' in form
    response = reschedule(desk, old, setup, slot(later, "11:30"))
    assert response.status_code == 303
    new = appointment_id(response.headers["Location"])
    assert sql("SELECT id::text, status, rescheduled_from::text FROM appointment ORDER BY created_at") == [
        (old, "rescheduled", None), (new, "booked", old)]
    assert sql("SELECT action, from_status, to_status FROM appointment_event WHERE appointment_id = :a "
               "ORDER BY at", a=old)[-1] == ("rescheduled", "booked", "rescheduled")
    assert sql("SELECT reason_enc IS NOT NULL FROM appointment WHERE id = :a", a=new) == [(True,)]
    old_page = desk.get(f"/schedule/appointments/{old}").get_data(as_text=True)
    new_page = desk.get(f"/schedule/appointments/{new}").get_data(as_text=True)
    assert f'href="/schedule/appointments/{new}"' in old_page and "Rescheduled" in old_page
    assert f'href="/schedule/appointments/{old}"' in new_page and "fever" in new_page  # the reason moved along
    board = desk.get(f"/schedule/?day={day}").get_data(as_text=True)
    assert f"slot-{setup.doctor_id}-0900" in board  # the old time is free again
    assert book(desk, setup, slot(day, "09:00"), patient_id(register(full_name="Next Patient"))).status_code == 303


def test_the_reschedule_page_as_a_page_and_a_fragment(desk, setup, patient):
    aid = appointment_id(book(desk, setup, slot(working_day(), "09:00"), patient).headers["Location"])
    page = desk.get(f"/schedule/appointments/{aid}/reschedule")
    fragment = desk.get(f"/schedule/appointments/{aid}/reschedule", headers=HTMX)
    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    for response in (page, fragment):
        html = response.get_data(as_text=True)
        assert "Kavya Iyer" in html and f'value="{slot(working_day(), "09:15")}"' in html
        assert f'value="{slot(working_day(), "09:00")}"' not in html  # its own time is not offered


def test_rescheduling_within_overlapping_times_of_itself(desk, setup, patient, sql):
    day = working_day()
    old = appointment_id(book(desk, setup, slot(day, "09:00"), patient,
                              type_id=str(setup.long_type_id)).headers["Location"])
    assert reschedule(desk, old, setup, slot(day, "09:15")).status_code == 303
    assert [a[1] for a in appointments(sql)] == ["rescheduled", "booked"]


def test_rescheduling_into_a_taken_slot_changes_nothing(desk, setup, patient, taken, sql):
    day = working_day()
    old = appointment_id(book(desk, setup, slot(day, "11:00"), patient).headers["Location"])
    before = sql("SELECT id, status, version, updated_at FROM appointment ORDER BY created_at")
    events = sql("SELECT count(*) FROM appointment_event")[0][0]
    response = reschedule(desk, old, setup, taken)
    assert response.status_code == 409
    assert "Someone else has just booked this doctor at this time" in response.get_data(as_text=True)
    assert sql("SELECT id, status, version, updated_at FROM appointment ORDER BY created_at") == before
    assert sql("SELECT count(*) FROM appointment_event")[0][0] == events


def test_rescheduling_with_htmx_sends_the_browser_to_the_new_appointment(desk, setup, patient, sql):
    day = working_day()
    old = appointment_id(book(desk, setup, slot(day, "09:00"), patient).headers["Location"])
    desk.get(f"/schedule/appointments/{old}/reschedule")
    response = desk.post(f"/schedule/appointments/{old}/reschedule",
                         {"doctor_id": str(setup.doctor_id), "start": slot(day, "10:00")}, headers=HTMX)
    assert response.status_code == 204
    (new,) = sql("SELECT id::text FROM appointment WHERE rescheduled_from IS NOT NULL")[0]
    assert response.headers["HX-Redirect"] == f"/schedule/appointments/{new}"


def test_a_cancelled_appointment_cannot_be_rescheduled(desk, setup, patient, sql):
    day = working_day()
    aid = appointment_id(book(desk, setup, slot(day, "09:00"), patient).headers["Location"])
    desk.post(f"/schedule/appointments/{aid}/status", {"action": "cancel", "reason": "Travelling"},
              page=f"/schedule/appointments/{aid}")
    response = reschedule(desk, aid, setup, slot(day, "10:00"))
    assert response.status_code == 409
    assert "An appointment that is cancelled cannot be rescheduled." in response.get_data(as_text=True)
    assert len(appointments(sql)) == 1


# --- The visit's reasons are PHI ---------------------------------------------------------------------

def test_reasons_are_sealed_at_rest(desk, setup, patient, sql):
    visit, cancel = "Sentinelvisitreason lump in left breast", "Sentinelcancelreason admitted elsewhere"
    day = working_day()
    aid = appointment_id(book(desk, setup, slot(day, "09:00"), patient, reason=visit).headers["Location"])
    desk.post(f"/schedule/appointments/{aid}/status", {"action": "cancel", "reason": cancel},
              page=f"/schedule/appointments/{aid}")
    page = desk.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert visit in page and cancel in page  # the desk sees them
    for table in ("appointment", "appointment_event", "audit_event"):
        rows = sql(f"SELECT t::text FROM {table} t")  # bytea columns come out hex-encoded, as in a dump
        blobs = [bytes(b).decode("latin-1") for (b,) in sql(
            f"SELECT {'reason_enc' if table == 'appointment' else 'detail_enc'} FROM {table}")
                 if b is not None] if table != "audit_event" else []
        dumped = "\n".join([r[0] for r in rows] + blobs)
        assert rows and not leaks(dumped, [visit, cancel, "Sentinelvisitreason", "Sentinelcancelreason"]), table


def test_a_reason_copied_to_another_appointment_does_not_open(desk, setup, patient, sql):
    day = working_day()
    first = appointment_id(book(desk, setup, slot(day, "09:00"), patient, reason="Secret one").headers["Location"])
    second = appointment_id(book(desk, setup, slot(day, "10:00"), patient, reason="Other").headers["Location"])
    sql("UPDATE appointment SET reason_enc = (SELECT reason_enc FROM appointment WHERE id = :f) WHERE id = :s",
        f=first, s=second)
    response = desk.get(f"/schedule/appointments/{second}")
    assert response.status_code == 500 and "Secret one" not in response.get_data(as_text=True)



# --- Only roles that may register patients register them inline ----------------------------------------

def test_a_role_that_may_not_register_patients_cannot_register_one_while_booking(sign_in, setup, sql):
    nurse, reception = sign_in(Role.NURSE), sign_in(Role.RECEPTION)
    start = slot(working_day(), "10:00")
    page = f"/schedule/book?doctor_id={setup.doctor_id}&start={start}"
    assert "New patient? Register them here" in reception.get(page).get_data(as_text=True)
    form = nurse.get(page).get_data(as_text=True)
    assert "New patient? Register them here" not in form and 'name="new_patient"' not in form
    searched = nurse.post("/schedule/book", {"doctor_id": str(setup.doctor_id), "start": start, "q": "Nobody Known",
                                             "intent": "search"}, headers={**HTMX, "HX-Target": "picker-results"})
    assert "No patient matches" in searched.get_data(as_text=True)
    assert "Register them as a new patient below." not in searched.get_data(as_text=True)
    mark = high_water(sql)
    response = nurse.post("/schedule/book", book_data(setup, start, "", **new_patient()), page=page)
    assert response.status_code == 422
    assert "Your role may not register patients" in response.get_data(as_text=True)
    assert sql("SELECT count(*) FROM patient")[0][0] == 0 and appointments(sql) == []
    assert "patient.create" not in [a for a, *_ in audit_since(sql, mark)]


# --- The overbooking's reason stays out of the audit trail ------------------------------------------------

def test_an_overbooking_reason_is_kept_in_the_history_and_never_in_the_audit_trail(desk, setup, taken, patient,
                                                                                   register, sql):
    booked, moved = "Sentinelbookoverbook chest pain", "Sentinelmoveoverbook breathless"
    response = desk.post("/schedule/book", book_data(setup, taken, patient, overbook="y", overbook_reason=booked))
    assert response.status_code == 303
    assert booked in desk.get(response.headers["Location"]).get_data(as_text=True)
    # An overbooking made while rescheduling says the same fixed text in the trail.
    day = working_day()
    other = appointment_id(book(desk, setup, slot(day, "11:00"),
                                patient_id(register(full_name="Moved Patient"))).headers["Location"])
    response = desk.post(f"/schedule/appointments/{other}/reschedule",
                         {"doctor_id": str(setup.doctor_id), "day": day.isoformat(), "start": "",
                          "overbook_time": "09:00", "overbook": "y", "overbook_reason": moved},
                         page=f"/schedule/appointments/{other}/reschedule")
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert moved in desk.get(response.headers["Location"]).get_data(as_text=True)
    assert sql("SELECT reason, flagged FROM audit_event WHERE action = 'appointment.overbook' ORDER BY seq") == [
        ("overbooked; reason in the appointment's history", True)] * 2
    dumped = "\n".join(row for (row,) in sql("SELECT t::text FROM audit_event t"))
    assert not leaks(dumped, [booked, moved, "Sentinelbookoverbook", "Sentinelmoveoverbook"])


# --- htmx: which element the search swaps ------------------------------------------------------------------

def test_choosing_someone_else_with_htmx_brings_back_the_search_box(desk, setup, patient):
    start = slot(working_day(), "09:15")
    desk.get(f"/schedule/book?doctor_id={setup.doctor_id}&start={start}&patient_id={patient}")
    data = {"doctor_id": str(setup.doctor_id), "start": start, "patient_id": patient, "q": "", "intent": "search",
            "type_id": str(setup.type_id)}
    response = desk.post("/schedule/book", data, headers={**HTMX, "HX-Target": "book-form"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="book-form"') and "<html" not in html
    assert 'id="q"' in html and f'name="patient_id" value="{patient}"' not in html


# --- Malformed input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2026-13-40"])
def test_the_reschedule_page_for_a_day_out_of_range_shows_today(desk, setup, patient, day):
    aid = appointment_id(book(desk, setup, slot(working_day(), "09:00"), patient).headers["Location"])
    response = desk.get(f"/schedule/appointments/{aid}/reschedule?day={day}")
    assert response.status_code == 200
    assert f"<strong>{formats.day(today(), 'EEEE dd MMM y')}</strong>" in response.get_data(as_text=True)


# --- Rescheduling onto the patient's own other appointment ------------------------------------------------

def unchanged_rows(sql) -> tuple:
    return (sql("SELECT id, status, version, updated_at FROM appointment ORDER BY created_at"),
            sql("SELECT count(*) FROM appointment_event")[0][0])


def test_rescheduling_onto_the_patients_appointment_with_another_doctor_asks_first(desk, setup, patient, factory,
                                                                                   clinic, sql):
    second = factory.person(clinic, Role.DOCTOR, name="Dr Neel Second")
    add_sessions(sql, clinic.id, second.id, room="Room 2")
    day = working_day()
    assert book(desk, setup, slot(day, "10:00"), patient, doctor_id=str(second.id)).status_code == 303
    old = appointment_id(book(desk, setup, slot(day, "12:00"), patient).headers["Location"])
    before = unchanged_rows(sql)
    data = {"doctor_id": str(setup.doctor_id), "day": day.isoformat(), "start": slot(day, "10:00")}
    response = desk.post(f"/schedule/appointments/{old}/reschedule", data,
                         page=f"/schedule/appointments/{old}/reschedule")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "The patient already has an appointment at that time." in html and 'name="confirm_overlap"' in html
    assert f"{formats.day(day)}, 10:00\u201310:15 (Booked)" in html
    assert unchanged_rows(sql) == before
    response = desk.post(f"/schedule/appointments/{old}/reschedule", {**data, "confirm_overlap": "y"})
    assert response.status_code == 303
    assert [a[1] for a in appointments(sql)] == ["booked", "rescheduled", "booked"]


def test_overbooking_a_reschedule_onto_the_patients_own_time_asks_first(desk, setup, patient, sql):
    day = working_day()
    assert book(desk, setup, slot(day, "09:00"), patient).status_code == 303
    old = appointment_id(book(desk, setup, slot(day, "11:00"), patient).headers["Location"])
    before = unchanged_rows(sql)
    data = {"doctor_id": str(setup.doctor_id), "day": day.isoformat(), "start": "", "overbook_time": "09:00",
            "overbook": "y", "overbook_reason": "Doctor asked"}
    response = desk.post(f"/schedule/appointments/{old}/reschedule", data,
                         page=f"/schedule/appointments/{old}/reschedule")
    assert response.status_code == 409
    assert "The patient already has an appointment at that time." in response.get_data(as_text=True)
    assert unchanged_rows(sql) == before
    response = desk.post(f"/schedule/appointments/{old}/reschedule", {**data, "confirm_overlap": "y"})
    assert response.status_code == 303
    assert [(a[1], a[3]) for a in appointments(sql)] == [("booked", False), ("rescheduled", False), ("booked", True)]


def test_a_refused_move_comes_back_for_the_doctor_and_day_that_were_chosen(desk, setup, patient, register, factory,
                                                                           clinic, sql):
    second = factory.person(clinic, Role.DOCTOR, name="Dr Neel Second")
    add_sessions(sql, clinic.id, second.id, room="Room 2")
    day = working_day()
    later = working_day((day - today()).days + 2)
    other = patient_id(register(full_name="Already There"))
    assert book(desk, setup, slot(later, "09:00"), other, doctor_id=str(second.id)).status_code == 303
    old = appointment_id(book(desk, setup, slot(day, "09:00"), patient).headers["Location"])
    before = unchanged_rows(sql)
    response = desk.post(f"/schedule/appointments/{old}/reschedule",
                         {"doctor_id": str(second.id), "day": later.isoformat(), "start": slot(later, "09:00")},
                         page=f"/schedule/appointments/{old}/reschedule")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Someone else has just booked this doctor at this time" in html
    assert f"<strong>{formats.day(later, 'EEEE dd MMM y')}</strong>" in html
    assert f'<option value="{second.id}" selected>' in html and f'name="day" value="{later.isoformat()}"' in html
    assert f'value="{slot(later, "09:15")}"' in html  # the chosen doctor's free slots that day
    assert unchanged_rows(sql) == before
