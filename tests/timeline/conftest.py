"""Timeline test set-up: a clinic with two doctors of different specialities, people in every role, and
a `history` builder that writes clinical and administrative rows with the ORM, sealed with the clinic's
key as the app does, each with its timeline event at a chosen time."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.clinical.models import ChartItem, ChartKind, Encounter, EncounterStatus, Prescription, RxStatus, Vitals
from app.db import get_session, new_id, set_tenant
from app.patients.models import ConsentEvent, PatientHistory
from app.scheduling.models import Appointment, AppointmentEvent, AppointmentType, Status
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind
from tests.conftest import patient_id, register_with

HTMX = {"HX-Request": "true"}
T0 = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)  # 10:00 in Bengaluru
ITEM_RE = re.compile(r'id="tl-([0-9a-f-]{36})"')


def item_ids(html: str) -> list[str]:
    return ITEM_RE.findall(html)


@pytest.fixture
def doctors(factory, clinic, app):
    """Two doctors: a general physician and a cardiologist."""
    gp = factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")
    heart = factory.person(clinic, Role.DOCTOR, name="Dr Arjun Nair")
    with app.app_context():
        db = get_session()
        db.get(StaffUser, gp.id).speciality = "General medicine"
        db.get(StaffUser, heart.id).speciality = "Cardiology"
        db.commit()
    return gp, heart


@pytest.fixture
def as_role(factory, clinic, new_browser):
    """A new browser signed in as a new staff member with this role."""
    def make(role: Role, name: str = "Staff Member"):
        browser = new_browser()
        person = factory.person(clinic, role, name=name)
        browser.sign_in(person)
        browser.person = person
        return browser
    return make


@pytest.fixture
def patient(desk) -> str:
    """A patient registered at the desk (without consents: one 'Registered' event); returns its id."""
    return patient_id(register_with(desk, consent_treatment=None))


class History:
    """Writes a patient's history rows and their timeline events, sealed like the app seals them."""

    def __init__(self, app, clinic, by: uuid.UUID):
        self.app, self.clinic, self.by = app, clinic, by
        self.minute = 0

    def _next_at(self, at: datetime | None) -> datetime:
        if at is not None:
            return at
        self.minute += 1
        return T0 + timedelta(minutes=self.minute)

    def _write(self, build):
        with self.app.app_context():
            db = get_session()
            set_tenant(db, clinic_id=self.clinic.id, user_id=None)
            result = build(db, keyring(db, self.clinic.id))
            db.commit()
            return result

    def _event(self, db, patient, kind: Kind, action: str, ref_id, at, doctor_id=None):
        return timeline.add(db, clinic_id=self.clinic.id, patient_id=uuid.UUID(str(patient)), kind=kind,
                            action=action, ref_id=ref_id, by=self.by, doctor_id=doctor_id, at=at).id

    def appointment(self, patient, doctor_id, *, actions=("booked",), at=None, type_name="Consultation",
                    token=None) -> list[uuid.UUID]:
        """An appointment (at the event time) with a history of `actions`, an event each a minute apart."""
        at = self._next_at(at)

        def build(db, ring):
            type_id = new_id()
            db.add(AppointmentType(clinic_id=self.clinic.id, id=type_id, name=type_name, duration_minutes=15,
                                   colour="teal"))
            db.flush()
            appointment = Appointment(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)),
                                      doctor_id=doctor_id, type_id=type_id, day=at.date(), starts_at=at,
                                      ends_at=at + timedelta(minutes=1), status=Status.BOOKED, token=token,
                                      key_version=ring.active.version)
            appointment.reason_enc = ring.seal("appointment", "reason", appointment.id, "REASON-SENTINEL")
            db.add(appointment)
            db.flush()
            ids = []
            for n, action in enumerate(actions):
                event = AppointmentEvent(clinic_id=self.clinic.id, id=new_id(), appointment_id=appointment.id,
                                         action=action, to_status="booked", key_version=ring.active.version,
                                         at=at + timedelta(seconds=n))
                event.detail_enc = ring.seal("appointment_event", "detail", event.id, "DETAIL-SENTINEL")
                db.add(event)
                ids.append(self._event(db, patient, Kind.APPOINTMENT, action, event.id, event.at, doctor_id))
            return ids
        return self._write(build)

    def encounter(self, patient, doctor_id, *, assessment="", diagnoses=(), signed=True, at=None,
                  addendum=None) -> uuid.UUID:
        """An encounter, opened at `at` and signed a minute later (and an addendum after that)."""
        at = self._next_at(at)

        def build(db, ring):
            encounter = Encounter(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)),
                                  doctor_id=doctor_id, started_at=at, key_version=ring.active.version,
                                  status=EncounterStatus.SIGNED if signed else EncounterStatus.OPEN,
                                  signed_at=at + timedelta(minutes=1) if signed else None,
                                  signed_by=doctor_id if signed else None)
            encounter.assessment_enc = ring.seal("encounter", "assessment", encounter.id, assessment)
            encounter.subjective_enc = ring.seal("encounter", "subjective", encounter.id, "SUBJECTIVE-SENTINEL")
            encounter.diagnoses_enc = ring.seal("encounter", "diagnoses", encounter.id,
                                                json.dumps([{"text": d, "code": "I10"} for d in diagnoses]))
            db.add(encounter)
            db.flush()
            self._event(db, patient, Kind.ENCOUNTER, "opened", encounter.id, at, doctor_id)
            if signed:
                self._event(db, patient, Kind.ENCOUNTER, "signed", encounter.id, encounter.signed_at, doctor_id)
            if addendum:
                from app.clinical.models import Addendum

                added = Addendum(clinic_id=self.clinic.id, id=new_id(), encounter_id=encounter.id,
                                 patient_id=encounter.patient_id, key_version=ring.active.version,
                                 at=at + timedelta(minutes=2), by=doctor_id)
                added.text_enc = ring.seal("encounter_addendum", "text", added.id, addendum)
                db.add(added)
                db.flush()
                self._event(db, patient, Kind.ENCOUNTER, "addendum", added.id, added.at, doctor_id)
            return encounter.id
        return self._write(build)

    def prescription(self, patient, doctor_id, encounter_id, *, drugs=("Paracetamol",), at=None) -> uuid.UUID:
        at = self._next_at(at)

        def build(db, ring):
            rx = Prescription(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)),
                              encounter_id=encounter_id, doctor_id=doctor_id, number=7, status=RxStatus.SIGNED,
                              key_version=ring.active.version, created_at=at, signed_at=at, signed_by=doctor_id)
            items = [{"drug": d, "strength": "500 mg", "form": "tablet", "dose": "1 tablet", "frequency": "1-0-1",
                      "duration": "5 days", "timing": "after_food", "instructions": ""} for d in drugs]
            rx.items_enc = ring.seal("prescription", "items", rx.id, json.dumps(items))
            rx.advice_enc = ring.seal("prescription", "advice", rx.id, "ADVICE-SENTINEL")
            db.add(rx)
            db.flush()
            self._event(db, patient, Kind.PRESCRIPTION, "signed", rx.id, at, doctor_id)
            return rx.id
        return self._write(build)

    def vitals(self, patient, values: dict, *, at=None, doctor_id=None) -> uuid.UUID:
        at = self._next_at(at)

        def build(db, ring):
            row = Vitals(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)),
                         key_version=ring.active.version, taken_at=at, taken_by=self.by)
            row.values_enc = ring.seal("vitals", "values", row.id, json.dumps(values))
            db.add(row)
            db.flush()
            self._event(db, patient, Kind.VITALS, "recorded", row.id, at, doctor_id)
            return row.id
        return self._write(build)

    def chart(self, patient, kind: ChartKind, details: dict | None, *, at=None, doctor_id=None) -> uuid.UUID:
        at = self._next_at(at)

        def build(db, ring):
            row = ChartItem(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)), kind=kind,
                            key_version=ring.active.version, recorded_at=at, recorded_by=self.by)
            if details is not None:
                row.details_enc = ring.seal("chart_item", "details", row.id, json.dumps(details))
            db.add(row)
            db.flush()
            self._event(db, patient, Kind.CHART, "recorded", row.id, at, doctor_id)
            return row.id
        return self._write(build)

    def consents(self, patient, count: int, *, at=None, same_time=False) -> list[uuid.UUID]:
        """`count` consent changes (a minute apart, or all at one moment); returns their events' ids."""
        first = self._next_at(at)
        self.minute += count

        def build(db, ring):
            ids = []
            for n in range(count):
                when = first if same_time else first + timedelta(minutes=n)
                row = ConsentEvent(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)),
                                   purpose="whatsapp", granted=n % 2 == 0, method="in_person", recorded_by=self.by,
                                   at=when)
                db.add(row)
                db.flush()
                ids.append(self._event(db, patient, Kind.CONSENT, "given" if row.granted else "withdrawn", row.id,
                                       when))
            return ids
        return self._write(build)

    def record_change(self, patient, fields: str, *, at=None) -> uuid.UUID:
        at = self._next_at(at)

        def build(db, ring):
            row = PatientHistory(clinic_id=self.clinic.id, id=new_id(), patient_id=uuid.UUID(str(patient)),
                                 version=2, action="updated", changed_fields=fields, key_version=ring.active.version,
                                 changed_at=at, changed_by=self.by)
            row.changes_enc = ring.seal("patient_history", "changes", row.id,
                                        json.dumps({f: ["OLD-SENTINEL", "NEW-SENTINEL"] for f in fields.split(",")}))
            db.add(row)
            db.flush()
            return self._event(db, patient, Kind.RECORD, "updated", row.id, at)
        return self._write(build)


@pytest.fixture
def history(app, clinic, reception) -> History:
    return History(app, clinic, reception.id)
