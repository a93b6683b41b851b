"""Downloads need the password typed within the last 10 minutes (catalogue case 32, ASVS 3.7.1).

Every export route (the audit trail's CSV, the day close's CSV, GSTR-1 as JSON and as ZIP) is marked
`recent_password`. A session whose password is older is sent to confirm it (HX-Redirect for htmx) and
then back to the download; wrong passwords are refused, counted against the account's limit and
recorded, as is a confirmation. The password's time lives in the server-side session; the tests age it
there, so they hold at any hour.
"""

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from app.auth.policy import PUBLIC, Role
from app.security.sessions import token_hash

EXPORTS = ["/audit/export.csv", "/billing/day-close.csv?day=2026-11-02", "/billing/gstr1.json?month=2026-11",
           "/billing/gstr1.zip?month=2026-11"]
EXPORT_ACTIONS = ("audit.export", "billing.day_close", "gst.export")
TEN_MINUTES = 600


@pytest.fixture
def owner(factory, clinic, browser):
    """The clinic admin (who may download every export), signed in."""
    person = factory.person(clinic, Role.ADMIN, name="Anita Admin")
    browser.sign_in(person)
    return person


def age_password(sql, browser, seconds: int) -> None:
    """Make the session's password `seconds` old (as if typed then)."""
    updated = sql("UPDATE user_session SET data = jsonb_set(data, '{password_at}', "
                  "to_jsonb(extract(epoch FROM now())::bigint - :s)) WHERE id = :id RETURNING id",
                  s=seconds, id=token_hash(browser.cookie()))
    assert len(updated) == 1


def downloaded(response) -> bool:
    return response.status_code == 200 and response.headers["Content-Disposition"].startswith("attachment")



def audit_actions(sql, user_id) -> list[tuple[str, str]]:
    return sql("SELECT action, outcome FROM audit_event WHERE user_id = :u ORDER BY at, id", u=user_id)


def test_every_export_route_needs_a_recent_password(app):
    exports = [rule for rule in app.url_map.iter_rules()
               if rule.rule.endswith((".csv", ".json", ".zip")) and rule.endpoint != "static"
               and getattr(app.view_functions[rule.endpoint], "permission", PUBLIC) != PUBLIC]
    assert {rule.rule for rule in exports} >= {urlsplit(url).path for url in EXPORTS}
    assert [rule.rule for rule in exports if not getattr(app.view_functions[rule.endpoint], "recent_password",
                                                         False)] == []


def test_a_fresh_sign_in_downloads_but_an_old_one_must_confirm_first(browser, owner, sql):
    for export in EXPORTS:  # just signed in: the password is minutes old
        assert downloaded(browser.get(export)), export
    age_password(sql, browser, TEN_MINUTES - 60)
    assert downloaded(browser.get(EXPORTS[0]))

    age_password(sql, browser, TEN_MINUTES + 1)
    before = audit_actions(sql, owner.id)
    for export in EXPORTS:
        response = browser.get(export)
        assert response.status_code == 303, export
        target = urlsplit(response.headers["Location"])
        assert target.path == "/auth/confirm" and parse_qs(target.query) == {"next": [export]}
        fragment = browser.client.get(export, headers={"HX-Request": "true"})
        assert fragment.status_code == 204 and fragment.headers["HX-Redirect"] == response.headers["Location"]
    assert audit_actions(sql, owner.id) == before  # nothing was downloaded


def test_confirming_the_password_returns_to_the_download(browser, owner, sql):
    age_password(sql, browser, 3 * 3600)  # signed in hours ago
    export = EXPORTS[2]
    page = browser.get(browser.get(export).headers["Location"])
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Confirm your password" in body
    assert html.unescape(re.search(r'name="next" value="([^"]*)"', body).group(1)) == export

    wrong = browser.post("/auth/confirm", {"password": "not my password at all", "next": export})
    assert wrong.status_code == 422 and "Your password is not correct." in wrong.get_data(as_text=True)
    assert browser.get(export).status_code == 303
    signed_in = sql("SELECT authenticated_at FROM user_session WHERE id = :id", id=token_hash(browser.cookie()))
    right = browser.post("/auth/confirm", {"password": owner.password, "next": export}, page="/auth/confirm")
    assert right.status_code == 303 and right.headers["Location"] == export
    # A password alone does not restart the session's absolute lifetime (that needs both factors).
    assert sql("SELECT authenticated_at FROM user_session WHERE id = :id", id=token_hash(browser.cookie())) == signed_in
    assert downloaded(browser.get(export))

    events = sql("SELECT kind, detail FROM auth_event WHERE user_id = :u AND kind LIKE 'reauth%' ORDER BY at",
                 u=owner.id)
    assert events == [("reauth_failed", "confirm for /billing/gstr1.json"),
                      ("reauth_ok", "/billing/gstr1.json")]
    trail = [a for a in audit_actions(sql, owner.id) if a[0] in ("auth.reauth", *EXPORT_ACTIONS)]
    assert trail == [("auth.reauth", "denied"), ("auth.reauth", "allowed"), ("gst.export", "allowed")]

    age_password(sql, browser, TEN_MINUTES + 1)  # ten minutes later: again
    assert browser.get(export).status_code == 303

    listed = browser.get("/audit/?action=auth.reauth").get_data(as_text=True)  # the auditor's view
    assert listed.count("Confirmed their password for a download") >= 2 and "password confirmed, for" in listed


def test_confirming_by_htmx(browser, owner, sql):
    age_password(sql, browser, TEN_MINUTES + 1)
    export = EXPORTS[0]
    browser.get(f"/auth/confirm?next={export}")
    headers = {"HX-Request": "true", "X-CSRFToken": browser.token}
    wrong = browser.client.post("/auth/confirm", data={"password": "wrong password here", "next": export},
                                headers=headers)
    fragment = wrong.get_data(as_text=True)
    assert wrong.status_code == 422 and fragment.lstrip().startswith('<form id="confirm_form"')
    assert "<html" not in fragment and "Your password is not correct." in fragment
    assert "HX-Request" in wrong.headers["Vary"]
    right = browser.client.post("/auth/confirm", data={"password": owner.password, "next": export}, headers=headers)
    assert right.status_code == 204 and right.headers["HX-Redirect"] == export
    assert downloaded(browser.get(export))


@pytest.mark.parametrize("unsafe", ["//evil.example/audit/export.csv", "https://evil.example/", "/\\evil.example",
                                    "javascript:alert(1)", "/audit/export.csv\r\nSet-Cookie: x=1"])
def test_an_unsafe_next_goes_home_instead(browser, owner, sql, unsafe):
    age_password(sql, browser, TEN_MINUTES + 1)
    page = browser.get("/auth/confirm", query_string={"next": unsafe}).get_data(as_text=True)
    assert 'name="next"' not in page
    right = browser.post("/auth/confirm", {"password": owner.password, "next": unsafe})
    assert right.status_code == 303 and right.headers["Location"] == "/"


def test_wrong_passwords_are_limited_like_sign_in(browser, owner, sql):
    age_password(sql, browser, TEN_MINUTES + 1)
    browser.get("/auth/confirm")
    for attempt in range(10):
        assert browser.post("/auth/confirm", {"password": f"guess number {attempt}"}).status_code == 422
    locked = browser.post("/auth/confirm", {"password": owner.password, "next": EXPORTS[0]})
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.get_data(as_text=True)
    assert browser.get(EXPORTS[0]).status_code == 303
    assert sql("SELECT count(*) FROM auth_event WHERE user_id = :u AND kind = 'locked_out'", u=owner.id) == [(1,)]
    assert sql("SELECT count(*) FROM audit_event WHERE user_id = :u AND action = 'auth.reauth' AND outcome = 'denied'",
               u=owner.id) == [(11,)]


def test_a_role_without_the_export_is_refused_not_asked(factory, clinic, browser, sql):
    person = factory.person(clinic, Role.RECEPTION)
    browser.sign_in(person)
    age_password(sql, browser, TEN_MINUTES + 1)
    for export in EXPORTS:
        assert browser.get(export).status_code == 403


@pytest.mark.parametrize("page, export", [("/audit/", "/audit/export.csv"),
                                          ("/billing/day-close?day=2026-11-02", "/billing/day-close.csv"),
                                          ("/billing/gstr1?month=2026-11", "/billing/gstr1.json"),
                                          ("/billing/gstr1?month=2026-11", "/billing/gstr1.zip")])
def test_download_links_are_plain_links_that_can_show_the_confirmation(browser, owner, page, export):
    """A `download` attribute would save the confirmation page as the file; htmx must not swap it in."""
    body = browser.get(page).get_data(as_text=True)
    link = re.search(rf'<a [^>]*href="{re.escape(export)}[^"]*"[^>]*>', body)
    assert link, body[:2000]
    assert " download" not in link.group(0) and 'hx-boost="false"' in link.group(0)
