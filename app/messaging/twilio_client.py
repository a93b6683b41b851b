"""The app's only door to Twilio: the real SDK with a timeout, and its errors sorted for the caller.

Every failure becomes one of three exceptions, each with a short `reason` for the front desk that
names no patient and no number:

- `Permanent`: Twilio refused the message (invalid number, opted out, landline, any other 4xx except
  429). Do not retry. `AuthError` is the `Permanent` for rejected credentials (20003): a clinic
  setting to fix, not the patient's number.
- `Retryable`: Twilio did not take the message (429, 5xx, no connection made). Retry with backoff.
- `Ambiguous`: the request may have reached Twilio but no answer came back (read timeout, connection
  dropped mid-request). Never re-POST blindly: reconcile with `find_sent` first.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

NEVER_SENT = (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError, requests.exceptions.ProxyError)
REASONS = {
    20003: "Twilio login failed",
    21211: "Invalid number",
    21610: "Opted out (STOP)",
    21614: "Landline: cannot receive SMS",
    63016: "WhatsApp template needed",
}


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str
    created_at: datetime | None = None
    body: str | None = None


class SendError(Exception):
    """A send that did not end in a 2xx from Twilio; str() is PHI-free (Twilio's `message` may quote the number)."""

    def __init__(self, code: int | None, message: str, reason: str):
        super().__init__(f"{reason} ({code})" if code else reason)
        self.code, self.message, self.reason = code, message, reason


class Permanent(SendError):
    """Twilio refused this message; retrying will not help."""


class AuthError(Permanent):
    """Twilio rejected the account SID or auth token."""


class Retryable(SendError):
    """Twilio did not take the message; safe to send again after a backoff."""


class Ambiguous(SendError):
    """The message may or may not have been accepted; reconcile before sending again."""


def make_client(account_sid: str, auth_token: str, *, api_base: str | None = None, timeout: float = 10.0) -> Client:
    """The real SDK client with an HTTP timeout, blind to TWILIO_* env vars, optionally pointed at `api_base`."""
    if not (account_sid and auth_token):
        raise ValueError("Twilio account SID and auth token are required")  # else the SDK reads TWILIO_* env vars
    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout), environment={})
    # `environment={}` is falsy, so the SDK still reads TWILIO_EDGE/TWILIO_REGION, which rewrite the host.
    client.edge = client.region = None
    if api_base:
        client.api.base_url = api_base.rstrip("/")
    return client


def send(
    client: Client,
    *,
    to: str,
    from_: str | None,
    status_callback: str,
    body: str | None = None,
    content_sid: str | None = None,
    content_variables: str | None = None,
    messaging_service_sid: str | None = None,
    validity_seconds: int | None = None,
) -> Sent:
    """POST one message to Twilio; raise Permanent, Retryable or Ambiguous when it was not plainly accepted."""
    params = {
        "to": to,
        "from_": from_,
        "status_callback": status_callback,
        "body": body,
        "content_sid": content_sid,
        "content_variables": content_variables,
        "messaging_service_sid": messaging_service_sid,
        "validity_period": validity_seconds,
    }
    try:
        message = client.messages.create(**{k: v for k, v in params.items() if v is not None})
    except TwilioException as exc:
        raise _from_twilio(exc) from exc
    except requests.RequestException as exc:
        raise _from_transport(exc) from exc
    return Sent(message.sid, message.status, message.date_created)


def find_sent(client: Client, *, to: str, since: datetime, limit: int = 50) -> list[Sent]:
    """Messages Twilio holds for `to` created at or after `since`, newest first (to reconcile an unclear send)."""
    # The SDK writes datetimes as "...Z" without converting them; Twilio's dates have whole seconds.
    since = since.astimezone(UTC).replace(microsecond=0)
    try:
        # By number only: a message still queued at Twilio has no DateSent, so a DateSent filter would miss
        # exactly the messages a reconcile is looking for. The newest come first; `limit` bounds the page.
        found = client.messages.list(to=to, limit=limit)
    except TwilioException as exc:
        raise _from_twilio(exc) from exc
    except requests.RequestException as exc:
        raise _from_transport(exc, ambiguous=False) from exc
    found = [m for m in found if m.date_created is None or m.date_created >= since]
    found.sort(key=lambda m: m.date_created or since, reverse=True)
    return [Sent(m.sid, m.status, m.date_created, m.body) for m in found]


def signature_valid(auth_token: str, url: str, params, signature: str | None) -> bool:
    """Whether `signature` (the X-Twilio-Signature header) signs `url` and `params` with `auth_token`.

    `url` must be the URL Twilio called: behind a TLS-terminating proxy that is the public https URL,
    not the http one the app sees (use ProxyFix or a configured public base URL). Pass all posted
    params (a Flask `request.form` is fine); Twilio adds new ones without notice.
    """
    if not signature:
        return False  # RequestValidator.compare raises TypeError on None
    return RequestValidator(auth_token).validate(url, params, signature)


def _from_twilio(exc: TwilioException) -> SendError:
    """Sort an SDK error (a non-2xx answer) by HTTP status and Twilio error code."""
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    message = str(getattr(exc, "msg", None) or getattr(exc, "detail", None) or exc)
    if status == 401 or code == 20003:
        return AuthError(code, message, REASONS[20003])
    if status == 429 or code == 20429:
        return Retryable(code, message, "Twilio busy")
    if status is not None and 400 <= status < 500:
        return Permanent(code, message, REASONS.get(code, "Twilio refused the message"))
    return Retryable(code, message, "Twilio error")


def _from_transport(exc: requests.RequestException, *, ambiguous: bool = True) -> SendError:
    """Sort a transport error: no connection made means retryable; anything later means maybe sent."""
    cause = getattr(exc.args[0], "reason", None) if exc.args else None
    never_sent = isinstance(exc, NEVER_SENT)
    if never_sent or isinstance(cause, NewConnectionError) or not ambiguous:
        return Retryable(None, type(exc).__name__, "Twilio unreachable")
    return Ambiguous(None, type(exc).__name__, "No answer from Twilio")
