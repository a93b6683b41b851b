# ruff: noqa: F811  (fixtures imported from the billing set-up are redefined as arguments, as pytest means)
"""The desk bills a visit in Chromium: a completed consultation (exempt) is billed from the billing
home, a strip of paracetamol (taxable, MRP) is added, the preview shows the tax split and the
document it will be, it is issued as an invoice-cum-bill of supply, the patient pays part by UPI, a
real RQ worker renders the PDF while the page waits and the PDF is downloaded; then the billing clerk
issues a credit note for the returned medicine and the balance follows."""

import re
import threading

import pytest
from playwright.sync_api import Page, expect

from app.auth.policy import Role
from tests.billing.conftest import (  # noqa: F401
    accounts,
    billing_desk,
    completed_visit,
    consultation_type,
    doctor,
    gst_ready,
    patient,
    prices,
)
from tests.conftest import run_worker
from tests.e2e.conftest import sign_in_as

pytestmark = pytest.mark.e2e

# Rendering waits for a worker started after the issue; the page polls every 2 s.
PDF_TIMEOUT_MS = 60_000


@pytest.fixture
def visit(sql, clinic, doctor, patient, prices):
    """The patient's consultation with the doctor, completed today (its type bills CONSULT)."""
    return completed_visit(sql, clinic.id, doctor.id, patient, type_id=consultation_type(sql, clinic.id))


def test_bill_a_visit_take_part_payment_download_the_pdf_and_credit_the_medicine(
        page: Page, open_page, live_server, factory, clinic, visit, app_config, tmp_path):
    desk = factory.person(clinic, role=Role.RECEPTION,
                          name="Ritu Sharma")
    sign_in_as(page, desk)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    visits = page.locator("section", has=page.get_by_role("heading", name="Visits to bill today"))
    expect(visits).to_contain_text("Kavya Iyer")
    visits.get_by_role("button", name="Bill").click()

    # The draft starts with the visit's consultation; add two strips of the medicine.
    expect(page.get_by_role("heading", name="Draft bill")).to_be_visible()
    expect(page.get_by_role("button", name="Remove General consultation")).to_be_visible()
    page.get_by_label("Item").select_option(label="Paracetamol 500 mg (strip of 10) — ₹35.00 MRP (PARA)")
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add line").click()
    expect(page.get_by_role("button", name="Remove Paracetamol 500 mg (strip of 10)")).to_be_visible()
    preview = page.locator("section", has=page.get_by_role("heading", name="Preview"))
    expect(preview).to_contain_text("Invoice-cum-Bill of Supply")
    expect(preview).to_contain_text("CGST")
    expect(preview).to_contain_text("570.00")
    page.get_by_role("button", name=re.compile(r"^Issue ")).click()

    # Issued: numbered, and the PDF is on its way.
    expect(page.get_by_role("heading", name=re.compile(r"INV.\d\d-\d\d.000001"))).to_be_visible()
    expect(page.get_by_text("Generating PDF…")).to_be_visible()

    # The patient pays ₹300 by UPI now.
    payment = page.locator("#payments")
    payment.get_by_label("UPI").check()
    payment.get_by_label("Amount (₹)").fill("300")
    payment.get_by_label("Reference").fill("412345678901")
    payment.get_by_role("button", name="Record payment").click()
    expect(page.locator("#payments")).to_contain_text("270.00")
    expect(page.locator("#payments")).to_contain_text("RCT/")

    # A real worker renders the PDF; the page notices by itself.
    worker = threading.Thread(target=run_worker, args=(app_config,), daemon=True)
    worker.start()
    download_link = page.get_by_role("link", name="Download PDF")
    expect(download_link).to_be_visible(timeout=PDF_TIMEOUT_MS)
    with page.expect_download() as info:
        download_link.click()
    saved = tmp_path / "invoice.pdf"
    info.value.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")
    worker.join(120)
    invoice_url = page.url

    # The billing clerk credits the returned medicine (the desk cannot).
    clerk_page = open_page(live_server)
    clerk = factory.person(clinic, role=Role.BILLING,
                           name="Vikram Accounts")
    sign_in_as(clerk_page, clerk)
    clerk_page.goto(invoice_url)
    clerk_page.get_by_role("link", name="Issue credit note").click()
    clerk_page.get_by_label("Return", exact=True).check()
    clerk_page.get_by_label("Paracetamol 500 mg (strip of 10)").fill("2")
    clerk_page.get_by_role("button", name="Issue credit note").click()
    expect(clerk_page.get_by_role("heading", name=re.compile(r"CN.\d\d-\d\d.0+1"))).to_be_visible()
    expect(clerk_page.locator("main")).to_contain_text("INV/")
    clerk_page.goto(invoice_url)
    # ₹570 billed, ₹70 credited, ₹300 paid: ₹200 still due.
    expect(clerk_page.locator("#payments")).to_contain_text("200.00")
