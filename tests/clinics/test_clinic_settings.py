"""Clinic settings over HTTP (admin only) and GSTIN validation (format, state code, mod-36 check)."""

import html
import re
import string
from html.parser import HTMLParser

import pytest

from app.auth.policy import Role
from app.clinics.states import BY_CODE, LEGACY_CODES, STATES, gstin_check_char, gstin_problem

VALID_MH = "27AAPFU0939F1ZV"
VALID_KA = "29AABCR1718E1ZL"
BAD_CHECK_MH = "27AAPFU0939F1ZO"

MESSAGES = {
    "pin": "A PIN code is 6 digits, not starting with 0.",
    "format": "A GSTIN is 15 characters: state code, PAN, entity number, Z and a check character.",
    "check": "The check character does not match; please re-check the GSTIN.",
    "state": "The GSTIN's state code does not match the clinic's state.",
}


def with_check(first14: str) -> str:
    return first14 + gstin_check_char(first14)


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
    ({"gstin": "27AAPFU0939F1Z"}, "gstin", MESSAGES["format"]),
    ({"gstin": "27AAPF00939F1ZV"}, "gstin", MESSAGES["format"]),
    ({"gstin": "27AAPFU0939F0ZV"}, "gstin", MESSAGES["format"]),
    ({"gstin": BAD_CHECK_MH}, "gstin", MESSAGES["check"]),
    ({"gstin": VALID_KA, "state_code": "27"}, "gstin", MESSAGES["state"]),
    ({"gstin": VALID_MH, "state_code": "29"}, "gstin", MESSAGES["state"]),
    ({"gstin": with_check("38AAPFU0939F1Z"), "state_code": "97"}, "gstin", MESSAGES["state"]),
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
        expected = value.strip().upper() if name == "gstin" else value
        assert kept[name] == expected, name
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


# --- gstin_check_char / gstin_problem --------------------------------------------------------------

KNOWN_VALID = ["27AAPFU0939F1ZV", "29AABCR1718E1ZL", "24AAQCA8719H1ZC", "24AANFA2641L1ZF", "24AABCR6898M1ZN",
               "33AAAAR6720M1ZG", "05AAACG2140A1ZL", "24AANCA4892J1Z8", "29AAHCM7727Q1ZI", "27AAACR5055K1Z7"]
CHARS = string.digits + string.ascii_uppercase


def _reference_check_char(first14: str) -> str:
    """Luhn mod 36 written independently: from the right, double every other code point."""
    total = 0
    for position, char in enumerate(reversed(first14)):
        value = CHARS.index(char) * (2 if position % 2 == 0 else 1)
        total += value // 36 + value % 36
    return CHARS[-total % 36]


@pytest.mark.parametrize("gstin", KNOWN_VALID)
def test_known_gstins_are_valid(gstin):
    assert gstin_check_char(gstin[:14]) == gstin[14]
    assert gstin_problem(gstin) is None


def test_worked_example_from_the_gst_reference():
    assert gstin_check_char("27AAPFU0939F1Z") == "V"
    assert gstin_check_char("38AAPFU0939F1Z") == "S"
    assert gstin_check_char("97AAPFU0939F1Z") == "O"


@pytest.mark.parametrize("first14", ["27AAPFU0939F1Z", "38AAPFU0939F1Z", "97AAPFU0939F1Z", "01ZZZZZ9999Z9Z",
                                     "37ABCDE1234FAZ", "04AAAAA0000A1Z", "26BZXPK4321QKZ"])
def test_check_char_agrees_with_an_independent_luhn_mod_36(first14):
    assert gstin_check_char(first14) == _reference_check_char(first14)


def test_every_single_character_mistake_is_caught():
    gstin = VALID_MH
    for i in range(15):
        for char in CHARS:
            if char == gstin[i]:
                continue
            typo = gstin[:i] + char + gstin[i + 1:]
            assert gstin_problem(typo) is not None, typo


@pytest.mark.parametrize("state", [s.code for s in STATES] + sorted(LEGACY_CODES))
def test_every_state_code_with_a_correct_check_is_valid(state):
    assert gstin_problem(with_check(f"{state}AAPFU0939F1Z")) is None


@pytest.mark.parametrize("gstin, problem", [
    (BAD_CHECK_MH, "check"),
    ("27AAACR5055K1Z8", "check"),
    ("27AAPFU0939F1ZV ", "format"),
    ("27aapfu0939f1zv", "format"),
    ("27AAPFU0939F1Z!", "format"),
    ("2AAPFU0939F1ZVX", "format"),
    ("", "format"),
])
def test_invalid_gstins_say_why(gstin, problem):
    assert gstin_problem(gstin) == MESSAGES[problem]


@pytest.mark.parametrize("state", ["00", "39", "96", "99"])
def test_unknown_state_code_is_named(state):
    assert gstin_problem(with_check(f"{state}AAPFU0939F1Z")) == f"{state} is not a GST state code."
