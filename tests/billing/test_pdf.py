# ruff: noqa: F811
"""The printed document and its PDF: every particular Rules 46/46A/49/53(1A) require, read back from the
PDF's text; byte-identical regeneration; the download (audited, 409 while pending, receptionist yes,
auditor no); the status fragment with and without htmx; retry of a failed PDF; Hindi names drawn in
Devanagari on any server (the page rendered and read back, tests/printed.py)."""

import io
import uuid
from datetime import date
from decimal import Decimal

import pytest
from flask import render_template
from pypdf import PdfReader

from app import formats
from app.auth.policy import Role
from app.billing import documents, services
from app.billing import pdf as bill_pdf
from app.billing.models import Bill, CreditReason, PriceItem
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.patients.models import Patient
from jobs.invoices import render_bill_pdf
from tests.billing.conftest import (  # noqa: F401
    BUYER_GSTIN,
    CLINIC_GSTIN,
    SIGNATORY,
    add_item,
    billing_desk,
    doctor,
    gst_ready,
    issue_document,
    patient,
    prices,
)
from tests.conftest import patient_id
from tests.printed import Page, server_fonts  # noqa: F401
from tests.scheduling.conftest import HTMX, audit_since, high_water, sign_in  # noqa: F401

DAY = date(2026, 11, 20)


def _render(app, clinic, bill_id) -> bytes:
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        data = bill_pdf.render(db, db.get(Bill, (clinic.id, uuid.UUID(bill_id))))
        db.rollback()
        return data


def _store(app, clinic, bill_id) -> str:
    """Run the worker's job function in this app (the real worker is tests/jobs/test_invoice_pdf.py)."""
    with app.app_context():
        return render_bill_pdf.__wrapped__(str(clinic.id), bill_id)


def _text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def _common(text: str):
    """Rule 46(a), (c), (d)/(e), (p), (q) on every document."""
    for particular in ("Rao Health Clinics Private Limited", "Trade name: Sunrise Clinic", "12 MG Road",
                       "Bengaluru", "560001", f"GSTIN: {CLINIC_GSTIN}", "State: 29-Karnataka",
                       "Date of issue: 20 Nov 2026", "Kavya Iyer", "4 Residency Road", "560025",
                       "Phone: +919845012345", "Reverse charge: No", SIGNATORY, "Medical Director",
                       "Authorised signatory", "computer-generated"):
        assert particular in text, (particular, text)


def test_tax_invoice_pdf_carries_every_particular(app, clinic, patient, prices):
    [bill_id] = issue_document(app, clinic, patient, (prices.cosmetic, 1))
    data = _render(app, clinic, bill_id)
    assert data.startswith(b"%PDF")
    text = _text(data)
    _common(text)
    for particular in ("Tax Invoice", "INV/26-27/000001", "Place of supply: 29-Karnataka",
                       "Botulinum toxin (cosmetic)", "999722", "1 NOS", "₹6,000.00", "Taxable value",
                       "9%", "₹540.00", "CGST", "SGST", "Round off", "Grand total",
                       "₹7,080.00", "Amount in words: Rupees Seven Thousand Eighty Only"):
        assert particular in text, (particular, text)
    assert "IGST" not in text and "Exempt" not in text and "Draft" not in text


def test_invoice_cum_bill_of_supply_pdf_marks_exempt_lines_and_mrp(app, clinic, patient, prices):
    [bill_id] = issue_document(app, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))
    text = _text(_render(app, clinic, bill_id))
    _common(text)
    for particular in ("Invoice-cum-Bill of Supply", "INV/26-27/000001", "General consultation", "999312",
                       "Exempt", "Paracetamol 500 mg (strip of 10)", "3004", "2 NOS", "₹35.00",
                       "Price includes GST (MRP)", "2.5%", "₹1.67", "Exempt value", "₹500.00", "₹66.66",
                       "₹570.00", "Rupees Five Hundred Seventy Only"):
        assert particular in text, (particular, text)


def test_bill_of_supply_pdf_shows_no_tax(app, clinic, patient, prices):
    [bill_id] = issue_document(app, clinic, patient, (prices.consultation, 1), (prices.lab, 1))
    text = _text(_render(app, clinic, bill_id))
    _common(text)
    for particular in ("Bill of Supply", "BOS/26-27/000001", "Complete blood count", "999316", "Exempt",
                       "Exempt value", "₹900.00", "Rupees Nine Hundred Only"):
        assert particular in text, (particular, text)
    assert "Tax Invoice" not in text and "CGST" not in text and "Taxable value" not in text


def test_credit_note_pdf_names_the_original_and_prints_absolute_amounts(app, sql, clinic, patient, prices):
    original, note = issue_document(app, clinic, patient, (prices.cosmetic, 1), credit=CreditReason.CANCEL)
    text = _text(_render(app, clinic, note))
    _common(text)
    [(number,)] = sql("SELECT number FROM bill WHERE id = :b", b=note)
    assert number.startswith("CN/26-27/")
    for particular in ("Credit Note", number, "INV/26-27/000001", "dated 20 Nov 2026",
                       "Reason: Cancellation of the original document", "₹6,000.00", "₹540.00", "₹7,080.00",
                       "Total credited", "Rupees Seven Thousand Eighty Only"):
        assert particular in text, (particular, text)
    assert "-₹" not in text and "1 NOS" in text
    # The original's page (not its PDF, which is the document as issued) says it was cancelled, and by what.
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        cancelled = documents.paper(db, db.get(Bill, (clinic.id, uuid.UUID(original))))
        assert cancelled.cancelled == f"Cancelled by {number} on 20 Nov 2026"
        with app.test_request_context():
            assert f"Cancelled by {number} on 20 Nov 2026" in render_template("billing/_paper.html", paper=cancelled)
        as_issued = documents.paper(db, db.get(Bill, (clinic.id, uuid.UUID(original))), as_issued=True)
        assert as_issued.cancelled == ""
        db.rollback()


def test_goods_to_a_registered_buyer_in_another_state_are_igst_with_its_state(app, clinic, patient, prices):
    invoice, supply = issue_document(app, clinic, patient, (prices.consultation, 1), (prices.medicine, 1),
                             recipient={"gstin": BUYER_GSTIN, "name": "Acme Pharma Ltd", "state_code": "27"})
    text = _text(_render(app, clinic, invoice))
    for particular in ("Tax Invoice", "Acme Pharma Ltd", f"GSTIN: {BUYER_GSTIN}", "State: 27-Maharashtra",
                       "Place of supply: 27-Maharashtra", "IGST", "5%", "₹1.67"):
        assert particular in text, (particular, text)
    assert "Bill of Supply" in _text(_render(app, clinic, supply))


def test_draft_paper_says_it_is_not_a_valid_document(app, clinic, patient, prices):
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        bill = services.new_draft(db, clinic=db.get(Clinic, clinic.id),
                                  patient=db.get(Patient, (clinic.id, uuid.UUID(patient))), appointment=None, by=None,
                                  day=DAY)
        services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, prices.cosmetic)), quantity=Decimal(1),
                          discount=None, by=None, day=DAY)
        paper = documents.paper(db, bill)
        assert paper.draft and paper.number == "" and paper.supplier.gstin == CLINIC_GSTIN
        with app.test_request_context():
            html = render_template("billing/_paper.html", paper=paper)
        assert "Draft — not a valid document" in html and "Document no." not in html
        assert paper.signatory_name == SIGNATORY
        db.rollback()


def test_regenerating_a_document_gives_the_same_bytes(app, clinic, patient, prices):
    [bill_id] = issue_document(app, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))
    first, second = _render(app, clinic, bill_id), _render(app, clinic, bill_id)
    assert bill_pdf.sha256(first) == bill_pdf.sha256(second)
    digest = _store(app, clinic, bill_id)
    assert digest == bill_pdf.sha256(first)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        assert bill_pdf.verify_regeneration(db, db.get(Bill, (clinic.id, uuid.UUID(bill_id))))
        db.rollback()


def test_download_is_409_while_pending_then_the_stored_pdf_audited(app, sql, clinic, patient, prices, billing_desk):
    [bill_id] = issue_document(app, clinic, patient, (prices.cosmetic, 1))
    mark = high_water(sql)
    response = billing_desk.get(f"/bills/{bill_id}.pdf")
    assert response.status_code == 409
    assert "still being made" in response.get_data(as_text=True)
    assert not [row for row in audit_since(sql, mark) if row[0] == "bill.download"]

    digest = _store(app, clinic, bill_id)
    mark = high_water(sql)
    response = billing_desk.client.get(f"/bills/{bill_id}.pdf")  # bytes: not read as a page
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="INV-26-27-000001.pdf"'
    assert response.headers["Cache-Control"] == "no-store"
    assert bill_pdf.sha256(response.data) == digest
    assert "Kavya Iyer" in _text(response.data)
    assert [row[:3] for row in audit_since(sql, mark)] == [("bill.download", "allowed", patient)]


def test_an_auditor_cannot_download_and_a_foreign_bill_is_404(app, clinic, patient, prices, sign_in, billing_desk):
    [bill_id] = issue_document(app, clinic, patient, (prices.cosmetic, 1))
    _store(app, clinic, bill_id)
    assert sign_in(Role.AUDITOR).get(f"/bills/{bill_id}.pdf").status_code == 403
    assert billing_desk.get(f"/bills/{uuid.uuid4()}.pdf").status_code == 404


def test_status_fragment_polls_while_pending_and_offers_the_download_when_ready(app, clinic, patient, prices,
                                                                               billing_desk):
    [bill_id] = issue_document(app, clinic, patient, (prices.cosmetic, 1))
    fragment = billing_desk.get(f"/bills/{bill_id}/pdf-status", headers=HTMX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert "Generating PDF…" in html and 'hx-trigger="every 2s"' in html and 'hx-swap="outerHTML"' in html
    assert f'hx-get="/bills/{bill_id}/pdf-status"' in html

    page = billing_desk.get(f"/bills/{bill_id}/pdf-status")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and "Generating PDF…" in html
    assert f'href="/bills/{bill_id}/pdf-status"' in html and "Refresh" in html

    _store(app, clinic, bill_id)
    html = billing_desk.get(f"/bills/{bill_id}/pdf-status", headers=HTMX).get_data(as_text=True)
    assert "Download PDF" in html and f'href="/bills/{bill_id}.pdf"' in html and "hx-trigger" not in html


def test_a_failed_pdf_shows_the_error_and_retry_queues_it_again(app, sql, clinic, patient, prices, billing_desk):
    [bill_id] = issue_document(app, clinic, patient, (prices.cosmetic, 1))
    sql("UPDATE bill_pdf SET status = 'failed', attempts = 3, error = 'RuntimeError: font missing' "
        "WHERE bill_id = :b", b=bill_id)
    page = f"/bills/{bill_id}/pdf-status"
    html = billing_desk.get(page).get_data(as_text=True)
    assert "The PDF could not be made: RuntimeError: font missing" in html and "Retry" in html
    assert f'action="/bills/{bill_id}/pdf/retry"' in html

    response = billing_desk.post(f"/bills/{bill_id}/pdf/retry", page=page, headers=HTMX)
    assert response.status_code == 200
    assert "Generating PDF…" in response.get_data(as_text=True)
    assert sql("SELECT status, attempts, error FROM bill_pdf WHERE bill_id = :b", b=bill_id) == [("pending", 0, None)]

    sql("UPDATE bill_pdf SET status = 'failed' WHERE bill_id = :b", b=bill_id)
    response = billing_desk.post(f"/bills/{bill_id}/pdf/retry", page=page)
    assert response.status_code == 303
    assert sql("SELECT status FROM bill_pdf WHERE bill_id = :b", b=bill_id) == [("pending",)]


def test_a_clinic_not_registered_for_gst_prints_a_plain_bill(app, sql, clinic, patient, prices):
    sql("UPDATE clinic SET gstin = NULL WHERE id = :c", c=clinic.id)
    [bill_id] = issue_document(app, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))
    text = _text(_render(app, clinic, bill_id))
    for particular in ("Bill", "INV/26-27/000001", "General consultation", "Paracetamol", "₹570.00",
                       "Rupees Five Hundred Seventy Only", "not registered under GST", "Authorised signatory"):
        assert particular in text, (particular, text)
    for absent in ("GSTIN", "Reverse charge", "Place of supply", "CGST", "Exempt", "MRP", "Tax Invoice"):
        assert absent not in text, (absent, text)


def test_a_pdf_waiting_too_long_offers_retry_which_is_audited_and_queued(app, sql, clinic, patient, prices,
                                                                          billing_desk):
    from jobs.invoices import job_id
    from jobs.worker import LOW, queue, redis_connection
    from tests.scheduling.conftest import audit_since, high_water

    [bill_id] = issue_document(app, clinic, patient, (prices.lab, 1))
    page = f"/bills/{bill_id}/pdf-status"
    assert "Retry" not in billing_desk.get(page).get_data(as_text=True)
    sql("UPDATE bill_pdf SET requested_at = now() - interval '10 minutes' WHERE bill_id = :b", b=bill_id)
    html = billing_desk.get(page).get_data(as_text=True)
    assert "taking longer than usual" in html and "Retry" in html
    mark = high_water(sql)
    assert billing_desk.post(f"/bills/{bill_id}/pdf/retry", page=page, headers=HTMX).status_code == 200
    assert [e[0] for e in audit_since(sql, mark)] == ["bill.pdf_retry"]
    with app.app_context():
        assert queue(redis_connection(app.config["REDIS_URL"]), LOW).fetch_job(job_id(bill_id)) is not None


@pytest.mark.parametrize("day, text", [(date(2026, 4, 5), "05 Apr 2026"), (date(2027, 12, 31), "31 Dec 2027")])
def test_dates_print_as_day_month_year(day, text):
    assert formats.day(day) == text


def test_hindi_names_print_in_devanagari_on_any_server(app, sql, clinic, prices, billing_desk, server_fonts,
                                                      tmp_path):
    response = billing_desk.post("/patients/new", {
        "full_name": "सुनीता देवी शर्मा", "sex": "F", "dob": "1990-03-15", "phone": "9845012345", "state_code": "29",
        "address_line": "4 Residency Road", "city": "Bengaluru", "pin_code": "560025", "language": "hi",
        "consent_treatment": "y"}, page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    consultation = add_item(sql, clinic.id, "PARAMARSH", "परामर्श शुल्क (2 बार)", "999312", "500.00")
    [bill_id] = issue_document(app, clinic, patient_id(response.headers["Location"]), (consultation, 1))
    page = Page(_render(app, clinic, bill_id), tmp_path)
    assert page.undrawn() == []
    read = page.read()
    missing = [text for text in ("सुनीतादेवीशर्मा", "परामर्शशुल्क(2बार)") if not any(text in block for block in read)]
    assert missing == [], read
