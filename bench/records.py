"""What follows from the bench's completed visits, as the app's services write it: the consultation
opened and signed (a sealed note), vitals, a signed prescription, the visit billed at the desk (a bill of
supply, or an invoice-cum-bill of supply when a medicine is added, numbered in its financial year's
series) and paid with a numbered receipt, and the reminders that went out before the visit (WhatsApp or
SMS as the patient agreed, through Twilio, delivered or read, a few undelivered).

Every clinical value, recipient and message is sealed with the clinic's keyring with the row id bound in;
each row has its `timeline_event` (kind, action, ref and doctor as the services write them) and each
bill its billing history. One `Maker` per clinic runs through the clinic's days in order, so prescription
numbers and each series' document numbers come out gapless; `finish` leaves the counters (the `rx`
clinic counter, each series' next number) where the app continues from.

The clinical rows come from bench/history.py's builders (the long-followed patient's visits).
"""

import base64
import json
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg

from app.billing import tax
from app.billing.issuing import format_number
from app.billing.numbers import financial_year
from app.messaging import texts
from app.security.fields import Keyring
from bench import clinics, history
from bench.clinics import ClinicPlan, uuid7
from bench.names import seeded
from bench.patients import Contact
from bench.plan import Plan
from bench.visits import Made

COLUMNS = {
    "encounter": history.COLUMNS["encounter"],
    "vitals": history.COLUMNS["vitals"],
    "prescription": history.COLUMNS["prescription"],
    "bill": ("clinic_id", "id", "status", "kind", "patient_id", "appointment_id", "doctor_id", "recipient_enc",
             "recipient_state", "key_version", "series_id", "fy_start", "number", "issued_on", "issued_at",
             "issued_by", "supplier", "supplier_state", "taxable_value", "exempt_value", "nil_rated_value", "cgst",
             "sgst", "igst", "total", "round_off", "rounded_total", "state_tax", "created_at", "created_by", "version"),
    "bill_line": ("clinic_id", "id", "bill_id", "position", "item_id", "description", "hsn_sac", "unit", "quantity",
                  "unit_price", "price_includes_tax", "treatment", "rate", "discount_percent", "place_of_supply",
                  "inter_state", "gross", "discount", "taxable_value", "cgst", "sgst", "igst", "total"),
    "billing_event": ("clinic_id", "id", "bill_id", "action", "details", "at", "by"),
    "payment": ("clinic_id", "id", "bill_id", "patient_id", "kind", "mode", "amount", "reference", "receipt_number",
                "received_on", "received_at", "received_by"),
    "reminder": ("clinic_id", "id", "appointment_id", "appointment_version", "patient_id", "kind", "channel",
                 "due_at", "state", "attempts", "transport", "language", "to_index", "to_enc", "body_enc",
                 "twilio_sid", "error_code", "error_text", "key_version", "created_at", "sending_at", "sent_at",
                 "status_at"),
    "timeline_event": history.COLUMNS["timeline_event"],
}
REMINDERS = ((timedelta(hours=24), "24h"), (timedelta(hours=2), "2h"))  # the clinics' default offsets
QUIET = (time(21), time(8))
LINK = "https://" + clinics.DOMAIN + "/p/"
CONTENT_SIDS = {"en": "HX" + "1" * 32, "hi": "HX" + "2" * 32}
MEDICINES = ("PARA650", "AMOX500", "ORS", "COUGH100", "CREPE10")
TESTS = ("CBC", "LIPID", "ECG")
TOTALS = ("taxable_value", "exempt_value", "nil_rated_value", "cgst", "sgst", "igst", "total", "round_off",
          "rounded_total")  # in the order of COLUMNS["bill"]
ERRORS = {30003: "Unreachable destination handset", 30005: "Unknown destination handset"}


class Maker:
    """One clinic's records, piece by piece (the clinic's days in order)."""

    def __init__(self, plan: Plan, cp: ClinicPlan, ring: Keyring, contacts: dict[int, Contact]):
        self.plan, self.cp, self.ring, self.contacts = plan, cp, ring, contacts
        self.zone = ZoneInfo(clinics.TZ)
        self.rows = history.Rows(ring, history.Cast(cp.id, cp.id, [], cp.desks[0], None), seeded(
            plan.size.seed, "records", cp.index), plan.now)
        self.series: dict[tuple[str, int], list] = {}  # (prefix, fy start) -> [id, kind, next number]
        self.priced: dict[tuple, tuple] = {}
        self.phones: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    # --- A piece ---------------------------------------------------------------------------------------

    def make(self, made: list[Made]) -> dict[str, list[tuple]]:
        """The records of these appointments (in the order they were made: day by day)."""
        r = self.rows
        r.tables = {t: [] for t in COLUMNS}
        for n, visit in enumerate(made):
            if visit.starts is not None and visit.day < self.plan.anchor and visit.status in ("completed", "no_show"):
                self._reminders(visit)
            if visit.status == "completed" and visit.finished is not None:
                self._visit(visit, n)
        for table, rows in r.tables.items():
            self.counts[table] = self.counts.get(table, 0) + len(rows)
        return r.tables

    def _visit(self, v: Made, n: int) -> None:
        """The consultation, vitals, prescription, then the bill and its payment at the desk."""
        r, rng = self.rows, self.rows.rng
        r.cast.patient_id, doctor = v.patient_id, v.doctor_id
        encounter_id = history._encounter(r, v.id, doctor, v.started, v.finished, n)
        if rng.random() < 0.9:
            history._vitals(r, v.id, encounter_id, doctor, v.started + timedelta(minutes=2), struck=False)
        if rng.random() < 0.85:
            history._prescription(r, encounter_id, doctor, v.finished - timedelta(minutes=1))
        r.event(v.finished, "encounter", "signed", encounter_id, doctor, doctor)
        if rng.random() < 0.93:
            self._bill(v)

    # --- Billing --------------------------------------------------------------------------------------

    def _price(self, wanted: tuple[tuple[str, int], ...], day: date) -> tuple:
        """The document's kind, its lines' stored values and its totals, by the app's tax engine (cached:
        visits repeat a few combinations of items and rates)."""
        items = [self.cp.items[code] for code, _ in wanted]
        rates = tuple(item.rate_on(day) for item in items)
        key = (wanted, rates)
        if key not in self.priced:
            state = self.cp.spec.place.state_code
            lines = tuple(tax.Line(description=i.name, hsn_sac=i.hsn_sac, quantity=Decimal(q), unit_price=i.price,
                                   rate=rate, treatment=tax.Treatment(i.treatment),
                                   price_includes_tax=i.price_includes_tax, discount=None, unit=i.unit)
                          for i, (_, q), rate in zip(items, wanted, rates, strict=True))
            document = tax.Document(supplier_state=state, lines=lines, recipient_gstin=None, recipient_state=state)
            results = tuple(tax.price_line(document, line) for line in lines)
            kind = tax.document_type(document)
            totals = tax.DocumentResult(kind, results)
            sums = tuple(getattr(totals, name) for name in TOTALS)
            lines = tuple((r.line.treatment.value, r.place_of_supply, r.inter_state, r.gross, r.discount,
                           r.taxable_value, r.cgst, r.sgst, r.igst, r.total) for r in results)
            self.priced[key] = (kind, items, rates, lines, sums, totals.state_tax)
        return self.priced[key]

    def _number(self, prefix: str, kind: str, day: date) -> tuple[uuid.UUID, int, str]:
        fy = financial_year(day).start
        series = self.series.get((prefix, fy.year))
        if series is None:
            ms = int(datetime.combine(fy, time(9), self.zone).timestamp() * 1000)
            series = self.series[(prefix, fy.year)] = [uuid7(ms, self.rows.rng), kind, 1]
        number = series[2]
        series[2] += 1
        return series[0], fy.year, format_number(prefix, day, number)

    def _bill(self, v: Made) -> None:
        r, rng, cp = self.rows, self.rows.rng, self.cp
        wanted = [(cp.type_items.get(v.type_id) or "CONSULT", 1)]
        roll = rng.random()
        if roll < 0.3:
            wanted.append((rng.choice(MEDICINES), rng.randint(1, 3)))
        elif roll < 0.4:
            wanted.append((rng.choice(TESTS), 1))
        kind, items, rates, results, sums, state_tax = self._price(tuple(wanted), v.day)
        total = sums[-1]
        created = min(v.finished + timedelta(minutes=rng.randint(3, 9)), self.plan.now - timedelta(minutes=3))
        issued = created + timedelta(minutes=1)
        bill_id = r.new_id(created)
        bos = kind is tax.DocumentType.BILL_OF_SUPPLY
        series_id, fy_start, number = self._number("BOS" if bos else "INV", "bill_of_supply" if bos else "invoice",
                                                   v.day)
        contact = self.contacts.get(v.patient)
        recipient = {"name": contact.name, "address_line": contact.address_line or "", "city": contact.city or "",
                     "pin_code": contact.pin_code or "", "phone": contact.phone or ""} if contact else {}
        state = cp.spec.place.state_code
        r.tables["bill"].append((
            cp.id, bill_id, "issued", kind.value, v.patient_id, v.id, v.doctor_id,
            self.ring.seal("bill", "recipient", bill_id, json.dumps(recipient) if recipient else None), state,
            self.ring.active.version, series_id, fy_start, number, v.day, issued, v.desk, cp.supplier, state, *sums,
            state_tax, created, v.desk, len(items) + 2))
        events = r.tables["billing_event"]
        events.append((cp.id, r.new_id(created), bill_id, "created", json.dumps({"appointment": str(v.id)}), created,
                       v.desk))
        for position, (item, (_, quantity), rate, result) in enumerate(zip(items, wanted, rates, results,
                                                                           strict=True), 1):
            r.tables["bill_line"].append((
                cp.id, r.new_id(created), bill_id, position, item.id, item.name, item.hsn_sac, item.unit,
                Decimal(quantity), item.price, item.price_includes_tax, result[0], rate, False, *result[1:]))
            events.append((cp.id, r.new_id(created), bill_id, "line_added",
                           json.dumps({"item": item.name, "quantity": str(quantity), "discount": None}), created,
                           v.desk))
        events.append((cp.id, r.new_id(issued), bill_id, "issued", json.dumps(
            {"number": number, "kind": kind.value, "total": str(total)}), issued, v.desk))
        r.event(issued, "invoice", "issued", bill_id, v.desk, v.doctor_id)
        roll = rng.random()
        if roll < 0.06 or total <= 0:
            return  # to be paid later: an open balance
        amount = total if roll > 0.1 else (total / 2).quantize(Decimal("1.00"))
        mode = rng.choices(("cash", "upi", "card"), weights=(4, 5, 2))[0]
        reference = (f"{rng.randrange(10**11, 10**12)}" if mode == "upi" else
                     f"Approval {rng.randint(100000, 999999)}" if mode == "card" else None)
        paid = issued + timedelta(minutes=1)
        _, _, receipt = self._number("RCT", "receipt", v.day)
        payment_id = r.new_id(paid)
        r.tables["payment"].append((cp.id, payment_id, bill_id, v.patient_id, "payment", mode, amount, reference,
                                    receipt, v.day, paid, v.desk))
        events.append((cp.id, r.new_id(paid), bill_id, "payment", json.dumps(
            {"receipt": receipt, "mode": mode, "amount": str(amount)}), paid, v.desk))
        r.event(paid, "payment", "received", payment_id, v.desk, v.doctor_id)

    # --- Reminders ------------------------------------------------------------------------------------

    def _due(self, starts: datetime, ahead: timedelta) -> datetime | None:
        """When the reminder went: `ahead` of the visit, or at the end of quiet hours if still 30 minutes
        before it (else not at all)."""
        due = (starts - ahead).astimezone(self.zone)
        if due.time() >= QUIET[0]:
            return None
        if due.time() < QUIET[1]:
            due = datetime.combine(due.date(), QUIET[1], self.zone)
        return due if due <= starts - timedelta(minutes=30) else None

    def _reminders(self, v: Made) -> None:
        contact = self.contacts.get(v.patient)
        if contact is None or contact.channel is None or not contact.phone:
            return
        r, rng, ring, cp = self.rows, self.rows.rng, self.ring, self.cp
        r.cast.patient_id = v.patient_id  # the events below are this visit's patient's (not the last one seen)
        local = v.starts.astimezone(self.zone)
        token = base64.urlsafe_b64encode(rng.getrandbits(192).to_bytes(24, "big")).decode()
        words = texts.Reminder(cp.spec.name, local, LINK + token, contact.language)
        if contact.channel == "sms":
            body = texts.fill(texts.SMS_TEXTS[contact.language], words)
        else:
            body = json.dumps({"text": texts.whatsapp_text(texts.WHATSAPP_TEMPLATES[contact.language], words),
                               "content_sid": CONTENT_SIDS[contact.language],
                               "variables": texts.whatsapp_variables(words)}, ensure_ascii=False)
        index = self.phones.get(contact.phone)
        if index is None:
            index = self.phones[contact.phone] = ring.token("phone", contact.phone)
        for ahead, kind in REMINDERS:
            due = self._due(v.starts, ahead)
            if due is None or due <= v.created:
                continue
            sent, roll = due + timedelta(seconds=rng.randint(1, 20)), rng.random()
            state = "undelivered" if roll < 0.03 else "read" if roll < 0.5 and contact.channel == "whatsapp" \
                else "delivered"
            status_at = sent + timedelta(seconds=rng.randint(2, 600))
            reminder_id = r.new_id(due)
            code = rng.choice(tuple(ERRORS)) if state == "undelivered" else None
            r.tables["reminder"].append((
                cp.id, reminder_id, v.id, 1, v.patient_id, kind, contact.channel, due, state, 1, "twilio",
                contact.language, index, ring.seal("reminder", "to", reminder_id, contact.phone),
                ring.seal("reminder", "body", reminder_id, body), f"SM{rng.getrandbits(128):032x}", code,
                ERRORS.get(code), ring.active.version, v.created, due, sent, status_at))
            r.event(sent, "message", "sent", reminder_id, None, v.doctor_id)
            if state == "undelivered":
                r.event(status_at, "message", "undelivered", reminder_id, None, v.doctor_id)

    # --- The counters -----------------------------------------------------------------------------------

    def finish(self, conn: psycopg.Connection) -> None:
        """Each number series with its next number, and the prescription counter (in the caller's
        transaction, with the clinic set)."""
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bill_series (clinic_id, id, kind, prefix, fy_start, next_number) "
                            "VALUES (%s, %s, %s, %s, %s, %s)",
                            [(self.cp.id, sid, kind, prefix, fy, after)
                             for (prefix, fy), (sid, kind, after) in sorted(self.series.items())])
            if self.rows.number:
                cur.execute("INSERT INTO clinic_counter (clinic_id, name, value) VALUES (%s, 'rx', %s)",
                            [self.cp.id, self.rows.number])
