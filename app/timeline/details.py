"""Describing a slice of timeline events for one viewer: each kind's details in one query (only the
columns the viewer may see, and only when they may see more than the event itself says), decrypted
only as far as the viewer's access goes. Without clinical access an item says what happened and with
whom, never what was found, written or prescribed."""

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from flask import url_for
from sqlalchemy import String, and_, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from app import formats
from app.auth.policy import Permission, Role, can
from app.billing.models import Bill, Payment, PaymentKind
from app.billing.tax import DocumentType
from app.clinical.access import Access
from app.clinical.models import Addendum, ChartItem, ChartKind, Encounter, EncounterStatus, Prescription, Vitals
from app.clinics.models import Clinic
from app.messaging.desk import failure_words, kind_label
from app.messaging.models import InboundMessage, Reminder
from app.patients.models import ConsentEvent, Patient, PatientHistory
from app.patients.services import CONSENT_METHODS, CONSENT_PURPOSES, PatientData, staff_names
from app.scheduling.models import Appointment, AppointmentEvent, AppointmentType
from app.security.fields import Keyring, keyring
from app.timeline.models import Kind, TimelineEvent
from app.ui import FIELD_LABELS

EXCERPT = 200


@dataclass
class Item:
    """One entry as this viewer may see it."""

    id: uuid.UUID
    at: datetime
    kind: Kind | None
    title: str
    by: str | None = None
    lines: list[str] = field(default_factory=list)
    readings: list = field(default_factory=list)  # app.clinical.vitals.Reading
    excerpt: str | None = None
    link: str | None = None
    struck: bool = False  # entered in error, or ended
    amount: str | None = None  # a bill's or payment's amount, "₹1,234.50"
    badge: str | None = None  # e.g. "Cancelled"


APPOINTMENT_PHRASES = {
    "confirm": "Appointment confirmed", "check_in": "Checked in", "start": "Called in", "complete": "Visit completed",
    "back_to_waiting": "Sent back to waiting", "cancel": "Cancelled", "no_show": "Marked no-show",
    "undo_no_show": "No-show undone", "overbooked": "Booked as an overbooking", "rescheduled": "Rescheduled",
}
ENCOUNTER_PHRASES = {"opened": "opened", "signed": "signed", "addendum": "addendum added"}
END_REASONS = {"resolved": "resolved", "error": "entered in error"}
MESSAGE_PHRASES = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "not delivered",
                   "undelivered": "not delivered", "skipped": "not sent"}
REPLY_PHRASES = {"confirm": "1, will come", "cancel": "2, cancel the appointment",
                 "reschedule": "3, asked for another time", "stop": "STOP, no more reminders by WhatsApp or SMS",
                 "start": "START, messages again on this channel"}
DOCUMENT_LABELS = {
    DocumentType.TAX_INVOICE: "Tax invoice", DocumentType.BILL_OF_SUPPLY: "Bill of supply",
    DocumentType.INVOICE_CUM_BILL_OF_SUPPLY: "Invoice-cum-bill of supply", DocumentType.CREDIT_NOTE: "Credit note",
    DocumentType.BILL: "Bill",
}


def _excerpt(text: str | None) -> str | None:
    text = " ".join((text or "").split())
    return text if len(text) <= EXCERPT else text[:EXCERPT].rstrip() + "…"


class Describer:
    """Turns a slice of events into items: loads each kind's details in one query, opens only what the
    viewer may see."""

    def __init__(self, db: Session, clinic: Clinic, patient: Patient, access: Access, role: Role | None):
        self.db, self.clinic, self.patient, self.access, self.role = db, clinic, patient, access, role
        self.zone = ZoneInfo(clinic.timezone)
        self.names: dict[uuid.UUID, str] = {}

    @cached_property
    def ring(self) -> Keyring:
        return keyring(self.db, self.clinic.id)

    @cached_property
    def adult(self) -> bool:
        """Whether vitals are flagged against adult ranges (decrypts the date of birth, for triage only)."""
        born = date.fromisoformat(self.ring.open("patient", "dob", self.patient.id, self.patient.dob_enc))
        return PatientData(full_name="", sex="", dob=born).age >= 18

    def items(self, events: list[TimelineEvent]) -> list[Item]:
        """The events as this viewer may see them, in the same order."""
        refs: dict[str, list[uuid.UUID]] = defaultdict(list)
        for e in events:
            refs[e.kind].append(e.ref_id)
        details = {kind: getattr(self, f"_load_{kind}")(ids) for kind, ids in refs.items()
                   if hasattr(self, f"_load_{kind}")}
        details = {kind: found for kind, found in details.items() if found is not None}
        self.names = staff_names(self.db, {e.by for e in events} | {e.doctor_id for e in events})
        return [self._item(e, details.get(e.kind, {}).get(e.ref_id)) for e in events]

    def _item(self, e: TimelineEvent, detail) -> Item:
        kind = next((k for k in Kind if k.value == e.kind), None)
        item = Item(e.id, e.at, kind, f"{e.kind.replace('_', ' ').capitalize()}: {e.action.replace('_', ' ')}",
                    by=self.names.get(e.by))
        describe = getattr(self, f"_describe_{e.kind}", None)
        if describe is not None:
            describe(item, e, self.names.get(e.doctor_id, "a doctor"), detail)
        return item

    # Appointments: what happened and when the appointment is; never the stated reason.
    def _load_appointment(self, ids):
        event, appt, kind = AppointmentEvent, Appointment, AppointmentType
        rows = self.db.execute(
            select(event.id, appt.id, appt.starts_at, appt.day, appt.token, kind.name)
            .join(appt, and_(appt.clinic_id == event.clinic_id, appt.id == event.appointment_id))
            .outerjoin(kind, and_(kind.clinic_id == appt.clinic_id, kind.id == appt.type_id))
            .where(event.clinic_id == self.clinic.id, event.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_appointment(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        if row is None:
            item.title = APPOINTMENT_PHRASES.get(e.action, "Appointment " + e.action.replace("_", " "))
            return
        _, appointment_id, starts_at, day, token, type_name = row
        when = self._when(starts_at, day, e.at)
        typed = f" ({type_name})" if type_name else ""
        if e.action == "booked":
            item.title = f"Appointment booked with {doctor} for {when}{typed}"
        elif e.action == "rescheduled_here":
            item.title = f"Rescheduled to {when} with {doctor}{typed}"
        elif e.action == "walked_in":
            item.title = f"Walk-in with {doctor}" + (f", token {token}" if token else "")
        elif e.action == "check_in":
            item.title = "Checked in" + (f", token {token}" if token else "")
        else:
            phrase = APPOINTMENT_PHRASES.get(e.action, e.action.replace("_", " ").capitalize())
            item.title = f"{phrase}: appointment with {doctor} for {when}"
        if can(self.role, Permission.SCHEDULE_VIEW):
            item.link = url_for("scheduling.appointment", appointment_id=appointment_id)

    def _when(self, starts_at: datetime | None, day: date, at: datetime) -> str:
        if starts_at is None:
            return f"{formats.day(day, 'd MMM y')} (walk-in)"
        this_year = starts_at.astimezone(self.zone).year == at.astimezone(self.zone).year
        return formats.moment(starts_at, self.clinic.timezone, "d MMM, HH:mm" if this_year else "d MMM y, HH:mm")

    # Consultations: with whom for everyone; diagnoses with the summary; the assessment with the notes.
    def _load_encounter(self, ids):
        if not self.access.summary and not self.access.notes:
            return None
        enc, add = Encounter, Addendum
        pairs = union_all(
            select(enc.id.label("ref"), enc.id.label("encounter_id")).where(enc.clinic_id == self.clinic.id,
                                                                            enc.id.in_(ids)),
            select(add.id, add.encounter_id).where(add.clinic_id == self.clinic.id, add.id.in_(ids))).subquery()
        columns = [pairs.c.ref, enc.id, enc.status,
                   enc.diagnoses_enc if self.access.summary else literal(None),
                   enc.assessment_enc if self.access.notes else literal(None),
                   add.text_enc if self.access.notes else literal(None)]
        rows = self.db.execute(
            select(*columns).join(enc, and_(enc.clinic_id == self.clinic.id, enc.id == pairs.c.encounter_id))
            .outerjoin(add, and_(add.clinic_id == self.clinic.id, add.id == pairs.c.ref)))
        return {row[0]: row for row in rows}

    def _describe_encounter(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        item.title = f"Consultation with {doctor} — {ENCOUNTER_PHRASES.get(e.action, e.action.replace('_', ' '))}"
        if row is None:
            return
        ref, encounter_id, status, diagnoses, assessment, addendum = row
        current = e.action == "signed" or (e.action == "opened" and status is EncounterStatus.OPEN)
        if current and diagnoses is not None:
            opened = self.ring.open("encounter", "diagnoses", encounter_id, diagnoses)
            item.lines = [d["text"] + (f" ({d['code']})" if d.get("code") else "") for d in json.loads(opened or "[]")]
        if self.access.notes:
            if e.action == "addendum" and addendum is not None:
                item.excerpt = _excerpt(self.ring.open("encounter_addendum", "text", ref, addendum))
            elif current and assessment is not None:
                item.excerpt = _excerpt(self.ring.open("encounter", "assessment", encounter_id, assessment))
            item.link = url_for("clinical.encounter", encounter_id=encounter_id)

    # Vitals: the readings with their flags for those who may triage.
    def _load_vitals(self, ids):
        if not self.access.triage:
            return None
        rows = self.db.execute(select(Vitals.id, Vitals.values_enc, Vitals.voided_at)
                               .where(Vitals.clinic_id == self.clinic.id, Vitals.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_vitals(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        from app.clinical import vitals

        item.title = "Vitals marked entered in error" if e.action == "voided" else "Vitals recorded"
        if row is None:
            return
        vitals_id, values, voided_at = row
        item.readings = vitals.describe(json.loads(self.ring.open("vitals", "values", vitals_id, values)),
                                        adult=self.adult)
        item.struck = voided_at is not None
        if item.struck and e.action != "voided":
            item.lines = ["Later marked entered in error."]

    # Prescriptions: who issued one for everyone; its lines with the summary.
    def _load_prescription(self, ids):
        if not self.access.summary:
            return None
        rows = self.db.execute(select(Prescription.id, Prescription.number, Prescription.revision,
                                      Prescription.items_enc)
                               .where(Prescription.clinic_id == self.clinic.id, Prescription.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_prescription(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        from app.clinical.prescriptions import item_line

        item.title = f"Prescription issued by {doctor}"
        if row is None:
            return
        rx_id, number, revision, items = row
        item.title = f"Prescription No. {number}" + (f" (version {revision})" if revision > 1 else "") + \
            f" issued by {doctor}"
        item.lines = [item_line(i) for i in json.loads(self.ring.open("prescription", "items", rx_id, items) or "[]")]

    # Allergies (triage) and problems (summary).
    def _load_chart(self, ids):
        if not self.access.triage:
            return None
        rows = self.db.execute(select(ChartItem.id, ChartItem.kind, ChartItem.details_enc, ChartItem.end_reason)
                               .where(ChartItem.clinic_id == self.clinic.id, ChartItem.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_chart(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        from app.clinical import chart

        item.title = "Allergy/problem list updated"
        if row is None:
            return
        chart_id, kind, details, end_reason = row
        if kind is ChartKind.PROBLEM and not self.access.summary:
            item.title = "Problem list updated"
            return
        opened = self.ring.open("chart_item", "details", chart_id, details) if details is not None else None
        described = chart.describe(kind, json.loads(opened) if opened else None)
        if e.action == "ended":
            reason = END_REASONS.get(end_reason.value if end_reason else "", "ended")
            item.title, item.struck = f"Ended ({reason}): {described}", True
        else:
            item.title = described

    # Record edits and consent: field names and the consent's purpose, never values.
    def _load_record(self, ids):
        rows = self.db.execute(select(PatientHistory.id, PatientHistory.action, PatientHistory.changed_fields)
                               .where(PatientHistory.clinic_id == self.clinic.id, PatientHistory.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_record(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        if e.action == "created":
            item.title = "Registered"
            return
        names = [FIELD_LABELS.get(n, n.replace("_", " ")) for n in (row[2].split(",") if row else []) if n]
        item.title = "Details changed" + (": " + ", ".join(names) if names else "")

    def _load_consent(self, ids):
        rows = self.db.execute(select(ConsentEvent.id, ConsentEvent.purpose, ConsentEvent.granted,
                                      ConsentEvent.method)
                               .where(ConsentEvent.clinic_id == self.clinic.id, ConsentEvent.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_consent(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        if row is None:
            item.title = f"Consent {e.action}"
            return
        _, purpose, granted, method = row
        how = CONSENT_METHODS.get(method, method)
        item.title = (f"{CONSENT_PURPOSES.get(purpose, purpose)}: consent {'given' if granted else 'withdrawn'}"
                      f" ({how[:1].lower() + how[1:]})")

    # Bills and payments: the document, its number, date and total, and what was paid how, for those who
    # may see the clinic's bills and for a doctor on a patient in their care (their own patients' bills);
    # anyone else who sees the kinds at all sees only that a bill was issued or a payment taken.
    @cached_property
    def sees_bills(self) -> bool:
        return can(self.role, Permission.INVOICE_VIEW) or (
            can(self.role, Permission.INVOICE_VIEW_OWN) and self.access.basis == "care relationship")

    def _load_invoice(self, ids):
        if not self.sees_bills:
            return None
        original = aliased(Bill)
        rows = self.db.execute(
            select(Bill.id, Bill.kind, Bill.number, Bill.issued_on, Bill.rounded_total, Bill.cancelled_at,
                   original.number)
            .outerjoin(original, and_(original.clinic_id == Bill.clinic_id, original.id == Bill.original_id))
            .where(Bill.clinic_id == self.clinic.id, Bill.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_invoice(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        item.title = "Credit note issued" if e.action == "credit_note" else "Bill issued"
        if row is None:
            return
        bill_id, kind, number, issued_on, total, cancelled_at, original_number = row
        item.title = f"{DOCUMENT_LABELS.get(kind, 'Bill')} {number}"
        item.amount = formats.inr(-total if kind is DocumentType.CREDIT_NOTE else total)
        item.lines = [f"Dated {formats.day(issued_on, 'd MMM y')}"]
        if original_number:
            item.lines.append(f"Against {original_number}")
        if cancelled_at is not None:
            item.badge, item.struck = "Cancelled", True
        if can(self.role, Permission.INVOICE_VIEW):
            item.link = url_for("billing.show", bill_id=bill_id)

    def _load_payment(self, ids):
        if not self.sees_bills:
            return None
        rows = self.db.execute(
            select(Payment.id, Payment.kind, Payment.mode, Payment.amount, Payment.receipt_number, Bill.number)
            .join(Bill, and_(Bill.clinic_id == Payment.clinic_id, Bill.id == Payment.bill_id))
            .where(Payment.clinic_id == self.clinic.id, Payment.id.in_(ids)))
        return {row[0]: row for row in rows}

    def _describe_payment(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        item.title = "Refund paid" if e.action == "refunded" else "Payment received"
        if row is None:
            return
        payment_id, kind, mode, amount, receipt, bill_number = row
        refund = kind is PaymentKind.REFUND
        item.title = f"{'Refund paid' if refund else 'Payment received'} by {mode.label}"
        item.amount = formats.inr(amount)
        item.lines = [f"Receipt {receipt} {'for' if refund else 'against'} {bill_number}"]
        if can(self.role, Permission.INVOICE_VIEW):
            item.link = url_for("billing_payment.receipt", payment_id=payment_id)

    # Reminders and replies: which message, on which channel, and what became of it; what a reply asked
    # for and what was done. Never the number or the words (the words carry the patient's link).
    def _load_message(self, ids):
        sent, reply, appt = Reminder, InboundMessage, Appointment
        refs = union_all(
            select(sent.id.label("ref"), literal(False).label("is_reply"), sent.id.label("reminder_id"),
                   sent.channel.label("channel"), literal(None, String).label("intent"),
                   literal(None, String).label("outcome"))
            .where(sent.clinic_id == self.clinic.id, sent.id.in_(ids)),
            select(reply.id, literal(True), reply.reminder_id, reply.channel, reply.intent, reply.outcome)
            .where(reply.clinic_id == self.clinic.id, reply.id.in_(ids))).subquery()
        rows = self.db.execute(
            select(refs.c.ref, refs.c.is_reply, refs.c.intent, refs.c.outcome, sent.kind, refs.c.channel,
                   sent.error_code, sent.error_text, sent.appointment_id, appt.starts_at, appt.day)
            .select_from(refs)
            .outerjoin(sent, and_(sent.clinic_id == self.clinic.id, sent.id == refs.c.reminder_id))
            .outerjoin(appt, and_(appt.clinic_id == self.clinic.id, appt.id == sent.appointment_id)))
        return {row[0]: row for row in rows}

    def _describe_message(self, item: Item, e: TimelineEvent, doctor: str, row) -> None:
        if row is None:
            item.title = "Reply received" if e.action == "reply" else f"Message {e.action.replace('_', ' ')}"
            return
        _, is_reply, intent, outcome, kind, channel, code, text, appointment_id, starts_at, day = row
        via = channel.label if channel else "Message"
        if is_reply:
            item.title = f"{via} reply: {REPLY_PHRASES.get(intent or '', 'not one the clinic understands')}"
            if outcome:
                item.lines = [outcome[:1].upper() + outcome[1:].replace("_", " ")]
        else:
            what = kind_label(kind)
            item.title = f"{via} {what[:1].lower() + what[1:]} {MESSAGE_PHRASES.get(e.action, e.action)}"
            if e.action in ("failed", "undelivered"):
                item.lines = [failure_words(code, text)]
            elif e.action == "skipped" and text:
                item.lines = [failure_words(None, text)]
        if starts_at is not None:
            item.lines.append(f"For the appointment on {self._when(starts_at, day, e.at)}")
        if appointment_id is not None and can(self.role, Permission.SCHEDULE_VIEW):
            item.link = url_for("scheduling.appointment", appointment_id=appointment_id)
