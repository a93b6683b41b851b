# ruff: noqa: F811
"""The one state table and GSTIN validator (app/clinics/states.py), alone and through every form that takes
a GSTIN: clinic settings, the billing GST profile and a bill's recipient. One table of numbers, the same
answer and message from each form, the user's input kept on a refusal.

Check characters were computed with GSTN's mod-36 algorithm; 27AAPFU0939F1ZV, 38AAPFU0939F1ZS and
97AAPFU0939F1ZO match the values worked out in gst.md §3.5-3.6.
"""

import html
import re
import string

import pytest

from app.clinics.states import (
    BY_CODE,
    STATES,
    InvalidGstin,
    gstin_check_character,
    is_union_territory,
    is_valid_gstin,
    state_label,
    validate_gstin,
)
from tests.billing.conftest import gst_ready  # noqa: F401

LENGTH = "A GSTIN has 15 characters."
FORMAT = "This is not the format of a GSTIN."
CHECK = "The GSTIN's check character is wrong: please check for a typing error."

VALID = [
    "27AAPFU0939F1ZV",  # python-stdnum's doctest
    "24AAQCA8719H1ZC",  # india-compliance's test company
    "29AABCR1718E1ZL", "33AAAAR6720M1ZG", "05AAACG2140A1ZL", "27AAACR5055K1Z7",  # gst.md §3.6
    "38AAPFU0939F1ZS",  # Ladakh, rejected by python-stdnum 2.2
    "97AAPFU0939F1ZO",  # Other Territory, rejected by python-stdnum 2.2
    "29AAPFU0939F2ZQ",  # second registration of a PAN in a state
    "07DELK12345A1DV",  # tax deductor (TDS), refused by clinic settings before issue 16
    "27AAACF1234B1CO",  # e-commerce operator (TCS), refused by clinic settings before issue 16
    "07DELH10004A1Z9",  # government department, refused by clinic settings before issue 16
    # GSTN's normal format allows A (not only Z) as the 14th character; python-stdnum insists on Z.
    "27AAPFU0939F1AA",
    " 27aapfu0939f1zv ",  # typed in lower case with spaces: saved upper-case
]
INVALID = [
    ("27AAPFU0939F1ZO", CHECK),  # python-stdnum's InvalidChecksum doctest
    ("27AAACR5055K1Z8", CHECK),  # gst.md §3.6
    ("27aapfu0939f1zo", CHECK),  # lower case is checked upper-cased, and shown again as typed
    ("27AAPFU9039F1ZV", CHECK),  # two digits transposed
    ("00AAPFU0939F1ZB", "00 is not a GST state code."),  # check character right, no such state
    ("39AAPFU0939F1ZQ", "39 is not a GST state code."),
    ("96AAPFU0939F1ZQ", "96 is not a GST state code."),  # Other Countries: a place of supply, never a GSTIN
    ("27AAPFU0939F1Z", LENGTH),
    ("27AAPFU0939F1ZVX", LENGTH),
    ("27AAPF00939F1ZV", FORMAT),  # a digit inside the PAN's letters
    ("27AAPFU0939F0ZV", FORMAT),  # entity number 0
    ("27AAPFU0939F1KP", FORMAT),  # no Z (nor D, C or a digit) as the 14th character, check right
    ("27AAPFU0939F1Z-", FORMAT),
    ("2AAPFU0939F1ZVX", FORMAT),  # state code of one digit
]


# --- The validator alone ------------------------------------------------------------------------------

@pytest.mark.parametrize("gstin", VALID)
def test_valid_gstin(gstin):
    assert validate_gstin(gstin) == gstin.strip().upper()
    assert is_valid_gstin(gstin)


@pytest.mark.parametrize(("gstin", "message"), INVALID)
def test_invalid_gstin_says_why(gstin, message):
    with pytest.raises(InvalidGstin) as refused:
        validate_gstin(gstin)
    assert str(refused.value) == message
    assert not is_valid_gstin(gstin)


def _reference_check_character(first14: str) -> str:
    """Luhn mod 36 written independently: from the right, double every other code point."""
    chars = string.digits + string.ascii_uppercase
    total = 0
    for position, char in enumerate(reversed(first14)):
        value = chars.index(char) * (2 if position % 2 == 0 else 1)
        total += value // 36 + value % 36
    return chars[-total % 36]


@pytest.mark.parametrize("first14", ["27AAPFU0939F1Z", "38AAPFU0939F1Z", "97AAPFU0939F1Z", "01ZZZZZ9999Z9Z",
                                     "37ABCDE1234FAZ", "04AAAAA0000A1Z", "26BZXPK4321QKZ"])
def test_check_character_agrees_with_an_independent_luhn_mod_36(first14):
    assert gstin_check_character(first14) == _reference_check_character(first14)


def test_every_single_character_mistake_is_caught():
    gstin = "27AAPFU0939F1ZV"
    for i in range(15):
        for char in string.digits + string.ascii_uppercase:
            typo = gstin[:i] + char + gstin[i + 1:]
            assert typo == gstin or not is_valid_gstin(typo), typo


@pytest.mark.parametrize("code", sorted(BY_CODE))
def test_every_state_code_with_a_correct_check_is_valid(code):
    first14 = f"{code}AAPFU0939F1Z"
    assert is_valid_gstin(first14 + gstin_check_character(first14))


def test_legacy_codes_are_accepted_in_a_gstin_but_never_offered_as_a_state():
    assert {"25", "28"} <= set(BY_CODE) and {"25", "28"}.isdisjoint(s.code for s in STATES)
    assert "96" not in BY_CODE and len(STATES) == 37


def test_labels_and_union_territories():
    assert (state_label("33"), state_label("38"), state_label("97")) == ("33-Tamil Nadu", "38-Ladakh",
                                                                          "97-Other Territory")
    assert {code for code, s in BY_CODE.items() if is_union_territory(code)} == {"04", "25", "26", "31", "35",
                                                                                  "38", "97"}


# --- Every form that takes a GSTIN, over HTTP ------------------------------------------------------------

def _clinic_settings(gstin: str, state: str) -> tuple[str, dict]:
    return "/clinic/settings", {"name": "Sunrise Clinic", "legal_name": "Sunrise Clinic LLP",
                                "address_line": "1 MG Road", "city": "Bengaluru", "pin_code": "560001",
                                "state_code": state, "gstin": gstin, "timezone": "Asia/Kolkata"}


def _billing_profile(gstin: str, state: str) -> tuple[str, dict]:
    return "/billing/profile", {
        "legal_name": "Rao Health Clinics Private Limited", "address_line": "12 MG Road", "city": "Bengaluru",
        "pin_code": "560001", "state_code": state, "gstin": gstin, "signatory_name": "Dr Asha Menon",
        "signatory_designation": "Medical Director", "invoice_prefix": "INV", "bill_of_supply_prefix": "BOS",
        "credit_note_prefix": "CN", "receipt_prefix": "RCT", "fee_validity_days": "7"}


CLINIC_FORMS = {"clinic-settings": _clinic_settings, "billing-profile": _billing_profile}
FORMS = [*CLINIC_FORMS, "bill-recipient"]


def _post(browser, form: str, gstin: str, state: str):
    """Send `gstin` through `form`; the response and the GSTIN then saved."""
    if form == "bill-recipient":
        created = browser.post("/bills/new", {}, page="/billing")
        url = re.search(r"/bills/[0-9a-f-]{36}", created.headers["Location"]).group(0)
        response = browser.post(f"{url}/recipient", {"name": "Acme Pharma Ltd", "gstin": gstin}, page=url)
        return response, lambda sql: sql("SELECT recipient_gstin FROM bill")[0][0]
    url, data = CLINIC_FORMS[form](gstin, state)
    return browser.post(url, data, page=url), lambda sql: sql("SELECT gstin FROM clinic")[0][0]


def _shown(response) -> tuple[str, str]:
    """(the GSTIN error shown, the value the GSTIN input holds)."""
    body = response.get_data(as_text=True)
    error = re.search(r'<p class="error" id="(?:r-)?gstin-error">([^<]*)</p>', body)
    value = re.search(r'<input[^>]*name="gstin"[^>]*value="([^"]*)"|<input[^>]*value="([^"]*)"[^>]*name="gstin"',
                      body)
    return (html.unescape(error.group(1)) if error else "",
            html.unescape((value.group(1) or value.group(2)) if value else ""))


@pytest.mark.parametrize("gstin", VALID)
@pytest.mark.parametrize("form", FORMS)
def test_every_form_accepts_a_valid_gstin(as_admin, gst_ready, sql, form, gstin):
    normal = gstin.strip().upper()
    response, saved = _post(as_admin, form, gstin, normal[:2])
    assert response.status_code == 303, _shown(response)
    assert saved(sql) == normal


@pytest.mark.parametrize(("gstin", "message"), INVALID)
@pytest.mark.parametrize("form", FORMS)
def test_every_form_refuses_an_invalid_gstin_with_one_message_keeping_the_input(as_admin, gst_ready, sql, form,
                                                                                gstin, message):
    response, saved = _post(as_admin, form, gstin, "27")
    assert response.status_code == 422
    assert _shown(response) == (message, gstin)
    assert saved(sql) in (None, gst_ready.gstin)  # nothing saved


@pytest.mark.parametrize("form", CLINIC_FORMS)
def test_the_clinics_gstin_must_be_of_its_state_in_both_clinic_forms(as_admin, gst_ready, sql, form):
    response, saved = _post(as_admin, form, "27AAPFU0939F1ZV", "29")
    assert response.status_code == 422
    assert _shown(response) == ("This GSTIN is registered in state 27, but the clinic's state is 29: a GSTIN "
                                "starts with its state's code.", "27AAPFU0939F1ZV")
    assert saved(sql) == gst_ready.gstin
