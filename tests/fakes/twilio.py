"""A local fake of Twilio's Messages API (2010-04-01), spoken over real HTTP to the real twilio SDK.

    with FakeTwilio() as fake:
        client = make_client(fake.account_sid, fake.auth_token, api_base=fake.url)
        fake.fail(to="+919800000001", code=21211)      # every send to this number: 400/21211
        fake.next_error(status=429, code=20429)        # the next POST only
        fake.delay_next(2.0)                            # accept and record, answer after 2 s (client timeout)
        ...
        fake.deliver_all()                              # signed "sent" then "delivered" callbacks

What it checks: HTTP Basic auth (account SID + auth token, else 401/20003), `To`, one of
`From`/`MessagingServiceSid`, one of `Body`/`MediaUrl`/`ContentSid`, `ContentVariables` as JSON.
What it answers: 201 with the body Twilio's own SDK tests use (status `queued`, or `accepted` with a
Messaging Service), legacy error bodies `{"code", "message", "more_info", "status"}`, plain-text 5xx.
Lists (`To`, `From`, `DateSent`, `DateSent<`, `DateSent>` — the SDK sends `DateSent>=…` for
`date_sent_after`) match an unsent message by its creation time; real Twilio may leave a message
that is still queued (no `date_sent`) out of a DateSent filter.
STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT sent with `inbound()` opt the number out (later sends get
21610) and START/YES/UNSTOP opt it back in, as Twilio's default keyword handling does.
"""

import base64
import json
import operator
import re
import secrets
import threading
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "7a3f" * 8
API_VERSION = "2010-04-01"
ROUTE = re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json")
ERRORS = {  # code: (HTTP status, message)
    20003: (401, "Authenticate"),
    20004: (405, "Method not allowed"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21619: (400, "A text message body or media urls must be specified."),
    21656: (400, "The ContentVariables Parameter is invalid."),
    63016: (400, "Failed to send freeform message because you are outside the allowed window."),
}
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN = {"START", "YES", "UNSTOP"}
DATE_FILTERS = {"DateSent": operator.eq, "DateSent<": operator.le, "DateSent>": operator.ge}
HEADERS_KEPT = ("Authorization", "Content-Type", "Accept", "User-Agent", "X-Twilio-Client")


def bare(number: str) -> str:
    """The E.164 number without a `whatsapp:` prefix."""
    return number.removeprefix("whatsapp:")


def error_body(code: int, status: int | None = None) -> dict:
    """Twilio's legacy error body for `code`."""
    return {
        "code": code,
        "message": ERRORS.get(code, (400, "Error"))[1],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status or ERRORS.get(code, (400,))[0],
    }


class FakeTwilio:
    """The fake server and everything it has received; thread-safe."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, callback_timeout: float = 5.0):
        self.account_sid, self.auth_token, self.callback_timeout = account_sid, auth_token, callback_timeout
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._http = requests.Session()
        self._http.trust_env = False  # callbacks go to local apps; never through an HTTP(S)_PROXY
        self.clear()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "FakeTwilio":
        """Listen on 127.0.0.1 on a free port, in a daemon thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.request_queue_size = 128
        self._released.clear()
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-twilio", daemon=True).start()
        return self

    def stop(self) -> None:
        """Release delayed answers and shut the server down."""
        self._released.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to give the SDK (`client.api.base_url`)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def clear(self) -> None:
        """Forget every message, request, rule, queued error and opt-out."""
        with self._lock:
            self._messages: list[dict] = []
            self._requests: list[dict] = []
            self._callbacks: list[dict] = []
            self._rules: dict[str, tuple[int, int, bool]] = {}
            self._next: deque[tuple] = deque()
            self._opted_out: set[str] = set()

    # -- scripting -------------------------------------------------------------------------------

    def fail(self, *, to: str, code: int, status: int | None = None, later: bool = False) -> None:
        """Refuse every send to `to` with `code`; `later=True` accepts it and fails it at `deliver_all()`."""
        with self._lock:
            self._rules[bare(to)] = (status or ERRORS.get(code, (400,))[0], code, later)

    def allow(self, *, to: str) -> None:
        """Drop the failure rule and opt-out for `to`."""
        with self._lock:
            self._rules.pop(bare(to), None)
            self._opted_out.discard(bare(to))

    def next_error(self, *, status: int | None = None, code: int | None = None) -> None:
        """Answer the next POST with this error: a legacy JSON body when `code` is given, else plain text."""
        if status is None and code is None:
            raise ValueError("give a status or a code")
        with self._lock:
            self._next.append(("error", status or ERRORS.get(code, (400,))[0], code))

    def delay_next(self, seconds: float) -> None:
        """Handle the next POST as usual (recording an accepted message) but answer only after `seconds`."""
        with self._lock:
            self._next.append(("delay", seconds))

    def drop_next(self) -> None:
        """Handle the next POST as usual, then close the connection without answering."""
        with self._lock:
            self._next.append(("drop",))

    # -- reading ---------------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict]:
        """Accepted messages in arrival order: the form fields plus sid, status, error_code, dates, headers."""
        with self._lock:
            return [_copy(m) for m in self._messages]

    @property
    def requests(self) -> list[dict]:
        """Every POST to Messages.json, accepted or not: the form fields plus `http_status`."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def callbacks(self) -> list[dict]:
        """Every callback posted: url, params, signed, http_status."""
        with self._lock:
            return [dict(c) for c in self._callbacks]

    def sent_to(self, to: str) -> list[dict]:
        """Accepted messages to `to` (with or without the `whatsapp:` prefix)."""
        return [m for m in self.messages if bare(m["To"]) == bare(to)]

    def message(self, sid: str) -> dict:
        """One accepted message by SID."""
        return _copy(self._find(sid))

    # -- callbacks -------------------------------------------------------------------------------

    def send_status(
        self, sid: str, status: str, error_code: int | None = None, *, sign_with: str | None = None, signed: bool = True
    ) -> int:
        """POST a signed status callback for `sid` to its StatusCallback; returns the app's HTTP status.

        `sign_with` signs with another token (a forgery) and `signed=False` omits the header; neither
        changes the message's status here, since Twilio did not send them.
        """
        with self._lock:
            msg = self._find(sid)
            if sign_with in (None, self.auth_token) and signed:
                now = datetime.now(UTC)
                msg.update(status=status, error_code=error_code, date_updated=now)
                if status in ("sent", "delivered", "read") and not msg["date_sent"]:
                    msg["date_sent"] = now
            params = {
                "MessageSid": sid, "SmsSid": sid, "SmsStatus": status, "MessageStatus": status,
                "AccountSid": self.account_sid, "From": msg.get("From", ""), "To": msg["To"], "ApiVersion": API_VERSION,
            }  # fmt: skip
            if msg.get("MessagingServiceSid"):
                params["MessagingServiceSid"] = msg["MessagingServiceSid"]
            if error_code:
                params["ErrorCode"] = str(error_code)
            url = msg.get("StatusCallback")
        if not url:
            raise ValueError(f"{sid} was sent without a StatusCallback")
        return self.post_signed(url, params, sign_with=sign_with, signed=signed)

    def deliver_all(self) -> list[int]:
        """Walk every pending message to sent then delivered (or to its `later` failure); returns HTTP statuses."""
        with self._lock:
            pending = [(m["sid"], self._rules.get(bare(m["To"]))) for m in self._messages]
            pending = [(sid, rule) for sid, rule in pending if self._find(sid)["status"] in ("queued", "accepted")]
        codes = []
        for sid, rule in pending:
            if rule and rule[2]:
                failed = "undelivered" if 30000 <= rule[1] < 31000 else "failed"
                codes.append(self.send_status(sid, failed, rule[1]))
            else:
                codes += [self.send_status(sid, "sent"), self.send_status(sid, "delivered")]
        return codes

    def inbound(
        self,
        from_: str,
        to: str,
        body: str,
        url: str,
        *,
        profile_name: str = "Asha",
        button_text: str | None = None,
        button_payload: str | None = None,
        sign_with: str | None = None,
        signed: bool = True,
    ) -> int:
        """POST a signed inbound WhatsApp message to `url` (the app's webhook); returns the app's HTTP status."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid,
            "From": "whatsapp:" + bare(from_), "To": "whatsapp:" + bare(to), "Body": body, "NumMedia": "0",
            "NumSegments": "1", "SmsStatus": "received", "ApiVersion": API_VERSION, "ProfileName": profile_name,
            "WaId": bare(from_).lstrip("+"), "MessageType": "button" if button_text else "text",
        }  # fmt: skip
        if button_text is not None:
            params["ButtonText"] = button_text
        if button_payload is not None:
            params["ButtonPayload"] = button_payload
        keyword = body.strip().upper()
        with self._lock:
            if keyword in OPT_OUT:
                self._opted_out.add(bare(from_))
            elif keyword in OPT_IN:
                self._opted_out.discard(bare(from_))
        return self.post_signed(url, params, sign_with=sign_with, signed=signed)

    def post_signed(self, url: str, params: dict, *, sign_with: str | None = None, signed: bool = True) -> int:
        """POST `params` form-encoded to `url` with an X-Twilio-Signature (over the exact URL); returns the status."""
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if signed:
            validator = RequestValidator(sign_with or self.auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(url, params)
        status = self._http.post(url, data=params, headers=headers, timeout=self.callback_timeout).status_code
        with self._lock:
            self._callbacks.append({"url": url, "params": dict(params), "signed": signed, "http_status": status})
        return status

    # -- serving ---------------------------------------------------------------------------------

    def _handle(self, h: "_Handler", method: str) -> None:
        """Route one request."""
        parts = urlsplit(h.path)
        route = ROUTE.fullmatch(parts.path)
        if not route:
            return _answer(h, 404, error_body(20404))
        if not self._authorized(h.headers.get("Authorization", "")):
            return _answer(h, 401, error_body(20003), {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if route["account"] != self.account_sid:
            return _answer(h, 404, error_body(20404))
        if method == "GET" and route["sid"]:
            with self._lock:
                msg = next((m for m in self._messages if m["sid"] == route["sid"]), None)
                return _answer(h, 200, self._json(msg)) if msg else _answer(h, 404, error_body(20404))
        if method == "GET":
            return _answer(h, 200, self._page(parts.path, parse_qs(parts.query)))
        if route["sid"]:
            return _answer(h, 405, error_body(20004, 405))
        length = int(h.headers.get("Content-Length") or 0)
        form = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(h.rfile.read(length).decode(), True).items()}
        return self._create(h, form)

    def _create(self, h: "_Handler", form: dict) -> None:
        """Apply the next scripted action, validate, record and answer one message POST."""
        with self._lock:
            action = self._next.popleft() if self._next else ("none",)
        if action[0] == "error":
            status, code = action[1], action[2]
            status, payload = status, error_body(code, status) if code else f"{status} Service Unavailable\n"
        else:
            status, payload = self._accept(form, {k: h.headers[k] for k in HEADERS_KEPT if k in h.headers})
        with self._lock:
            self._requests.append({**form, "http_status": status})
        if action[0] == "drop":
            h.close_connection = True
            return None
        if action[0] == "delay":
            self._released.wait(action[1])
        return _answer(h, status, payload)

    def _accept(self, form: dict, headers: dict) -> tuple[int, dict | str]:
        """The HTTP status and body for a message POST, recording the message when accepted."""
        code = _invalid(form)
        if code:
            return ERRORS[code][0], error_body(code)
        with self._lock:
            rule = self._rules.get(bare(form["To"]))
            if rule and not rule[2]:
                return rule[0], error_body(rule[1], rule[0])
            if bare(form["To"]) in self._opted_out:
                return 400, error_body(21610)
            now = datetime.now(UTC)
            msg = {
                **form, "sid": "SM" + secrets.token_hex(16), "error_code": None, "headers": headers,
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "date_created": now, "date_updated": now, "date_sent": None,
            }  # fmt: skip
            self._messages.append(msg)
            return 201, self._json(msg)

    def _authorized(self, header: str) -> bool:
        """Whether the Authorization header carries this account's SID and auth token."""
        scheme, _, encoded = header.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return scheme == "Basic" and (user, password) == (self.account_sid, self.auth_token)

    def _find(self, sid: str) -> dict:
        """The stored message (not a copy); callers hold the lock or accept a racy read."""
        for m in self._messages:
            if m["sid"] == sid:
                return m
        raise KeyError(sid)

    def _page(self, path: str, query: dict) -> dict:
        """One page of the message list, newest first, in Twilio's list-page shape."""
        q = {k: v[0] for k, v in query.items()}
        size, number = int(q.pop("PageSize", 50)), int(q.pop("Page", 0))
        q.pop("PageToken", None)
        with self._lock:
            found = [m for m in self._messages if _matches(m, q)]
            found.sort(key=lambda m: m["date_sent"] or m["date_created"], reverse=True)
            rows = [self._json(m) for m in found[number * size : (number + 1) * size]]
        uri = f"{path}?{urlencode({**q, 'PageSize': size, 'Page': number})}"
        more = (number + 1) * size < len(found)
        return {
            "messages": rows, "page": number, "page_size": size, "start": number * size,
            "end": number * size + max(len(rows) - 1, 0), "uri": uri,
            "first_page_uri": f"{path}?{urlencode({**q, 'PageSize': size, 'Page': 0})}",
            "next_page_uri": f"{path}?{urlencode({**q, 'PageSize': size, 'Page': number + 1})}" if more else None,
            "previous_page_uri": f"{path}?{urlencode({**q, 'PageSize': size, 'Page': number - 1})}" if number else None,
        }  # fmt: skip

    def _json(self, m: dict) -> dict:
        """A message in the 201/fetch body shape."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{m['sid']}.json"
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": _body(m),
            "date_created": _rfc2822(m["date_created"]), "date_sent": _rfc2822(m["date_sent"]),
            "date_updated": _rfc2822(m["date_updated"]), "direction": "outbound-api",
            "error_code": m["error_code"], "error_message": None, "from": m.get("From"),
            "messaging_service_sid": m.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": "0" if m.get("MessagingServiceSid") else "1", "price": None, "price_unit": "USD",
            "sid": m["sid"], "status": m["status"], "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": m["To"], "uri": uri,
        }  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeTwilio

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def log_message(self, *args) -> None:
        pass


def _answer(h: BaseHTTPRequestHandler, status: int, payload: dict | str, headers: dict | None = None) -> None:
    """Write a JSON (dict) or plain-text (str) response; a client that gave up is not an error."""
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    try:
        h.send_response(status)
        h.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        h.close_connection = True


def _invalid(form: dict) -> int | None:
    """The Twilio error code for a message POST missing what Twilio requires, or None."""
    if not form.get("To"):
        return 21604
    if not (form.get("From") or form.get("MessagingServiceSid")):
        return 21603
    if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
        return 21619
    try:
        json.loads(form.get("ContentVariables", "{}"))
    except ValueError:
        return 21656
    return None


def _matches(m: dict, q: dict) -> bool:
    """Whether message `m` passes the list filters To, From, DateSent, DateSent< and DateSent>."""
    if "To" in q and m["To"] != q["To"]:
        return False
    if "From" in q and m.get("From") != q["From"]:
        return False
    sent = m["date_sent"] or m["date_created"]
    for key, keep in DATE_FILTERS.items():
        if key in q:
            bound = datetime.fromisoformat(q[key].removeprefix("=").replace("Z", "+00:00"))
            if "T" in q[key]:
                value, bound = sent, bound if bound.tzinfo else bound.replace(tzinfo=UTC)
            else:  # a GMT date: compare dates
                value, bound = sent.date(), bound.date()
            if not keep(value, bound):
                return False
    return True


def _body(m: dict) -> str:
    """The text as Twilio reports it: a template's is rendered with its variables (here: the values in order,
    enough to carry the link a reconcile looks for)."""
    if m.get("Body") or not m.get("ContentVariables"):
        return m.get("Body", "")
    return " ".join(str(v) for _, v in sorted(json.loads(m["ContentVariables"]).items()))


def _rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format: 'Thu, 30 Jul 2015 20:12:31 +0000'."""
    return format_datetime(moment) if moment else None


def _copy(m: dict) -> dict:
    """A copy safe to hand out."""
    return {**m, "headers": dict(m.get("headers", {}))}


class InProcessTwilio(FakeTwilio):
    """A FakeTwilio whose callbacks and inbound messages go to a Flask test client, in process, instead
    of over HTTP: the app under test needs no server. The request is signed over the URL given (what
    Twilio was told: the app's PUBLIC_URL) and, with `forward_to`, delivered to another base address
    the way a proxy that ends TLS forwards it ("http://app.internal:8000").

        fake = InProcessTwilio(app.test_client()).start()   # the REST API still listens, for the SDK
    """

    def __init__(self, client, *, forward_to: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.client, self.forward_to = client, forward_to

    def post_signed(self, url: str, params: dict, *, sign_with: str | None = None, signed: bool = True) -> int:
        """POST `params` to `url` through the test client, signed over `url`; returns the app's status."""
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if signed:
            headers["X-Twilio-Signature"] = RequestValidator(sign_with or self.auth_token).compute_signature(
                url, params)
        target = url
        if self.forward_to:
            parts = urlsplit(url)
            target = self.forward_to.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
        status = self.client.post(target, data=params, headers=headers).status_code
        with self._lock:
            self._callbacks.append({"url": url, "params": dict(params), "signed": signed, "http_status": status})
        return status

    def replay(self, index: int = -1) -> int:
        """POST a callback already posted once again, byte for byte (Twilio retrying the same SID)."""
        with self._lock:
            sent = dict(self._callbacks[index])
        return self.post_signed(sent["url"], sent["params"], signed=sent["signed"])
