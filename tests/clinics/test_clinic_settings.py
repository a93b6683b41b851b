"""Clinic settings over HTTP (admin only); the GSTIN rules themselves are tests/clinics/test_gstin.py's."""

import html
import re
from html.parser import HTMLParser

import pytest

from app.auth.policy import Role
from app.clinics.states import BY_CODE, gstin_check_character

VALID_MH = "27AAPFU0939F1ZV"
VALID_KA = "29AABCR1718E1ZL"
BAD_CHECK_MH = "27AAPFU0939F1ZO"

MESSAGES = {
    "pin": "A PIN code is 6 digits, not starting with 0.",
    "length": "A GSTIN has 15 characters.",
    "format": "This is not the format of a GSTIN.",
    "check": "The GSTIN's check character is wrong: please check for a typing error.",
}


def wrong_state(gstin_state: str, clinic_state: str) -> str:
    return (f"This GSTIN is registered in state {gstin_state}, but the clinic's state is {clinic_state}: "
            "a GSTIN starts with its state's code.")


def with_check(first14: str) -> str:
    return first14 + gstin_check_character(first14)


class _Form(HTMLParser):
    """The values a user sees in the form: inputs' value, selects' selected option."""

    def __init__(self, text: str):
        super().__init__()
        self.controls: dict[str, dict] = {}
        self.values: dict[str, str | None] = {}
        self._select = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") != "hidden":
            self.controls[attrs["name"]] = attrs
            self.values[attrs["name"]] = attrs.get("value")
        elif tag == "select":
            self._select = attrs["name"]
            self.controls[self._select] = attrs
            self.values.setdefault(self._select, None)
        elif tag == "option" and self._select and "selected" in attrs:
            self.values[self._select] = attrs.get("value")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def form_values(response) -> dict:
    return _Form(response.get_data(as_text=True)).values


def errors(response) -> dict[str, str]:
    """Field id -> the error shown beside it (and the control points at it)."""
    body = response.get_data(as_text=True)
    found = {m.group(1): html.unescape(m.group(2))
             for m in re.finditer(r'<p class="error" id="([a-z_]+)-error">([^<]*)</p>', body)}
    controls = _Form(body).controls
    for field in found:
        assert controls[field].get("aria-invalid") == "true", field
        assert controls[field].get("aria-describedby") == f"{field}-error", field
    return found


def settings_of(sql, clinic):
    return sql("SELECT name, legal_name, address_line, city, pin_code, state_code, gstin, timezone "
               "FROM clinic WHERE id = :id", id=clinic.id)[0]


def typed(**changes) -> dict:
    values = {"name": "Harbour Family Clinic", "legal_name": "Harbour Health LLP",
              "address_line": "12 Marine Drive, Churchgate", "city": "Mumbai", "pin_code": "400020",
              "state_code": "27", "gstin": VALID_MH, "timezone": "Asia/Kolkata"}
    values.update(changes)
    return values


# --- Editing -------------------------------------------------------------------------------------

def test_settings_form_shows_the_current_values(as_admin):
    response = as_admin.get("/clinic/settings")
    assert response.status_code == 200
    values = form_values(response)
    assert values["name"] == "Sunrise Clinic"
    assert values["legal_name"] == "Sunrise Clinic LLP"
    assert values["pin_code"] == "560001"
    assert values["state_code"] == "29"
    assert values["timezone"] == "Asia/Kolkata"
    assert not values.get("gstin")


def test_admin_saves_settings_and_home_page_shows_them(as_admin, clinic, sql):
    response = as_admin.post("/clinic/settings", typed(timezone="Asia/Dubai"), page="/clinic/settings")
    assert response.status_code == 303 and response.headers["Location"] == "/clinic/settings"

    assert settings_of(sql, clinic) == ("Harbour Family Clinic", "Harbour Health LLP", "12 Marine Drive, Churchgate",
                                        "Mumbai", "400020", "27", VALID_MH, "Asia/Dubai")
    after = as_admin.get("/clinic/settings")
    assert "Settings saved for Harbour Family Clinic (Maharashtra)." in html.unescape(after.get_data(as_text=True))
    assert form_values(after)["gstin"] == VALID_MH and form_values(after)["timezone"] == "Asia/Dubai"

    home = html.unescape(as_admin.get("/").get_data(as_text=True))
    assert "You are working in <strong>Harbour Family Clinic</strong>, Mumbai, Maharashtra" in home
    assert "<dd>Harbour Health LLP</dd>" in home
    assert "<dd>12 Marine Drive, Churchgate, Mumbai 400020</dd>" in home
    assert "<dd>Maharashtra (GST state code 27)</dd>" in home
    assert f"<dd>{VALID_MH}</dd>" in home
    assert "<dd>Asia/Dubai</dd>" in home


def test_gstin_is_normalised_and_can_be_removed(as_admin, clinic, sql):
    response = as_admin.post("/clinic/settings", typed(state_code="29", gstin=f"  {VALID_KA.lower()} ",
                                                       name="  Spaced Name  "), page="/clinic/settings")
    assert response.status_code == 303
    saved = settings_of(sql, clinic)
    assert saved.gstin == VALID_KA and saved.name == "Spaced Name"

    assert as_admin.post("/clinic/settings", typed(state_code="29", gstin=""),
                         page="/clinic/settings").status_code == 303
    assert settings_of(sql, clinic).gstin is None
    assert "<dd>Not registered</dd>" in as_admin.get("/").get_data(as_text=True)


def test_htmx_save_answers_with_hx_redirect(as_admin, clinic, sql):
    as_admin.get("/clinic/settings")
    response = as_admin.client.post("/clinic/settings", data={**typed(), "csrf_token": as_admin.token},
                                    headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/clinic/settings"
    assert "HX-Request" in response.headers["Vary"]
    assert settings_of(sql, clinic).name == "Harbour Family Clinic"


@pytest.mark.parametrize("code, first14", [("38", "38AAPFU0939F1Z"), ("97", "97AAPFU0939F1Z")])
def test_ladakh_and_other_territory_gstins_are_accepted(as_admin, clinic, sql, code, first14):
    gstin = with_check(first14)
    response = as_admin.post("/clinic/settings", typed(state_code=code, gstin=gstin), page="/clinic/settings")
    assert response.status_code == 303, errors(response)
    saved = settings_of(sql, clinic)
    assert (saved.state_code, saved.gstin) == (code, gstin)
    home = html.unescape(as_admin.get("/").get_data(as_text=True))
    assert f"{BY_CODE[code].name} (GST state code {code})" in home


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.NURSE, Role.BILLING, Role.AUDITOR])
def test_other_roles_cannot_change_settings(browser, factory, clinic, role, sql):
    person = factory.person(clinic, role)
    browser.sign_in(person)
    assert browser.get("/clinic/settings").status_code == 403
    home = browser.get("/")
    assert 'href="/clinic/settings"' not in home.get_data(as_text=True)
    assert browser.post("/clinic/settings", typed(), page="/").status_code == 403
    assert settings_of(sql, clinic).name == "Sunrise Clinic"
    denied = sql("SELECT detail FROM auth_event WHERE kind = 'access_denied' AND user_id = :u", u=person.id)
    assert ("GET clinics.settings",) in denied and ("POST clinics.settings_post",) in denied


def test_admin_of_one_clinic_changes_only_that_clinic(as_admin, factory, sql):
    other = factory.clinic("Other Clinic", state_code="27")
    as_admin.post("/clinic/settings", typed(), page="/clinic/settings")
    assert settings_of(sql, other).name == "Other Clinic"


# --- Validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, field, message", [
    ({"pin_code": "012345"}, "pin_code", MESSAGES["pin"]),
    ({"pin_code": "56001"}, "pin_code", MESSAGES["pin"]),
    ({"pin_code": "5600011"}, "pin_code", MESSAGES["pin"]),
    ({"pin_code": "56OO01"}, "pin_code", MESSAGES["pin"]),
    ({"gstin": "27AAPFU0939F1Z"}, "gstin", MESSAGES["length"]),
    ({"gstin": "27AAPF00939F1ZV"}, "gstin", MESSAGES["format"]),
    ({"gstin": "27AAPFU0939F0ZV"}, "gstin", MESSAGES["format"]),
    ({"gstin": BAD_CHECK_MH}, "gstin", MESSAGES["check"]),
    ({"gstin": VALID_KA, "state_code": "27"}, "gstin", wrong_state("29", "27")),
    ({"gstin": VALID_MH, "state_code": "29"}, "gstin", wrong_state("27", "29")),
    ({"gstin": with_check("38AAPFU0939F1Z"), "state_code": "97"}, "gstin", wrong_state("38", "97")),
], ids=["pin-leading-zero", "pin-short", "pin-long", "pin-letters", "gstin-short", "gstin-pan-shape",
        "gstin-entity-zero", "gstin-check", "gstin-ka-for-mh", "gstin-mh-for-ka", "gstin-38-for-97"])
def test_invalid_settings_are_refused_with_message_and_typed_values_kept(as_admin, clinic, sql,
                                                                         changes, field, message):
    before = settings_of(sql, clinic)
    sent = typed(**changes)
    response = as_admin.post("/clinic/settings", sent, page="/clinic/settings")
    assert response.status_code == 422
    assert errors(response) == {field: message}
    kept = form_values(response)
    for name, value in sent.items():
        assert kept[name] == value, name
    assert settings_of(sql, clinic) == before


def test_several_problems_are_shown_together(as_admin, clinic, sql):
    response = as_admin.post("/clinic/settings", typed(name="", pin_code="1234", gstin=BAD_CHECK_MH),
                             page="/clinic/settings")
    assert response.status_code == 422
    shown = errors(response)
    assert set(shown) == {"name", "pin_code", "gstin"}
    assert shown["pin_code"] == MESSAGES["pin"] and shown["gstin"] == MESSAGES["check"]
    assert form_values(response)["city"] == "Mumbai"
    assert settings_of(sql, clinic).name == "Sunrise Clinic"


def test_unknown_state_or_time_zone_is_refused(as_admin, clinic, sql):
    for changes, field in (({"state_code": "99", "gstin": ""}, "state_code"),
                           ({"timezone": "Mars/Olympus"}, "timezone"), ({"timezone": "UTC"}, "timezone")):
        response = as_admin.post("/clinic/settings", typed(**changes), page="/clinic/settings")
        assert response.status_code == 422, changes
        assert field in errors(response), changes
    assert settings_of(sql, clinic).name == "Sunrise Clinic"
