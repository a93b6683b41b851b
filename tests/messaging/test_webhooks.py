"""Twilio's status callbacks, over HTTP: signed by the clinic's auth token or refused, applied forward only
(duplicates and late steps change nothing), failures kept with their code, on the timeline, and a
WhatsApp message that cannot reach the patient sent again by SMS.

Messages are real: booked over HTTP, sent by app/messaging/sending.py through the real twilio SDK to the
local fake, whose signed callbacks reach the app through a Flask test client (InProcessTwilio).
"""

import re
import uuid
from datetime import time

import pytest
from sqlalchemy import select

from app.db import get_session, set_tenant, utcnow
from app.messaging import sending, texts
from app.messaging.models import Reminder, ReminderSettings, ReminderTemplate, State, Transport
from app.security.fields import keyring
from tests.conftest import patient_id
from tests.fakes.twilio import InProcessTwilio
from tests.scheduling.conftest import appointment_id, book, doctor, setup, slot, working_day  # noqa: F401

PUBLIC = "https://clinic.example"
PHONE = "+919812345678"
OTHER_PHONE = "+919812345670"
WHATSAPP_FROM = "+14155238886"
SMS_FROM = "+14155238887"
CONTENT_SID = "HX" + "a" * 32
OFFER_SID = "HX" + "b" * 32


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """requests honours HTTP(S)_PROXY; the fake listens on 127.0.0.1."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def fake(app, monkeypatch):
    """The fake Twilio: its REST API for the SDK, its callbacks into the app; the app's public address."""
    monkeypatch.setitem(app.config, "PUBLIC_URL", PUBLIC)
    with InProcessTwilio(app.test_client()) as server:
        monkeypatch.setitem(app.config, "TWILIO_API_BASE", server.url)
        yield server


def use_twilio(app, clinic_id, account_sid: str, auth_token: str) -> None:
    """The clinic sends by Twilio (WhatsApp, then SMS), with approved WhatsApp templates in both languages."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        db.add(ReminderSettings(
            clinic_id=clinic_id, enabled=True, channels="whatsapp,sms", offsets_minutes="1440,120",
            quiet_start=time(0), quiet_end=time(0), transport=Transport.TWILIO, account_sid=account_sid,
            auth_token_enc=keyring(db, clinic_id).seal("reminder_settings", "auth_token", clinic_id, auth_token),
            whatsapp_from=f"whatsapp:{WHATSAPP_FROM}", sms_from=SMS_FROM, key_version=1, updated_at=utcnow()))
        for language in texts.LANGUAGES:
            db.add(ReminderTemplate(clinic_id=clinic_id, language=language, whatsapp_content_sid=CONTENT_SID,
                                    offer_content_sid=OFFER_SID, sms_text=texts.SMS_TEXTS[language],
                                    offer_sms_text=texts.OFFER_SMS_TEXTS[language], updated_at=utcnow()))
        db.commit()


@pytest.fixture
def twilio_clinic(app, clinic, fake):
    use_twilio(app, clinic.id, fake.account_sid, fake.auth_token)
    return clinic


@pytest.fixture
def patient(register, twilio_clinic) -> str:
    """A patient who consented to WhatsApp and SMS reminders, in English."""
    return patient_id(register(phone=PHONE.removeprefix("+91"), language="en", consent_whatsapp="y",
                               consent_sms="y"))


@pytest.fixture
def booked(desk, setup, patient):  # noqa: F811
    """Book the patient over HTTP at `hhmm` on a working day `after` days ahead; returns the appointment id."""
    def make(hhmm: str = "10:00", after: int = 3, who: str | None = None) -> str:
        response = book(desk, setup, slot(working_day(after), hhmm), who or patient)
        assert response.status_code == 303, response.get_data(as_text=True)[:1000]
        return appointment_id(response.headers["Location"])
    return make


def rows(app, clinic_id, appointment: str) -> list[Reminder]:
    """The appointment's outbox rows, oldest first (detached)."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        found = db.scalars(select(Reminder).where(Reminder.clinic_id == clinic_id,
                                                  Reminder.appointment_id == uuid.UUID(appointment))
                           .order_by(Reminder.created_at, Reminder.id)).all()
        db.expunge_all()
        return list(found)


def send_now(app, clinic_id, appointment: str, *, kind: str = "24h", channel: str = "whatsapp") -> Reminder:
    """Send the appointment's pending row of this kind and channel now, as the send job does; the row after."""
    row = next(r for r in rows(app, clinic_id, appointment)
               if r.kind == kind and r.channel.value == channel and r.state is State.PENDING)
    with app.app_context():
        outcome = sending.send(get_session(), clinic_id, row.id)
    assert outcome.startswith("sent"), outcome
    return next(r for r in rows(app, clinic_id, appointment) if r.id == row.id)


def row_of(app, clinic_id, row_id) -> Reminder:
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        row = db.get(Reminder, (clinic_id, row_id))
        db.expunge_all()
        return row


def status_url(clinic_id) -> str:
    return f"{PUBLIC}/twilio/{clinic_id}/status"


def inbound_url(clinic_id) -> str:
    return f"{PUBLIC}/twilio/{clinic_id}/inbound"


def audits(sql, clinic_id, action: str) -> list[tuple]:
    return sql("SELECT outcome, reason, patient_id::text, object_id::text FROM audit_event "
               "WHERE clinic_id = :c AND action = :a ORDER BY seq", c=clinic_id, a=action)


# --- Delivery statuses ---------------------------------------------------------------------------------

def test_a_sent_message_moves_to_delivered_then_read(app, fake, twilio_clinic, booked, sql):
    appointment = booked()
    row = send_now(app, twilio_clinic.id, appointment)
    assert row.state is State.SENT and row.twilio_sid
    assert fake.message(row.twilio_sid)["StatusCallback"] == status_url(twilio_clinic.id)

    assert fake.deliver_all() == [200, 200]
    after = row_of(app, twilio_clinic.id, row.id)
    assert after.state is State.DELIVERED and after.status_at is not None and after.error_code is None

    assert fake.send_status(row.twilio_sid, "read") == 200
    assert row_of(app, twilio_clinic.id, row.id).state is State.READ
    assert [r[1] for r in audits(sql, twilio_clinic.id, "reminder.status")] == ["delivered", "read"]
    assert {r[2] for r in audits(sql, twilio_clinic.id, "reminder.status")} == {str(after.patient_id)}


def test_duplicated_and_out_of_order_callbacks_change_nothing(app, fake, twilio_clinic, booked, sql):
    row = send_now(app, twilio_clinic.id, booked())
    assert fake.send_status(row.twilio_sid, "delivered") == 200
    delivered = row_of(app, twilio_clinic.id, row.id)

    assert fake.send_status(row.twilio_sid, "sent") == 200  # the earlier step, arriving late
    assert fake.send_status(row.twilio_sid, "delivered") == 200  # Twilio retrying
    assert fake.replay() == 200
    assert fake.send_status(row.twilio_sid, "queued") == 200  # not a state a row takes

    after = row_of(app, twilio_clinic.id, row.id)
    assert after.state is State.DELIVERED and after.status_at == delivered.status_at
    assert [r[1] for r in audits(sql, twilio_clinic.id, "reminder.status")] == ["delivered"]


def test_a_failure_keeps_twilios_code_in_plain_words_and_shows_on_the_timeline(app, fake, twilio_clinic, booked,
                                                                              sql):
    fake.fail(to=PHONE, code=30003, later=True)
    row = send_now(app, twilio_clinic.id, booked())
    assert fake.deliver_all() == [200]

    after = row_of(app, twilio_clinic.id, row.id)
    assert after.state is State.UNDELIVERED and after.error_code == 30003
    assert after.error_text == "Phone switched off or out of coverage"
    assert sql("SELECT kind, action, ref_id FROM timeline_event WHERE patient_id = :p AND kind = 'message'",
               p=after.patient_id) == [("message", "sent", row.id), ("message", "undelivered", row.id)]
    [(outcome, reason, _, object_id)] = audits(sql, twilio_clinic.id, "reminder.status")
    assert (outcome, reason, object_id) == ("allowed", "undelivered (error 30003)", str(row.id))
    # Not a WhatsApp problem: SMS would not reach a switched-off phone either, so nothing is resent.
    assert [r.channel.value for r in rows(app, twilio_clinic.id, str(after.appointment_id))].count("sms") == 0

    fake.send_status(row.twilio_sid, "delivered")  # a late, contradictory step after the final one
    assert row_of(app, twilio_clinic.id, row.id).state is State.UNDELIVERED


def test_not_on_whatsapp_sends_the_same_reminder_by_sms(app, fake, twilio_clinic, booked, sql):
    fake.fail(to=PHONE, code=63016, later=True)
    appointment = booked()
    row = send_now(app, twilio_clinic.id, appointment)
    assert fake.deliver_all() == [200]
    assert row_of(app, twilio_clinic.id, row.id).state is State.FAILED

    [sms] = [r for r in rows(app, twilio_clinic.id, appointment) if r.channel.value == "sms"]
    assert (sms.kind, sms.state, sms.appointment_version) == ("24h", State.PENDING, row.appointment_version)
    fake.allow(to=PHONE)
    sent = send_now(app, twilio_clinic.id, appointment, channel="sms")
    message = fake.message(sent.twilio_sid)
    assert message["To"] == PHONE and message["From"] == SMS_FROM and "/p/" in message["Body"]

    fake.send_status(row.twilio_sid, "failed", 63016)  # the same failure again: no second SMS
    assert len([r for r in rows(app, twilio_clinic.id, appointment) if r.channel.value == "sms"]) == 1


def test_an_unknown_message_is_answered_200_and_changes_nothing(app, fake, twilio_clinic, booked, sql):
    row = send_now(app, twilio_clinic.id, booked())
    sid = "SM" + "0" * 32
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": "delivered", "SmsStatus": "delivered",
              "AccountSid": fake.account_sid, "To": f"whatsapp:{PHONE}", "ApiVersion": "2010-04-01"}
    assert fake.post_signed(status_url(twilio_clinic.id), params) == 200
    assert row_of(app, twilio_clinic.id, row.id).state is State.SENT
    assert audits(sql, twilio_clinic.id, "reminder.status") == []


# --- Who may call -------------------------------------------------------------------------------------

def test_a_forged_or_missing_signature_is_refused_and_audited_without_phi(app, fake, twilio_clinic, booked, sql):
    row = send_now(app, twilio_clinic.id, booked())
    assert fake.send_status(row.twilio_sid, "delivered", sign_with="f" * 32) == 403
    assert fake.send_status(row.twilio_sid, "delivered", signed=False) == 403
    assert fake.inbound(PHONE, WHATSAPP_FROM, "2", inbound_url(twilio_clinic.id), sign_with="f" * 32) == 403
    assert row_of(app, twilio_clinic.id, row.id).state is State.SENT
    assert sql("SELECT count(*) FROM inbound_message")[0][0] == 0

    denied = sql("SELECT action, outcome, reason, patient_id FROM audit_event WHERE clinic_id = :c "
                 "AND outcome = 'denied' ORDER BY seq", c=twilio_clinic.id)
    assert denied == [("reminder.status", "denied", "bad signature", None),
                      ("reminder.status", "denied", "no signature", None),
                      ("reminder.reply", "denied", "bad signature", None)]
    reasons = " ".join(r[0] or "" for r in sql("SELECT reason FROM audit_event"))
    assert PHONE[3:] not in reasons and row.twilio_sid not in reasons


def test_a_signature_over_other_fields_is_refused(app, fake, twilio_clinic, booked):
    row = send_now(app, twilio_clinic.id, booked())
    params = {"MessageSid": row.twilio_sid, "MessageStatus": "delivered", "AccountSid": fake.account_sid}
    signature = fake_signature(fake, status_url(twilio_clinic.id), params)
    tampered = {**params, "MessageStatus": "failed", "ErrorCode": "30003"}
    response = app.test_client().post(status_url(twilio_clinic.id), data=tampered,
                                      headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert row_of(app, twilio_clinic.id, row.id).state is State.SENT


def fake_signature(fake, url: str, params: dict) -> str:
    from twilio.request_validator import RequestValidator

    return RequestValidator(fake.auth_token).compute_signature(url, params)


def test_an_unknown_clinic_or_one_without_twilio_is_refused(app, fake, twilio_clinic, other_clinic, sql):
    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    assert fake.post_signed(status_url(uuid.uuid4()), params) == 403
    assert fake.post_signed(f"{PUBLIC}/twilio/not-a-clinic/status", params) == 404
    # A clinic on the outbox transport has no auth token: nobody can sign for it.
    assert fake.post_signed(status_url(other_clinic.id), params) == 403
    assert fake.inbound(PHONE, WHATSAPP_FROM, "1", inbound_url(other_clinic.id)) == 403
    assert audits(sql, other_clinic.id, "reminder.status") == [
        ("denied", "no Twilio credentials", None, str(other_clinic.id))]
    # Another clinic's token does not sign for this one.
    use_twilio(app, other_clinic.id, fake.account_sid, "e" * 32)
    assert fake.post_signed(status_url(other_clinic.id), params) == 403


def test_behind_a_proxy_that_ends_tls_the_public_address_is_what_was_signed(app, fake, twilio_clinic, booked,
                                                                           monkeypatch):
    row = send_now(app, twilio_clinic.id, booked())
    fake.forward_to = "http://app.internal:8000"  # Twilio calls https://clinic.example, the app sees http
    assert fake.send_status(row.twilio_sid, "sent") == 200
    assert row_of(app, twilio_clinic.id, row.id).state is State.SENT

    params = {"MessageSid": row.twilio_sid, "MessageStatus": "delivered", "AccountSid": fake.account_sid}
    assert fake.post_signed(f"https://elsewhere.example/twilio/{twilio_clinic.id}/status", params) == 403
    # Without a public address for this path, the URL the app sees (ProxyFix's work) is accepted.
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://old-name.example")
    fake.forward_to = None
    assert fake.post_signed(f"http://localhost/twilio/{twilio_clinic.id}/status", params) == 200
    assert row_of(app, twilio_clinic.id, row.id).state is State.DELIVERED


def test_webhooks_take_posts_only_and_need_no_csrf_token(app, fake, twilio_clinic):
    client = app.test_client()
    assert client.get(status_url(twilio_clinic.id)).status_code == 405
    assert client.get(inbound_url(twilio_clinic.id)).status_code == 405
    response = fake.inbound(OTHER_PHONE, WHATSAPP_FROM, "hello", inbound_url(twilio_clinic.id))
    assert response == 200  # no csrf_token field: Twilio's posts are exempt (signed instead)


def test_a_reply_is_answered_with_empty_twiml(app, fake, twilio_clinic):
    params = {"MessageSid": "SM" + "2" * 32, "From": f"whatsapp:{OTHER_PHONE}", "To": f"whatsapp:{WHATSAPP_FROM}",
              "Body": "1", "AccountSid": fake.account_sid}
    url = inbound_url(twilio_clinic.id)
    response = app.test_client().post(url, data=params, headers={"X-Twilio-Signature": fake_signature(fake, url,
                                                                                                       params)})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert re.fullmatch(r'<\?xml version="1.0" encoding="UTF-8"\?><Response/>', response.get_data(as_text=True))
    assert "Set-Cookie" not in response.headers  # no session is started for Twilio


def test_a_callback_that_outruns_twilios_answer_finds_the_row_still_sending(app, fake, twilio_clinic, booked, sql):
    """Twilio may call back before the send job has read the 201 (and stored the SID)."""
    row = send_now(app, twilio_clinic.id, booked())
    sql("UPDATE reminder SET state = 'sending', twilio_sid = NULL WHERE id = :r", r=row.id)
    assert fake.send_status(row.twilio_sid, "delivered") == 200
    after = row_of(app, twilio_clinic.id, row.id)
    assert (after.state, after.twilio_sid) == (State.DELIVERED, row.twilio_sid)

    # Two messages in flight to one number cannot be told apart: the callback is left alone.
    other = send_now(app, twilio_clinic.id, str(after.appointment_id), kind="2h")
    sql("UPDATE reminder SET state = 'sending', twilio_sid = NULL WHERE clinic_id = :c", c=twilio_clinic.id)
    assert fake.send_status(other.twilio_sid, "delivered") == 200
    assert {r.state for r in rows(app, twilio_clinic.id, str(after.appointment_id))} == {State.SENDING}
