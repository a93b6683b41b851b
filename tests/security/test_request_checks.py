"""What every unsafe request passes before a view: an expired session is sent to sign in before its stale form
is refused (catalogue case 13), the form's token and the request's origin (case 16), and text PostgreSQL
cannot store (a NUL byte) refused with a 422 before any view reads it."""

import pytest

from app import create_app
from app.auth.policy import Role
from tests.auth.test_sessions import _age_session
from tests.conftest import Browser
from tests.messaging import test_webhooks as hooks
from tests.messaging.test_webhooks import WHATSAPP_FROM, fake_signature, inbound_url

_no_proxy, fake, twilio_clinic = hooks._no_proxy, hooks.fake, hooks.twilio_clinic
EVIL = "http://evil.example"
NUL_SAYS = "contains a null character (\\0), which ClinicDesk cannot store. Remove it and try again."


@pytest.fixture
def person(factory):
    return factory.person(factory.clinic(), Role.ADMIN)


@pytest.fixture
def signed_in(browser, person):
    browser.sign_in(person)
    browser.get("/account/password")  # the page whose form is then submitted
    return browser


def still_signed_in(browser) -> bool:
    return browser.get("/").status_code == 200


# --- Case 13: an expired session's POST goes to sign in --------------------------------------------

@pytest.mark.parametrize("url", ["/account/password", "/auth/logout"])  # a staff page's form; Sign out (public)
def test_an_htmx_post_after_idle_expiry_is_sent_to_sign_in(signed_in, sql, url):
    _age_session(sql, signed_in.cookie(), idle_seconds=15 * 60 + 1)
    response = signed_in.client.post(url, data={"current": "x"},
                                     headers={"HX-Request": "true", "X-CSRFToken": signed_in.token})
    assert response.status_code == 204 and response.get_data() == b""
    assert response.headers["HX-Redirect"] == "/auth/login"  # no `next`: a POST is not a page to come back to
    assert "HX-Request" in response.headers["Vary"]
    page = signed_in.get("/auth/login").get_data(as_text=True)
    assert "signed out because the session expired" in page


def test_a_plain_post_after_idle_expiry_is_redirected_to_sign_in(signed_in, sql):
    _age_session(sql, signed_in.cookie(), idle_seconds=15 * 60 + 1)
    response = signed_in.post("/account/password", {"current": "x", "new": "y" * 12, "confirm": "y" * 12})
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"


def test_a_live_session_still_needs_the_token(signed_in):
    for headers in ({"HX-Request": "true"}, {"HX-Request": "true", "X-CSRFToken": "forged"}, {}):
        response = signed_in.client.post("/auth/logout", headers=headers)
        assert response.status_code == 400, headers
        assert "form has expired" in response.get_data(as_text=True)
    assert still_signed_in(signed_in)


# --- Case 16: the origin of an unsafe request ------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": EVIL},
    {"Origin": "null"},  # a sandboxed frame, or a page that hides where it is
    {"Origin": "http://localhost.evil.example"},
    {"Origin": "https://localhost"},  # the app's host on another scheme is another origin
    {"Origin": "http://localhost:8080"},
    {"Referer": f"{EVIL}/page"},
    {"Referer": "not a url"},
    {"Origin": EVIL, "Referer": "http://localhost/account/password"},  # Origin, when present, decides
])
def test_a_cross_origin_post_with_a_valid_token_is_refused(signed_in, headers):
    response = signed_in.post("/auth/logout", headers=headers)
    assert response.status_code == 400 and "did not come from ClinicDesk" in response.get_data(as_text=True)
    assert still_signed_in(signed_in)


@pytest.mark.parametrize("headers", [
    {"Origin": "http://localhost"},
    {"Origin": "HTTP://LOCALHOST:80"},
    {"Referer": "http://localhost/account/password?x=1"},
    {},  # neither: not a browser (every browser names the origin of a POST), so no one's cookies ride along
])
def test_a_same_origin_post_is_accepted(signed_in, headers):
    response = signed_in.post("/auth/logout", headers=headers)
    assert response.status_code == 303 and "signed_out=1" in response.headers["Location"]


@pytest.fixture
def proxied(app_config):
    """The app behind one trusted reverse proxy that ends TLS, reached at clinic.example.in."""
    app = create_app({**app_config, "TRUSTED_PROXIES": 1, "HTTPS": True, "PUBLIC_URL": "https://clinic.example.in"})
    yield app
    app.extensions["db_engine"].dispose()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "clinic.example.in", "X-Forwarded-For": "198.51.100.4"}


def test_behind_a_proxy_the_origin_is_the_public_one(proxied, factory):
    person = factory.person(factory.clinic(), Role.ADMIN)
    browser = Browser(proxied.test_client())
    browser.client.environ_base.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in FORWARDED.items()})
    origin = {"Origin": "https://clinic.example.in"}
    browser.get("/auth/login")
    response = browser.post("/auth/login", {"email": person.email, "password": person.password}, headers=origin)
    assert response.status_code == 303
    refused = browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa",
                           headers={"Origin": "http://clinic.example.in"})
    assert refused.status_code == 400
    no_origin = browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa")
    assert no_origin.status_code == 400  # on HTTPS a POST must name where it came from (as Flask-WTF's check did)
    accepted = browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa",
                            headers={"Referer": "https://clinic.example.in/auth/mfa"})
    assert accepted.status_code == 303


def test_patient_pages_let_the_browser_name_their_origin(app):
    """A page sent with `Referrer-Policy: no-referrer` makes the browser send `Origin: null` with its forms;
    the patient's pages say `same-origin` (no referrer leaves the site), the link's own answer `no-referrer`."""
    client = app.test_client()
    assert client.get("/p/visit").headers["Referrer-Policy"] == "same-origin"
    assert client.get("/p/not-a-real-token").headers["Referrer-Policy"] == "no-referrer"


def test_twilio_webhooks_are_signed_not_same_origin(app, fake, twilio_clinic, sql):
    params = {"MessageSid": "SM" + "c" * 32, "AccountSid": fake.account_sid, "From": "whatsapp:+919812345699",
              "To": f"whatsapp:{WHATSAPP_FROM}", "Body": "hello", "NumMedia": "0"}
    url = inbound_url(twilio_clinic.id)
    signed = {"X-Twilio-Signature": fake_signature(fake, url, params), "Origin": EVIL}
    assert app.test_client().post(url, data=params, headers=signed).status_code == 200
    assert sql("SELECT count(*) FROM inbound_message") == [(1,)]
    assert app.test_client().post(url, data=params, headers={"Origin": EVIL}).status_code == 403


# --- NUL bytes -------------------------------------------------------------------------------------

def test_a_nul_byte_in_the_sign_in_email_is_a_422(browser, person, caplog):
    response = browser.post("/auth/login", {"email": person.email + "\x00", "password": person.password},
                            page="/auth/login")
    assert response.status_code == 422
    assert NUL_SAYS in response.get_data(as_text=True)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_a_nul_byte_anywhere_in_a_form_or_query_is_a_422(signed_in, caplog):
    search = signed_in.get("/patients/?q=Sun%00ita")
    assert search.status_code == 422 and NUL_SAYS in search.get_data(as_text=True)
    htmx = signed_in.client.post("/account/password", data={"current": "a\x00b", "new": "x", "confirm": "x"},
                                 headers={"HX-Request": "true", "X-CSRFToken": signed_in.token})
    assert htmx.status_code == 422 and htmx.mimetype == "text/plain"
    named = signed_in.client.post("/account/password", data={"cur\x00rent": "a"},
                                  headers={"X-CSRFToken": signed_in.token})
    assert named.status_code == 422
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert still_signed_in(signed_in)
