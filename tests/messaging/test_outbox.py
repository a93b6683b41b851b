"""The outbox: what booking, rescheduling and cancelling plan, and what the send job does with a row
at send time (outbox transport and Twilio through the real SDK against the local fake)."""

import json
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.auth.policy import Role
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.messaging import links
from app.messaging.models import ReminderSettings
from app.patients.models import Patient
from app.patients.services import set_consent
from app.scheduling import booking
from app.scheduling.models import Appointment
from app.scheduling.slots import holiday_name
from tests.messaging.booked import (
    CONTENT_SID,
    WHATSAPP_FROM,
    book,
    make_due,
    next_slot,
    opened,
    register,
    round_the_clock,
    rows,
    send_now,
    use_twilio,
)


def _phone_of(app, clinic_id, patient) -> str:
    from app.security.fields import keyring

    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        row = db.get(Patient, (clinic_id, uuid.UUID(patient)))
        phone = keyring(db, clinic_id).open("patient", "phone", row.id, row.phone_enc)
        db.rollback()
        return phone


# --- Planning ------------------------------------------------------------------------------------

def test_booking_plans_the_24h_and_2h_reminders_on_whatsapp_first(app, sql, ready, desk):
    patient = register(desk)
    starts = next_slot(timedelta(days=2))
    appointment = book(app, ready, patient, starts)
    planned = rows(sql, appointment)
    assert [(r.kind, r.channel, r.state) for r in planned] == [("24h", "whatsapp", "pending"),
                                                                 ("2h", "whatsapp", "pending")]
    assert planned[1].due_at <= starts - timedelta(hours=2)


def test_no_consent_no_reminders_and_sms_when_only_sms(app, sql, ready, desk):
    none = book(app, ready, register(desk, whatsapp=False, sms=False), next_slot(timedelta(days=2)))
    sms_only = book(app, ready, register(desk, whatsapp=False), next_slot(timedelta(days=2, hours=1)))
    assert rows(sql, none) == []
    assert {r.channel for r in rows(sql, sms_only)} == {"sms"}


def test_booked_one_hour_ahead_gets_no_late_reminders(app, sql, ready, desk):
    appointment = book(app, ready, register(desk), next_slot(timedelta(minutes=61)))
    assert rows(sql, appointment) == []


def test_booked_three_hours_ahead_gets_only_the_2h_reminder(app, sql, ready, desk):
    clinic_id = ready.clinic.id
    sql("UPDATE reminder_settings SET quiet_start = '00:00', quiet_end = '00:01' WHERE clinic_id = :c", c=clinic_id)
    appointment = book(app, ready, register(desk), next_slot(timedelta(hours=3)))
    assert [r.kind for r in rows(sql, appointment)] == ["2h"]


def test_quiet_hours_move_a_reminder_earlier_in_the_clinics_own_time_zone(app, sql, factory, new_browser):
    far = factory.clinic("Gulf Clinic", timezone="Asia/Dubai")
    doctor = factory.person(far, Role.DOCTOR)
    ready = round_the_clock(sql, far, doctor, quiet_hours=True)
    desk = new_browser()
    desk.sign_in(factory.person(far, Role.RECEPTION))
    patient = register(desk)
    zone = ZoneInfo("Asia/Dubai")
    day = (datetime.now(zone) + timedelta(days=3)).date()
    while holiday_name("29", day):
        day += timedelta(days=1)
    starts = datetime.combine(day, time(8, 30), zone).astimezone(UTC)
    appointment = book(app, ready, patient, starts)
    two_hours = next(r for r in rows(sql, appointment) if r.kind == "2h")
    # 06:30 Dubai time is inside the default quiet hours (21:00-08:00): sent at 20:59 the evening before.
    assert two_hours.due_at.astimezone(zone) == datetime.combine(day - timedelta(days=1), time(20, 59), zone)


# --- Sending (outbox transport) --------------------------------------------------------------------

def test_outbox_send_stores_a_message_with_clinic_date_time_and_a_working_link(app, sql, ready, desk, clinic):
    patient = register(desk, language="en")
    starts = next_slot(timedelta(days=2))
    appointment = book(app, ready, patient, starts)
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    assert send_now(app, clinic.id, first.id) == "sent (outbox)"
    assert send_now(app, clinic.id, first.id) == "nothing to do"
    to, body = opened(app, clinic.id, first.id)
    assert to == _phone_of(app, clinic.id, patient)
    assert "Sunrise Clinic" in body and "Sunita" not in body and "Meera" not in body
    local = starts.astimezone(ZoneInfo("Asia/Kolkata"))
    assert f"{local.hour % 12 or 12}:{local.minute:02d}" in body
    token = body.split("/p/")[1].split()[0].split('"')[0]
    with app.app_context():
        found = links.find(get_session(), token)
        assert found is not None and found.appointment.id == appointment
    assert sql("SELECT token_hash FROM patient_link")[0][0] == links.token_hash(token)  # only the hash is stored
    assert rows(sql, appointment)[0].state == "sent"


def test_hindi_patient_gets_the_hindi_text(app, sql, ready, desk, clinic):
    appointment = book(app, ready, register(desk, language="hi", whatsapp=False), next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    send_now(app, clinic.id, first.id)
    assert "आपका अपॉइंटमेंट" in opened(app, clinic.id, first.id)[1]


def test_cancelled_or_rescheduled_before_sending_sends_nothing(app, sql, ready, desk, clinic):
    patient = register(desk)
    cancelled = book(app, ready, patient, next_slot(timedelta(days=2)))
    moved = book(app, ready, patient, next_slot(timedelta(days=3)))
    queued = [r.id for r in rows(sql, cancelled) + rows(sql, moved)]
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c = db.get(Clinic, clinic.id)
        booking.change_status(db, clinic=c, appointment=db.get(Appointment, (clinic.id, cancelled)),
                              action="cancel", by=None, reason="travelling")
        old = db.get(Appointment, (clinic.id, moved))
        new = booking.reschedule(db, clinic=c, appointment=old, patient=db.get(Patient, (clinic.id, old.patient_id)),
                                 doctor_id=old.doctor_id, starts=next_slot(timedelta(days=4)),
                                 type_=db.get(booking.AppointmentType, (clinic.id, old.type_id)), by=None)
        db.commit()
        new_id = new.id
    for row_id in queued:
        sql("UPDATE reminder SET state = 'pending' WHERE id = :i", i=row_id)  # as if queued before the change
        make_due(sql, row_id)
        assert send_now(app, clinic.id, row_id) in ("skipped: appointment cancelled",
                                                    "skipped: appointment rescheduled")
    assert sql("SELECT count(*) FROM patient_link")[0][0] == 0
    assert [r.state for r in rows(sql, new_id)] == ["pending", "pending"]


def test_consent_withdrawn_between_queueing_and_sending_falls_back_to_sms(app, sql, ready, desk, clinic):
    patient = register(desk)
    appointment = book(app, ready, patient, next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        set_consent(db, db.get(Patient, (clinic.id, uuid.UUID(patient))), "whatsapp", False, "phone", None)
        db.commit()
    make_due(sql, first.id)
    assert send_now(app, clinic.id, first.id) == "skipped: consent withdrawn"
    fallback = [r for r in rows(sql, appointment) if r.channel == "sms"]
    assert [(r.kind, r.state) for r in fallback] == [("24h", "pending")]
    assert send_now(app, clinic.id, fallback[0].id) == "sent (outbox)"


def test_a_reminder_whose_moment_has_passed_is_dropped(app, sql, ready, desk, clinic):
    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id, ago=timedelta(hours=1))
    assert send_now(app, clinic.id, first.id) == "skipped: too late"


def test_turned_off_sends_nothing(app, sql, ready, desk, clinic):
    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        db.get(ReminderSettings, clinic.id).enabled = False
        db.commit()
    make_due(sql, first.id)
    assert send_now(app, clinic.id, first.id) == "skipped: reminders turned off"


# --- Twilio ------------------------------------------------------------------------------------------

def test_twilio_whatsapp_template_through_the_real_sdk(app, sql, ready, desk, clinic, fake):
    use_twilio(app, clinic.id)
    patient = register(desk)
    appointment = book(app, ready, patient, next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    outcome = send_now(app, clinic.id, first.id)
    assert outcome.startswith("sent (SM")
    (message,) = fake.messages
    assert message["To"] == "whatsapp:" + _phone_of(app, clinic.id, patient)
    assert message["From"] == WHATSAPP_FROM and message["ContentSid"] == CONTENT_SID
    assert "Body" not in message
    assert message["StatusCallback"].endswith(f"/twilio/{clinic.id}/status")
    assert 60 <= int(message["ValidityPeriod"]) <= 36000
    row = rows(sql, appointment)[0]
    assert (row.state, row.twilio_sid) == ("sent", message["sid"])
    assert send_now(app, clinic.id, first.id) == "nothing to do"
    assert len(fake.messages) == 1


def test_429_and_5xx_put_the_row_back_and_the_retry_sends_once(app, sql, ready, desk, clinic, fake):
    from app.messaging.sending import TryLater

    use_twilio(app, clinic.id)
    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    fake.next_error(status=429, code=20429)
    with pytest.raises(TryLater):
        send_now(app, clinic.id, first.id)
    assert rows(sql, appointment)[0].state == "pending"
    fake.next_error(status=503)
    with pytest.raises(TryLater):
        send_now(app, clinic.id, first.id)
    assert send_now(app, clinic.id, first.id).startswith("sent (")
    assert len(fake.messages) == 1


def test_permanent_errors_fail_without_retry_and_whatsapp_falls_back_to_sms(app, sql, ready, desk, clinic, fake):
    use_twilio(app, clinic.id)
    bad = register(desk)
    appointment = book(app, ready, bad, next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    number = _phone_of(app, clinic.id, bad)
    fake.next_error(status=400, code=63016)  # not reachable on WhatsApp
    assert send_now(app, clinic.id, first.id) == "failed: 63016"
    sms = next(r for r in rows(sql, appointment) if r.channel == "sms")
    assert send_now(app, clinic.id, sms.id).startswith("sent (")
    assert [m["To"] for m in fake.messages] == [number]
    landline = book(app, ready, register(desk, whatsapp=False), next_slot(timedelta(days=3)))
    only = rows(sql, landline)[0]
    make_due(sql, only.id)
    fake.fail(to=_phone_of(app, clinic.id, str(sql("SELECT patient_id FROM appointment WHERE id = :a",
                                                   a=landline)[0][0])), code=21614)
    assert send_now(app, clinic.id, only.id) == "failed: 21614"
    assert send_now(app, clinic.id, only.id) == "nothing to do"
    assert (rows(sql, landline)[0].state, rows(sql, landline)[0].error_code) == ("failed", 21614)
    assert len(rows(sql, landline)) == 2  # the 2-hour reminder stays planned: the desk may fix the number


def test_timeout_after_twilio_accepted_is_reconciled_not_resent(app, sql, ready, desk, clinic, fake, monkeypatch):
    from app.messaging import sending

    monkeypatch.setattr(sending, "HTTP_TIMEOUT", 1.0)
    use_twilio(app, clinic.id)
    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    fake.delay_next(2.5)  # Twilio accepts and records the message, then answers too late
    with pytest.raises(sending.TryLater):
        send_now(app, clinic.id, first.id)
    assert rows(sql, appointment)[0].state == "sending"
    assert send_now(app, clinic.id, first.id) == "still in flight"
    later = datetime.now(UTC) + timedelta(minutes=2)
    outcome = send_now(app, clinic.id, first.id, now=later)
    assert outcome == f"reconciled ({fake.messages[0]['sid']})"
    assert len(fake.messages) == 1
    assert rows(sql, appointment)[0].twilio_sid == fake.messages[0]["sid"]


def test_a_row_left_sending_that_twilio_never_got_is_sent_again(app, sql, ready, desk, clinic, fake):
    from app.messaging.sending import TryLater

    use_twilio(app, clinic.id)
    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    fake.next_error(status=503)
    with pytest.raises(TryLater):
        send_now(app, clinic.id, first.id)
    # As if a worker had died mid-request two minutes ago, before Twilio recorded anything.
    sql("UPDATE reminder SET state = 'sending', sending_at = now() - interval '2 minutes' WHERE id = :i", i=first.id)
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert send_now(app, clinic.id, first.id, now=later).startswith("sent (")
    assert len(fake.messages) == 1


def test_a_patient_may_move_only_to_a_time_an_hour_ahead(app, sql, ready, desk, clinic):
    from app.messaging import actions
    from app.scheduling import services

    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    soon = next_slot(timedelta(minutes=20))
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c = db.get(Clinic, clinic.id)
        day = services.local_day(c, soon)
        offered = actions.free_slots(db, c, ready.doctor_id, day)
        assert all(slot.starts >= datetime.now(UTC) + actions.NOTICE for slot in offered)
        assert any(slot.starts == soon for slot in services.free_slots(db, c, ready.doctor_id, day))  # the desk may
        a = db.get(Appointment, (clinic.id, appointment))
        with pytest.raises(booking.ScheduleError, match="at least an hour"):
            actions.reschedule(db, clinic=c, appointment=a, patient=db.get(Patient, (clinic.id, a.patient_id)),
                               starts=soon)
        db.rollback()


def test_reconcile_never_takes_the_message_of_another_reminder_to_the_same_phone(app, sql, ready, desk, clinic,
                                                                                  fake):
    from app.messaging.sending import TryLater

    use_twilio(app, clinic.id)
    patient = register(desk)  # two appointments, so two reminders to one phone
    first = rows(sql, book(app, ready, patient, next_slot(timedelta(days=2))))[0]
    second = rows(sql, book(app, ready, patient, next_slot(timedelta(days=3))))[0]
    make_due(sql, first.id)
    make_due(sql, second.id)
    fake.next_error(status=503)
    with pytest.raises(TryLater):
        send_now(app, clinic.id, first.id)  # composed, but Twilio never got it
    assert send_now(app, clinic.id, second.id).startswith("sent (")
    # The first row is left `sending` by a dead worker; the second's SID not yet stored (its answer in flight).
    sql("UPDATE reminder SET state = 'sending', sending_at = now() - interval '2 minutes' WHERE id = :i", i=first.id)
    sql("UPDATE reminder SET state = 'sending', twilio_sid = NULL WHERE id = :i", i=second.id)
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert send_now(app, clinic.id, first.id, now=later).startswith("sent (")  # its own message, sent now
    assert len(fake.messages) == 2
    links_sent = {json.loads(m["ContentVariables"])["4"] for m in fake.messages}
    assert len(links_sent) == 2  # two different messages, one per reminder


def test_a_message_falling_due_in_quiet_hours_waits_for_their_end(app, sql, ready, desk, clinic):
    appointment = book(app, ready, register(desk), next_slot(timedelta(days=3)))
    first = rows(sql, appointment)[0]
    make_due(sql, first.id)
    # Quiet hours from five minutes ago to ten minutes ahead: whatever the hour, now is quiet.
    zone = ZoneInfo("Asia/Kolkata")
    began = (datetime.now(zone) - timedelta(minutes=5)).time().replace(second=0, microsecond=0)
    ends = (datetime.now(zone) + timedelta(minutes=10)).time().replace(second=0, microsecond=0)
    sql("UPDATE reminder_settings SET quiet_start = :s, quiet_end = :e WHERE clinic_id = :c", s=began, e=ends,
        c=clinic.id)
    assert send_now(app, clinic.id, first.id) == "waits for the end of quiet hours"
    row = rows(sql, appointment)[0]
    assert row.state == "pending" and row.due_at.astimezone(zone).time() == ends
    assert sql("SELECT count(*) FROM patient_link")[0][0] == 0  # nothing composed
