# ruff: noqa: F811
"""One amount, one way of writing it (app/formats.py): a bill in lakhs reads the same on the document page,
its PDF, the receipt, the patient's timeline, the day close (page and CSV) and the flash message after
payment; and dates come from Babel's CLDR data in English and Hindi, not from tables of our own."""

import io
import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from html import unescape

import pytest
from pypdf import PdfReader

from app import formats
from app.billing import pdf as bill_pdf
from app.billing.models import Bill
from app.db import get_session, set_tenant
from app.messaging.texts import Reminder, sms_text, whatsapp_variables
from app.scheduling.services import today
from tests.billing.conftest import accounts, add_item, billing_desk, gst_ready, issue_document, patient  # noqa: F401

TOTAL = "₹1,23,456.50"  # the line and the document's total, before rounding to the rupee
GRAND = "₹1,23,457.00"  # the grand total, paid in full: the amount every place below shows
WESTERN = re.compile(r"₹\d{3},\d{3}")  # the drift this removes: ₹123,457.00 on the receipt and in the flash


@pytest.fixture
def big_bill(app, sql, clinic, gst_ready, billing_desk, accounts, patient) -> str:
    """An issued bill of supply for one exempt procedure of ₹1,23,456.50, issued today (after the browsers
    fetched a page for their form token)."""
    for browser in (billing_desk, accounts):
        assert browser.get("/billing").status_code == 200
    item_id = add_item(sql, clinic.id, "SURG", "Day-care procedure", "999312", "123456.50")
    [bill_id] = issue_document(app, clinic, patient, (item_id, 1), day=today(clinic))
    return bill_id


def _pdf_text(app, clinic, bill_id: str) -> str:
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        data = bill_pdf.render(db, db.get(Bill, (clinic.id, uuid.UUID(bill_id))))
        db.rollback()
    return " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(data)).pages)


def _text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    return unescape(response.get_data(as_text=True))


def test_one_amount_reads_the_same_everywhere(app, clinic, billing_desk, accounts, patient, big_bill):
    paid = billing_desk.post(f"/bills/{big_bill}/payments", {"mode": "cash", "amount": "123457"})
    assert paid.status_code == 303
    flash = _text(billing_desk.get("/patients/new"))
    assert re.search(rf"Received {re.escape(GRAND)} by Cash — receipt RCT/\d\d-\d\d/\d{{6}}", flash)

    document = _text(billing_desk.get(f"/bills/{big_bill}"))
    [receipt_url] = re.findall(r'href="(/payments/[0-9a-f-]{36}/receipt)"', document)
    shown = {
        "document page": document,
        "PDF": _pdf_text(app, clinic, big_bill),
        "receipt": _text(billing_desk.get(receipt_url)),
        "timeline": _text(billing_desk.get(f"/patients/{patient}/timeline")),
        "day close": _text(accounts.get(f"/billing/day-close?day={today(clinic)}")),
        "day close CSV": _text(accounts.get(f"/billing/day-close.csv?day={today(clinic)}")),
        "flash": flash,
    }
    for where, text in shown.items():
        assert GRAND in text, where
        assert not WESTERN.search(text), (where, WESTERN.search(text))
    for where in ("document page", "PDF"):
        assert TOTAL in shown[where] and "₹0.50" in shown[where], where  # the total before its round off
    assert "Rupees One Lakh Twenty-Three Thousand Four Hundred Fifty-Seven Only" in shown["PDF"]
    # The CSV keeps its plain numbers for a spreadsheet and prints the amount as shown beside them.
    assert f'Cash,1,123457.00,0.00,123457.00,"{GRAND}"' in shown["day close CSV"]


@pytest.mark.parametrize("amount, text", [
    (Decimal("123456.5"), "₹1,23,456.50"), (Decimal("12345678"), "₹1,23,45,678.00"), (Decimal("999"), "₹999.00"),
    (123456789012, "₹1,23,45,67,89,012.00"), (Decimal("-0.40"), "-₹0.40"), (Decimal("-0.00"), "₹0.00"),
    (None, ""),
])
def test_inr_groups_lakhs_and_crores(amount, text):
    assert formats.inr(amount) == text


TUESDAY = datetime(2026, 11, 24, 18, 15)  # a fixed local time: no clock in these


def test_a_hindi_reminder_names_the_day_and_month_as_cldr_does():
    reminder = Reminder("Asha Family Clinic", TUESDAY, "https://clinic.example/v/abc", "hi")
    assert "मंगलवार, 24 नवंबर को शाम 6:15 बजे" in sms_text(reminder)
    assert whatsapp_variables(reminder)["2"] == formats.day(TUESDAY, "EEEE, d MMMM", "hi")
    assert formats.day(date(2027, 2, 1), "d MMMM y", "hi") == "1 फ़रवरी 2027"


def test_english_dates_are_cldr_s_indian_english():
    """CLDR's en_IN, not a table: September is "Sept", and a day before 10 has no glibc `%-d` needed."""
    reminder = Reminder("Asha Family Clinic", datetime(2026, 9, 3, 9, 5), "https://clinic.example/v/abc")
    assert "on Thu 3 Sept at 9:05 am." in sms_text(reminder)
    assert formats.day(date(2026, 4, 5)) == "05 Apr 2026"
    assert formats.day(date(2026, 4, 5), "EEEE dd MMMM y") == "Sunday 05 April 2026"
