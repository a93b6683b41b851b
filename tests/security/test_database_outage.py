"""While PostgreSQL is down for real (the test database refuses connections and the app's backends are
terminated), a write answers 503 "try again in a moment" and saves nothing: a plain form comes back filled
in as it was sent (no-store, values never logged) and, once the database is back, sending it again works;
an htmx form gets the message alone, so the form on screen keeps what was typed. A session that must
change with the answer (a sign-in's new session, a sign-out) and cannot be saved fails the same way."""

import io
import re

import pytest
from sqlalchemy import event, text
from werkzeug.datastructures import MultiDict

from tests.conftest import backend_killed_at, backend_killed_at_commit, database_down, patient_form
from tests.scheduling.conftest import HTMX

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def served(app, monkeypatch):
    """Errors raised outside a view answered as a deployment answers them (tests propagate them otherwise)."""
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    return app


def kept_form(html: str, action: str) -> MultiDict:
    """The fields of the page's form to send again (it must post back to `action`)."""
    form = re.search(r'<form method="post" action="([^"]+)" class="send-again">(.*?)</form>', html, re.S)
    assert form and form.group(1) == action, html[:3000]
    return MultiDict(HIDDEN.findall(form.group(2)))


def test_a_plain_form_sent_while_the_database_is_down_comes_back_filled_in(desk, admin_url, sql, caplog):
    desk.get("/patients/new")
    form = patient_form(full_name="Meera Krishnan", address_line="7 Temple Street, Mylapore")
    with database_down(admin_url):
        response = desk.post("/patients/new", form)
    html = response.get_data(as_text=True)
    assert response.status_code == 503, html[:2000]
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Retry-After"] == "10"
    assert "Please try again in a moment." in html and "What you entered is kept below" in html
    sent_again = kept_form(html, "/patients/new")
    assert {k: v for k, v in sent_again.items() if k != "csrf_token"} == form
    assert "Meera Krishnan" not in caplog.text and "Temple Street" not in caplog.text
    assert sql("SELECT count(*) FROM patient")[0][0] == 0

    response = desk.client.post("/patients/new", data=sent_again)  # the database is back: Send again
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert "Meera Krishnan" in desk.get(response.headers["Location"]).get_data(as_text=True)
    assert sql("SELECT count(*) FROM patient")[0][0] == 1


def test_a_connection_lost_in_the_middle_of_a_registration_saves_nothing_and_keeps_the_form(desk, app, owner_engine,
                                                                                             sql):
    desk.get("/patients/new")
    form = patient_form(full_name="Meera Krishnan")
    with backend_killed_at(app, owner_engine, "INSERT INTO patient") as killed:
        response = desk.post("/patients/new", form)
    assert killed and response.status_code == 503
    sent_again = kept_form(response.get_data(as_text=True), "/patients/new")
    assert {k: v for k, v in sent_again.items() if k != "csrf_token"} == form
    assert sql("SELECT count(*) FROM patient")[0][0] == 0
    assert desk.client.post("/patients/new", data=sent_again).status_code == 303


def test_an_htmx_form_sent_while_the_database_is_down_gets_the_message_only(desk, admin_url, sql):
    desk.get("/patients/new")
    with database_down(admin_url):
        response = desk.post("/patients/new", patient_form(full_name="Meera Krishnan"), headers=HTMX)
    assert response.status_code == 503 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == (
        "ClinicDesk's database did not answer just now, so nothing was saved. Please try again in a moment.")
    assert "HX-Request" in response.headers["Vary"] and response.headers["Retry-After"] == "10"
    assert sql("SELECT count(*) FROM patient")[0][0] == 0


def test_a_page_asked_for_while_the_database_is_down_says_try_again(desk, admin_url):
    with database_down(admin_url):
        response = desk.get("/patients/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 503 and "Please try again in a moment." in html
    assert "send-again" not in html and "Sign out" not in html
    assert desk.get("/patients/new").status_code == 200  # back, and still signed in


def test_a_sign_in_whose_new_session_cannot_be_saved_asks_again_without_the_password(served, browser, admin,
                                                                                     owner_engine):
    browser.get("/auth/login")
    before = browser.cookie()
    with backend_killed_at(served, owner_engine, "INSERT INTO user_session") as killed:
        response = browser.post("/auth/login", {"email": admin.email, "password": admin.password})
    assert killed
    html = response.get_data(as_text=True)
    assert response.status_code == 503 and browser.cookie() == before
    assert admin.password not in html
    sent_again = kept_form(html, "/auth/login")
    assert sent_again["email"] == admin.email and 'type="password" name="password"' in html
    sent_again["password"] = admin.password
    response = browser.client.post("/auth/login", data=sent_again)
    assert response.status_code == 303 and response.headers["Location"].endswith("/auth/mfa")


def test_a_sign_out_that_cannot_end_the_session_says_so(served, as_admin, owner_engine):
    as_admin.get("/")
    with backend_killed_at(served, owner_engine, "DELETE FROM user_session") as killed:
        response = as_admin.post("/auth/logout", {})
    assert killed and response.status_code == 503
    assert as_admin.get("/").status_code == 200  # still signed in, as the answer said
    response = as_admin.client.post("/auth/logout", data=kept_form(response.get_data(as_text=True), "/auth/logout"))
    assert response.status_code == 303
    response = as_admin.get("/")
    assert response.status_code == 303 and "/auth/login" in response.headers["Location"]


def test_a_refusal_that_ends_the_session_and_cannot_save_that_fails_too(served, browser, admin, owner_engine, sql):
    """An ended session must be ended for real even when the answer is a refusal (403): a session row the
    database could not delete answers 503, never a 403 that leaves the half-signed-in session behind."""
    assert browser.sign_in_password(admin).status_code == 303
    browser.get("/auth/mfa")
    sql("UPDATE staff_user SET disabled_at = now() WHERE id = :id", id=admin.id)
    with backend_killed_at(served, owner_engine, "DELETE FROM user_session") as killed:
        response = browser.post("/auth/mfa", {"code": admin.code()})
    assert killed and response.status_code == 503, response.get_data(as_text=True)[:2000]
    assert sql("SELECT count(*) FROM user_session WHERE user_id = :id", id=admin.id)[0][0] == 1


def test_a_database_that_answers_with_a_lock_timeout_is_a_fault_not_an_outage(desk, app, owner_engine, sql, caplog):
    """Only a database that cannot be reached is "try again in a moment": an error the server answers
    (here a lock timeout; deadlocks, serialization failures and a full disk alike) is logged with its
    traceback and answered 500, with no form offered to send again."""
    def short_lock_wait(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith("SET"):
            cursor.execute("SET LOCAL lock_timeout = '200ms'")

    desk.get("/patients/new")
    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", short_lock_wait)
    try:
        with owner_engine.begin() as owner:
            owner.execute(text("LOCK TABLE patient IN ACCESS EXCLUSIVE MODE"))
            response = desk.post("/patients/new", patient_form(full_name="Meera Krishnan"))
    finally:
        event.remove(engine, "before_cursor_execute", short_lock_wait)
    html = response.get_data(as_text=True)
    assert response.status_code == 500, html[:2000]
    assert "send-again" not in html and "Retry-After" not in response.headers
    logged = [r for r in caplog.records if r.exc_info and "LockNotAvailable" in repr(r.exc_info[1].__cause__)]
    assert logged, caplog.text
    assert sql("SELECT count(*) FROM patient")[0][0] == 0


@pytest.mark.parametrize("htmx", [False, True])
def test_a_connection_lost_during_the_commit_says_it_may_have_been_saved(desk, app, owner_engine, htmx):
    """The COMMIT was sent and never answered: the registration may be in the database, so the page says
    so and offers no one-click Send again (that could register the patient twice)."""
    desk.get("/patients/new")
    with backend_killed_at_commit(app, owner_engine, "INSERT INTO patient") as killed:
        response = desk.post("/patients/new", patient_form(full_name="Meera Krishnan"), headers=HTMX if htmx else {})
    html = response.get_data(as_text=True)
    assert killed and response.status_code == 503, html[:2000]
    assert "may or may not have been saved" in html and "Check first" in html
    assert "nothing was saved" not in html and "send-again" not in html and "Send again" not in html
    assert ("Meera Krishnan" in html) is not htmx  # what was typed is shown, to compare with what is there


def test_the_page_to_send_again_never_echoes_an_authentication_code(served, browser, admin, admin_url):
    assert browser.sign_in_password(admin).status_code == 303
    browser.get("/auth/mfa")
    code = admin.code()
    with database_down(admin_url):
        response = browser.post("/auth/mfa", {"code": code})
    html = response.get_data(as_text=True)
    assert response.status_code == 503 and code not in html, html[:3000]
    assert 'type="password" name="code"' in html and "send-again" in html


def test_the_page_to_send_again_says_a_chosen_file_must_be_chosen_again(desk, admin_url):
    desk.get("/patients/new")
    form = {**patient_form(full_name="Meera Krishnan"), "csrf_token": desk.token,
            "document": (io.BytesIO(b"%PDF-1.4 referral"), "referral.pdf")}
    with database_down(admin_url):
        response = desk.client.post("/patients/new", data=form, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 503 and "A file you chose is not kept: choose it again." in html
    assert "referral.pdf" not in html and "send-again" in html
