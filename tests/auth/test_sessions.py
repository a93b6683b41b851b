"""Server-side sessions: rotation, idle and absolute limits, polling, sign-out, revocation."""

import pytest

from app import create_app
from app.auth.policy import Role
from app.security.sessions import token_hash
from tests.conftest import Browser


@pytest.fixture
def person(factory, clinic):
    return factory.person(clinic, Role.RECEPTION)


def _age_session(sql, cookie, *, idle_seconds=None, authenticated_seconds=None):
    if idle_seconds is not None:
        sql("UPDATE user_session SET last_activity_at = now() - make_interval(secs => :s) WHERE id = :id",
            s=idle_seconds, id=token_hash(cookie))
    if authenticated_seconds is not None:
        sql("UPDATE user_session SET authenticated_at = now() - make_interval(secs => :s), "
            "created_at = now() - make_interval(secs => :s) WHERE id = :id", s=authenticated_seconds,
            id=token_hash(cookie))


def test_session_id_rotates_at_password_and_after_mfa(browser, person):
    browser.get("/auth/login")
    anonymous = browser.cookie()
    browser.sign_in_password(person)
    after_password = browser.cookie()
    browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa")
    after_mfa = browser.cookie()
    assert len({anonymous, after_password, after_mfa}) == 3
    assert browser.get("/").status_code == 200


def test_planted_cookie_is_useless_after_sign_in(app, browser, new_browser, person):
    browser.get("/auth/login")
    planted = browser.cookie()
    browser.sign_in(person)
    attacker = new_browser()
    attacker.client.set_cookie("clinicdesk_session", planted)
    response = attacker.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/auth/login")


def test_cookie_attributes_and_no_remember_me(browser, person):
    browser.get("/auth/login")
    browser.sign_in_password(person)
    response = browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa")
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    assert cookies[0].startswith("clinicdesk_session=")
    assert "HttpOnly" in cookies[0] and "SameSite=Lax" in cookies[0] and "Path=/" in cookies[0]
    assert "Expires" not in cookies[0] and "Max-Age" not in cookies[0]  # browser-session cookie
    assert "remember" not in " ".join(cookies).lower()


def test_https_uses_host_prefixed_secure_cookie_and_hsts(app_config, factory, clinic):
    secure_app = create_app({**app_config, "HTTPS": True})
    try:
        client = secure_app.test_client()
        response = client.get("/auth/login", base_url="https://localhost")
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-clinicdesk=") and "Secure" in cookie and "Domain" not in cookie
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        secure_app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("idle, warning, shown", [(900, 120, 120), (60, 120, 30), (120, 120, 60), (9, 2, 2)])
def test_the_idle_warning_opens_at_most_halfway_through_the_idle_time(app_config, factory, clinic, person, idle,
                                                                      warning, shown):
    short = create_app({**app_config, "SESSION_IDLE_SECONDS": idle, "SESSION_WARNING_SECONDS": warning})
    try:
        browser = Browser(short.test_client())
        browser.sign_in(person)
        html = browser.get("/").get_data(as_text=True)
        assert f'data-session-idle="{idle}"' in html and f'data-session-warning="{shown}"' in html
    finally:
        short.extensions["db_engine"].dispose()


def test_nothing_but_the_mfa_step_between_password_and_code(browser, person, factory, clinic):
    browser.sign_in_password(person)
    for url in ["/", "/account", "/account/password", "/staff/", "/clinic/settings", "/audit/sign-ins"]:
        response = browser.get(url)
        assert response.status_code == 303, url
        assert response.headers["Location"].startswith("/auth/login")
    fragment = browser.get("/audit/sign-ins", headers={"HX-Request": "true"})
    assert fragment.status_code == 204 and fragment.headers["HX-Redirect"].startswith("/auth/login")
    assert browser.post("/session/extend", {}, page="/auth/mfa").status_code == 303
    status = browser.get("/session/status").get_json()
    assert status == {"signed_in": False, "seconds_left": 0}
    assert browser.get("/auth/mfa").status_code == 200


def test_idle_session_ends_after_fifteen_minutes(browser, person, sql):
    browser.sign_in(person)
    cookie = browser.cookie()
    _age_session(sql, cookie, idle_seconds=14 * 60 + 50)
    assert browser.get("/").status_code == 200  # 14:50 idle: still signed in, and now active again
    _age_session(sql, cookie, idle_seconds=15 * 60 + 1)
    response = browser.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/auth/login")
    login_page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "session expired" in login_page
    assert sql("SELECT count(*) FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0] == 0
    assert sql("SELECT detail FROM auth_event WHERE kind = 'session_expired' AND user_id = :u",
               u=person.id) == [("idle",)]


def test_expired_htmx_request_gets_hx_redirect_not_a_page(browser, person, sql):
    browser.sign_in(person)
    _age_session(sql, browser.cookie(), idle_seconds=16 * 60)
    response = browser.get("/account/password", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/auth/login")
    assert response.get_data() == b""


def test_absolute_lifetime_ends_an_active_session(browser, person, sql):
    browser.sign_in(person)
    _age_session(sql, browser.cookie(), authenticated_seconds=12 * 3600 + 5)
    assert browser.get("/").status_code == 303


def test_background_polling_is_not_activity(browser, person, sql):
    browser.sign_in(person)
    cookie = browser.cookie()
    _age_session(sql, cookie, idle_seconds=600)
    before = sql("SELECT last_activity_at FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0]
    status = browser.get("/session/status").get_json()
    assert status["signed_in"] and 290 <= status["seconds_left"] <= 300
    assert browser.get("/healthz").status_code == 200
    after = sql("SELECT last_activity_at FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0]
    assert after == before
    browser.get("/")
    touched = sql("SELECT last_activity_at FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0]
    assert touched > before


def test_stay_signed_in_counts_as_activity(browser, person, sql):
    browser.sign_in(person)
    browser.get("/")
    cookie = browser.cookie()
    _age_session(sql, cookie, idle_seconds=800)
    response = browser.client.post("/session/extend", headers={"X-CSRFToken": browser.token,
                                                                "Accept": "application/json"})
    assert response.status_code == 200 and response.get_json()["seconds_left"] == 900
    assert browser.get("/session/status").get_json()["seconds_left"] >= 895


def test_sign_out_kills_the_server_session(browser, new_browser, person, sql):
    browser.sign_in(person)
    cookie = browser.cookie()
    response = browser.post("/auth/logout", page="/")
    assert response.status_code == 303 and "signed_out=1" in response.headers["Location"]
    assert sql("SELECT count(*) FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0] == 0
    replay = new_browser()
    replay.client.set_cookie("clinicdesk_session", cookie)
    assert replay.get("/").status_code == 303


def test_logout_by_htmx_redirects_the_whole_page(browser, person):
    browser.sign_in(person)
    browser.get("/")
    response = browser.client.post("/auth/logout", headers={"HX-Request": "true", "X-CSRFToken": browser.token})
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/auth/login")


def test_password_change_ends_other_sessions_only(browser, new_browser, person):
    browser.sign_in(person)
    other = new_browser()
    other.sign_in_password(person)
    other.post("/auth/mfa", {"code": person.code(offset=1)}, page="/auth/mfa")
    assert other.get("/").status_code == 200
    response = browser.post("/account/password", {"current": person.password, "new": "a fresh long passphrase 42",
                                                   "confirm": "a fresh long passphrase 42"}, page="/account/password")
    assert response.status_code == 303
    assert browser.get("/account").status_code == 200
    assert other.get("/").status_code == 303


def test_password_change_errors_keep_the_form(browser, person):
    browser.sign_in(person)
    bad = browser.post("/account/password", {"current": person.password, "new": "short", "confirm": "short"},
                       page="/account/password")
    assert bad.status_code == 422
    assert "at least 12 characters" in bad.get_data(as_text=True)
    wrong = browser.post("/account/password", {"current": "not my password", "new": "a fresh long passphrase 42",
                                               "confirm": "a fresh long passphrase 42"})
    assert wrong.status_code == 422 and "current password is not correct" in wrong.get_data(as_text=True)
    mismatch = browser.post("/account/password", {"current": person.password, "new": "a fresh long passphrase 42",
                                                  "confirm": "another long passphrase 42"})
    assert mismatch.status_code == 422 and "differ" in mismatch.get_data(as_text=True)


def test_password_change_by_htmx_returns_only_the_form_fragment(browser, person):
    browser.sign_in(person)
    browser.get("/account/password")
    response = browser.client.post("/account/password", data={"current": "x", "new": "short", "confirm": "short"},
                                   headers={"HX-Request": "true", "X-CSRFToken": browser.token})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert html.lstrip().startswith('<form id="password_form"') and "<html" not in html
    assert "HX-Request" in response.headers["Vary"]


def test_temporary_password_must_be_changed_first(browser, factory, clinic):
    person = factory.person(clinic, must_change_password=True)
    browser.sign_in(person)
    response = browser.get("/")
    assert response.status_code == 303 and response.headers["Location"] == "/account/password"
    assert "temporary password" in browser.get("/account/password").get_data(as_text=True)


def test_seconds_left_rounds_up_so_zero_means_expired(browser, person, sql):
    browser.sign_in(person)
    _age_session(sql, browser.cookie(), idle_seconds=899.5)
    assert browser.get("/session/status").get_json() == {"signed_in": True, "seconds_left": 1}


def test_static_files_and_unknown_urls_do_not_extend_the_session(browser, person, sql):
    browser.sign_in(person)
    cookie = browser.cookie()
    _age_session(sql, cookie, idle_seconds=600)
    before = sql("SELECT last_activity_at FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0]
    with browser.client.get("/static/app.css") as response:
        assert response.status_code == 200
    assert browser.get("/no-such-page").status_code == 404
    assert sql("SELECT last_activity_at FROM user_session WHERE id = :id", id=token_hash(cookie))[0][0] == before
