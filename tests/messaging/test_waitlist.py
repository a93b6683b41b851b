# ruff: noqa: F811  (fixtures imported from tests/scheduling/conftest.py are redefined as arguments, as pytest means)
"""The waitlist over HTTP: a patient asks from their page to hear of an earlier time; a time freed by
the desk (a cancellation, a move) goes out as offers to the earliest-joined patients with later
appointments; the first to take it gets it and the others are told it has gone.
"""

import re
import threading
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from app import formats
from app.db import get_session, set_tenant
from app.messaging import visits, waitlist
from app.scheduling.models import Appointment
from tests.conftest import patient_id
from tests.messaging.test_visit import IST, form, issue_link, opened
from tests.scheduling.conftest import (  # noqa: F401
    appointment_id,
    at_once,
    book,
    doctor,
    setup,
    slot,
    working_day,
)


@pytest.fixture
def day():
    return working_day(2)


@pytest.fixture
def booking(app, clinic, desk, register, setup, day, new_browser):
    """Book a patient (with WhatsApp consent) at a time; returns (appointment id, their phone's browser)."""
    def make(hhmm: str, name: str = "Kavya Iyer"):
        pid = patient_id(register(full_name=name, language="en", consent_whatsapp="y"))
        response = book(desk, setup, slot(day, hhmm), pid)
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        aid = appointment_id(response.headers["Location"])
        phone = new_browser()
        opened(phone, issue_link(app, clinic.id, aid))
        return aid, phone
    return make


def hidden(html: str, url: str) -> dict:
    """The hidden fields of the page's form for `url` (to replay it, or to post them elsewhere)."""
    chunk = html[html.index(f'method="post" action="{url}"'):]
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', chunk[:chunk.index("</form>")]))


def join(phone):
    response = form(phone, "/p/visit/waitlist", phone.get("/p/visit").get_data(as_text=True))
    assert response.status_code == 303
    return response


def desk_cancel(desk, aid: str):
    response = desk.post(f"/schedule/appointments/{aid}/status", {"action": "cancel", "reason": "Travelling"},
                         page=f"/schedule/appointments/{aid}")
    assert response.status_code == 303, response.get_data(as_text=True)[:300]


def offers_to(sql) -> list[tuple]:
    """(appointment id, offer id) of each offer message written, oldest first."""
    return sql("SELECT appointment_id::text, offer_id::text FROM reminder WHERE kind = 'offer' ORDER BY created_at, id")


def test_join_and_leave_from_the_page(booking, sql):
    aid, phone = booking("12:00")
    page = phone.get("/p/visit").get_data(as_text=True)
    assert "Tell me if an earlier time opens" in page
    response = join(phone)
    page = phone.get("/p/visit").get_data(as_text=True)
    assert "We will tell you if an earlier time opens." in page and "You are on the list" in page
    assert sql("SELECT appointment_id::text, doctor_id IS NOT NULL, ended_at FROM waitlist_entry") == [
        (aid, True, None)]
    replay = phone.client.post("/p/visit/waitlist", data={**hidden(page, "/p/visit/waitlist"), "do": "join"})
    assert replay.status_code == 409 and sql("SELECT count(*) FROM waitlist_entry") == [(1,)]
    assert response.headers["Location"] == "/p/visit"
    left = form(phone, "/p/visit/waitlist", page)
    assert left.status_code == 303
    assert "You are off the list for an earlier time." in phone.get("/p/visit").get_data(as_text=True)
    assert sql("SELECT ended_reason FROM waitlist_entry") == [("left",)]
    assert form(phone, "/p/visit/waitlist", page).status_code == 409  # leaving twice
    assert [a for a, in sql("SELECT action FROM audit_event WHERE action LIKE 'waitlist.%' ORDER BY seq")] == [
        "waitlist.join", "waitlist.leave"]


def test_a_cancelled_time_is_offered_and_taken(booking, desk, sql, day):
    later, phone = booking("12:00")
    join(phone)
    freed, _ = booking("10:00", "Arjun Rao")
    desk_cancel(desk, freed)
    ten = datetime.combine(day, time(10, 0), IST)
    (offer_id, starts, freed_by, taken), = sql("SELECT id::text, starts_at, freed_by::text, taken_at FROM slot_offer")
    assert (starts, freed_by, taken) == (ten, freed, None)
    assert offers_to(sql) == [(later, offer_id)]
    page = phone.get("/p/visit").get_data(as_text=True)
    assert "An earlier time is free" in page and f"Take {formats.day(day, 'EEE d MMM y')}, 10:00 am" in page
    assert f'action="/p/visit/offer/{offer_id}"' in page and "10:00 am" in page
    before = page
    response = form(phone, f"/p/visit/offer/{offer_id}", page)
    assert response.status_code == 303
    page = phone.get("/p/visit").get_data(as_text=True)
    assert "The earlier time is yours." in page and "10:00 am" in page and "An earlier time is free" not in page
    rows = sql("SELECT id::text, status, starts_at FROM appointment WHERE patient_id = "
               "(SELECT patient_id FROM appointment WHERE id = :a) ORDER BY created_at", a=later)
    assert [(s, t) for _, s, t in rows] == [("rescheduled", datetime.combine(day, time(12, 0), IST)),
                                            ("booked", ten)]
    assert sql("SELECT taken_by::text FROM slot_offer") == [(rows[1][0],)]
    assert sql("SELECT ended_reason FROM waitlist_entry") == [("took offer",)]
    assert sql("SELECT appointment_id::text FROM patient_visit WHERE appointment_id = :a", a=rows[1][0])
    # A second tap on the same offer (the form from before the move) changes nothing.
    replay = form(phone, f"/p/visit/offer/{offer_id}", before)
    assert replay.status_code == 409 and "Already done" in replay.get_data(as_text=True)
    assert sql("SELECT count(*) FROM appointment") == [(3,)]


def test_the_first_patient_to_take_an_offer_gets_it(booking, desk, sql, day):
    first, phone_a = booking("12:00")
    second, phone_b = booking("12:30", "Meena Das")
    join(phone_a)
    join(phone_b)
    freed, _ = booking("10:00", "Arjun Rao")
    desk_cancel(desk, freed)
    (offer_id,), = sql("SELECT id::text FROM slot_offer")
    assert sorted(offers_to(sql)) == sorted([(first, offer_id), (second, offer_id)])
    pages = [p.get("/p/visit").get_data(as_text=True) for p in (phone_a, phone_b)]
    assert all(f'action="/p/visit/offer/{offer_id}"' in page for page in pages)
    url = f"/p/visit/offer/{offer_id}"
    results = at_once([lambda: form(phone_a, url, pages[0]), lambda: form(phone_b, url, pages[1])])
    assert sorted(r.status_code for r in results) == [303, 409]
    loser = next(r for r in results if r.status_code == 409).get_data(as_text=True)
    assert "Sorry, that time has gone: someone else took it first." in loser
    ten = datetime.combine(day, time(10, 0), IST)
    assert sql("SELECT count(*) FROM appointment WHERE starts_at = :t AND status = 'booked'", t=ten) == [(1,)]
    assert sql("SELECT count(*) FROM slot_offer WHERE id = :o AND taken_at IS NOT NULL", o=offer_id) == [(1,)]
    # The other patient keeps their appointment and their place on the list; the offer is gone from their page.
    lost = phone_b if results[0].status_code == 303 else phone_a
    page = lost.get("/p/visit").get_data(as_text=True)
    assert "You are on the list" in page and f'action="/p/visit/offer/{offer_id}"' not in page
    again = form(lost, url, pages[0 if lost is phone_a else 1])  # the offer, tapped again later
    assert again.status_code == 409 and "that time has gone" in again.get_data(as_text=True)


def test_offers_go_to_the_five_earliest_joined_with_later_appointments(app, clinic, booking, desk, sql, day, factory,
                                                                      register):
    waiting = []
    for i, hhmm in enumerate(("11:00", "11:15", "11:30", "11:45", "12:00", "12:15")):
        aid, phone = booking(hhmm, f"Patient {i}")
        join(phone)
        waiting.append(aid)
    earlier, phone = booking("09:15", "Early Bird")
    join(phone)  # earlier than the freed time: not offered a later one
    # The last to book joined first: the order of joining, not of booking, decides.
    sql("UPDATE waitlist_entry SET created_at = created_at - interval '1 hour' WHERE appointment_id = :a",
        a=waiting[-1])
    freed, _ = booking("10:00", "Arjun Rao")
    desk_cancel(desk, freed)
    offered = [a for a, _ in offers_to(sql)]
    assert sorted(offered) == sorted([waiting[-1], *waiting[:4]])
    assert earlier not in offered and waiting[4] not in offered


def test_no_offer_for_a_time_too_soon_still_held_or_with_nobody_waiting(app, clinic, booking, sql, day):
    held, phone = booking("10:00")
    _, other = booking("12:00", "Meena Das")
    join(other)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        appointment = db.get(Appointment, (clinic.id, uuid.UUID(held)))
        assert waitlist.offer_freed(db, clinic, appointment) is None  # its own booking still holds the time
        soon = Appointment(clinic_id=clinic.id, id=uuid.uuid4(), doctor_id=appointment.doctor_id, walk_in=False,
                           starts_at=datetime.now(UTC) + timedelta(minutes=50),
                           ends_at=datetime.now(UTC) + timedelta(minutes=65))
        assert waitlist.offer_freed(db, clinic, soon) is None  # within the hour: the desk phones instead
        db.rollback()
    form(other, "/p/visit/waitlist", other.get("/p/visit").get_data(as_text=True))  # leaves
    form(phone, "/p/visit/cancel", phone.get("/p/visit").get_data(as_text=True))  # 10:00 freed, nobody waiting
    assert sql("SELECT count(*) FROM slot_offer") == [(0,)] and offers_to(sql) == []


def test_a_move_or_a_cancellation_ends_the_wait(booking, desk, sql, setup, day):
    moved, phone = booking("12:00")
    join(phone)
    response = desk.post(f"/schedule/appointments/{moved}/reschedule",
                         {"doctor_id": str(setup.doctor_id), "start": slot(day, "12:30")},
                         page=f"/schedule/appointments/{moved}/reschedule")
    assert response.status_code == 303
    cancelled, phone = booking("11:00", "Meena Das")
    join(phone)
    form(phone, "/p/visit/cancel", phone.get("/p/visit").get_data(as_text=True))
    assert sql("SELECT appointment_id::text, ended_reason FROM waitlist_entry ORDER BY created_at") == [
        (moved, "rescheduled"), (cancelled, "cancelled")]


def test_an_offer_not_made_to_this_appointment_cannot_be_taken(booking, desk, sql):
    _, phone_a = booking("12:00")
    _, phone_b = booking("12:30", "Meena Das")
    join(phone_a)
    freed, _ = booking("10:00", "Arjun Rao")
    desk_cancel(desk, freed)
    (offer_id,), = sql("SELECT id::text FROM slot_offer")
    join(phone_b)  # joined after the offer went out: not offered it
    page = phone_b.get("/p/visit").get_data(as_text=True)
    assert "An earlier time is free" not in page
    stolen = phone_b.client.post(f"/p/visit/offer/{offer_id}", data=hidden(page, "/p/visit/waitlist"))
    assert stolen.status_code == 409 and "that time has gone" in stolen.get_data(as_text=True)
    unknown = phone_b.client.post(f"/p/visit/offer/{uuid.uuid4()}", data=hidden(page, "/p/visit/waitlist"))
    assert unknown.status_code == 409
    assert sql("SELECT taken_at FROM slot_offer") == [(None,)]
    assert sql("SELECT count(*) FROM appointment WHERE rescheduled_from IS NOT NULL") == [(0,)]


def test_taking_an_offer_does_not_wait_on_another_patients_change(app, booking, desk, sql):
    """Taking 10:00 frees 12:00, offered at once to the 12:30 patient: writing that offer must not wait for
    the 12:30 patient's own change in progress (their page holds their appointment the way this one does),
    else two patients taking offers at the same moment could deadlock."""
    _, phone_a = booking("12:00")
    second, phone_b = booking("12:30", "Meena Das")
    join(phone_a)
    join(phone_b)
    freed, _ = booking("10:00", "Arjun Rao")
    desk_cancel(desk, freed)
    (offer_id,), = sql("SELECT id::text FROM slot_offer")
    page = phone_a.get("/p/visit").get_data(as_text=True)
    with app.app_context():  # the 12:30 patient's change in progress, holding their appointment as the view does
        held = get_session()
        assert visits.current(held, phone_b.client.get_cookie(visits.COOKIE, path="/p").value, for_update=True)
        done = []
        taker = threading.Thread(target=lambda: done.append(form(phone_a, f"/p/visit/offer/{offer_id}", page)))
        taker.start()
        taker.join(timeout=20)
        finished_while_held = bool(done)
        held.rollback()
    taker.join(timeout=30)
    assert finished_while_held and done[0].status_code == 303
    assert sql("SELECT appointment_id::text FROM reminder WHERE kind = 'offer' AND appointment_id = :b "
               "AND offer_id <> :o", b=second, o=offer_id) == [(second,)]
