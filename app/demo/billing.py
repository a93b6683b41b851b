"""Demo billing: each clinic's GST identity and billing profile, a price list (exempt consultations, tests
and procedures; medicines at MRP whose GST fell from 12% to 5% on 22 Sep 2025; a cosmetic procedure at
18%), appointment types pointing at their price items, and the week's completed visits billed and paid.

Every document is made the way the desk makes it: a draft from the visit's appointment
(app.billing.services.new_draft, fee validity and all), sometimes a medicine added, issued on the
visit's day, paid (cash, UPI with its 12-digit UTR, card; some only in part, some not yet), plus one
return of a medicine by credit note (refunded) and one cancelled document, so the numbers, the billing
history and the patients' timelines are the real thing. The PDFs stay pending for the RQ worker.
"""

import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.billing import credit_notes, issuing, payments, services
from app.billing.models import (
    Bill,
    BillingProfile,
    BillStatus,
    CreditReason,
    PaymentMode,
    PriceItem,
    PriceRate,
)
from app.billing.tax import Treatment
from app.clinics.models import Clinic
from app.clinics.states import gstin_check_character, is_valid_gstin
from app.db import new_id, utcnow
from app.patients.models import Patient
from app.scheduling.models import Appointment, AppointmentType, Status

GST_START, RATE_CUT = date(2017, 7, 1), date(2025, 9, 22)
MEDICINE_RATES = ((GST_START, "12"), (RATE_CUT, "5"))
# The first 14 characters of each demo clinic's GSTIN (state, PAN, entity number, "Z"); the 15th is
# the check character, computed.
GSTIN_BODIES = {"29": "29AABCI4821K1Z", "27": "27AACCK7310M1Z"}
SIGNATORIES = {"29": ("Dr. Vikram Rao", "Designated Partner"), "27": ("Dr. Sanjay Kulkarni", "Director")}

# (code, name, HSN/SAC, unit, price, treatment, MRP, fee validity, rates)
PRICE_LIST = [
    ("CONSULT", "General consultation", "999312", "NOS", "500.00", Treatment.EXEMPT, False, True, ()),
    ("SPECIALIST", "Specialist consultation", "999312", "NOS", "800.00", Treatment.EXEMPT, False, True, ()),
    ("FOLLOWUP", "Follow-up consultation", "999312", "NOS", "300.00", Treatment.EXEMPT, False, True, ()),
    ("CBC", "Complete blood count (CBC)", "999316", "NOS", "400.00", Treatment.EXEMPT, False, False, ()),
    ("LIPID", "Lipid profile", "999316", "NOS", "650.00", Treatment.EXEMPT, False, False, ()),
    ("DRESSING", "Wound dressing (minor procedure)", "999312", "NOS", "250.00", Treatment.EXEMPT, False, False, ()),
    ("ECG", "Electrocardiogram (ECG)", "999316", "NOS", "300.00", Treatment.EXEMPT, False, False, ()),
    ("VACC-ADMIN", "Vaccine administration", "999312", "NOS", "150.00", Treatment.EXEMPT, False, False, ()),
    ("PARA650", "Paracetamol 650 mg (strip of 15)", "3004", "STR", "33.50", Treatment.TAXABLE, True, False,
     MEDICINE_RATES),
    ("AMOX500", "Amoxicillin 500 mg (strip of 10)", "3004", "STR", "118.00", Treatment.TAXABLE, True, False,
     MEDICINE_RATES),
    ("ORS", "ORS powder, 21.8 g sachet", "3004", "NOS", "22.00", Treatment.TAXABLE, True, False, MEDICINE_RATES),
    ("COUGH100", "Cough syrup 100 ml", "3004", "BTL", "112.00", Treatment.TAXABLE, True, False, MEDICINE_RATES),
    ("CREPE10", "Crepe bandage 10 cm", "3005", "NOS", "145.00", Treatment.TAXABLE, True, False, MEDICINE_RATES),
    ("PEEL", "Chemical peel (cosmetic)", "999722", "NOS", "2500.00", Treatment.TAXABLE, False, False,
     ((GST_START, "18"),)),
]
MEDICINES = ("PARA650", "AMOX500", "ORS", "COUGH100", "CREPE10")
# Appointment type (by name) -> the price item its visits are billed with.
TYPE_ITEMS = {"Consultation": "CONSULT", "New patient": "CONSULT", "Follow-up": "FOLLOWUP",
              "Procedure": "DRESSING", "Vaccination": "VACC-ADMIN"}
GENERAL = "General Medicine"


def clinic_gstin(state_code: str) -> str:
    body = GSTIN_BODIES[state_code]
    return body + gstin_check_character(body)


def seed_billing(db: Session, clinic: Clinic, desk: uuid.UUID, rng: random.Random) -> list[Bill]:
    """The clinic's GST set-up and price list, and its completed visits billed; returns the issued documents."""
    if not clinic.gstin or not is_valid_gstin(clinic.gstin):
        clinic.gstin = clinic_gstin(clinic.state_code)
    signatory, designation = SIGNATORIES.get(clinic.state_code, ("Dr. Vikram Rao", "Proprietor"))
    db.add(BillingProfile(clinic_id=clinic.id, signatory_name=signatory, signatory_designation=designation,
                          invoice_prefix="INV", bill_of_supply_prefix="BOS", credit_note_prefix="CN",
                          receipt_prefix="RCT", fee_validity_days=7, updated_by=desk))
    items = price_list(db, clinic, desk)
    for kind in db.scalars(select(AppointmentType).where(AppointmentType.clinic_id == clinic.id)):
        kind.billable_item = TYPE_ITEMS.get(kind.name, kind.billable_item)
    db.flush()
    visits = db.scalars(select(Appointment).where(Appointment.clinic_id == clinic.id,
                                                  Appointment.status == Status.COMPLETED,
                                                  Appointment.finished_at.is_not(None))
                        .order_by(Appointment.finished_at, Appointment.id)).all()
    specialists = {user_id for user_id, speciality in db.execute(
        select(StaffUser.id, StaffUser.speciality).where(StaffUser.id.in_({a.doctor_id for a in visits})))
        if speciality and speciality != GENERAL}
    issued: list[Bill] = []
    cosmetic_done = False
    for a in visits:
        cosmetic = not cosmetic_done and a.doctor_id not in specialists and rng.random() < 0.15
        cosmetic_done |= cosmetic
        issued += _bill_visit(db, clinic, a, items, desk, rng, specialist=a.doctor_id in specialists,
                              cosmetic=cosmetic)
    _credit_notes(db, clinic, issued, desk)
    db.flush()
    return issued


def price_list(db: Session, clinic: Clinic, by: uuid.UUID) -> dict[str, PriceItem]:
    items = {}
    for code, name, hsn, unit, price, treatment, mrp, validity, rates in PRICE_LIST:
        item = PriceItem(clinic_id=clinic.id, id=new_id(), code=code, name=name, hsn_sac=hsn, unit=unit,
                         price=Decimal(price), price_includes_tax=mrp, treatment=treatment, fee_validity=validity,
                         active=True, version=1, updated_by=by)
        db.add(item)
        db.flush()
        for since, rate in rates:
            db.add(PriceRate(clinic_id=clinic.id, id=new_id(), item_id=item.id, effective_from=since,
                             rate=Decimal(rate), created_by=by))
        items[code] = item
    db.flush()
    return items


def _bill_visit(db: Session, clinic: Clinic, a: Appointment, items: dict[str, PriceItem], desk: uuid.UUID,
                rng: random.Random, *, specialist: bool, cosmetic: bool) -> list[Bill]:
    """Bill one visit at the desk a few minutes after it ended, and take (some of) the money."""
    day, at = a.day, min(a.finished_at + timedelta(minutes=rng.randint(3, 9)), utcnow())
    patient = db.get(Patient, (clinic.id, a.patient_id))
    bill = services.new_draft(db, clinic=clinic, patient=patient, appointment=a, by=desk, day=day)
    lines = services.lines_of(db, bill)
    if specialist and lines and lines[0].item_id == items["CONSULT"].id and lines[0].total > 0:
        services.remove_line(db, bill, lines[0].id, by=desk, day=day)
        services.add_line(db, bill, item=items["SPECIALIST"], quantity=Decimal(1), discount=None, by=desk, day=day)
    roll = rng.random()
    if roll < 0.35:
        services.add_line(db, bill, item=items[rng.choice(MEDICINES)], quantity=Decimal(rng.randint(1, 3)),
                          discount=None, by=desk, day=day)
    elif roll < 0.45:
        services.add_line(db, bill, item=items[rng.choice(("CBC", "LIPID", "ECG"))], quantity=Decimal(1),
                          discount=None, by=desk, day=day)
    if cosmetic:
        services.add_line(db, bill, item=items["PEEL"], quantity=Decimal(1), discount=None, by=desk, day=day)
    if not services.lines_of(db, bill):
        services.discard(db, bill)
        return []
    documents = issuing.issue(db, clinic=clinic, bill=bill, by=desk, now=at, day=day)
    for document in documents:
        _pay(db, document, desk, rng, day, at + timedelta(minutes=1))
    return documents


def _pay(db: Session, bill: Bill, desk: uuid.UUID, rng: random.Random, day: date, at: datetime) -> None:
    due = payments.account_of(db, bill).due
    if due <= 0:
        return  # a free follow-up
    roll = rng.random()
    if roll < 0.12:
        return  # to be paid later: an open balance
    amount = (due / 2).quantize(Decimal(1)).quantize(Decimal("0.01")) if roll < 0.25 else due
    mode = rng.choices((PaymentMode.CASH, PaymentMode.UPI, PaymentMode.CARD), weights=(4, 5, 2))[0]
    reference = None
    if mode is PaymentMode.UPI:
        reference = "".join(rng.choice("0123456789") for _ in range(12))  # the UTR
    elif mode is PaymentMode.CARD:
        reference = f"Approval {rng.randint(100000, 999999)}"
    payments.take_payment(db, bill, mode=mode, amount=amount, reference=reference, by=desk, day=day, now=at)


def _credit_notes(db: Session, clinic: Clinic, issued: list[Bill], desk: uuid.UUID) -> None:
    """A strip of medicine returned (credited and refunded in cash) and one document cancelled."""
    returned = None
    for bill in issued:
        goods = [line for line in services.lines_of(db, bill)
                 if line.treatment is Treatment.TAXABLE and not line.hsn_sac.startswith("99")]
        if goods and payments.account_of(db, bill).due == 0:
            returned = bill
            at = min(bill.issued_at + timedelta(hours=2), utcnow())
            credit_notes.issue_credit_note(db, clinic=clinic, original=bill, quantities={goods[0].id: Decimal(1)},
                                       reason=CreditReason.RETURN, by=desk, day=bill.issued_on, now=at)
            owed = payments.account_of(db, bill).refundable
            if owed > 0:
                payments.refund(db, bill, mode=PaymentMode.CASH, amount=owed, reference=None, by=desk,
                                day=bill.issued_on, now=at + timedelta(minutes=1))
            break
    for bill in reversed(issued):
        if bill is not returned and bill.status is BillStatus.ISSUED and bill.rounded_total > 0 \
                and payments.account_of(db, bill).paid == 0:
            at = min(bill.issued_at + timedelta(minutes=20), utcnow())
            credit_notes.issue_credit_note(db, clinic=clinic, original=bill, quantities={},
                                       reason=CreditReason.CANCEL, by=desk, day=bill.issued_on, now=at)
            break
