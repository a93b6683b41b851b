"""A new password is checked against breached passwords and the patterns attackers try first, offline
(catalogue case 9, ASVS 2.1.7): refused at change with 422 and the password kept as it was; the length
rules and a strong passphrase are unchanged."""

import pytest

from app.auth.policy import Role
from tests.conftest import PASSWORD

# From the breached-password corpus itself (at least 12 characters, the shortest allowed).
LISTED = ["1qaz2wsx3edc", "sonyericsson", "leavemealone", "justinbieber", "finalfantasy"]
# A listed password or a word of this app or user, wrapped in digits and symbols.
WRAPPED = ["Password@123", "password@1234", "Welcome@2024", "Admin@123456", "Qwerty@12345", "P@ssw0rd1234",
           "Iloveyou@123", "Clinicdesk@123", "Hospital#2026", "Farahkhan@123"]
# Keyboard walks, sequences and repeats.
WALKS = ["qwertyuiop12", "qwertyuiop[]", "1q2w3e4r5t6y", "zaq1xsw2cde3", "asdfghjkl;'\\", "qazwsxedcrfv",
         "abcdefghijkl", "aaaaaaaaaaaa", "123456789012"]


@pytest.fixture
def farah(factory, clinic, browser):
    person = factory.person(clinic, Role.DOCTOR, name="Farah Khan", email="dr.farah@example.in")
    browser.sign_in(person)
    return person


def change(browser, new: str):
    return browser.post("/account/password", {"current": PASSWORD, "new": new, "confirm": new},
                        page="/account/password")


def test_breached_and_patterned_passwords_are_refused_at_change(browser, farah, sql):
    before = sql("SELECT password_hash, password_changed_at FROM staff_user WHERE id = :u", u=farah.id)
    accepted = []
    for password in LISTED + WRAPPED + WALKS:
        response = change(browser, password)
        body = response.get_data(as_text=True)
        if response.status_code != 422 or "leaked in breaches" not in body:
            accepted.append((password, response.status_code))
    assert accepted == []
    assert sql("SELECT password_hash, password_changed_at FROM staff_user WHERE id = :u", u=farah.id) == before
    assert sql("SELECT count(*) FROM auth_event WHERE user_id = :u AND kind = 'password_changed'", u=farah.id) == [
        (0,)]


def test_the_refusal_says_why_and_htmx_gets_the_form_alone(browser, farah):
    response = change(browser, "qwertyuiop[]")
    assert response.status_code == 422
    assert "straight rows of keys are easy to guess" in response.get_data(as_text=True)
    browser.get("/account/password")
    fragment = browser.client.post("/account/password",
                                   data={"current": PASSWORD, "new": "Password@123", "confirm": "Password@123"},
                                   headers={"HX-Request": "true", "X-CSRFToken": browser.token})
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 422 and html.lstrip().startswith('<form id="password_form"')
    assert "leaked in breaches" in html and "<html" not in html


def test_length_rules_are_unchanged_and_a_strong_passphrase_is_accepted(browser, new_browser, farah, clinic):
    short = change(browser, "kR7#vq2Lm9!")
    assert short.status_code == 422 and "at least 12 characters" in short.get_data(as_text=True)
    long = change(browser, "monsoon mango lassi " * 7)
    assert long.status_code == 422 and "at most 128 characters" in long.get_data(as_text=True)

    passphrase = "monsoon mango lassi at noon"
    assert change(browser, passphrase).status_code == 303
    again = new_browser()
    assert again.sign_in_password(farah, password=passphrase).status_code == 303
