# ruff: noqa: F811
"""GSTR-1 for a month of a Karnataka clinic, over HTTP as the billing clerk: Table 7 by place of supply
and rate net of a credit note, Table 8 exempt, Table 12 HSN (B2B and B2C), Table 4 B2B, Table 13 series
with a cancellation; the portal JSON, the offline tool's ZIP of CSVs; other months left out."""

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.billing import credit_notes, issuing, services
from app.billing.models import CreditReason
from app.db import get_session, set_tenant
from tests.billing.conftest import (  # noqa: F401
    BUYER_GSTIN,
    CLINIC_GSTIN,
    accounts,
    billing_desk,
    doctor,
    gst_ready,
    patient,
    prices,
)
from tests.billing.test_issue import _draft
from tests.scheduling.conftest import audit_since, high_water

NOV = date(2026, 11, 20)
IST = ZoneInfo("Asia/Kolkata")


def _at(day: date) -> datetime:
    """Mid-morning of a document's own date: its issue or cancellation time agrees with its date, so
    the month's tables are the same whenever the test runs."""
    return datetime.combine(day, time(10, 30), IST)


@dataclass
class Month:
    invoices: dict  # name -> number


def _issue(db, clinic, patient, *items, day=NOV, recipient=None):
    c, bill = _draft(db, clinic, patient, *items, day=day, recipient=recipient)
    return c, issuing.issue(db, clinic=c, bill=bill, by=None, day=day, now=_at(day))


@pytest.fixture
def month(app, clinic, accounts, billing_desk, patient, prices) -> Month:
    """October, November and December documents; November's is the month under test."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        numbers = {}
        _, [october] = _issue(db, clinic, patient, (prices.medicine, 1), day=date(2026, 10, 31))
        c, [mixed] = _issue(db, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))
        _, [travelling] = _issue(db, clinic, patient, (prices.medicine, 3), recipient={"state_code": "27"})
        _, [cosmetic] = _issue(db, clinic, patient, (prices.cosmetic, 1))
        medicine = services.lines_of(db, mixed)[1]
        note = credit_notes.issue_credit_note(db, clinic=c, original=mixed, quantities={medicine.id: Decimal(1)},
                                          reason=CreditReason.RETURN, by=None, day=NOV, now=_at(NOV))
        _, [lab] = _issue(db, clinic, patient, (prices.lab, 1))
        cancel = credit_notes.issue_credit_note(db, clinic=c, original=lab, quantities={}, reason=CreditReason.CANCEL,
                                            by=None, day=NOV, now=_at(NOV))
        _, [b2b, b2b_supply] = _issue(db, clinic, patient, (prices.cosmetic, 1), (prices.consultation, 1),
                                      recipient={"gstin": BUYER_GSTIN, "name": "Acme Pharma Ltd", "state_code": "27"})
        _, [december] = _issue(db, clinic, patient, (prices.cosmetic, 1), day=date(2026, 12, 1))
        for name, bill in (("october", october), ("mixed", mixed), ("travelling", travelling), ("cosmetic", cosmetic),
                           ("note", note), ("lab", lab), ("cancel", cancel), ("b2b", b2b), ("b2b_supply", b2b_supply),
                           ("december", december)):
            numbers[name] = bill.number
        db.commit()
    return Month(numbers)


def _json(accounts, month="2026-11"):
    response = accounts.get(f"/billing/gstr1.json?month={month}")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response, json.loads(response.get_data(as_text=True))


def test_the_month_as_the_portal_json(accounts, month, sql):
    mark = high_water(sql)
    response, data = _json(accounts)
    assert response.headers["Content-Disposition"] == f'attachment; filename="GSTR1_{CLINIC_GSTIN}_112026.json"'
    assert set(data) == {"gstin", "fp", "b2b", "b2cs", "nil", "hsn", "doc_issue"}  # no B2CL, CDNR: left out
    assert (data["gstin"], data["fp"]) == (CLINIC_GSTIN, "112026")
    # Table 7: 2 strips (66.66 + 1.67 + 1.67) less 1 returned (33.34 + 0.83 + 0.83): ₹35.00 of medicine left;
    # 3 strips sent to Maharashtra (IGST); the cosmetic procedure at 18%.
    assert data["b2cs"] == [
        {"sply_ty": "INTRA", "pos": "29", "typ": "OE", "rt": 5, "txval": 33.32, "camt": 0.84, "samt": 0.84, "csamt": 0},
        {"sply_ty": "INTRA", "pos": "29", "typ": "OE", "rt": 18, "txval": 6000.0, "camt": 540.0, "samt": 540.0,
         "csamt": 0},
        {"sply_ty": "INTER", "pos": "27", "typ": "OE", "rt": 5, "txval": 100.0, "iamt": 5.0, "csamt": 0},
    ]
    # Table 8: the consultation (the lab test was cancelled); the registered buyer's consultation on its own.
    nil = {row["sply_ty"]: row for row in data["nil"]["inv"]}
    assert nil["INTRAB2C"] == {"sply_ty": "INTRAB2C", "expt_amt": 500.0, "nil_amt": 0.0, "ngsup_amt": 0}
    assert sum(row["expt_amt"] for row in nil.values()) == 1000.0
    # Table 4: the registered buyer's tax invoice, invoice-wise.
    [party] = data["b2b"]
    assert party["ctin"] == BUYER_GSTIN
    # A procedure is supplied where it is performed (IGST Act s.12(3)): intra-state, also for a buyer elsewhere.
    assert party["inv"] == [{"inum": month.invoices["b2b"], "idt": "20-11-2026", "val": 7080.0, "pos": "29",
                             "rchrg": "N", "inv_typ": "R", "itms": [
                                 {"num": 1, "itm_det": {"rt": 18, "txval": 6000.0, "iamt": 0.0, "camt": 540.0,
                                                        "samt": 540.0, "csamt": 0}}]}]
    # Table 12: services without quantity (UQC OTH), goods with theirs; B2B and B2C tabs.
    b2c = {(row["hsn_sc"], row["rt"]): row for row in data["hsn"]["hsn_b2c"]}
    assert b2c[("3004", 5)] | {"num": 0} == {"num": 0, "hsn_sc": "3004", "desc": "Paracetamol 500 mg (strip of 1",
                                              "uqc": "NOS", "qty": 4, "rt": 5, "txval": 133.32, "iamt": 5.0,
                                              "camt": 0.84, "samt": 0.84, "csamt": 0}
    assert (b2c[("999312", 0)]["uqc"], b2c[("999312", 0)]["qty"], b2c[("999312", 0)]["txval"]) == ("OTH", 0, 500.0)
    assert ("999316", 0) not in b2c  # issued and cancelled: nothing left
    assert b2c[("999722", 18)]["txval"] == 6000.0
    b2b = {(row["hsn_sc"], row["rt"]): row for row in data["hsn"]["hsn_b2b"]}
    assert (b2b[("999722", 18)]["txval"], b2b[("999722", 18)]["camt"]) == (6000.0, 540.0)
    assert b2b[("999312", 0)]["txval"] == 500.0
    # Table 13: November's numbers only; receipts are not GST documents.
    [invoices, notes] = data["doc_issue"]["doc_det"]
    assert invoices["doc_num"] == 1 and notes["doc_num"] == 5
    assert [(d["from"], d["to"], d["totnum"], d["cancel"], d["net_issue"]) for d in invoices["docs"]] == [
        ("BOS/26-27/000001", "BOS/26-27/000002", 2, 1, 1), ("INV/26-27/000002", "INV/26-27/000005", 4, 0, 4)]
    assert [(d["num"], d["from"], d["to"], d["totnum"], d["cancel"]) for d in notes["docs"]] == [
        (1, "CN/26-27/000001", "CN/26-27/000002", 2, 0)]
    assert audit_since(sql, mark) == [("gst.export", "allowed", None, None, "GSTR-1 2026-11 json", False)]


def test_other_months_are_left_out(accounts, month):
    _, october = _json(accounts, "2026-10")
    assert [row["txval"] for row in october["b2cs"]] == [33.34]  # one strip: 33.34 + 0.83 + 0.83
    assert october["doc_issue"]["doc_det"][0]["docs"][0]["from"] == month.invoices["october"]
    _, november = _json(accounts)
    numbers = json.dumps(november)
    assert month.invoices["october"] not in numbers and month.invoices["december"] not in numbers


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_offline_tool_zip(accounts, month, sql):
    mark = high_water(sql)
    response = accounts.client.get("/billing/gstr1.zip?month=2026-11")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="GSTR1_{CLINIC_GSTIN}_112026.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    files = {name: archive.read(name).decode() for name in archive.namelist()}
    assert {"b2cs.csv", "exempt.csv", "hsn_b2b.csv", "hsn_b2c.csv", "b2b.csv", "cdnr.csv", "docs.csv"} <= set(files)
    b2cs = _rows(files["b2cs.csv"])
    assert b2cs[0] == ["Type", "Place Of Supply", "Rate", "Applicable % of Tax Rate", "Taxable Value", "Cess Amount",
                       "E-Commerce GSTIN"]
    assert ["OE", "29-Karnataka", "5", "", "33.32", "0.00", ""] in b2cs
    assert ["OE", "27-Maharashtra", "5", "", "100.00", "0.00", ""] in b2cs
    exempt = _rows(files["exempt.csv"])
    assert exempt[0] == ["Description", "Nil Rated Supplies", "Exempted(other than nil rated/non-GST supply)",
                         "Non-GST Supplies"]
    assert ["Intra-State supplies to unregistered persons", "0.00", "500.00", "0.00"] in exempt
    hsn = _rows(files["hsn_b2c.csv"])
    assert hsn[0] == ["HSN", "Description", "UQC", "Total Quantity", "Total Value", "Rate", "Taxable Value",
                      "Integrated Tax Amount", "Central Tax Amount", "State/UT Tax Amount", "Cess Amount"]
    assert ["999312", "General consultation", "OTH", "0", "500.00", "0", "500.00", "0.00", "0.00", "0.00",
            "0.00"] in hsn
    b2b = _rows(files["b2b.csv"])
    assert b2b[1] == [BUYER_GSTIN, "", month.invoices["b2b"], "20-Nov-2026", "7080.00", "29-Karnataka", "N", "",
                      "Regular B2B", "", "18", "6000.00", "0.00"]
    docs = _rows(files["docs.csv"])
    assert docs == [["Nature of Document", "Sr. No. From", "Sr. No. To", "Total Number", "Cancelled"],
                    ["Invoices for outward supply", "BOS/26-27/000001", "BOS/26-27/000002", "2", "1"],
                    ["Invoices for outward supply", "INV/26-27/000002", "INV/26-27/000005", "4", "0"],
                    ["Credit Note", "CN/26-27/000001", "CN/26-27/000002", "2", "0"]]
    assert _rows(files["cdnr.csv"])[1:] == []
    assert audit_since(sql, mark) == [("gst.export", "allowed", None, None, "GSTR-1 2026-11 zip", False)]


def test_the_summary_page_shows_the_tables_and_the_checks(accounts, month):
    response = accounts.get("/billing/gstr1?month=2026-11")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.count("Matches") == 4 and "Differs" not in page
    assert "29-Karnataka" in page and "27-Maharashtra" in page and month.invoices["b2b"] in page
    assert "Table 4 · B2B" in page and "Table 5" not in page
    assert "/billing/gstr1.json?month=2026-11" in page and "/billing/gstr1.zip?month=2026-11" in page
    fragment = accounts.get("/billing/gstr1?month=2026-11", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    assert "Matches" in fragment.get_data(as_text=True) and "HX-Request" in fragment.headers["Vary"]


def test_the_default_month_is_last_month(accounts, gst_ready):
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    last = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    response = accounts.get("/billing/gstr1")
    assert response.status_code == 200
    assert f'name="month" type="month" value="{last}"' in response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/billing/gstr1?month=2026-13", "/billing/gstr1.json?month=nov",
                                 "/billing/gstr1.zip?month=2026-1"])
def test_an_invalid_month_is_refused_with_a_message(accounts, gst_ready, url):
    response = accounts.get(url)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter a month as YYYY-MM" in text and "Traceback" not in text


@pytest.mark.parametrize("htmx", [True, False])
def test_an_invalid_month_on_the_page_says_so_and_nothing_about_registration(accounts, gst_ready, htmx):
    response = accounts.get("/billing/gstr1?month=2026-13", headers={"HX-Request": "true"} if htmx else {})
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "2026-13 is not a month. Enter a month as YYYY-MM, for example 2026-11." in text
    assert 'value="2026-13"' in text and 'aria-invalid="true"' in text
    assert "not registered for GST" not in text and "no GSTIN" not in text
    assert ("<html" in text) is not htmx
