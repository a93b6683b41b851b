# ruff: noqa: F811
"""Credit notes over HTTP by the billing clerk: a partial return, a cancellation that marks the original
cancelled, and more than is left to credit refused (422, input kept), with and without htmx."""

from tests.billing.conftest import accounts, bill_id, gst_ready, patient, prices  # noqa: F401
from tests.billing.test_invoicing import FY, issued_bill, page
from tests.scheduling.conftest import HTMX, audit_since, high_water


def line_ids(sql, bid: str) -> list[str]:
    return [str(row[0]) for row in sql("SELECT id FROM bill_line WHERE bill_id = :b ORDER BY position", b=bid)]


def test_a_partial_return_credits_what_was_returned(accounts, patient, prices, sql):
    bid = issued_bill(accounts, (prices.lab, 1), (prices.medicine, 3), patient_id=patient)
    _lab, medicine = line_ids(sql, bid)
    html = page(accounts, f"/bills/{bid}/credit-note")
    assert "Paracetamol" in html and f'name="qty-{medicine}"' in html and "Kavya Iyer" in html
    mark = high_water(sql)
    response = accounts.post(f"/bills/{bid}/credit-note", {"reason": "return", f"qty-{medicine}": "1"})
    assert response.status_code == 303
    note = bill_id(response.headers["Location"])
    html = page(accounts, f"/bills/{note}")
    assert "Credit Note" in html and f"CN/{FY}/000001" in html and "₹35.00" in html
    assert ("bill.credit_note", "allowed", patient) in [row[:3] for row in audit_since(sql, mark)]
    html = page(accounts, f"/bills/{bid}")
    assert f"CN/{FY}/000001" in html and "Cancelled by" not in html and "Issue credit note" in html
    html = page(accounts, f"/bills/{bid}/credit-note")
    assert '<td class="num">2</td>' in html  # two strips left to credit
    assert sql("SELECT count(*) FROM bill_pdf WHERE bill_id = :b", b=note)[0][0] == 1


def test_cancelling_marks_the_original_cancelled(accounts, patient, prices, sql):
    bid = issued_bill(accounts, (prices.consultation, 1), patient_id=patient)
    response = accounts.post(f"/bills/{bid}/credit-note", {"reason": "cancel"}, page=f"/bills/{bid}/credit-note")
    assert response.status_code == 303
    html = page(accounts, f"/bills/{bid}")
    assert f"Cancelled by CN/{FY}/000001" in html and "Issue credit note" not in html
    assert sql("SELECT cancelled_at IS NOT NULL FROM bill WHERE id = :b", b=bid) == [(True,)]
    response = accounts.post(f"/bills/{bid}/credit-note", {"reason": "cancel"})
    assert response.status_code == 409 and "already cancelled" in response.get_data(as_text=True)


def test_more_than_is_left_is_refused_with_the_input_kept(accounts, patient, prices, sql):
    bid = issued_bill(accounts, (prices.medicine, 3), patient_id=patient)
    [medicine] = line_ids(sql, bid)
    page(accounts, f"/bills/{bid}/credit-note")
    for headers in ({}, HTMX):
        response = accounts.post(f"/bills/{bid}/credit-note", {"reason": "return", f"qty-{medicine}": "5"},
                                 headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert 'value="5"' in html and "At most 3" in html and 'value="return" checked' in html
        assert ("<html" in html) is not bool(headers)
    response = accounts.post(f"/bills/{bid}/credit-note", {f"qty-{medicine}": "1"})
    assert response.status_code == 422 and "Choose why" in response.get_data(as_text=True)
    response = accounts.post(f"/bills/{bid}/credit-note", {"reason": "return"})
    assert response.status_code == 422 and "at least one line" in response.get_data(as_text=True)
    assert sql("SELECT count(*) FROM bill WHERE original_id = :b", b=bid)[0][0] == 0
