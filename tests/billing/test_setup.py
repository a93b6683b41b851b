# ruff: noqa: F811
"""Billing setup over HTTP: the GST profile and the price list with dated GST rates."""

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from app import formats
from app.auth.policy import Role
from app.billing.numbers import financial_year
from app.clinics.states import gstin_check_character
from tests.billing.conftest import CLINIC_GSTIN, gst_ready, prices  # noqa: F401
from tests.scheduling.conftest import HTMX, audit_since, high_water, today

PROFILE = "/billing/profile"


@pytest.fixture
def admin_browser(new_browser, factory, clinic):
    browser = new_browser()
    browser.sign_in(factory.person(clinic, Role.ADMIN, name="Asha Admin"))
    return browser


def gstin(state: str, pan: str = "AABCR1718E", entity: str = "1") -> str:
    first14 = f"{state}{pan}{entity}Z"
    return first14 + gstin_check_character(first14)


def profile_form(**overrides) -> dict:
    values = {"legal_name": "Rao Health Clinics Private Limited", "address_line": "12 MG Road", "city": "Bengaluru",
              "pin_code": "560001", "state_code": "29", "gstin": CLINIC_GSTIN, "signatory_name": "Dr Asha Menon",
              "signatory_designation": "Medical Director", "invoice_prefix": "INV", "bill_of_supply_prefix": "BOS",
              "credit_note_prefix": "CN", "receipt_prefix": "RCT", "fee_validity_days": "7"}
    values.update(overrides)
    return values


def item_form(**overrides) -> dict:
    values = {"code": "DRESS", "name": "Wound dressing kit", "hsn_sac": "3005", "unit": "BOX", "price": "240.00",
              "treatment": "taxable", "rate": "12", "effective_from": today().isoformat(), "active": "y"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def html(response) -> str:
    return response.get_data(as_text=True)


def error_for(page: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    assert match, f"no error shown for {field}"
    return match.group(1)


def item_url(location: str) -> str:
    return re.search(r"/billing/prices/[0-9a-f-]{36}", location).group(0)


# --- Who may ------------------------------------------------------------------------------------------

def test_receptionist_is_refused_every_setup_route(billing_desk, prices):
    item = f"/billing/prices/{prices.medicine}"
    for url in (PROFILE, "/billing/prices", "/billing/prices/new", item):
        assert billing_desk.get(url).status_code == 403, url
    for url, data in ((PROFILE, profile_form()), ("/billing/prices/new", item_form()), (item, item_form()),
                      (f"{item}/rates", {"effective_from": "2030-01-01", "rate": "5"})):
        assert billing_desk.post(url, data, page="/").status_code == 403, url


def test_billing_clerk_and_admin_may(accounts, admin_browser, gst_ready):
    for browser in (accounts, admin_browser):
        assert browser.get(PROFILE).status_code == 200
        assert browser.get("/billing/prices").status_code == 200


# --- The GST profile ------------------------------------------------------------------------------

def test_profile_shows_saved_values_and_how_numbers_look(accounts, gst_ready):
    page = html(accounts.get(PROFILE))
    fy = financial_year(today()).short_label
    assert CLINIC_GSTIN in page and "Dr Asha Menon" in page
    assert f"INV/{fy}/000001" in page and f"BOS/{fy}/000001" in page and f"CN/{fy}/000001" in page
    assert '<option value="29" selected>29-Karnataka</option>' in page
    assert "38-Ladakh" in page and "97-Other Territory" in page
    assert "issued document keeps the supplier particulars" in page


def test_profile_save_creates_the_billing_profile_and_audits(admin_browser, clinic, sql):
    assert sql("SELECT count(*) FROM billing_profile")[0][0] == 0
    assert "The authorised signatory is not set" in html(admin_browser.get(PROFILE))
    mark = high_water(sql)
    response = admin_browser.post(PROFILE, profile_form(invoice_prefix="tx", fee_validity_days="15"), page=PROFILE)
    assert response.status_code == 303 and response.headers["Location"].endswith(PROFILE)
    assert sql("SELECT gstin, legal_name, state_code FROM clinic WHERE id = :c", c=clinic.id) == [
        (CLINIC_GSTIN, "Rao Health Clinics Private Limited", "29")]
    assert sql("SELECT signatory_name, invoice_prefix, fee_validity_days, updated_by IS NOT NULL FROM "
               "billing_profile") == [("Dr Asha Menon", "TX", 15, True)]
    events = audit_since(sql, mark)
    assert [e[0] for e in events] == ["billing.profile_update"] and "gstin" in events[0][4]
    page = html(admin_browser.get(PROFILE))
    assert "GST profile saved" in page and f"TX/{financial_year(today()).short_label}/000001" in page
    assert "signatory is not set" not in page


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"gstin": CLINIC_GSTIN[:14] + ("A" if CLINIC_GSTIN[14] != "A" else "B")}, "gstin", "check character is wrong"),
    ({"state_code": "27"}, "gstin", "registered in state 29, but the clinic&#39;s state is 27"),
    ({"credit_note_prefix": "inv"}, "credit_note_prefix", "Already used for tax invoices"),
    ({"receipt_prefix": "R-1"}, "receipt_prefix", "1 to 4 letters or digits"),
    ({"invoice_prefix": "INVOI"}, "invoice_prefix", "1 to 4 letters or digits"),
    ({"pin_code": "56001"}, "pin_code", "6 digits"),
    ({"fee_validity_days": "91"}, "fee_validity_days", "0 to 90"),
    ({"signatory_name": "  "}, "signatory_name", "Required"),
])
def test_profile_refuses_bad_input_keeping_it(accounts, gst_ready, sql, overrides, field, message):
    mark = high_water(sql)
    typed = profile_form(legal_name="Rao Health Clinics LLP", **overrides)
    response = accounts.post(PROFILE, typed, page=PROFILE)
    page = html(response)
    assert response.status_code == 422
    assert message in error_for(page, field)
    assert 'value="Rao Health Clinics LLP"' in page and "nothing was saved" in page
    saved = sql("SELECT legal_name FROM clinic WHERE id = :c", c=gst_ready.id)
    assert saved == [("Rao Health Clinics Private Limited",)]
    assert audit_since(sql, mark) == []


@pytest.mark.parametrize("state", ["38", "97"])
def test_profile_accepts_a_ladakh_or_other_territory_gstin(accounts, gst_ready, sql, state):
    number = gstin(state)
    response = accounts.post(PROFILE, profile_form(state_code=state, gstin=number.lower()), page=PROFILE)
    assert response.status_code == 303, html(response)[:2000]
    assert sql("SELECT gstin, state_code FROM clinic WHERE id = :c", c=gst_ready.id) == [(number, state)]


def test_profile_refuses_a_prefix_that_already_numbers_another_kind(accounts, gst_ready, sql):
    sql("INSERT INTO bill_series (clinic_id, id, kind, prefix, fy_start, next_number) VALUES "
        "(:c, :i, 'bill_of_supply', 'BS', 2025, 4)", c=gst_ready.id, i=uuid.uuid4())
    response = accounts.post(PROFILE, profile_form(invoice_prefix="BS"), page=PROFILE)
    assert response.status_code == 422
    assert "BS already numbers bills of supply" in error_for(html(response), "invoice_prefix")
    assert sql("SELECT invoice_prefix FROM billing_profile") == [("INV",)]


# --- The price list -------------------------------------------------------------------------------

def test_list_shows_rate_in_force_today_and_a_future_rate(accounts, prices, sql, gst_ready):
    later = today() + timedelta(days=30)
    sql("INSERT INTO price_rate (clinic_id, id, item_id, effective_from, rate, created_at) VALUES "
        "(:c, :i, :item, :s, 18, now())", c=gst_ready.id, i=uuid.uuid4(), item=prices.cosmetic, s=later)
    page = html(accounts.get("/billing/prices"))
    row = re.search(r"<tr>\s*<td><a[^>]*>BOTOX</a>.*?</tr>", page, re.S).group(0)
    assert "18%" in row and f"18% from {formats.day(later)}" in row
    para = re.search(r"<td><a[^>]*>PARA</a>.*?</tr>", page, re.S).group(0)
    assert "5%" in para and "12%" not in para and "MRP incl. GST" in para
    consult = re.search(r"<td><a[^>]*>CONSULT</a>.*?</tr>", page, re.S).group(0)
    assert "Exempt" in consult and "₹500.00" in consult and "Yes" in consult


def test_list_filters_by_name_or_code_with_and_without_htmx(accounts, prices):
    page = html(accounts.get("/billing/prices?q=blood"))
    assert "CBC" in page and "PARA" not in page and "<html" in page
    response = accounts.get("/billing/prices?q=para", headers=HTMX)
    fragment = html(response)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert fragment.lstrip().startswith('<div id="price_table">') and "PARA" in fragment and "CBC" not in fragment
    assert "No item matches “nothing-like-it”" in html(accounts.get("/billing/prices?q=nothing-like-it"))


def test_inactive_items_are_hidden_until_asked_then_dimmed(accounts, prices, sql):
    sql("UPDATE price_item SET active = false WHERE code = 'CBC'")
    assert ">CBC</a>" not in html(accounts.get("/billing/prices"))
    page = html(accounts.get("/billing/prices?inactive=1"))
    assert re.search(r'<tr class="inactive">\s*<td><a[^>]*>CBC</a>', page)


# --- Items ----------------------------------------------------------------------------------------

def test_create_taxable_item_with_its_first_rate(admin_browser, gst_ready, sql):
    mark = high_water(sql)
    response = admin_browser.post("/billing/prices/new", item_form(code="dress", price_includes_tax="y"),
                                  page="/billing/prices/new")
    assert response.status_code == 303
    assert sql("SELECT code, hsn_sac, unit, price, price_includes_tax, treatment, version FROM price_item") == [
        ("DRESS", "3005", "BOX", Decimal("240.00"), True, "taxable", 1)]
    assert sql("SELECT effective_from, rate, created_by IS NOT NULL FROM price_rate") == [
        (today(), Decimal("12.00"), True)]
    assert [e[0] for e in audit_since(sql, mark)] == ["billing.price_item_create"]
    page = html(admin_browser.get(item_url(response.headers["Location"])))
    assert "DRESS added to the price list" in page and "In force today" in page and "Asha Admin" in page


def test_create_exempt_item_needs_no_rate(accounts, gst_ready, sql):
    response = accounts.post("/billing/prices/new", item_form(code="XRAY", name="X-ray chest", hsn_sac="999316",
                                                              unit="NOS", treatment="exempt", rate=""),
                             page="/billing/prices/new")
    assert response.status_code == 303
    assert sql("SELECT code, treatment FROM price_item") == [("XRAY", "exempt")]
    assert sql("SELECT count(*) FROM price_rate")[0][0] == 0


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"code": "consult"}, "code", "CONSULT is already in the price list"),
    ({"rate": ""}, "rate", "A GST rate from 0 to under 100"),
    ({"rate": "100"}, "rate", "A GST rate from 0 to under 100"),
    ({"rate": "5.125"}, "rate", "at most two decimals"),
    ({"hsn_sac": "30051"}, "hsn_sac", "4, 6 or 8 digits"),
    ({"unit": "STR"}, "unit", "Choose a unit"),
    ({"fee_validity": "y"}, "fee_validity", "Only a consultation"),
    ({"code": "A B"}, "code", "letters, digits and hyphens"),
])
def test_create_refuses_bad_input_keeping_it(accounts, prices, sql, overrides, field, message):
    response = accounts.post("/billing/prices/new", item_form(name="Dressing kit (large)", **overrides),
                             page="/billing/prices/new")
    page = html(response)
    assert response.status_code == 422
    assert message in error_for(page, field)
    assert 'value="Dressing kit (large)"' in page
    assert sql("SELECT count(*) FROM price_item")[0][0] == 4


def test_edit_item_bumps_version_and_refuses_a_stale_form(accounts, prices, sql):
    url = f"/billing/prices/{prices.lab}"
    page = html(accounts.get(url))
    assert 'name="version" value="1"' in page and "never alters a document already issued" in page
    form = item_form(name="CBC with ESR", hsn_sac="999316", unit="NOS", price="450", treatment="exempt", rate=None,
                     version="1")
    response = accounts.post(url, form, page=url)
    assert response.status_code == 303
    assert sql("SELECT code, name, price, version, updated_by IS NOT NULL FROM price_item WHERE id = :i",
               i=prices.lab) == [("CBC", "CBC with ESR", Decimal("450.00"), 2, True)]
    stale = accounts.post(url, {**form, "name": "Someone else's change"}, page=url)
    assert stale.status_code == 409 and "changed by someone else" in html(stale)
    assert sql("SELECT name FROM price_item WHERE id = :i", i=prices.lab) == [("CBC with ESR",)]


def test_making_an_exempt_item_taxable_needs_a_rate(accounts, prices, sql):
    url = f"/billing/prices/{prices.lab}"
    form = item_form(code=None, name="Complete blood count", hsn_sac="999316", unit="NOS", price="400",
                     treatment="taxable", rate="", version="1")
    refused = accounts.post(url, form, page=url)
    assert refused.status_code == 422 and "A GST rate" in error_for(html(refused), "rate")
    response = accounts.post(url, {**form, "rate": "18"}, page=url)
    assert response.status_code == 303
    assert sql("SELECT rate FROM price_rate WHERE item_id = :i", i=prices.lab) == [(Decimal("18.00"),)]


def test_unknown_item_is_not_found(accounts, gst_ready):
    assert accounts.get(f"/billing/prices/{uuid.uuid4()}").status_code == 404


# --- Rates ----------------------------------------------------------------------------------------

def test_rates_are_appended_and_a_second_rate_on_a_date_is_refused(accounts, prices, sql):
    url = f"/billing/prices/{prices.medicine}"
    page = html(accounts.get(url))
    assert "12% to 5%" in page
    history = re.search(r'<table class="table compact rate-history">.*?</table>', page, re.S).group(0)
    assert re.search(r'<tr class="in-force">\s*<td>22 Sept 2025</td><td>5%</td>', history)
    assert re.search(r'<tr class="past">\s*<td>01 Jul 2017</td><td>12%</td>', history)
    later = today() + timedelta(days=10)
    mark = high_water(sql)
    response = accounts.post(f"{url}/rates", {"effective_from": later.isoformat(), "rate": "12.5"}, page=url)
    assert response.status_code == 303
    assert [e[0] for e in audit_since(sql, mark)] == ["billing.price_rate_add"]
    page = html(accounts.get(url))
    assert "GST rate 12.50% from" in page
    assert re.search(rf'<tr class="future">\s*<td>{formats.day(later)}</td><td>12.5%</td>', page)
    refused = accounts.post(f"{url}/rates", {"effective_from": later.isoformat(), "rate": "18"}, page=url)
    page = html(refused)
    assert refused.status_code == 422 and "rates are never changed or replaced" in page
    assert "A rate already starts on this date" in error_for(page, "effective_from") and 'value="18"' in page
    assert sql("SELECT count(*) FROM price_rate WHERE item_id = :i", i=prices.medicine)[0][0] == 3


def test_rate_refuses_a_bad_rate_and_an_exempt_item(accounts, prices, sql):
    url = f"/billing/prices/{prices.medicine}"
    refused = accounts.post(f"{url}/rates", {"effective_from": "2030-01-01", "rate": "-1"}, page=url)
    assert refused.status_code == 422 and "0 to under 100" in error_for(html(refused), "rate")
    exempt = f"/billing/prices/{prices.consultation}"
    refused = accounts.post(f"{exempt}/rates", {"effective_from": "2030-01-01", "rate": "5"}, page=exempt)
    assert refused.status_code == 422 and "Exempt and nil-rated items carry no GST rate" in html(refused)
    assert sql("SELECT count(*) FROM price_rate")[0][0] == 3


