"""Who may do what with the schedule (PRODUCT.md §2), and another clinic's patients and appointments
answering 404 with a denied audit record."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.auth.policy import Role
from tests.conftest import patient_id, register_with
from tests.scheduling.conftest import (
    add_sessions,
    audit_since,
    book_data,
    high_water,
    insert_appointment,
    open_clinic,
    slot,
    today,
    working_day,
)


@pytest.fixture
def booked(sql, clinic, setup, register) -> tuple[str, str]:
    """An appointment later today (so every action is on offer) and its patient."""
    patient = patient_id(register(full_name="Gita Menon"))
    aid = insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(),
                             starts_at=datetime.now(UTC) + timedelta(hours=1), type_id=setup.type_id)
    return str(aid), patient


def views(setup, aid: str) -> list[str]:
    return ["/schedule/", f"/schedule/board?day={today()}&v=x", f"/schedule/week?doctor_id={setup.doctor_id}",
            f"/schedule/sheet/{setup.doctor_id}", f"/schedule/appointments/{aid}", "/queue/", "/queue/poll?v=x"]


def writes(setup, aid: str, patient: str) -> list[tuple[str, str, dict]]:
    start = slot(working_day(), "10:00")
    return [
        ("get", f"/schedule/book?doctor_id={setup.doctor_id}&start={start}", {}),
        ("post", "/schedule/book", book_data(setup, start, patient)),
        ("post", f"/schedule/appointments/{aid}/status", {"action": "check_in"}),
        ("get", f"/schedule/appointments/{aid}/reschedule", {}),
        ("post", f"/schedule/appointments/{aid}/reschedule", {"doctor_id": str(setup.doctor_id), "start": start}),
        ("get", "/queue/walk-in", {}),
        ("post", "/queue/walk-in", {"patient_id": patient, "doctor_id": str(setup.doctor_id), "intent": "add"}),
        ("post", f"/queue/{setup.doctor_id}/next", {}),
    ]


def test_billing_sees_the_schedule_but_changes_nothing(sign_in, setup, booked, sql):
    aid, patient = booked
    billing = sign_in(Role.BILLING)
    for url in views(setup, aid):
        assert billing.get(url).status_code in (200, 204), url
    board = billing.get(f"/schedule/?day={today()}").get_data(as_text=True)
    assert "Gita Menon" in board and "Free · book" not in board and "data-check-in" not in board
    page = billing.get(f"/schedule/appointments/{aid}").get_data(as_text=True)
    assert "data-action" not in page and "Reschedule" not in page
    billing.get("/queue/")
    for method, url, data in writes(setup, aid, patient):
        mark = high_water(sql)
        response = billing.get(url) if method == "get" else billing.post(url, data)
        assert response.status_code == 403, url
        assert [(a.split(":")[0], o) for a, o, *_ in audit_since(sql, mark)] == [("denied", "denied")], url
    assert sql("SELECT status, token FROM appointment") == [("booked", None)]
    assert sql("SELECT count(*) FROM appointment_event")[0][0] == 0


def test_the_auditor_cannot_see_the_schedule(sign_in, setup, booked, sql):
    aid, _patient = booked
    auditor = sign_in(Role.AUDITOR)
    for url in views(setup, aid):
        mark = high_water(sql)
        response = auditor.get(url)
        assert response.status_code == 403, url
        assert "Gita Menon" not in response.get_data(as_text=True)
        assert [o for _a, o, *_ in audit_since(sql, mark)] == ["denied"], url


def test_only_a_doctor_has_a_queue_of_their_own(sign_in, setup, doctor, new_browser):
    assert sign_in(Role.RECEPTION).get("/queue/mine").status_code == 403
    browser = new_browser()
    browser.sign_in(doctor)
    assert browser.get("/queue/mine").status_code == 200


@pytest.fixture
def elsewhere(factory, other_clinic, sql, new_browser):
    """Another clinic with its own doctor, patient and appointment."""
    browser = new_browser()
    browser.sign_in(factory.person(other_clinic, Role.RECEPTION))
    doctor = factory.person(other_clinic, Role.DOCTOR, name="Dr Far Away")
    open_clinic(sql, other_clinic.id)
    add_sessions(sql, other_clinic.id, doctor.id)
    patient = patient_id(register_with(browser, full_name="Other Clinic Patient"))
    aid = insert_appointment(sql, other_clinic.id, doctor.id, patient, day=today(),
                             starts_at=datetime.now(UTC) + timedelta(hours=1))
    return {"doctor": str(doctor.id), "patient": patient, "appointment": str(aid)}


def test_another_clinics_appointment_is_not_found_and_the_look_is_recorded(desk, setup, elsewhere, sql):
    aid = elsewhere["appointment"]
    desk.get("/schedule/book")
    attempts = [
        ("get", f"/schedule/appointments/{aid}", {}, "appointment.view"),
        ("post", f"/schedule/appointments/{aid}/status", {"action": "cancel", "reason": "x"}, "appointment.status"),
        ("get", f"/schedule/appointments/{aid}/reschedule", {}, "appointment.reschedule_form"),
        ("post", f"/schedule/appointments/{aid}/reschedule",
         {"doctor_id": str(setup.doctor_id), "start": slot(working_day(), "10:00")}, "appointment.reschedule"),
    ]
    for method, url, data, action in attempts:
        mark = high_water(sql)
        response = desk.get(url) if method == "get" else desk.post(url, data)
        assert response.status_code == 404, url
        assert "Other Clinic Patient" not in response.get_data(as_text=True)
        assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [(action, "denied")], url
        (clinic_name,) = sql("SELECT c.name FROM audit_event a JOIN clinic c ON c.id = a.clinic_id "
                             "WHERE a.seq > :s", s=mark)[0]
        assert clinic_name == "Sunrise Clinic"
    assert sql("SELECT status FROM appointment WHERE id = :a", a=aid) == [("booked",)]


def test_another_clinics_patient_cannot_be_booked_or_walked_in(desk, setup, elsewhere, sql):
    patient = elsewhere["patient"]
    start = slot(working_day(), "10:00")
    desk.get("/schedule/book")
    attempts = [
        ("get", f"/schedule/book?doctor_id={setup.doctor_id}&start={start}&patient_id={patient}", {}),
        ("post", "/schedule/book", book_data(setup, start, patient)),
        ("post", "/schedule/book", {**book_data(setup, start, ""), "use_patient": patient}),
        ("get", f"/queue/walk-in?patient_id={patient}", {}),
        ("post", "/queue/walk-in", {"patient_id": patient, "doctor_id": str(setup.doctor_id), "type_id": "",
                                    "intent": "add"}),
    ]
    for method, url, data in attempts:
        mark = high_water(sql)
        response = desk.get(url) if method == "get" else desk.post(url, data)
        assert response.status_code == 404, url
        assert "Other Clinic Patient" not in response.get_data(as_text=True)
        assert [(a, o, p) for a, o, p, *_ in audit_since(sql, mark)] == [("patient.view", "denied", None)], url
    assert sql("SELECT count(*) FROM appointment")[0][0] == 1  # only the other clinic's own


def test_another_clinics_doctor_is_not_found(desk, setup, elsewhere, sql):
    doctor = elsewhere["doctor"]
    for method, url in [("get", f"/schedule/week?doctor_id={doctor}"), ("get", f"/schedule/sheet/{doctor}"),
                        ("post", f"/queue/{doctor}/next")]:
        response = desk.get(url) if method == "get" else desk.post(url, {}, page="/schedule/book")
        assert response.status_code == 404, url
    response = desk.post("/schedule/book", book_data(setup, slot(working_day(), "10:00"), elsewhere["patient"],
                                                     doctor_id=doctor))
    assert response.status_code in (404, 422)
    assert sql("SELECT count(*) FROM appointment")[0][0] == 1  # only the other clinic's own


# --- Contact-only roles: names, not sex, age or what the patient said ------------------------------------

SEX_AGE = re.compile(r"\b[FMO], \d+ y\b")
SHEET_AGE_SEX = re.compile(r"<td>\d+ [FMO]</td>")


def test_billing_sees_who_is_booked_but_not_their_sex_age_or_reasons(sign_in, desk, setup, register, sql, clinic):
    visit, cancel = "Sentinelvisitreason lump in left breast", "Sentinelcancelreason admitted elsewhere"
    day = working_day()
    patient = patient_id(register(full_name="Hema Contact"))
    kept = desk.post("/schedule/book", book_data(setup, slot(day, "09:00"), patient, reason=visit),
                     page="/schedule/book")
    cancelled = desk.post("/schedule/book", book_data(setup, slot(day, "10:00"), patient, reason=visit))
    assert kept.status_code == cancelled.status_code == 303
    kept, cancelled = (r.headers["Location"] for r in (kept, cancelled))
    assert desk.post(f"{cancelled}/status", {"action": "cancel", "reason": cancel}).status_code == 303
    insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(), status="arrived", token=1)
    week = f"/schedule/week?doctor_id={setup.doctor_id}&day={day}"
    sheet = f"/schedule/sheet/{setup.doctor_id}?day={day}"
    cards = [f"/schedule/?day={day}", week, kept, cancelled]
    billing = sign_in(Role.BILLING)
    for url in [*cards, sheet, "/queue/"]:
        response = billing.get(url)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        assert "Hema Contact" in html, url
        assert not SEX_AGE.search(html) and not SHEET_AGE_SEX.search(html), url
        assert "Sentinelvisitreason" not in html and "Sentinelcancelreason" not in html, url
    # The front desk sees all of it.
    for url in cards:
        assert SEX_AGE.search(desk.get(url).get_data(as_text=True)), url
    assert SHEET_AGE_SEX.search(desk.get(sheet).get_data(as_text=True))
    assert visit in desk.get(sheet).get_data(as_text=True)
    page = desk.get(cancelled).get_data(as_text=True)
    assert visit in page and cancel in page


# --- A doctor who is not one ------------------------------------------------------------------------------

def test_an_unknown_doctor_is_not_found_and_the_look_is_recorded(desk, setup, elsewhere, sql):
    for doctor in (elsewhere["doctor"], str(uuid.uuid4())):
        for method, url in [("get", f"/schedule/week?doctor_id={doctor}"), ("get", f"/schedule/sheet/{doctor}"),
                            ("post", f"/queue/{doctor}/next")]:
            if method == "post":
                desk.get("/schedule/book")
            mark = high_water(sql)
            response = desk.get(url) if method == "get" else desk.post(url, {})
            assert response.status_code == 404, url
            assert [(a, o) for a, o, *_ in audit_since(sql, mark)] == [("doctor.view", "denied")], url
            assert sql("SELECT object_id::text FROM audit_event WHERE seq > :s", s=mark) == [(doctor,)], url
