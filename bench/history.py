"""A long-followed patient's history for the timeline benchmark, as the app's services write it.

Visits every two or three days going back from `end`: the appointment booked a few days ahead, checked
in with a token, called in; vitals taken; the consultation opened, a prescription signed, the note
signed, the visit completed. Now and then a visit is cancelled instead, an allergy or a problem is
charted or ended, a note gets an addendum, a vitals set is struck out as entered in error, the
record's address changes, a reminder consent changes. Every clinical value and free text is sealed
with the clinic's keyring (the row id bound in, as the app seals it); every row has its timeline
event at the same moment. `make` builds the rows (plain tuples, exactly `events` timeline events);
`load` COPYs them in one transaction as the clinic.
"""

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

from app.security.fields import Keyring
from bench.clinics import uuid7
from bench.names import seeded

# In dependency order (a table's foreign keys point only to tables before it).
COLUMNS = {
    "appointment": ("clinic_id", "id", "patient_id", "doctor_id", "type_id", "walk_in", "day", "starts_at", "ends_at",
                    "status", "token", "reason_enc", "overbooked", "arrived_at", "started_at", "finished_at",
                    "key_version", "version", "created_at", "created_by", "updated_at", "updated_by"),
    "appointment_event": ("clinic_id", "id", "appointment_id", "action", "from_status", "to_status", "detail_enc",
                          "key_version", "at", "by"),
    "encounter": ("clinic_id", "id", "patient_id", "doctor_id", "appointment_id", "status", "subjective_enc",
                  "objective_enc", "assessment_enc", "plan_enc", "diagnoses_enc", "started_at", "signed_at",
                  "signed_by", "key_version", "version", "created_by", "updated_at", "updated_by"),
    "encounter_addendum": ("clinic_id", "id", "encounter_id", "patient_id", "text_enc", "key_version", "at", "by"),
    "prescription": ("clinic_id", "id", "patient_id", "encounter_id", "doctor_id", "number", "revision", "status",
                     "language", "items_enc", "advice_enc", "key_version", "version", "created_at", "created_by",
                     "signed_at", "signed_by"),
    "vitals": ("clinic_id", "id", "patient_id", "encounter_id", "appointment_id", "values_enc", "key_version",
               "taken_at", "taken_by", "voided_at", "voided_by"),
    "chart_item": ("clinic_id", "id", "patient_id", "kind", "details_enc", "encounter_id", "key_version",
                   "recorded_at", "recorded_by", "ended_at", "ended_by", "end_reason"),
    "patient_history": ("clinic_id", "id", "patient_id", "version", "action", "changed_fields", "changes_enc",
                        "key_version", "changed_at", "changed_by"),
    "consent_event": ("clinic_id", "id", "patient_id", "purpose", "granted", "method", "at", "recorded_by"),
    "timeline_event": ("clinic_id", "id", "patient_id", "at", "kind", "action", "doctor_id", "ref_id", "by"),
}
DRUGS = [("Amlodipine", "5 mg", "tablet", "1 tablet", "1-0-0", "30 days", "after_food"),
         ("Metformin", "500 mg", "tablet", "1 tablet", "1-0-1", "30 days", "after_food"),
         ("Telmisartan", "40 mg", "tablet", "1 tablet", "1-0-0", "30 days", "any_time"),
         ("Atorvastatin", "10 mg", "tablet", "1 tablet", "0-0-1", "30 days", "after_food"),
         ("Paracetamol", "650 mg", "tablet", "1 tablet", "1-1-1", "3 days", "after_food"),
         ("Pantoprazole", "40 mg", "tablet", "1 tablet", "1-0-0", "14 days", "before_food")]
DIAGNOSES = [("Essential hypertension", "I10"), ("Type 2 diabetes mellitus", "E11.9"), ("Dyslipidaemia", "E78.5"),
             ("Acute upper respiratory infection", "J06.9"), ("Gastritis", "K29.7")]
ALLERGIES = [("Penicillin", "rash", "severe"), ("Sulfa drugs", "hives", "moderate"), ("Peanuts", "swelling", "mild")]
PROBLEMS = [("Hypertension", "I10", "2019"), ("Type 2 diabetes", "E11.9", "2021"), ("Osteoarthritis knee", "M17.9", "")]
# The most timeline events one visit makes (a full visit with an addendum, a charted item and a struck-out
# vitals set); visits are made while that many remain, single record changes make up the rest.
MOST_PER_VISIT = 12


@dataclass
class Cast:
    """Who the history is about and who makes it."""

    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    doctors: list[uuid.UUID]  # the first sees most visits
    desk: uuid.UUID
    type_id: uuid.UUID
    tokens: dict = field(default_factory=dict)  # day -> the last queue token the clinic gave that day
    token_offset: int = 1  # this patient's token is that plus this (several such patients: distinct tokens)
    zone: str = "Asia/Kolkata"

    def day(self, moment: datetime):
        """The clinic's date at `moment`."""
        return moment.astimezone(ZoneInfo(self.zone)).date()

    def token(self, moment: datetime) -> int:
        """The queue token for a check-in at `moment`, after every token the clinic gave that day."""
        return self.tokens.get(self.day(moment), 0) + self.token_offset


@dataclass
class Rows:
    """Rows per table, built as the app's services would write them."""

    ring: Keyring
    cast: Cast
    rng: random.Random
    end: datetime  # nothing happens at or after this
    tables: dict[str, list[tuple]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    number: int = 0  # prescriptions
    version: int = 1  # the patient record's

    def new_id(self, at: datetime) -> uuid.UUID:
        return uuid7(int(at.timestamp() * 1000), self.rng)

    def seal(self, table: str, column: str, row_id: uuid.UUID, value) -> bytes | None:
        return self.ring.seal(table, column, row_id, value if isinstance(value, str) or value is None
                              else json.dumps(value))

    def add(self, table: str, **values) -> None:
        self.tables[table].append(tuple(values.get(c) for c in COLUMNS[table]))

    def event(self, at: datetime, kind: str, action: str, ref_id: uuid.UUID, by: uuid.UUID,
              doctor_id: uuid.UUID | None = None) -> None:
        self.add("timeline_event", clinic_id=self.cast.clinic_id, id=self.new_id(at), patient_id=self.cast.patient_id,
                 at=at, kind=kind, action=action, doctor_id=doctor_id, ref_id=ref_id, by=by)

    @property
    def events(self) -> int:
        return len(self.tables["timeline_event"])


def _appointment_event(r: Rows, appointment_id, doctor, at, action, before, after, by, detail=None) -> None:
    event_id = r.new_id(at)
    r.add("appointment_event", clinic_id=r.cast.clinic_id, id=event_id, appointment_id=appointment_id,
          action=action, from_status=before, to_status=after,
          detail_enc=r.seal("appointment_event", "detail", event_id, detail), key_version=r.ring.active.version,
          at=at, by=by)
    r.event(at, "appointment", action, event_id, by, doctor)


def visit(r: Rows, starts: datetime, n: int) -> None:
    """One visit at `starts` (the n-th counting back from the newest), with everything it leads to."""
    c, rng, kv = r.cast, r.rng, r.ring.active.version
    doctor = c.doctors[0] if n % 5 else c.doctors[n // 5 % len(c.doctors)]
    booked_at = starts - timedelta(days=rng.randint(1, 6), minutes=rng.randint(0, 600))
    appointment_id = r.new_id(booked_at)
    cancelled = n % 11 == 7
    status = "cancelled" if cancelled else "completed"
    arrived, called, done = (starts - timedelta(minutes=12), starts + timedelta(minutes=rng.randint(0, 20)),
                             starts + timedelta(minutes=rng.randint(22, 40)))
    r.add("appointment", clinic_id=c.clinic_id, id=appointment_id, patient_id=c.patient_id, doctor_id=doctor,
          type_id=c.type_id, walk_in=False, day=c.day(starts), starts_at=starts, ends_at=starts + timedelta(minutes=15),
          status=status, token=None if cancelled else c.token(starts),
          reason_enc=r.seal("appointment", "reason", appointment_id, "Review of blood pressure and sugar"),
          overbooked=False, arrived_at=None if cancelled else arrived, started_at=None if cancelled else called,
          finished_at=None if cancelled else done, key_version=kv, version=1 if cancelled else 4,
          created_at=booked_at, created_by=c.desk, updated_at=booked_at, updated_by=c.desk)
    _appointment_event(r, appointment_id, doctor, booked_at, "booked", None, "booked", c.desk)
    if cancelled:
        _appointment_event(r, appointment_id, doctor, booked_at + timedelta(hours=20), "cancel", "booked",
                           "cancelled", c.desk, "Patient is travelling")
        return
    _appointment_event(r, appointment_id, doctor, arrived, "check_in", "booked", "arrived", c.desk)
    _appointment_event(r, appointment_id, doctor, called, "start", "arrived", "in_consultation", doctor)
    encounter_id = _encounter(r, appointment_id, doctor, called, done, n)
    _vitals(r, appointment_id, encounter_id, doctor, called + timedelta(minutes=2), struck=n % 37 == 5)
    if n % 9 == 4:
        _chart(r, encounter_id, doctor, called + timedelta(minutes=6), n)
    _prescription(r, encounter_id, doctor, done - timedelta(minutes=1))
    r.event(done, "encounter", "signed", encounter_id, doctor, doctor)
    _appointment_event(r, appointment_id, doctor, done, "complete", "in_consultation", "completed", doctor)
    addendum_at = done + timedelta(hours=rng.randint(2, 30))
    if n % 13 == 2 and addendum_at < r.end:
        addendum_id = r.new_id(addendum_at)
        r.add("encounter_addendum", clinic_id=c.clinic_id, id=addendum_id, encounter_id=encounter_id,
              patient_id=c.patient_id, key_version=kv, at=addendum_at, by=doctor,
              text_enc=r.seal("encounter_addendum", "text", addendum_id, "Lab report reviewed: HbA1c 7.1%."))
        r.event(addendum_at, "encounter", "addendum", addendum_id, doctor, doctor)


def _encounter(r: Rows, appointment_id, doctor, opened, signed, n: int) -> uuid.UUID:
    encounter_id, kv = r.new_id(opened), r.ring.active.version
    diagnosis = DIAGNOSES[n % len(DIAGNOSES)]
    note = {"subjective": "Feels well, occasional headache in the mornings.",
            "objective": "Alert, no pedal oedema. Chest clear.",
            "assessment": f"{diagnosis[0]}, controlled on current treatment.",
            "plan": "Continue medicines, review in two weeks with fasting sugar."}
    sealed = {f"{k}_enc": r.seal("encounter", k, encounter_id, v) for k, v in note.items()}
    r.add("encounter", clinic_id=r.cast.clinic_id, id=encounter_id, patient_id=r.cast.patient_id, doctor_id=doctor,
          appointment_id=appointment_id, status="signed", started_at=opened, signed_at=signed, signed_by=doctor,
          diagnoses_enc=r.seal("encounter", "diagnoses", encounter_id, [{"text": diagnosis[0], "code": diagnosis[1]}]),
          key_version=kv, version=3, created_by=doctor, updated_at=signed, updated_by=doctor, **sealed)
    r.event(opened, "encounter", "opened", encounter_id, doctor, doctor)
    return encounter_id


def _vitals(r: Rows, appointment_id, encounter_id, doctor, at, *, struck: bool) -> None:
    rng, vitals_id = r.rng, r.new_id(at)
    values = {"systolic": rng.randint(118, 168), "diastolic": rng.randint(72, 102), "pulse": rng.randint(62, 98),
              "temperature_c": round(rng.uniform(36.4, 37.6), 1), "spo2": rng.randint(95, 99),
              "weight_kg": round(rng.uniform(70, 76), 1), "glucose_mg_dl": rng.randint(96, 190),
              "glucose_context": "random", "temperature_unit": "C"}
    voided = at + timedelta(minutes=3) if struck else None
    r.add("vitals", clinic_id=r.cast.clinic_id, id=vitals_id, patient_id=r.cast.patient_id, encounter_id=encounter_id,
          appointment_id=appointment_id, values_enc=r.seal("vitals", "values", vitals_id, values),
          key_version=r.ring.active.version, taken_at=at, taken_by=doctor, voided_at=voided,
          voided_by=doctor if struck else None)
    r.event(at, "vitals", "recorded", vitals_id, doctor, doctor)
    if struck:
        r.event(voided, "vitals", "voided", vitals_id, doctor, doctor)


def _chart(r: Rows, encounter_id, doctor, at, n: int) -> None:
    item_id = r.new_id(at)
    if n % 2:
        substance, reaction, severity = ALLERGIES[n % len(ALLERGIES)]
        kind, details = "allergy", {"substance": substance, "reaction": reaction, "severity": severity}
    else:
        condition, code, since = PROBLEMS[n % len(PROBLEMS)]
        kind, details = "problem", {"condition": condition, "code": code, "since": since, "note": ""}
    ended = n % 4 == 0 and at + timedelta(days=7) < r.end  # this one was resolved a week on
    ended_at = at + timedelta(days=7) if ended else None
    r.add("chart_item", clinic_id=r.cast.clinic_id, id=item_id, patient_id=r.cast.patient_id, kind=kind,
          details_enc=r.seal("chart_item", "details", item_id, details), encounter_id=encounter_id,
          key_version=r.ring.active.version, recorded_at=at, recorded_by=doctor, ended_at=ended_at,
          ended_by=doctor if ended else None, end_reason="resolved" if ended else None)
    r.event(at, "chart", "recorded", item_id, doctor, doctor)
    if ended:
        r.event(ended_at, "chart", "ended", item_id, doctor, doctor)


def _prescription(r: Rows, encounter_id, doctor, at) -> None:
    rx_id, rng = r.new_id(at), r.rng
    r.number += 1
    items = [dict(zip(("drug", "strength", "form", "dose", "frequency", "duration", "timing"), drug, strict=True),
                  instructions="") for drug in rng.sample(DRUGS, rng.randint(1, 4))]
    r.add("prescription", clinic_id=r.cast.clinic_id, id=rx_id, patient_id=r.cast.patient_id, encounter_id=encounter_id,
          doctor_id=doctor, number=r.number, revision=1, status="signed", language="en",
          items_enc=r.seal("prescription", "items", rx_id, items),
          advice_enc=r.seal("prescription", "advice", rx_id, "Walk 30 minutes a day; less salt."),
          key_version=r.ring.active.version, version=2, created_at=at - timedelta(minutes=4), created_by=doctor,
          signed_at=at, signed_by=doctor)
    r.event(at, "prescription", "signed", rx_id, doctor, doctor)


def record_change(r: Rows, at: datetime) -> None:
    """The address changed at the desk (the before/after values sealed; the feed names the fields only)."""
    history_id, n = r.new_id(at), r.version
    r.version += 1
    changes = {"address_line": [f"{n + 1}, 2nd Cross, Jayanagar", f"{n + 2}, 2nd Cross, Jayanagar"]}
    r.add("patient_history", clinic_id=r.cast.clinic_id, id=history_id, patient_id=r.cast.patient_id,
          version=r.version, action="updated", changed_fields="address_line",
          changes_enc=r.seal("patient_history", "changes", history_id, changes), key_version=r.ring.active.version,
          changed_at=at, changed_by=r.cast.desk)
    r.event(at, "record", "updated", history_id, r.cast.desk)


def consent_change(r: Rows, at: datetime, granted: bool) -> None:
    consent_id = r.new_id(at)
    r.add("consent_event", clinic_id=r.cast.clinic_id, id=consent_id, patient_id=r.cast.patient_id,
          purpose="whatsapp", granted=granted, method="in_person", at=at, recorded_by=r.cast.desk)
    r.event(at, "consent", "given" if granted else "withdrawn", consent_id, r.cast.desk)


def make(ring: Keyring, cast: Cast, *, events: int, end: datetime, at: time = time(10, 30), seed: int = 2026,
         rx_after: int = 0) -> Rows:
    """Exactly `events` timeline events of every kind (with their rows); the newest visit the day before `end`,
    at `at` where the clinic is. Prescriptions are numbered on from `rx_after` (the clinic's `rx` counter;
    `Rows.number` is the last number used)."""
    r = Rows(ring, cast, seeded(seed, "history", cast.patient_id), end, number=rx_after)
    starts = datetime.combine(cast.day(end) - timedelta(days=1), at, ZoneInfo(cast.zone)).astimezone(UTC)
    n = 0
    while events - r.events >= MOST_PER_VISIT:
        visit(r, starts, n)
        if n % 23 == 11:
            record_change(r, starts - timedelta(days=1))
        if n % 29 == 17:
            consent_change(r, starts - timedelta(hours=30), granted=n % 2 == 1)
        n += 1
        starts -= timedelta(days=r.rng.choice((2, 2, 3)))
    while r.events < events:
        record_change(r, starts)
        starts -= timedelta(days=1)
    return r


def arrival(ring: Keyring, cast: Cast, *, starts: datetime, seed: int = 2026) -> Rows:
    """A short history: an appointment booked and checked in, and vitals taken (three events)."""
    r = Rows(ring, cast, seeded(seed, "arrival"), starts + timedelta(hours=1))
    doctor, booked_at = cast.doctors[0], starts - timedelta(days=2)
    appointment_id = r.new_id(booked_at)
    r.add("appointment", clinic_id=cast.clinic_id, id=appointment_id, patient_id=cast.patient_id, doctor_id=doctor,
          type_id=cast.type_id, walk_in=False, day=cast.day(starts), starts_at=starts,
          ends_at=starts + timedelta(minutes=15), status="arrived", token=cast.token(starts),
          reason_enc=r.seal("appointment", "reason", appointment_id, "Fever for three days"), overbooked=False,
          arrived_at=starts - timedelta(minutes=5), key_version=ring.active.version, version=2, created_at=booked_at,
          created_by=cast.desk, updated_at=starts, updated_by=cast.desk)
    _appointment_event(r, appointment_id, doctor, booked_at, "booked", None, "booked", cast.desk)
    _appointment_event(r, appointment_id, doctor, starts - timedelta(minutes=5), "check_in", "booked", "arrived",
                       cast.desk)
    _vitals(r, appointment_id, None, doctor, starts, struck=False)
    return r


def load(conn: psycopg.Connection, clinic_id: uuid.UUID, rows: Rows) -> None:
    """COPY the rows in one transaction, as the clinic (row-level security holds the rows to it)."""
    with conn.transaction():
        conn.execute("SELECT set_config('app.clinic_id', %s, true)", [str(clinic_id)])
        for table, columns in COLUMNS.items():
            if not rows.tables[table]:
                continue
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for row in rows.tables[table]:
                    cp.write_row(row)
