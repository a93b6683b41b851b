"""The real twilio SDK, through app.messaging.twilio_client, against the local fake over real HTTP."""

import base64
import json
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, request
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from app.messaging.twilio_client import (
    Ambiguous,
    AuthError,
    Permanent,
    Retryable,
    find_sent,
    make_client,
    send,
    signature_valid,
)
from tests.fakes.twilio import FakeTwilio

PATIENT = "+919812345678"
OTHER = "+919812345679"
SENDER = "+14155238886"
CALLBACK = "https://clinic.example/twilio/status"
CONTENT_SID = "HX" + "b" * 32
SERVICE_SID = "MG" + "c" * 32


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """requests honours HTTP(S)_PROXY; local servers must be reached directly."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def fake():
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def client(fake):
    return make_client(fake.account_sid, fake.auth_token, api_base=fake.url, timeout=2.0)


@pytest.fixture
def webhooks(fake):
    """A tiny Flask app that accepts only correctly signed Twilio posts, served over real HTTP."""
    app, received = Flask(__name__), []

    @app.post("/twilio/<kind>")
    def hook(kind):
        if not signature_valid(fake.auth_token, request.url, request.form, request.headers.get("X-Twilio-Signature")):
            return "", 403
        received.append((kind, request.form.to_dict()))
        return "", 204

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def sms(client, to=PATIENT, **kwargs):
    return send(client, to=to, from_=SENDER, status_callback=CALLBACK, body="Clinic: see you 12 Aug 10:30", **kwargs)


def test_whatsapp_template_lands_with_exact_fields_and_basic_auth(fake, client):
    variables = json.dumps({"1": "Asha", "2": "12 Aug 10:30"})
    sent = send(
        client,
        to=f"whatsapp:{PATIENT}",
        from_=f"whatsapp:{SENDER}",
        status_callback=CALLBACK,
        content_sid=CONTENT_SID,
        content_variables=variables,
        validity_seconds=3600,
    )

    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert sent.status == "queued"
    [msg] = fake.messages
    fields = {k: v for k, v in msg.items() if k[0].isupper()}
    assert fields == {
        "To": f"whatsapp:{PATIENT}",
        "From": f"whatsapp:{SENDER}",
        "StatusCallback": CALLBACK,
        "ContentSid": CONTENT_SID,
        "ContentVariables": variables,
        "ValidityPeriod": "3600",
    }
    assert msg["sid"] == sent.sid
    credentials = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
    assert msg["headers"]["Authorization"] == f"Basic {credentials}"
    assert msg["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert msg["headers"]["X-Twilio-Client"].startswith("python-")


def test_sms_send_and_fetch_back(fake, client):
    sent = sms(client)

    [msg] = fake.sent_to(PATIENT)
    assert (msg["To"], msg["From"], msg["Body"]) == (PATIENT, SENDER, "Clinic: see you 12 Aug 10:30")
    fetched = client.messages(sent.sid).fetch()
    assert (fetched.to, fetched.status, fetched.date_created.tzinfo is not None) == (PATIENT, "queued", True)


def test_messaging_service_send_is_accepted_without_from(fake, client):
    sent = send(client, to=PATIENT, from_=None, messaging_service_sid=SERVICE_SID, status_callback=CALLBACK, body="Hi")

    assert sent.status == "accepted"
    assert "From" not in fake.messages[0]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (21211, "Invalid number"),
        (21610, "Opted out (STOP)"),
        (21614, "Landline: cannot receive SMS"),
        (63016, "WhatsApp template needed"),
    ],
)
def test_refusals_are_permanent_with_a_desk_reason(fake, client, code, reason):
    fake.fail(to=PATIENT, code=code)

    with pytest.raises(Permanent) as caught:
        sms(client)

    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert PATIENT not in str(caught.value)  # safe to log
    assert fake.messages == []
    assert sms(client, to=OTHER).status == "queued"  # one bad number does not stop the run


def test_missing_content_and_bad_variables_are_permanent(client):
    with pytest.raises(Permanent) as no_body:
        send(client, to=PATIENT, from_=SENDER, status_callback=CALLBACK)
    with pytest.raises(Permanent) as bad_json:
        send(client, to=PATIENT, from_=SENDER, status_callback=CALLBACK, content_sid=CONTENT_SID, content_variables="{")

    assert (no_body.value.code, bad_json.value.code) == (21619, 21656)


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [(429, 20429, "Twilio busy"), (429, None, "Twilio busy"), (503, None, "Twilio error"), (500, None, "Twilio error")],
)
def test_busy_and_server_errors_are_retryable_once(fake, client, status, code, reason):
    fake.next_error(status=status, code=code)

    with pytest.raises(Retryable) as caught:
        sms(client)

    assert (caught.value.code, caught.value.reason) == (code or status, reason)
    assert fake.messages == []
    assert sms(client).status == "queued"
    assert len(fake.messages) == 1


def test_unreachable_twilio_is_retryable(fake):
    with FakeTwilio() as gone:
        url = gone.url
    client = make_client(fake.account_sid, fake.auth_token, api_base=url, timeout=1.0)

    with pytest.raises(Retryable) as caught:
        sms(client)

    assert caught.value.reason == "Twilio unreachable"


@pytest.mark.parametrize("script", ["delay", "drop"])
def test_no_answer_is_ambiguous_and_find_sent_reconciles(fake, script):
    client = make_client(fake.account_sid, fake.auth_token, api_base=fake.url, timeout=0.5)
    since = datetime.now(ZoneInfo("Asia/Kolkata"))  # not UTC on purpose
    fake.delay_next(3) if script == "delay" else fake.drop_next()

    with pytest.raises(Ambiguous) as caught:
        sms(client)

    assert caught.value.reason == "No answer from Twilio"
    [accepted] = fake.messages  # Twilio did take it
    assert [s.sid for s in find_sent(client, to=PATIENT, since=since)] == [accepted["sid"]]
    assert find_sent(client, to=OTHER, since=since) == []
    assert len(fake.messages) == 1  # reconciling sent nothing


def test_find_sent_is_newest_first_and_since_bounded(fake, client):
    sms(client)
    time.sleep(1.1)  # Twilio's dates have whole seconds
    since = datetime.now(UTC)
    second, third = sms(client), sms(client)
    sms(client, to=OTHER)

    found = find_sent(client, to=PATIENT, since=since)

    assert [s.sid for s in found] == [third.sid, second.sid]
    assert all(s.status == "queued" and s.created_at >= since.replace(microsecond=0) for s in found)


def test_wrong_credentials_are_an_auth_error(fake):
    client = make_client(fake.account_sid, "not-the-token", api_base=fake.url)

    with pytest.raises(AuthError) as caught:
        sms(client)

    assert isinstance(caught.value, Permanent)
    assert (caught.value.code, caught.value.reason) == (20003, "Twilio login failed")
    assert fake.messages == []
    assert fake.requests == []  # refused before the form was read


def test_make_client_ignores_twilio_environment(monkeypatch, fake):
    for name, value in {"TWILIO_EDGE": "sydney", "TWILIO_REGION": "in1", "TWILIO_ACCOUNT_SID": "ACx"}.items():
        monkeypatch.setenv(name, value)
    client = make_client(fake.account_sid, fake.auth_token, api_base=fake.url)

    assert sms(client).status == "queued"
    with pytest.raises(ValueError):
        make_client("", "", api_base=fake.url)  # the SDK would fall back to TWILIO_ACCOUNT_SID


def test_signature_valid():
    token, url = "secret-token", "https://clinic.example/twilio/status"
    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(token).compute_signature(url, params)

    assert signature_valid(token, url, params, signature)
    assert signature_valid(token, "https://clinic.example:443/twilio/status", params, signature)
    assert not signature_valid(token, url, {**params, "MessageStatus": "failed"}, signature)
    assert not signature_valid("other-token", url, params, signature)
    assert not signature_valid(token, url, params, None)
    assert not signature_valid(token, url, params, "")
    assert not signature_valid(token, url.replace("https://", "http://"), params, signature)  # TLS proxy pitfall


def test_status_callbacks_reach_the_app_signed(fake, client, webhooks):
    base, received = webhooks
    sent = send(client, to=PATIENT, from_=SENDER, status_callback=f"{base}/twilio/status", body="Hi")

    assert fake.deliver_all() == [204, 204]
    assert [(kind, form["MessageStatus"]) for kind, form in received] == [("status", "sent"), ("status", "delivered")]
    form = received[-1][1]
    assert form["MessageSid"] == form["SmsSid"] == sent.sid
    assert (form["To"], form["From"], form["AccountSid"], form["ApiVersion"]) == (
        PATIENT,
        SENDER,
        fake.account_sid,
        "2010-04-01",
    )
    assert "ErrorCode" not in form
    assert fake.message(sent.sid)["status"] == "delivered"
    assert client.messages(sent.sid).fetch().status == "delivered"


def test_forged_or_unsigned_callbacks_are_refused(fake, client, webhooks):
    base, received = webhooks
    sent = send(client, to=PATIENT, from_=SENDER, status_callback=f"{base}/twilio/status", body="Hi")

    assert fake.send_status(sent.sid, "delivered", sign_with="guessed-token") == 403
    assert fake.send_status(sent.sid, "delivered", signed=False) == 403
    assert received == []
    assert fake.message(sent.sid)["status"] == "queued"


def test_accepted_then_failed_later_posts_the_error_code(fake, client, webhooks):
    base, received = webhooks
    fake.fail(to=PATIENT, code=63016, later=True)
    send(client, to=f"whatsapp:{PATIENT}", from_=f"whatsapp:{SENDER}", status_callback=f"{base}/twilio/s", body="Hi")

    assert fake.deliver_all() == [204]
    [(_, form)] = received
    assert (form["MessageStatus"], form["ErrorCode"]) == ("failed", "63016")


def test_inbound_whatsapp_reply_and_stop(fake, client, webhooks):
    base, received = webhooks

    assert fake.inbound(PATIENT, SENDER, "1", f"{base}/twilio/inbound") == 204
    assert fake.inbound(PATIENT, SENDER, "2", f"{base}/twilio/inbound", sign_with="forged") == 403
    [(kind, form)] = received
    assert (kind, form["From"], form["To"], form["Body"], form["WaId"]) == (
        "inbound",
        f"whatsapp:{PATIENT}",
        f"whatsapp:{SENDER}",
        "1",
        PATIENT.lstrip("+"),
    )
    assert form["MessageSid"].startswith("SM") and form["ProfileName"]

    assert fake.inbound(PATIENT, SENDER, "STOP", f"{base}/twilio/inbound") == 204
    with pytest.raises(Permanent) as caught:
        sms(client)
    assert caught.value.reason == "Opted out (STOP)"
    fake.inbound(PATIENT, SENDER, "START", f"{base}/twilio/inbound")
    assert sms(client).status == "queued"
