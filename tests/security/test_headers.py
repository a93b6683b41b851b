"""Security headers, CSRF on every unsafe method, friendly errors without stack traces."""

import pytest

from app import create_app
from app.auth.policy import PUBLIC, Role, requires


@pytest.fixture
def signed_in(browser, factory):
    clinic = factory.clinic()
    browser.sign_in(factory.person(clinic, Role.ADMIN))
    browser.get("/")
    return browser


def test_security_headers_on_pages(signed_in):
    response = signed_in.get("/")
    h = response.headers
    csp = h["Content-Security-Policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'self'" in script_src and "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "same-origin"
    assert h["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in h  # plain http in tests; see the HTTPS test


def test_signed_in_pages_are_never_cached(signed_in):
    for url in ["/", "/account", "/staff/", "/clinic/settings", "/audit/sign-ins"]:
        assert signed_in.get(url).headers["Cache-Control"] == "no-store", url


def test_pages_have_no_inline_scripts_and_load_vendored_htmx(signed_in):
    html = signed_in.get("/").get_data(as_text=True)
    assert "<script>" not in html and "onclick=" not in html and "javascript:" not in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html and "https://" not in html.split("<body")[0]
    with signed_in.client.get("/static/vendor/htmx-2.0.11.min.js") as response:
        assert response.status_code == 200


def test_body_carries_the_csrf_header_for_htmx(signed_in):
    html = signed_in.get("/").get_data(as_text=True)
    assert "hx-headers='{\"X-CSRFToken\": \"" in html


def test_unsafe_methods_need_a_csrf_token(signed_in):
    client = signed_in.client
    assert client.post("/session/extend").status_code == 400
    assert client.post("/session/extend", headers={"X-CSRFToken": "forged"}).status_code == 400
    assert client.post("/session/extend", headers={"X-CSRFToken": signed_in.token}).status_code == 303


def test_htmx_csrf_failure_is_a_short_notice_not_a_page(signed_in):
    response = signed_in.client.post("/account/password", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert response.mimetype == "text/plain" and "form has expired" in response.get_data(as_text=True)


def test_friendly_404_page(signed_in):
    response = signed_in.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True) and "<main" in response.get_data(as_text=True)


def test_unexpected_error_shows_a_friendly_page_without_a_stack_trace(app_config):
    app = create_app(app_config)
    try:
        def boom():
            raise RuntimeError("database password is hunter2")
        app.add_url_rule("/boom", "boom", requires(PUBLIC)(boom))
        response = app.test_client().get("/boom")
        html = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "Something went wrong" in html and "hunter2" not in html and "Traceback" not in html
        htmx = app.test_client().get("/boom", headers={"HX-Request": "true"})
        assert htmx.status_code == 500 and htmx.mimetype == "text/plain"
    finally:
        app.extensions["db_engine"].dispose()


def test_static_files_may_be_cached(app):
    with app.test_client().get("/static/app.css") as response:
        assert response.status_code == 200 and response.headers.get("Cache-Control") != "no-store"
