"""Regression tests for the foundation's security review: redirects, remember-me, lockout, races."""

import threading

import pytest
from flask_login.utils import encode_cookie

from app.auth.policy import Role


@pytest.mark.parametrize("target", ["/\t/evil.example/phish", "/\n/evil.example", "//evil.example",
                                    "/\\evil.example", "https://evil.example/", "/ok path"])
def test_sign_in_never_redirects_off_site(browser, factory, clinic, target):
    person = factory.person(clinic)
    browser.post("/auth/login", {"email": person.email, "password": person.password, "next": target},
                 page="/auth/login")
    response = browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa")
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_next_keeps_a_real_local_path(browser, factory, clinic):
    person = factory.person(clinic)
    browser.post("/auth/login", {"email": person.email, "password": person.password, "next": "/account"},
                 page="/auth/login")
    assert browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa").headers["Location"] == "/account"


def test_a_forged_remember_cookie_does_not_sign_anyone_in(app, factory, clinic, sql):
    admin = factory.person(clinic, Role.ADMIN)
    client = app.test_client()
    with app.test_request_context():
        forged = encode_cookie(str(admin.id))
    client.set_cookie("remember_token", forged)
    response = client.get("/staff/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/auth/login")
    assert sql("SELECT count(*) FROM user_session WHERE stage = 'full'")[0][0] == 0


def test_failures_from_elsewhere_do_not_lock_out_the_owner(browser, new_browser, factory, clinic):
    person = factory.person(clinic)
    attacker = new_browser()
    for _ in range(10):
        attacker.client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
        attacker.sign_in_password(person, password="guess guess guess")
    assert attacker.sign_in_password(person).status_code == 429  # the guesser's own address is stopped
    assert browser.sign_in_password(person).status_code == 303  # the owner, elsewhere, is not


def test_concurrent_code_guesses_cannot_exceed_the_limit(app, factory, clinic, new_browser, sql):
    person = factory.person(clinic)
    browsers = []
    for _ in range(12):
        b = new_browser()
        b.sign_in_password(person)
        b.get("/auth/mfa")
        browsers.append(b)
    results = []

    def guess(b):
        results.append(b.post("/auth/mfa", {"code": "000000"}).status_code)

    threads = [threading.Thread(target=guess, args=(b,)) for b in browsers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    evaluated = sql("SELECT count(*) FROM auth_event WHERE kind = 'mfa_failed' AND user_id = :u", u=person.id)[0][0]
    assert evaluated == 5
    assert sorted(results) == [422] * 5 + [429] * 7


def test_enrolment_secret_is_not_stored_in_clear(browser, factory, clinic, sql):
    import re

    person = factory.person(clinic, enrolled=False)
    browser.sign_in_password(person)
    page = browser.get("/auth/enrol").get_data(as_text=True)
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    stored = " ".join(str(row) for row in sql("SELECT data::text FROM user_session"))
    assert secret not in stored
