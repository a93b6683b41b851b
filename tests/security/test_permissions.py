"""Every route declares a permission; the six roles get exactly what the table grants them."""

import pytest

from app.auth.policy import PUBLIC, ROLE_PERMISSIONS, SIGN_IN_STEP, Permission, Role

PUBLIC_ROUTES = {"static", "auth.login", "auth.login_post", "auth.logout", "auth.session_status",
                 "health.healthz", "health.readyz", "clinical_rx.verify", "messaging_webhook.status",
                 "messaging_webhook.inbound", "messaging_visit.open_link", "messaging_visit.page",
                 "messaging_visit.pick", "messaging_visit.confirm", "messaging_visit.cancel",
                 "messaging_visit.reschedule", "messaging_visit.waitlist_change", "messaging_visit.take_offer"}
SIGN_IN_ROUTES = {"auth.mfa", "auth.mfa_post", "auth.recovery", "auth.recovery_post", "auth.enrol",
                  "auth.enrol_post"}


def _permission(app, endpoint):
    if endpoint == "static":
        return PUBLIC
    return getattr(app.view_functions[endpoint], "permission", None)


def test_every_route_declares_a_permission(app):
    missing = [r.endpoint for r in app.url_map.iter_rules() if _permission(app, r.endpoint) is None]
    assert missing == []


def test_public_and_sign_in_routes_are_an_explicit_short_list(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert {e for e in endpoints if _permission(app, e) == PUBLIC} == PUBLIC_ROUTES
    assert {e for e in endpoints if _permission(app, e) == SIGN_IN_STEP} == SIGN_IN_ROUTES


def test_no_route_changes_anything_on_get(app):
    """Writes are POST-only: every GET view is either public read-only or a page."""
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods:
            assert not rule.endpoint.endswith(("_post", ".logout", ".disable", ".enable", ".reset_mfa")), rule


def test_a_route_without_permission_is_refused(app_config):
    from app import create_app

    extra = create_app(app_config)
    try:
        extra.add_url_rule("/undeclared", "undeclared", lambda: "secret")
        assert extra.test_client().get("/undeclared").status_code == 403
    finally:
        extra.extensions["db_engine"].dispose()


def test_the_role_table_matches_the_product_brief():
    p = Permission
    assert p.STAFF_MANAGE in ROLE_PERMISSIONS[Role.ADMIN]
    assert not any(p.STAFF_MANAGE in ROLE_PERMISSIONS[r] for r in Role if r is not Role.ADMIN)
    assert ROLE_PERMISSIONS[Role.AUDITOR] == {p.HOME_VIEW, p.ACCOUNT_MANAGE, p.AUDIT_VIEW}
    clinical = {p.CLINICAL_READ, p.CLINICAL_WRITE}
    assert {r for r in Role if clinical & ROLE_PERMISSIONS[r]} == {Role.DOCTOR}
    assert p.CLINICAL_SUMMARY in ROLE_PERMISSIONS[Role.NURSE]
    assert {r for r in Role if p.CREDIT_NOTE_CREATE in ROLE_PERMISSIONS[r]} == {Role.ADMIN, Role.BILLING}
    assert p.PATIENT_VIEW not in ROLE_PERMISSIONS[Role.BILLING]  # name and contact only
    assert p.SCHEDULE_BOOK not in ROLE_PERMISSIONS[Role.BILLING]  # view only


# Every signed-in GET page without URL parameters, by the permission it needs.
PAGES = {
    "/": Permission.HOME_VIEW,
    "/account": Permission.ACCOUNT_MANAGE,
    "/account/password": Permission.ACCOUNT_MANAGE,
    "/auth/confirm": Permission.HOME_VIEW,
    "/staff/": Permission.STAFF_MANAGE,
    "/staff/new": Permission.STAFF_MANAGE,
    "/clinic/settings": Permission.SETTINGS_MANAGE,
    "/schedule/setup/": Permission.SETTINGS_MANAGE, "/schedule/setup/types/new": Permission.SETTINGS_MANAGE,
    "/audit/sign-ins": Permission.AUDIT_VIEW,
    "/audit/": Permission.AUDIT_VIEW,
    "/audit/export.csv": Permission.AUDIT_VIEW,
    "/patients/": Permission.PATIENT_VIEW_CONTACT,
    "/patients/new": Permission.PATIENT_EDIT,
    "/schedule/": Permission.SCHEDULE_VIEW,
    "/schedule/board": Permission.SCHEDULE_VIEW,
    "/schedule/week": Permission.SCHEDULE_VIEW,
    "/schedule/book": Permission.SCHEDULE_BOOK,
    "/queue/": Permission.SCHEDULE_VIEW,
    "/queue/poll": Permission.SCHEDULE_VIEW,
    "/queue/mine": Permission.QUEUE_OWN,
    "/queue/walk-in": Permission.SCHEDULE_BOOK,
    "/billing": Permission.INVOICE_VIEW,
    "/billing/profile": Permission.BILLING_SETUP,
    "/billing/prices": Permission.BILLING_SETUP, "/billing/prices/new": Permission.BILLING_SETUP,
    "/billing/day-close": Permission.DAY_CLOSE, "/billing/day-close.csv": Permission.DAY_CLOSE,
    "/billing/gstr1": Permission.GST_EXPORT, "/billing/gstr1.json": Permission.GST_EXPORT,
    "/billing/gstr1.zip": Permission.GST_EXPORT,
    "/reminders/settings": Permission.REMINDERS_MANAGE,
    "/reminders/outbox": Permission.REMINDERS_VIEW, "/reminders/calls": Permission.REMINDERS_VIEW,
}


def test_pages_list_covers_every_parameterless_signed_in_get_route(app):
    routes = {r.rule for r in app.url_map.iter_rules()
              if "GET" in r.methods and not r.arguments and _permission(app, r.endpoint) in set(Permission)}
    assert routes == set(PAGES)


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix(role, browser, factory, sql):
    clinic = factory.clinic()
    person = factory.person(clinic, role)
    browser.sign_in(person)
    for url, permission in PAGES.items():
        expected = 200 if permission in ROLE_PERMISSIONS[role] else 403
        assert browser.get(url).status_code == expected, (role, url)
    denied = sum(1 for p in PAGES.values() if p not in ROLE_PERMISSIONS[role])
    assert sql("SELECT count(*) FROM auth_event WHERE kind = 'access_denied' AND user_id = :u",
               u=person.id)[0][0] == denied


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
def test_non_admins_cannot_post_admin_actions(role, browser, factory):
    clinic = factory.clinic()
    person = factory.person(clinic, role)
    target = factory.person(clinic, Role.NURSE)
    browser.sign_in(person)
    browser.get("/")
    for url in ["/staff/new", f"/staff/{target.id}/disable", f"/staff/{target.id}/reset-mfa",
                f"/staff/{target.id}/role", "/clinic/settings"]:
        assert browser.post(url, {"password": person.password, "role": "admin"}).status_code == 403, url


def test_navigation_shows_only_what_the_role_may_open(browser, factory):
    clinic = factory.clinic()
    receptionist = factory.person(clinic, Role.RECEPTION)
    browser.sign_in(receptionist)
    html = browser.get("/").get_data(as_text=True)
    assert "/staff/" not in html and "/clinic/settings" not in html and "/audit/sign-ins" not in html
