# ruff: noqa: F811
"""The desk bills over HTTP: a completed visit (its type's item filled in) plus a medicine, the live
preview with its tax split, issuing with a number, refusals (422 with the input kept, 409 for a stale or
issued document), a B2B buyer's mixed bill split in two, over-the-counter bills, the billing home and
the links from the appointment and patient pages. With and without htmx; audited."""

import re
from datetime import timedelta

from app.billing.numbers import financial_year
from tests.billing.conftest import (  # noqa: F401
    BUYER_GSTIN,
    add_item,
    bill_id,
    billing_desk,
    completed_visit,
    consultation_type,
    doctor,
    gst_ready,
    patient,
    prices,
)
from tests.scheduling.conftest import HTMX, audit_since, high_water, today

FY = financial_year(today()).short_label


def page(browser, url: str) -> str:
    response = browser.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    return response.get_data(as_text=True)


def version_of(html: str) -> str:
    return re.search(r'name="version" value="(\d+)"', html).group(1)


def new_bill(browser, **data) -> str:
    """Start a draft over HTTP; its id."""
    response = browser.post("/bills/new", data, page="/billing")
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    return bill_id(response.headers["Location"])


def add(browser, bid: str, item, quantity="1", headers=None, **extra):
    return browser.post(f"/bills/{bid}/lines", {"item_id": str(item), "quantity": quantity, **extra},
                        page=f"/bills/{bid}", headers=headers or {})


def issue(browser, bid: str, **headers):
    html = page(browser, f"/bills/{bid}")
    return browser.post(f"/bills/{bid}/issue", {"version": version_of(html)}, headers=headers)


def issued_bill(browser, *lines, recipient=None, **data) -> str:
    """A document issued over HTTP with `lines` ((item, quantity), ...); its id."""
    bid = new_bill(browser, **data)
    if recipient:
        assert browser.post(f"/bills/{bid}/recipient", recipient, page=f"/bills/{bid}").status_code == 303
    for item, quantity in lines:
        assert add(browser, bid, item, quantity).status_code == 303
    response = issue(browser, bid)
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    return bill_id(response.headers["Location"])


def test_a_completed_visit_is_billed_with_a_medicine_and_issued(billing_desk, patient, prices, doctor, sql, clinic):
    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=consultation_type(sql, clinic.id))
    mark = high_water(sql)
    bid = new_bill(billing_desk, appointment_id=str(visit))
    html = page(billing_desk, f"/bills/{bid}")
    assert "General consultation" in html and "Kavya Iyer" in html
    assert "Will be issued as: <strong>Bill of Supply</strong>" in html

    assert add(billing_desk, bid, prices.medicine, "2").status_code == 303
    html = page(billing_desk, f"/bills/{bid}")
    assert "CGST" in html and "SGST" in html and "2.5%" in html
    assert "Will be issued as: <strong>Invoice-cum-Bill of Supply</strong>" in html
    assert "₹570.00" in html  # 500 exempt + 2 strips at MRP 35

    response = issue(billing_desk, bid)
    assert response.status_code == 303 and bill_id(response.headers["Location"]) == bid
    html = page(billing_desk, f"/bills/{bid}")
    assert f"INV/{FY}/000001" in html and "Invoice-cum-Bill of Supply" in html
    assert "Payments" in html and "Billing history" in html and "Add line" not in html
    actions = [row[0] for row in audit_since(sql, mark)]
    for action in ("bill.create", "bill.line_add", "bill.issue", "bill.view"):
        assert action in actions
    bill_records = [row for row in audit_since(sql, mark) if row[0].startswith("bill.") and row[0] != "bill.list"]
    assert {row[2] for row in bill_records} == {patient}
    assert sql("SELECT count(*) FROM bill_pdf WHERE bill_id = :b", b=bid)[0][0] == 1


def test_lines_added_and_removed_with_htmx_swap_the_editor(billing_desk, patient, prices, sql):
    bid = new_bill(billing_desk, patient_id=patient)
    billing_desk.get(f"/bills/{bid}")
    mark = high_water(sql)
    response = billing_desk.post(f"/bills/{bid}/lines", {"item_id": str(prices.cosmetic), "quantity": "1"},
                                 headers=HTMX)
    assert [row[:3] for row in audit_since(sql, mark)] == [("bill.line_add", "allowed", patient)]
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="editor"' in html and "<html" not in html
    assert "Botulinum toxin" in html and "₹7,080.00" in html and "Tax Invoice" in html
    line = re.search(rf'/bills/{bid}/lines/([0-9a-f-]{{36}})/remove', html).group(1)
    response = billing_desk.post(f"/bills/{bid}/lines/{line}/remove", {}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "No lines yet" in html and line not in html and "<html" not in html


def test_a_line_is_removed_without_javascript(billing_desk, patient, prices):
    bid = new_bill(billing_desk, patient_id=patient)
    add(billing_desk, bid, prices.lab)
    line = re.search(rf'/bills/{bid}/lines/([0-9a-f-]{{36}})/remove', page(billing_desk, f"/bills/{bid}")).group(1)
    response = billing_desk.post(f"/bills/{bid}/lines/{line}/remove", {})
    assert response.status_code == 303
    assert "No lines yet" in page(billing_desk, f"/bills/{bid}")


def test_a_bad_quantity_or_discount_is_refused_with_the_input_kept(billing_desk, patient, prices, sql):
    bid = new_bill(billing_desk, patient_id=patient)
    for headers in ({}, HTMX):
        billing_desk.get(f"/bills/{bid}")
        mark = high_water(sql)
        response = billing_desk.post(f"/bills/{bid}/lines", {"item_id": str(prices.medicine), "quantity": "two",
                                                             "discount": "abc"}, headers=headers)
        assert [row[:5] for row in audit_since(sql, mark)] == [
            ("bill.line_add", "allowed", patient, None, "not saved: invalid")]
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert 'value="two"' in html and 'value="abc"' in html and "Enter a quantity." in html
        assert "Enter an amount." in html
        assert ("<html" in html) is not bool(headers)
    assert "No lines yet" in page(billing_desk, f"/bills/{bid}")
    response = add(billing_desk, bid, prices.medicine, "1", discount="150", discount_kind="percent")
    assert response.status_code == 422 and 'value="150"' in response.get_data(as_text=True)


def test_an_item_is_added_by_its_code_and_an_unknown_code_refused(billing_desk, patient, prices):
    bid = new_bill(billing_desk, patient_id=patient)
    response = billing_desk.post(f"/bills/{bid}/lines", {"code": "cbc", "quantity": "1"}, page=f"/bills/{bid}")
    assert response.status_code == 303
    assert "Complete blood count" in page(billing_desk, f"/bills/{bid}")
    response = billing_desk.post(f"/bills/{bid}/lines", {"code": "XRAY", "quantity": "1"})
    assert response.status_code == 422 and 'value="XRAY"' in response.get_data(as_text=True)


def test_a_stale_draft_is_not_issued(billing_desk, patient, prices, new_browser, factory, clinic, sql):
    bid = new_bill(billing_desk, patient_id=patient)
    add(billing_desk, bid, prices.lab)
    stale = version_of(page(billing_desk, f"/bills/{bid}"))
    other = new_browser()
    other.sign_in(factory.person(clinic, name="Second Desk"))
    assert add(other, bid, prices.medicine).status_code == 303
    for headers in ({}, HTMX):
        response = billing_desk.post(f"/bills/{bid}/issue", {"version": stale}, headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 409 and "changed on another screen" in html
        assert "Paracetamol" in html  # the fresh draft, to check again
    assert sql("SELECT status FROM bill WHERE id = :b", b=bid)[0][0] == "draft"


def test_an_issued_document_cannot_be_edited(billing_desk, patient, prices, sql):
    bid = issued_bill(billing_desk, (prices.lab, 1), patient_id=patient)
    for headers in ({}, HTMX):
        response = add(billing_desk, bid, prices.medicine, headers=headers)
        assert response.status_code == 409
        assert "is issued and cannot be changed" in response.get_data(as_text=True)
    response = billing_desk.post(f"/bills/{bid}/recipient", {"name": "Someone Else"})
    assert response.status_code == 409
    assert billing_desk.post(f"/bills/{bid}/discard", {}).status_code == 409
    assert sql("SELECT count(*) FROM bill_line WHERE bill_id = :b", b=bid)[0][0] == 1


def test_a_registered_buyers_mixed_bill_becomes_two_documents(billing_desk, patient, prices, sql):
    bid = new_bill(billing_desk, patient_id=patient)
    add(billing_desk, bid, prices.consultation)
    add(billing_desk, bid, prices.medicine)
    response = billing_desk.post(f"/bills/{bid}/recipient", {"name": "Acme Pharma Ltd", "gstin": BUYER_GSTIN.lower(),
                                                             "state_code": "27", "city": "Mumbai",
                                                             "address_line": "Plot 4, MIDC Andheri"}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "two documents" in html and "IGST" in html
    response = issue(billing_desk, bid)
    assert response.status_code == 303
    html = page(billing_desk, response.headers["Location"])
    assert f"Issued as two documents: INV/{FY}/000001 and BOS/{FY}/000001." in html
    assert sql("SELECT number, kind FROM bill WHERE status = 'issued' ORDER BY number") == [
        (f"BOS/{FY}/000001", "bill_of_supply"), (f"INV/{FY}/000001", "tax_invoice")]


def test_a_bad_recipient_is_refused_with_the_input_kept(billing_desk, patient):
    bid = new_bill(billing_desk, patient_id=patient)
    for headers in ({}, HTMX):
        response = billing_desk.post(f"/bills/{bid}/recipient", {"name": "Acme", "gstin": "27AAACR5055K1Z0",
                                                                 "pin_code": "4000"}, headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert 'value="27AAACR5055K1Z0"' in html and 'value="4000"' in html and "A PIN code has 6 digits." in html


def test_an_over_the_counter_bill_has_no_patient(billing_desk, prices, sql):
    bid = new_bill(billing_desk)
    html = page(billing_desk, f"/bills/{bid}")
    assert "Draft bill" in html and "Patient's record" not in html
    billing_desk.post(f"/bills/{bid}/recipient", {"name": "Counter Buyer"})
    add(billing_desk, bid, prices.medicine, "3")
    response = issue(billing_desk, bid)
    assert response.status_code == 303
    html = page(billing_desk, f"/bills/{bid}")
    assert f"INV/{FY}/000001" in html and "Counter Buyer" in html and "Tax Invoice" in html
    assert sql("SELECT patient_id FROM bill WHERE id = :b", b=bid) == [(None,)]


def test_a_visit_with_a_draft_goes_to_that_draft_and_a_billed_one_to_its_document(billing_desk, patient, prices,
                                                                                 doctor, sql, clinic):
    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=consultation_type(sql, clinic.id))
    first = new_bill(billing_desk, appointment_id=str(visit))
    assert new_bill(billing_desk, appointment_id=str(visit)) == first
    assert issue(billing_desk, first).status_code == 303
    response = billing_desk.post("/bills/new", {"appointment_id": str(visit)}, page="/billing")
    assert response.status_code == 303 and bill_id(response.headers["Location"]) == first
    assert f"This visit is already billed: BOS/{FY}/000001." in page(billing_desk, response.headers["Location"])
    assert sql("SELECT count(*) FROM bill")[0][0] == 1


def test_a_visit_not_completed_is_not_billed(billing_desk, patient, doctor, sql, clinic):
    from tests.scheduling.conftest import insert_appointment

    visit = insert_appointment(sql, clinic.id, doctor.id, patient, day=today(), status="arrived", token=3)
    response = billing_desk.post("/bills/new", {"appointment_id": str(visit)}, page="/billing")
    assert response.status_code == 409 and "Only a completed visit" in response.get_data(as_text=True)
    assert sql("SELECT count(*) FROM bill")[0][0] == 0


def test_the_billing_home_lists_visits_to_bill_drafts_and_todays_documents(billing_desk, patient, prices, doctor,
                                                                          sql, clinic):
    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=consultation_type(sql, clinic.id))
    mark = high_water(sql)
    html = page(billing_desk, "/billing")
    assert "Visits to bill today" in html and "Kavya Iyer" in html and "Dr Meera Rao" in html
    assert f'name="appointment_id" value="{visit}"' in html
    assert audit_since(sql, mark)[-1][:4] == ("bill.list", "allowed", None, [patient])
    bid = new_bill(billing_desk, appointment_id=str(visit))
    html = page(billing_desk, "/billing")
    assert f'value="{visit}"' not in html and f"/bills/{bid}" in html and "No drafts." not in html
    issue(billing_desk, bid)
    html = page(billing_desk, "/billing")
    assert f"BOS/{FY}/000001" in html and "Bill of Supply" in html and "No drafts." in html

    response = billing_desk.get(f"/billing?number=bos/{FY}/000001")
    assert response.status_code == 303 and bill_id(response.headers["Location"]) == bid
    assert "No document is numbered" in page(billing_desk, "/billing?number=INV/99-00/000009")


def test_the_patient_is_picked_by_search_as_you_type(billing_desk, patient, sql):
    response = billing_desk.post("/bills/new", {"intent": "search", "q": "Kavya"}, page="/billing", headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert f'name="patient_id" value="{patient}"' in html and "Kavya Iyer" in html
    response = billing_desk.post("/bills/new", {"intent": "search", "q": "Kavya"}, page="/billing")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html and f'value="{patient}"' in html
    bid = new_bill(billing_desk, patient_id=patient, intent="create")
    assert "Kavya Iyer" in page(billing_desk, f"/bills/{bid}")


def test_discarding_a_draft(billing_desk, patient, prices, sql):
    bid = new_bill(billing_desk, patient_id=patient)
    add(billing_desk, bid, prices.lab)
    mark = high_water(sql)
    response = billing_desk.post(f"/bills/{bid}/discard", {}, page=f"/bills/{bid}")
    assert response.status_code == 303 and response.headers["Location"].endswith("/billing")
    assert sql("SELECT count(*) FROM bill")[0][0] == 0
    assert ("bill.discard", "allowed", patient) in [row[:3] for row in audit_since(sql, mark)]
    assert billing_desk.get(f"/bills/{bid}").status_code == 404


def test_appointment_and_patient_pages_link_to_billing(billing_desk, patient, prices, doctor, sql, clinic):
    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=consultation_type(sql, clinic.id))
    html = page(billing_desk, f"/schedule/appointments/{visit}")
    assert "Bill this visit" in html
    bid = issued_bill(billing_desk, appointment_id=str(visit))
    html = page(billing_desk, f"/patients/{patient}")
    assert "Bills" in html and f"BOS/{FY}/000001" in html and f"/bills/{bid}" in html and "New bill" in html
    assert "₹500.00" in html


def test_a_discount_in_rupees_above_the_line_is_refused_with_the_input_kept(billing_desk, patient, prices, sql):
    bid = new_bill(billing_desk, patient_id=patient)
    for headers in ({}, HTMX):
        billing_desk.get(f"/bills/{bid}")
        mark = high_water(sql)
        response = billing_desk.post(f"/bills/{bid}/lines", {"item_id": str(prices.lab), "quantity": "1",
                                                             "discount": "450", "discount_kind": "amount"},
                                     headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 422, html[:1000]
        assert 'value="450"' in html and "more than the line" in html and "₹400.00" in html
        assert ("<html" in html) is not bool(headers)
        assert [row[:5] for row in audit_since(sql, mark)] == [
            ("bill.line_add", "allowed", patient, None, "not saved: invalid")]
    assert "No lines yet" in page(billing_desk, f"/bills/{bid}")
    assert sql("SELECT count(*) FROM billing_event WHERE bill_id = :b AND action = 'line_added'", b=bid)[0][0] == 0
    assert add(billing_desk, bid, prices.lab, "1", discount="400", discount_kind="amount").status_code == 303


def test_the_other_refusals_on_a_draft_are_answered_not_raised(billing_desk, patient, prices, doctor, sql, clinic):
    """Every BillingError a draft's routes can meet is a 409 page with its message, never a 500."""
    later = today() + timedelta(days=400)  # a rate not yet in force: no GST rate on today's bill
    add_item(sql, clinic.id, "LASER", "Laser session", "999722", "2000.00", treatment="taxable", rates=[(later, "18")])
    type_id = consultation_type(sql, clinic.id, code="LASER")
    bid = new_bill(billing_desk, patient_id=patient)
    response = add(billing_desk, bid, "", code="LASER")
    assert response.status_code == 409 and "Laser session has no GST rate in force" in response.get_data(as_text=True)
    visit = completed_visit(sql, clinic.id, doctor.id, patient, type_id=type_id)
    response = billing_desk.post("/bills/new", {"appointment_id": str(visit)}, page="/billing")
    assert response.status_code == 409 and "Laser session has no GST rate in force" in response.get_data(as_text=True)
    assert add(billing_desk, bid, prices.lab).status_code == 303
    line = re.search(rf'/bills/{bid}/lines/([0-9a-f-]{{36}})/remove', page(billing_desk, f"/bills/{bid}")).group(1)
    assert billing_desk.post(f"/bills/{bid}/lines/{line}/remove", {}).status_code == 303
    response = billing_desk.post(f"/bills/{bid}/lines/{line}/remove", {})  # a second click
    assert response.status_code == 409 and "That line is no longer on this draft." in response.get_data(as_text=True)
    assert sql("SELECT count(*) FROM bill")[0][0] == 1


def test_a_line_the_engine_cannot_price_keeps_its_own_message_not_a_discount_one(billing_desk, patient, sql, clinic,
                                                                                  gst_ready):
    """Only a ₹ discount above quantity times unit price is a discount problem; an item the engine refuses for
    another reason (here a legacy HSN code of two digits) says so, on the item, with no discount typed."""
    legacy = add_item(sql, clinic.id, "OLD", "Legacy dressing", "30", "100.00")
    bid = new_bill(billing_desk, patient_id=patient)
    billing_desk.get(f"/bills/{bid}")
    response = billing_desk.post(f"/bills/{bid}/lines", {"item_id": str(legacy), "quantity": "2", "discount": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422, html[:1000]
    assert "is not a 4, 6 or 8 digit HSN/SAC code" in html and "more than the line" not in html
    response = billing_desk.post(f"/bills/{bid}/lines", {"item_id": str(legacy), "quantity": "2", "discount": "250",
                                                         "discount_kind": "amount"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "Discount: ₹250.00 is more than the line&#39;s ₹200.00." in html
