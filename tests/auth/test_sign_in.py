"""Password + TOTP sign-in over HTTP: both factors, single-use codes, rate limits, recovery codes."""

import pyotp

from app.auth.policy import Role
from tests.conftest import csrf_from


def test_sign_in_needs_password_then_code(browser, factory, clinic):
    person = factory.person(clinic, Role.RECEPTION, name="Ravi Shankar")
    page = browser.get("/auth/login")
    html = page.get_data(as_text=True)
    assert 'autocomplete="username"' in html and 'autocomplete="current-password"' in html

    response = browser.sign_in_password(person)
    assert response.status_code == 303 and response.headers["Location"] == "/auth/mfa"
    mfa_page = browser.get("/auth/mfa").get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in mfa_page

    response = browser.post("/auth/mfa", {"code": person.code()})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    home = browser.get("/")
    assert home.status_code == 200
    assert "Ravi Shankar" in home.get_data(as_text=True)


def test_wrong_password_and_unknown_user_get_the_same_answer(browser, factory, clinic):
    person = factory.person(clinic)
    wrong = browser.sign_in_password(person, password="not the password at all")
    unknown = browser.post("/auth/login", {"email": "nobody@example.in", "password": "whatever it is"},
                           page="/auth/login")
    assert wrong.status_code == unknown.status_code == 422
    message = "That e-mail and password do not match an active account."
    assert message in wrong.get_data(as_text=True) and message in unknown.get_data(as_text=True)
    # the typed e-mail comes back, the password does not
    assert person.email in wrong.get_data(as_text=True)
    assert "not the password at all" not in wrong.get_data(as_text=True)


def test_wrong_code_is_refused_and_user_stays_signed_out(browser, factory, clinic):
    person = factory.person(clinic)
    browser.sign_in_password(person)
    wrong = str((int(person.code()) + 1) % 1_000_000).zfill(6)
    response = browser.post("/auth/mfa", {"code": wrong}, page="/auth/mfa")
    assert response.status_code == 422
    assert "That code is not correct" in response.get_data(as_text=True)
    assert browser.get("/").status_code == 303


def test_a_code_works_only_once(browser, new_browser, factory, clinic, sql):
    person = factory.person(clinic)
    code = person.code()
    browser.sign_in_password(person)
    assert browser.post("/auth/mfa", {"code": code}, page="/auth/mfa").status_code == 303

    other = new_browser()
    other.sign_in_password(person)
    replay = other.post("/auth/mfa", {"code": code}, page="/auth/mfa")
    assert replay.status_code == 422
    assert "already used" in replay.get_data(as_text=True)
    kinds = [k for (k,) in sql("SELECT kind FROM auth_event WHERE user_id = :u ORDER BY at", u=person.id)]
    assert "mfa_replay" in kinds


def test_code_from_one_step_ago_is_accepted_for_clock_drift(browser, factory, clinic):
    person = factory.person(clinic)
    browser.sign_in_password(person)
    assert browser.post("/auth/mfa", {"code": person.code(offset=-1)}, page="/auth/mfa").status_code == 303


def test_code_from_three_steps_ago_is_refused(browser, factory, clinic):
    person = factory.person(clinic)
    browser.sign_in_password(person)
    assert browser.post("/auth/mfa", {"code": person.code(offset=-3)}, page="/auth/mfa").status_code == 422


def test_password_attempts_are_rate_limited_per_account(browser, factory, clinic, sql):
    person = factory.person(clinic)
    for _ in range(10):
        assert browser.sign_in_password(person, password="wrong password 123").status_code == 422
    locked = browser.sign_in_password(person)  # even the right password is refused now
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.get_data(as_text=True)
    assert sql("SELECT count(*) FROM auth_event WHERE kind = 'locked_out'")[0][0] == 1


def test_unknown_accounts_lock_out_the_same_way(browser):
    for _ in range(10):
        browser.post("/auth/login", {"email": "ghost@example.in", "password": "guess guess guess"}, page="/auth/login")
    response = browser.post("/auth/login", {"email": "ghost@example.in", "password": "guess guess guess"},
                            page="/auth/login")
    assert response.status_code == 429


def test_code_attempts_are_rate_limited(browser, factory, clinic):
    person = factory.person(clinic)
    browser.sign_in_password(person)
    browser.get("/auth/mfa")
    for _ in range(5):
        assert browser.post("/auth/mfa", {"code": "000000"}).status_code == 422
    response = browser.post("/auth/mfa", {"code": person.code()})
    assert response.status_code == 429
    assert browser.get("/").status_code == 303


def test_disabled_account_cannot_sign_in(browser, factory, clinic, sql):
    person = factory.person(clinic)
    sql("UPDATE staff_user SET disabled_at = now() WHERE id = :id", id=person.id)
    assert browser.sign_in_password(person).status_code == 422


def test_recovery_code_signs_in_once(browser, new_browser, factory, clinic, sql):
    person = factory.person(clinic, enrolled=False)
    # enrol through the UI to receive real recovery codes
    browser.sign_in_password(person)
    page = browser.get("/auth/enrol").get_data(as_text=True)
    secret = _secret_from(page)
    shown = browser.post("/auth/enrol", {"code": pyotp.TOTP(secret).now()})
    codes = _codes_from(shown.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = [h for (h,) in sql("SELECT code_hash FROM recovery_code WHERE user_id = :u", u=person.id)]
    assert len(stored) == 10 and not any(c in h or c.replace("-", "") in h for c in codes for h in stored)

    second = new_browser()
    second.sign_in_password(person)
    ok = second.post("/auth/recovery", {"code": codes[0].lower()}, page="/auth/recovery")
    assert ok.status_code == 303
    assert "9 codes are left" in second.get("/account").get_data(as_text=True)

    third = new_browser()
    third.sign_in_password(person)
    again = third.post("/auth/recovery", {"code": codes[0]}, page="/auth/recovery")
    assert again.status_code == 422
    kinds = {k for (k,) in sql("SELECT kind FROM auth_event WHERE user_id = :u", u=person.id)}
    assert {"recovery_code_used", "mfa_enrolled"} <= kinds


def test_every_sign_in_event_is_recorded_without_secrets(browser, factory, clinic, sql):
    person = factory.person(clinic)
    browser.sign_in_password(person, password="a wrong password here")
    browser.sign_in(person)
    browser.post("/auth/logout", page="/")
    rows = sql("SELECT kind, ip::text, detail FROM auth_event WHERE user_id = :u ORDER BY at", u=person.id)
    assert [r[0] for r in rows] == ["password_failed", "password_ok", "mfa_ok", "signed_out"]
    assert all(r[1] for r in rows)  # from where
    everything = " ".join(str(v) for row in sql("SELECT * FROM auth_event") for v in row)
    assert person.password not in everything and "a wrong password here" not in everything


def test_totp_secret_is_stored_encrypted(factory, clinic, sql):
    person = factory.person(clinic)
    (blob,) = sql("SELECT totp_secret_enc FROM staff_user WHERE id = :id", id=person.id)[0]
    assert person.secret.encode() not in bytes(blob)
    (hashed,) = sql("SELECT password_hash FROM staff_user WHERE id = :id", id=person.id)[0]
    assert hashed.startswith("$argon2id$")


def test_login_form_without_csrf_token_is_refused(browser, factory, clinic):
    person = factory.person(clinic)
    browser.get("/auth/login")
    response = browser.client.post("/auth/login", data={"email": person.email, "password": person.password})
    assert response.status_code == 400
    assert "form has expired" in response.get_data(as_text=True)


def test_next_parameter_only_allows_local_paths(browser, factory, clinic):
    person = factory.person(clinic)
    page = browser.get("/auth/login?next=https://evil.example/").get_data(as_text=True)
    assert "evil.example" not in page
    browser.post("/auth/login", {"email": person.email, "password": person.password, "next": "//evil.example"})
    response = browser.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa")
    assert response.headers["Location"] == "/"


def _secret_from(html: str) -> str:
    import re

    return re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")


def _codes_from(html: str) -> list[str]:
    import re

    return re.findall(r"<li><code>([A-Z2-7-]{19})</code></li>", html)


def test_csrf_helper_finds_tokens():
    assert csrf_from('<input name="csrf_token" value="abc">') == "abc"
