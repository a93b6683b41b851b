# ruff: noqa: F811
"""The day close over HTTP as the billing clerk: collections by mode, by staff and by both (payments
less refunds), documents issued by series, credit notes, cancellations, and open balances (oldest first,
paid ones not); one audit record naming the patients who owe; the receptionist is refused every report."""

import re
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from app.auth.policy import Role
from app.billing import credit_notes, issuing, payments, services
from app.billing.models import Bill, CreditReason, PaymentMode
from app.db import get_session, set_tenant
from tests.billing.conftest import accounts, billing_desk, doctor, gst_ready, patient, prices  # noqa: F401
from tests.billing.test_issue import _draft
from tests.scheduling.conftest import audit_since, high_water

DAY = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
MINUS = "-"  # as every amount prints a negative one (app/formats.inr, Babel's en_IN: -₹435.00)
ROUTES = ["/billing/day-close", "/billing/day-close.csv", "/billing/gstr1", "/billing/gstr1.json?month=2026-11",
          "/billing/gstr1.zip?month=2026-11"]


@pytest.fixture
def cashiers(factory, clinic):
    """Two staff members who take money at the desk."""
    return (factory.person(clinic, Role.BILLING, name="Meera Cashier"),
            factory.person(clinic, Role.RECEPTION, name="Ravi Frontdesk"))


@contextmanager
def desk_session(app, clinic):
    """A session in the clinic, closed before any request (an open app context would leak into requests)."""
    with app.app_context():
        session = get_session()
        set_tenant(session, clinic_id=clinic.id, user_id=None)
        yield session
        session.commit()


def _issue(db, clinic, patient, *items, day=DAY) -> Bill:
    c, bill = _draft(db, clinic, patient, *items, day=day)
    [issued] = issuing.issue(db, clinic=c, bill=bill, by=None, day=day)
    return issued


def _pay(db, bill, mode, amount, by, *, refund=False):
    take = payments.refund if refund else payments.take_payment
    return take(db, bill, mode=mode, amount=Decimal(amount), reference="REF1" if mode is not PaymentMode.CASH else None,
                by=by.id, day=DAY)


def rows(page: str) -> list[list[str]]:
    """Each table row of a page as the text of its cells."""
    found = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        found.append([" ".join(unescape(re.sub(r"<[^>]+>", "", c)).split()) for c in cells])
    return found


@pytest.fixture
def the_day(app, clinic, accounts, billing_desk, patient, prices, cashiers):
    """A day at the desk: paid, part-paid, unpaid, returned-and-refunded and cancelled documents."""
    with desk_session(app, clinic) as db:
        return _a_day(db, clinic, patient, prices, cashiers)


def _a_day(db, clinic, patient, prices, cashiers) -> dict:
    meera, ravi = cashiers
    c = db.get(type(clinic), clinic.id)
    older = _issue(db, clinic, patient, (prices.lab, 1), day=date(2026, 11, 19))  # unpaid since yesterday
    paid = _issue(db, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))  # INV 570.00
    _pay(db, paid, PaymentMode.CASH, "570", meera)
    medicine = services.lines_of(db, paid)[1]
    returned = credit_notes.issue_credit_note(db, clinic=c, original=paid, quantities={medicine.id: Decimal(1)},
                                          reason=CreditReason.RETURN, by=None, day=DAY)
    _pay(db, paid, PaymentMode.CASH, "35", meera, refund=True)
    part = _issue(db, clinic, patient, (prices.cosmetic, 1))  # INV 7,080.00
    _pay(db, part, PaymentMode.UPI, "5000", ravi)
    consult = _issue(db, clinic, patient, (prices.consultation, 1))  # BOS 500.00
    _pay(db, consult, PaymentMode.CASH, "200", ravi)
    cancelled = _issue(db, clinic, patient, (prices.lab, 1))
    void = credit_notes.issue_credit_note(db, clinic=c, original=cancelled, quantities={}, reason=CreditReason.CANCEL,
                                      by=None, day=DAY, now=NOON)
    tomorrow = _issue(db, clinic, patient, (prices.lab, 1), day=date(2026, 11, 21))
    return {"older": older.number, "paid": paid.number, "returned": returned.number, "part": part.number,
            "consult": consult.number, "cancelled": cancelled.number, "void": void.number,
            "tomorrow": tomorrow.number, "part_id": str(part.id)}


def test_day_close_collections_documents_and_balances(accounts, the_day, sql, patient):
    mark = high_water(sql)
    response = accounts.get("/billing/day-close?day=2026-11-20")
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[:2000]
    table = rows(page)
    # By mode: cash 570 + 200 taken, 35 refunded; UPI 5,000.
    assert ["Cash", "3", "₹770.00", "₹35.00", "₹735.00"] in table
    assert ["UPI", "1", "₹5,000.00", "₹0.00", "₹5,000.00"] in table
    assert table.count(["Total", "4", "₹5,770.00", "₹35.00", "₹5,735.00"]) == 2  # under both tables
    # By who received, and by both.
    assert ["Meera Cashier", "2", "₹570.00", "₹35.00", "₹535.00"] in table
    assert ["Ravi Frontdesk", "2", "₹5,200.00", "₹0.00", "₹5,200.00"] in table
    assert ["Cash · Ravi Frontdesk", "1", "₹200.00", "₹0.00", "₹200.00"] in table
    # Documents by series: two invoices, two bills of supply, two credit notes (yesterday's and tomorrow's not).
    assert ["Tax invoice", "INV", "1", the_day["part"], the_day["part"], "₹6,000.00", "₹0.00", "₹1,080.00",
            "₹7,080.00"] in table
    assert ["Bill of supply", "BOS", "2", the_day["consult"], the_day["cancelled"], "₹0.00", "₹900.00", "₹0.00",
            "₹900.00"] in table
    assert ["Credit note", "CN", "2", the_day["returned"], the_day["void"], f"{MINUS}₹33.34", f"{MINUS}₹400.00",
            f"{MINUS}₹1.66",
            f"{MINUS}₹435.00"] in table
    assert [the_day["returned"], the_day["paid"], "Return", f"{MINUS}₹35.00"] in table
    assert [the_day["cancelled"], "20 Nov 2026", the_day["void"], "₹400.00"] in table
    # Open balances, oldest first: yesterday's lab test, the part-paid procedure, the part-paid consultation.
    owed = [row for row in table if len(row) == 5 and row[2] == "Kavya Iyer"]
    assert owed == [[the_day["older"], "19 Nov 2026", "Kavya Iyer", "₹400.00", "₹400.00"],
                    [the_day["part"], "20 Nov 2026", "Kavya Iyer", "₹7,080.00", "₹2,080.00"],
                    [the_day["consult"], "20 Nov 2026", "Kavya Iyer", "₹500.00", "₹300.00"]]
    assert f'href="/bills/{the_day["part_id"]}"' in page
    assert the_day["tomorrow"] not in page
    assert audit_since(sql, mark) == [("billing.day_close", "allowed", None, [patient], "day close 2026-11-20",
                                       False)]


def test_previous_and_next_day_links_and_the_htmx_fragment(accounts, the_day):
    page = accounts.get("/billing/day-close?day=2026-11-20").get_data(as_text=True)
    assert 'href="/billing/day-close?day=2026-11-19"' in page and 'href="/billing/day-close?day=2026-11-21"' in page
    assert 'name="day" type="date" value="2026-11-20"' in page
    fragment = accounts.get("/billing/day-close?day=2026-11-19", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in text and "HX-Request" in fragment.headers["Vary"]
    assert [the_day["older"], "19 Nov 2026", "Kavya Iyer", "₹400.00", "₹400.00"] in rows(text)
    assert "No payments or refunds." in text


def test_nothing_owed_once_paid_in_full(app, accounts, clinic, patient, prices, cashiers):
    with desk_session(app, clinic) as db:
        bill = _issue(db, clinic, patient, (prices.lab, 1))
        _pay(db, bill, PaymentMode.CARD, "400", cashiers[0])
    response = accounts.get("/billing/day-close?day=2026-11-20")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Nothing owed." in page and ["Card", "1", "₹400.00", "₹0.00", "₹400.00"] in rows(page)


def test_day_close_csv(accounts, the_day, sql):
    mark = high_water(sql)
    response = accounts.get("/billing/day-close.csv?day=2026-11-20")
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="day-close-2026-11-20.csv"'
    assert "Cash,3,770.00,35.00,735.00" in text and f"{the_day['part']},2026-11-20,Kavya Iyer,7080.00,2080.00" in text
    assert [row[0] for row in audit_since(sql, mark)] == ["billing.day_close"]


def test_an_invalid_day_is_refused_with_the_input_kept(accounts, gst_ready, sql):
    mark = high_water(sql)
    response = accounts.get("/billing/day-close?day=2026-02-30")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Enter a date as YYYY-MM-DD" in page
    assert 'value="2026-02-30"' in page and "Traceback" not in page and "Open balances" not in page
    assert audit_since(sql, mark) == []


@pytest.mark.parametrize("url", ROUTES)
def test_the_receptionist_is_refused_every_report(billing_desk, gst_ready, url):
    assert billing_desk.get(url).status_code == 403
