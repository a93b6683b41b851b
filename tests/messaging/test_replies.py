"""Patients' WhatsApp replies, over HTTP: 1 confirms, 2 cancels, 3 sends a new link, STOP and START change
consent (and so what is sent later), each about the appointment of the newest message that reached the
number, each done once however often Twilio delivers the same MessageSid, and anything else recorded and
left alone.
"""

import html
import re
import uuid

import pytest

from app.db import get_session
from app.messaging import sending
from app.messaging.models import Kind, State
from tests.messaging import test_webhooks as hooks
from tests.messaging.test_webhooks import OTHER_PHONE, PHONE, WHATSAPP_FROM, fake_signature, inbound_url, rows, send_now
from tests.scheduling import conftest as scheduling
from tests.scheduling.conftest import at_once

# Fixtures shared with test_webhooks.py and the scheduling tests (bound here so pytest finds them).
_no_proxy, fake, twilio_clinic, patient, booked = hooks._no_proxy, hooks.fake, hooks.twilio_clinic, hooks.patient, \
    hooks.booked
doctor, setup = scheduling.doctor, scheduling.setup


@pytest.fixture
def reply(fake, twilio_clinic):
    """The patient (or `sender`) replies on WhatsApp; returns the app's HTTP status."""
    def send(body: str, sender: str = PHONE, **buttons) -> int:
        return fake.inbound(sender, WHATSAPP_FROM, body, inbound_url(twilio_clinic.id), **buttons)
    return send


@pytest.fixture
def reminded(app, twilio_clinic, booked):
    """An appointment whose 24 h WhatsApp reminder reached the patient; returns the appointment id."""
    def make(hhmm: str = "10:00", after: int = 3) -> str:
        appointment = booked(hhmm, after)
        send_now(app, twilio_clinic.id, appointment)
        return appointment
    return make


def status_of(sql, appointment: str) -> str:
    return sql("SELECT status FROM appointment WHERE id = :a", a=appointment)[0][0]


def inbound(sql) -> list[tuple]:
    return sql("SELECT intent, outcome, patient_id::text, reminder_id IS NOT NULL FROM inbound_message "
               "ORDER BY received_at, id")


def reply_audits(sql) -> list[tuple]:
    return sql("SELECT reason, patient_id::text, object_id::text FROM audit_event WHERE action = 'reminder.reply' "
               "AND outcome = 'allowed' ORDER BY seq")


def consents(sql, patient_id: str, purpose: str) -> list[tuple]:
    return sql("SELECT granted, method, recorded_by FROM consent_event WHERE patient_id = :p AND purpose = :u "
               "ORDER BY at, id", p=patient_id, u=purpose)


def test_1_confirms_the_appointment_once_however_often_twilio_delivers_it(reply, reminded, fake, patient, sql):
    appointment = reminded()
    assert reply("1") == 200
    assert status_of(sql, appointment) == "confirmed"
    assert inbound(sql) == [("confirm", "confirmed", patient, True)]
    assert reply_audits(sql) == [("confirm: confirmed", patient, appointment)]
    timeline = sql("SELECT action FROM timeline_event WHERE patient_id = :p AND kind = 'message'", p=patient)
    assert timeline == [("sent",), ("reply",)]  # the reminder going out, then the reply
    history = sql("SELECT count(*) FROM appointment_event WHERE appointment_id = :a", a=appointment)

    assert fake.replay() == 200  # Twilio retries the same MessageSid
    assert fake.replay() == 200
    assert inbound(sql) == [("confirm", "confirmed", patient, True)]
    assert len(reply_audits(sql)) == 1
    assert sql("SELECT count(*) FROM appointment_event WHERE appointment_id = :a", a=appointment) == history

    assert reply("1") == 200  # a new message saying the same: recorded, nothing to do
    assert inbound(sql)[-1] == ("confirm", "already confirmed", patient, True)


def test_the_same_message_delivered_twice_at_once_is_acted_on_once(app, reply, reminded, fake, twilio_clinic,
                                                                  patient, sql):
    appointment = reminded()
    sid = "SM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": fake.account_sid, "From": f"whatsapp:{PHONE}",
              "To": f"whatsapp:{WHATSAPP_FROM}", "Body": "2", "NumMedia": "0"}
    url = inbound_url(twilio_clinic.id)
    headers = {"X-Twilio-Signature": fake_signature(fake, url, params)}
    clients = [app.test_client(), app.test_client()]
    statuses = at_once([lambda c=c: c.post(url, data=params, headers=headers).status_code for c in clients])
    assert statuses == [200, 200]
    assert status_of(sql, appointment) == "cancelled"
    assert inbound(sql) == [("cancel", "cancelled", patient, True)]
    assert len(reply_audits(sql)) == 1


def test_2_cancels_and_its_reminders_stop(app, reply, reminded, twilio_clinic, patient, sql):
    appointment = reminded()
    assert reply("2") == 200
    assert status_of(sql, appointment) == "cancelled"
    reason = sql("SELECT count(*) FROM appointment_event WHERE appointment_id = :a AND action = 'cancel'",
                 a=appointment)
    assert reason == [(1,)]
    pending = [r for r in rows(app, twilio_clinic.id, appointment) if r.kind == "2h"]
    assert [r.state for r in pending] == [State.SKIPPED]
    assert reply_audits(sql) == [("cancel: cancelled", patient, appointment)]

    assert reply("1") == 200  # too late to confirm a cancelled appointment
    assert status_of(sql, appointment) == "cancelled"
    assert inbound(sql)[-1] == ("confirm", "not open (cancelled)", patient, True)


def test_3_sends_a_new_link_by_message_once(app, reply, reminded, twilio_clinic, patient, sql):
    appointment = reminded()
    assert reply("3") == 200
    [relink] = [r for r in rows(app, twilio_clinic.id, appointment) if r.kind == Kind.RESCHEDULE_LINK]
    assert (relink.channel.value, relink.state) == ("whatsapp", State.PENDING)
    assert status_of(sql, appointment) == "booked"  # a new time is chosen on the patient's page
    assert inbound(sql) == [("reschedule", "link sent", patient, True)]

    assert reply("3") == 200
    assert inbound(sql)[-1] == ("reschedule", "link already sent", patient, True)
    assert len([r for r in rows(app, twilio_clinic.id, appointment) if r.kind == Kind.RESCHEDULE_LINK]) == 1


def test_a_reply_is_about_the_appointment_messaged_last(app, reply, reminded, booked, twilio_clinic, sql):
    first = reminded("10:00", after=3)
    second = reminded("11:00", after=4)  # its reminder went out after the first one's
    assert reply("1") == 200
    assert (status_of(sql, first), status_of(sql, second)) == ("booked", "confirmed")

    send_now(app, twilio_clinic.id, first, kind="2h")  # now the first appointment's message is the newest
    assert reply("2") == 200
    assert (status_of(sql, first), status_of(sql, second)) == ("cancelled", "confirmed")


def test_buttons_are_read_by_their_payload_not_their_title(reply, reminded, patient, sql):
    appointment = reminded()
    # "Yes" typed or shown on a button is Twilio's opt-in keyword; the payload says what the button means.
    assert reply("Yes", button_text="Yes", button_payload="CONFIRM") == 200
    assert status_of(sql, appointment) == "confirmed"
    assert [granted for granted, *_ in consents(sql, patient, "whatsapp")] == [True]


def test_stop_and_start_change_consent_and_what_is_sent_later(app, reply, reminded, booked, twilio_clinic, patient,
                                                              sql):
    appointment = reminded()
    assert reply("STOP") == 200
    assert consents(sql, patient, "whatsapp")[-1] == (False, "reply", None)
    assert consents(sql, patient, "sms")[-1] == (False, "reply", None)  # every channel, not only WhatsApp
    assert reply_audits(sql) == [("stop: consent withdrawn", patient, appointment)]
    assert reply("stop") == 200
    assert inbound(sql)[-1] == ("stop", "already withdrawn", patient, True)
    assert len(consents(sql, patient, "whatsapp")) == 2  # given at registration, withdrawn once
    assert len(consents(sql, patient, "sms")) == 2

    # Later sends: the 2 h WhatsApp reminder is not sent and SMS does not take over; no new link either.
    with app.app_context():
        two_hours = next(r for r in rows(app, twilio_clinic.id, appointment) if r.kind == "2h")
        assert sending.send(get_session(), twilio_clinic.id, two_hours.id) == "skipped: consent withdrawn"
    assert [r.channel.value for r in rows(app, twilio_clinic.id, appointment) if r.kind == "2h"] == ["whatsapp"]
    assert reply("3") == 200
    assert inbound(sql)[-1] == ("reschedule", "no channel", patient, True)

    # START gives back the channel it came by, not SMS, which the patient has not asked for again.
    assert reply("START") == 200
    assert consents(sql, patient, "whatsapp")[-1] == (True, "reply", None)
    assert consents(sql, patient, "sms")[-1][0] is False
    assert inbound(sql)[-1] == ("start", "consent given", patient, True)
    later = booked("12:00", after=5)
    assert {r.channel.value for r in rows(app, twilio_clinic.id, later)} == {"whatsapp"}


def test_an_unknown_sender_or_a_reply_not_understood_is_recorded_and_nothing_else(reply, reminded, patient, sql):
    appointment = reminded()
    assert reply("1", sender=OTHER_PHONE) == 200
    assert reply("see you then", sender=PHONE) == 200
    assert status_of(sql, appointment) == "booked"
    assert inbound(sql) == [("confirm", "unknown sender", None, False), (None, "not understood", patient, True)]
    assert reply_audits(sql) == []
    assert sql("SELECT action FROM timeline_event WHERE kind = 'message'") == [("sent",)]  # the reminder only


def test_a_reply_stores_no_words_and_no_number(reply, reminded, sql):
    reminded()
    assert reply("1") == 200
    [(from_index, intent)] = sql("SELECT from_index, intent FROM inbound_message")
    assert intent == "confirm" and PHONE[3:] not in from_index and len(from_index) == 24
    assert from_index == sql("SELECT to_index FROM reminder WHERE state = 'sent'")[0][0]


def test_replies_about_a_past_appointment_change_nothing(app, reply, reminded, patient, sql):
    appointment = reminded()
    sql("UPDATE appointment SET starts_at = now() - interval '1 hour', ends_at = now() - interval '45 minutes', "
        "day = current_date WHERE id = :a", a=appointment)
    assert reply("2") == 200
    assert status_of(sql, appointment) == "booked"
    assert inbound(sql) == [("cancel", "appointment past", patient, True)]


def test_stop_from_a_shared_phone_stops_everyone_reminded_at_it(app, reply, reminded, booked, register, twilio_clinic,
                                                                patient, sql):
    from tests.conftest import patient_id

    reminded()
    spouse = patient_id(register(phone=PHONE.removeprefix("+91"), full_name="Ramesh Kumar Sharma", sex="M",
                                 dob="1976-02-11", language="en", consent_whatsapp="y", consent_sms="y",
                                 confirm_new="y"))
    send_now(app, twilio_clinic.id, booked("11:00", after=4, who=spouse))  # the newest message to the phone
    assert reply("STOP") == 200
    assert consents(sql, spouse, "whatsapp")[-1] == (False, "reply", None)
    assert consents(sql, patient, "whatsapp")[-1] == (False, "reply", None)  # the family's other patient too
    assert consents(sql, patient, "sms")[-1][0] is False and consents(sql, spouse, "sms")[-1][0] is False


def test_a_hindi_stop_on_whatsapp_stops_every_channel_and_the_desk_sees_it(app, fake, reply, reminded, booked,
                                                                          twilio_clinic, patient, desk, sql):
    # Another visit's WhatsApp reminder failed (not on WhatsApp): its SMS copy is queued.
    fake.fail(to=PHONE, code=63016, later=True)
    other = booked("10:00", after=3)
    send_now(app, twilio_clinic.id, other)
    assert fake.deliver_all() == [200]
    fake.allow(to=PHONE)
    [queued_sms] = [r for r in rows(app, twilio_clinic.id, other) if r.channel.value == "sms"]
    assert queued_sms.state is State.PENDING
    appointment = reminded("11:00", after=4)

    assert reply("बंद करो") == 200  # signed by the fake Twilio, through the real webhook
    for purpose in ("whatsapp", "sms"):  # the ledger keeps the grant, and adds the withdrawal by reply
        assert [(granted, method) for granted, method, _ in consents(sql, patient, purpose)] == [
            (True, "in_person"), (False, "reply")]
    assert inbound(sql)[-1] == ("stop", "consent withdrawn", patient, True)
    assert reply_audits(sql) == [("stop: consent withdrawn", patient, appointment)]

    # Nothing queued goes, on any channel, and nothing is sent by SMS instead.
    sent_before = len(fake.messages)
    with app.app_context():
        assert sending.send(get_session(), twilio_clinic.id, queued_sms.id) == "skipped: consent withdrawn"
        two_hours = next(r for r in rows(app, twilio_clinic.id, appointment) if r.kind == "2h")
        assert sending.send(get_session(), twilio_clinic.id, two_hours.id) == "skipped: consent withdrawn"
    assert len(fake.messages) == sent_before
    assert not [r for r in rows(app, twilio_clinic.id, appointment) if r.channel.value == "sms"]

    # The desk sees it on the patient's page: both withdrawn, by the patient's reply, with the history.
    page = desk.get(f"/patients/{patient}").get_data(as_text=True)
    for label in ("WhatsApp reminders", "SMS reminders"):
        assert re.search(label + r"</td>\s*<td><strong class=\"no\">Withdrawn</strong></td>\s*<td>[^<]+"
                         r"<span class=\"hint\">\(Reply to a message \(STOP/START\)\)", page), label
    assert "SMS reminders: withdrawn (Reply to a message (STOP/START))" in html.unescape(page)
