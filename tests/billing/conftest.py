"""Billing test set-up: a GST-registered clinic in Karnataka (29) with its profile, a price list
(exempt consultation and lab test, an MRP medicine whose rate fell from 12% to 5% on 22 Sep 2025, a
taxable cosmetic procedure at 18%), and completed visits to bill.

Tests import what they need: `from tests.billing.conftest import ...` plus the scheduling fixtures.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from app.auth.policy import Role
from app.billing import credit_notes, issuing, services
from app.billing.models import PriceItem
from app.clinics.models import Clinic
from app.db import get_session, new_id, set_tenant
from app.patients.models import Patient
from tests.conftest import patient_id
from tests.scheduling.conftest import doctor, insert_appointment, setup, today  # noqa: F401

CLINIC_GSTIN = "29AABCR1718E1ZL"
BUYER_GSTIN = "27AAACR5055K1Z7"  # a registered recipient in Maharashtra
SIGNATORY = "Dr Asha Menon"
DAY = date(2026, 11, 20)  # a day in financial year 2026-27


@dataclass
class Prices:
    consultation: uuid.UUID  # CONSULT: SAC 999312, exempt, ₹500, fee validity
    lab: uuid.UUID  # CBC: SAC 999316, exempt, ₹400
    medicine: uuid.UUID  # PARA: HSN 3004, MRP ₹35.00 a strip, 12% then 5% from 2025-09-22
    cosmetic: uuid.UUID  # BOTOX: SAC 999722, ₹6,000 + 18%


def add_item(sql, clinic_id, code, name, hsn, price, *, treatment="exempt", mrp=False, unit="NOS", fee_validity=False,
             rates=()) -> uuid.UUID:
    item_id = new_id()
    sql("INSERT INTO price_item (clinic_id, id, code, name, hsn_sac, unit, price, price_includes_tax, treatment, "
        "fee_validity, active, version, created_at, updated_at) VALUES (:c, :i, :code, :n, :h, :u, :p, :m, :t, :f, "
        "true, 1, now(), now())", c=clinic_id, i=item_id, code=code, n=name, h=hsn, u=unit, p=price, m=mrp, t=treatment,
        f=fee_validity)
    for since, rate in rates:
        sql("INSERT INTO price_rate (clinic_id, id, item_id, effective_from, rate, created_at) "
            "VALUES (:c, :i, :item, :s, :r, now())", c=clinic_id, i=new_id(), item=item_id, s=since, r=rate)
    return item_id


@pytest.fixture
def gst_ready(sql, clinic):
    """The clinic registered for GST, with its signatory, series prefixes and 7 days' fee validity."""
    sql("UPDATE clinic SET gstin = :g, legal_name = 'Rao Health Clinics Private Limited', address_line = "
        "'12 MG Road', city = 'Bengaluru', pin_code = '560001', state_code = '29' WHERE id = :c",
        g=CLINIC_GSTIN, c=clinic.id)
    sql("INSERT INTO billing_profile (clinic_id, signatory_name, signatory_designation, invoice_prefix, "
        "bill_of_supply_prefix, credit_note_prefix, receipt_prefix, fee_validity_days, updated_at) VALUES "
        "(:c, :s, 'Medical Director', 'INV', 'BOS', 'CN', 'RCT', 7, now())", c=clinic.id, s=SIGNATORY)
    clinic.gstin, clinic.state_code = CLINIC_GSTIN, "29"
    return clinic


@pytest.fixture
def prices(sql, clinic, gst_ready) -> Prices:
    c = clinic.id
    return Prices(
        consultation=add_item(sql, c, "CONSULT", "General consultation", "999312", "500.00", fee_validity=True),
        lab=add_item(sql, c, "CBC", "Complete blood count", "999316", "400.00"),
        medicine=add_item(sql, c, "PARA", "Paracetamol 500 mg (strip of 10)", "3004", "35.00", treatment="taxable",
                          mrp=True, rates=[(date(2017, 7, 1), "12"), (date(2025, 9, 22), "5")]),
        cosmetic=add_item(sql, c, "BOTOX", "Botulinum toxin (cosmetic)", "999722", "6000.00", treatment="taxable",
                          rates=[(date(2017, 7, 1), "18")]),
    )


@pytest.fixture
def billing_desk(new_browser, factory, clinic):
    """A browser signed in as a receptionist of the clinic."""
    browser = new_browser()
    browser.sign_in(factory.person(clinic, Role.RECEPTION, name="Ritu Desk"))
    return browser


@pytest.fixture
def accounts(new_browser, factory, clinic):
    """A browser signed in as the clinic's billing clerk."""
    browser = new_browser()
    browser.sign_in(factory.person(clinic, Role.BILLING, name="Vikram Accounts"))
    return browser


def consultation_type(sql, clinic_id, code="CONSULT") -> uuid.UUID:
    type_id = new_id()
    sql("INSERT INTO appointment_type (clinic_id, id, name, duration_minutes, colour, billable_item, active, "
        "created_at) VALUES (:c, :i, 'Consultation', 15, 'teal', :b, true, now())", c=clinic_id, i=type_id, b=code)
    return type_id


def completed_visit(sql, clinic_id, doctor_id, patient: str, *, type_id=None, day: date | None = None) -> uuid.UUID:
    """A completed walk-in visit (written directly) for the patient, today unless `day`."""
    return insert_appointment(sql, clinic_id, doctor_id, patient, day=day or today(), status="completed", token=1,
                              type_id=type_id)


@pytest.fixture
def patient(billing_desk) -> str:
    """A patient registered over HTTP (Karnataka address), as a patient id."""
    response = billing_desk.post("/patients/new", {
        "full_name": "Kavya Iyer", "sex": "F", "dob": "1990-03-15", "phone": "9845012345", "state_code": "29",
        "address_line": "4 Residency Road", "city": "Bengaluru", "pin_code": "560025", "language": "en",
        "consent_treatment": "y"}, page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    return patient_id(response.headers["Location"])


def bill_id(location: str) -> str:
    return re.search(r"/bills/([0-9a-f-]{36})", location).group(1)


def issue_document(app, clinic, patient: str, *items, recipient=None, credit=None, day=DAY) -> list[str]:
    """Issue a document of these (item, quantity) lines (and a credit note of it); its/their ids. The app
    context is closed again before any HTTP request (an open one would leak into the test client)."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        c = db.get(Clinic, clinic.id)
        bill = services.new_draft(db, clinic=c, patient=db.get(Patient, (clinic.id, uuid.UUID(patient))),
                                  appointment=None, by=None, day=day)
        if recipient:
            services.set_recipient(db, bill, {**services.recipient_of(db, bill), **recipient}, by=None)
        for item_id, quantity in items:
            services.add_line(db, bill, item=db.get(PriceItem, (clinic.id, item_id)), quantity=Decimal(quantity),
                              discount=None, by=None, day=day)
        issued = issuing.issue(db, clinic=c, bill=bill, by=None, day=day)
        ids = [str(doc.id) for doc in issued]
        if credit:
            note = credit_notes.issue_credit_note(db, clinic=c, original=issued[0], quantities={}, reason=credit,
                                                  by=None, day=day)
            ids.append(str(note.id))
        db.commit()
        return ids
