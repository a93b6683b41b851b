"""The sign-in activity page (/audit/sign-ins): who may open it, whose events it lists, filter, paging."""

import html
import re

import pytest

from app.auth.models import AuthEventKind
from app.auth.policy import Role
from tests.audit.conftest import EventTable

# What the page shows for each kind of event: the app's own labels.
MFA_OK = AuthEventKind.MFA_OK.label
PASSWORD_OK = AuthEventKind.PASSWORD_OK.label
PASSWORD_FAILED = AuthEventKind.PASSWORD_FAILED.label
ACCESS_DENIED = AuthEventKind.ACCESS_DENIED.label


def rows_of(response) -> EventTable:
    return EventTable(response.get_data(as_text=True), width=6)


def people(response) -> set[str]:
    return {r[1] for r in rows_of(response).rows}


def markers(parsed: EventTable) -> list[str]:
    """The `seq-NNN` details of seeded events, in the order shown."""
    return [r[4] for r in parsed.rows if re.fullmatch(r"seq-\d{3}", r[4])]


def seed(sql, person, count, kind="password_failed", minutes_ago=1):
    """`count` events of a person, one minute apart, oldest last; detail seq-001 is the newest."""
    sql("UPDATE membership SET created_at = now() - interval '1 day' WHERE user_id = :u", u=person.id)
    sql("INSERT INTO auth_event (id, at, kind, user_id, detail) "
        "SELECT gen_random_uuid(), now() - make_interval(mins => :start + g), :kind, :u, "
        "'seq-' || lpad(g::text, 3, '0') FROM generate_series(1, :n) g",
        start=minutes_ago - 1, kind=kind, u=person.id, n=count)


# --- Who may open it -----------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR])
def test_admin_and_auditor_can_open_it(browser, factory, clinic, role):
    person = factory.person(clinic, role, name="Allowed Person")
    browser.sign_in(person)
    response = browser.get("/audit/sign-ins")
    assert response.status_code == 200
    body = html.unescape(response.get_data(as_text=True))
    assert "Sign-in activity" in body and "staff of Sunrise Clinic" in body
    assert MFA_OK in {r[2] for r in rows_of(response).rows}
    assert 'href="/audit/sign-ins"' in browser.get("/").get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.NURSE, Role.BILLING])
def test_other_roles_are_refused_and_the_refusal_is_recorded(browser, new_browser, factory, clinic, admin,
                                                            role, sql):
    person = factory.person(clinic, role, name="Curious Person")
    browser.sign_in(person)
    assert 'href="/audit/sign-ins"' not in browser.get("/").get_data(as_text=True)

    response = browser.get("/audit/sign-ins?kind=password_failed")
    assert response.status_code == 403
    assert 'id="events"' not in response.get_data(as_text=True)
    htmx = browser.client.get("/audit/sign-ins", headers={"HX-Request": "true"})
    assert htmx.status_code == 403 and "<html" not in htmx.get_data(as_text=True)

    denied = sql("SELECT user_id, detail, ip::text FROM auth_event WHERE kind = 'access_denied'")
    assert len(denied) == 2
    assert all(d[0] == person.id and d[1] == "GET audit.sign_ins" and d[2] for d in denied)

    # and the admin sees the refusal on this very page
    auditor_view = new_browser()
    auditor_view.sign_in(admin)
    shown = rows_of(auditor_view.get("/audit/sign-ins?kind=access_denied")).rows
    assert [(r[1], r[2], r[4]) for r in shown] == [("Curious Person", ACCESS_DENIED, "GET audit.sign_ins")] * 2


def test_signed_out_visitor_is_sent_to_sign_in(browser):
    response = browser.get("/audit/sign-ins")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/auth/login")


# --- Whose events ------------------------------------------------------------------------------

def test_lists_only_this_clinics_staff(as_admin, factory, clinic, other_clinic, new_browser, sql):
    ours = factory.person(clinic, Role.RECEPTION, name="Ravi Ours")
    theirs = factory.person(other_clinic, Role.RECEPTION, name="Bharat Theirs")
    for person in (ours, theirs):
        visitor = new_browser()
        visitor.sign_in_password(person, password="a wrong password here")
        visitor.sign_in(person)
    new_browser().post("/auth/login", {"email": "ghost@example.in", "password": "nobody at all"},
                       page="/auth/login")

    response = as_admin.get("/audit/sign-ins")
    assert response.status_code == 200
    shown = rows_of(response).rows
    assert people(response) == {"Asha Admin", "Ravi Ours"}
    assert "Bharat Theirs" not in response.get_data(as_text=True)
    ravi = [r[2] for r in shown if r[1] == "Ravi Ours"]
    assert ravi == [MFA_OK, PASSWORD_OK, PASSWORD_FAILED]  # newest first
    assert all(r[5] and r[5] != "—" for r in shown)  # from where

    # the other clinic's admin sees the mirror image
    their_admin = factory.person(other_clinic, Role.ADMIN, name="Other Admin")
    other = new_browser()
    other.sign_in(their_admin)
    assert people(other.get("/audit/sign-ins")) == {"Other Admin", "Bharat Theirs"}


def test_times_are_shown_in_the_clinics_time_zone(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.NURSE, name="Nina Nurse")
    sql("UPDATE membership SET created_at = '2025-12-01' WHERE user_id = :u", u=person.id)
    sql("INSERT INTO auth_event (id, at, kind, user_id) VALUES "
        "(gen_random_uuid(), '2026-01-15 04:30:00+00', 'password_failed', :u)", u=person.id)
    rows = [r for r in rows_of(as_admin.get("/audit/sign-ins")).rows if r[1] == "Nina Nurse"]
    assert rows == [["15 Jan 2026, 10:00", "Nina Nurse", PASSWORD_FAILED, "", "", "—"]]


def test_filter_by_kind(as_admin, factory, clinic, new_browser):
    person = factory.person(clinic, Role.BILLING, name="Bina Billing")
    visitor = new_browser()
    visitor.sign_in_password(person, password="a wrong password here")
    visitor.sign_in_password(person, password="another wrong one!")
    visitor.sign_in(person)

    response = as_admin.get("/audit/sign-ins?kind=password_failed")
    assert response.status_code == 200
    shown = rows_of(response).rows
    assert [(r[1], r[2]) for r in shown] == [("Bina Billing", PASSWORD_FAILED)] * 2
    assert all(r[0] for r in shown)
    assert re.search(r'<option value="password_failed"\s+selected>', response.get_data(as_text=True))

    everything = as_admin.get("/audit/sign-ins")
    assert {PASSWORD_FAILED, PASSWORD_OK, MFA_OK} <= {r[2] for r in rows_of(everything).rows}
    unknown = as_admin.get("/audit/sign-ins?kind=not_a_kind")
    assert unknown.status_code == 200 and len(rows_of(unknown).rows) == len(rows_of(everything).rows)

    nothing = as_admin.get("/audit/sign-ins?kind=user_disabled")
    assert nothing.status_code == 200 and "No events." in nothing.get_data(as_text=True)


# --- Paging ------------------------------------------------------------------------------------

def test_older_events_link_pages_through_every_event_once(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.RECEPTION, name="Many Attempts")
    seed(sql, person, 60)
    total = sql("SELECT count(*) FROM auth_event e JOIN membership m ON m.user_id = e.user_id "
                "WHERE m.clinic_id = :c", c=clinic.id)[0][0]
    assert total == 62  # the admin's own sign-in (password ok, mfa ok) is the newest

    first = as_admin.get("/audit/sign-ins")
    assert first.status_code == 200
    page_one = rows_of(first)
    assert len(page_one.rows) == 50
    assert markers(page_one) == [f"seq-{i:03d}" for i in range(1, 49)]
    assert page_one.older and "before=" in page_one.older
    assert "Vary" in first.headers and "HX-Request" in first.headers["Vary"]

    second = as_admin.get(html.unescape(page_one.older))
    assert second.status_code == 200
    assert "<html" in second.get_data(as_text=True)  # a plain link is a whole page
    assert rows_of(second).older is None
    assert markers(rows_of(second)) == [f"seq-{i:03d}" for i in range(49, 61)]
    assert len(page_one.rows) + len(rows_of(second).rows) == total


def test_older_events_as_htmx_returns_only_the_rows(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.RECEPTION, name="Many Attempts")
    seed(sql, person, 130)
    first = rows_of(as_admin.get("/audit/sign-ins"))

    fragment = as_admin.client.get(html.unescape(first.older), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "<table" not in body and "<tbody" not in body and "<h1" not in body
    assert body.lstrip().startswith("<tr")
    assert "HX-Request" in fragment.headers["Vary"]
    assert fragment.mimetype == "text/html"
    page_two = rows_of(fragment)
    assert len(page_two.rows) == 50
    assert 'id="older-row"' in body and 'hx-target="#older-row"' in body and 'hx-swap="outerHTML"' in body

    # the same URL without the header is the whole page, so the browser cache must vary on it
    whole = as_admin.get(html.unescape(first.older))
    assert "<html" in whole.get_data(as_text=True)
    assert rows_of(whole).rows == page_two.rows

    third = rows_of(as_admin.client.get(html.unescape(page_two.older), headers={"HX-Request": "true"}))
    assert third.older is None
    seen = markers(first) + markers(page_two) + markers(third)
    assert seen == [f"seq-{i:03d}" for i in range(1, 131)]


def test_older_link_keeps_the_filter(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.RECEPTION, name="Many Attempts")
    seed(sql, person, 55, kind="password_failed")
    seed(sql, person, 20, kind="password_ok", minutes_ago=200)

    first = as_admin.get("/audit/sign-ins?kind=password_failed")
    parsed = rows_of(first)
    assert len(parsed.rows) == 50 and {r[2] for r in parsed.rows} == {PASSWORD_FAILED}
    assert "kind=password_failed" in parsed.older
    second = rows_of(as_admin.get(html.unescape(parsed.older)))
    assert {r[2] for r in second.rows} == {PASSWORD_FAILED}
    assert len(parsed.rows) + len(second.rows) == 55


def test_no_older_link_with_fifty_events_or_fewer(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.RECEPTION)
    seed(sql, person, 48)  # + the admin's two sign-in events = 50
    response = as_admin.get("/audit/sign-ins")
    assert len(rows_of(response).rows) == 50
    assert rows_of(response).older is None and "Older events" not in response.get_data(as_text=True)


def test_bad_before_parameter_shows_the_newest_page(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.RECEPTION)
    seed(sql, person, 5)
    for value in ("yesterday", "2026-01-15T10:00:00"):  # unparseable, or without a time zone
        response = as_admin.get(f"/audit/sign-ins?before={value}")
        assert response.status_code == 200
        assert len(rows_of(response).rows) == 7
