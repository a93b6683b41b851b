"""Reading a patient's timeline: filters, opaque cursors, and one keyset-paged slice of `timeline_event`
described for the viewer (app/timeline/details.py).

A page costs the same whatever the patient's history: one query for the slice (LIMIT 26, to know
whether there is more) read in order from the (clinic, patient, [kind | doctor,] at, id) indexes, at
most one per kind present for the details, one for staff names, one for the filter's doctors.
"""

import base64
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import url_for
from sqlalchemy import literal, select, tuple_, union_all
from sqlalchemy.orm import Session, aliased

from app.auth.models import StaffUser
from app.auth.policy import Permission, Role, can
from app.clinical.access import Access
from app.clinics.models import Clinic, Membership
from app.patients.models import Patient
from app.security.fields import keyring
from app.timeline.details import Describer, Item
from app.timeline.models import Kind, TimelineEvent

PAGE = 25
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The record's history and its consent ledger are for those who may see the whole record (the patient
# page shows them only to them too): billing sees name and contact details, not who changed what.
RECORD_KINDS = (Kind.RECORD, Kind.CONSENT)
BILLING_KINDS = (Kind.INVOICE, Kind.PAYMENT)


def visible_kinds(role: Role | None) -> tuple[Kind, ...]:
    """The kinds of entry this role sees on a timeline (bills and payments: roles that see invoices)."""
    bills = can(role, Permission.INVOICE_VIEW) or can(role, Permission.INVOICE_VIEW_OWN)
    return tuple(k for k in Kind if (k not in RECORD_KINDS or can(role, Permission.PATIENT_VIEW))
                 and (k not in BILLING_KINDS or bills))


class BadRequest(ValueError):
    """A filter or cursor in the address that is not one the timeline made."""


# --- Filters and cursors ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    kinds: tuple[Kind, ...] = ()
    doctor_id: uuid.UUID | None = None
    speciality: str | None = None

    @property
    def by_doctor(self) -> bool:
        return self.doctor_id is not None or self.speciality is not None

    def args(self) -> dict:
        """The filters as query-string arguments (for the next page's address)."""
        out: dict = {"kind": [k.value for k in self.kinds]} if self.kinds else {}
        if self.doctor_id:
            out["doctor"] = str(self.doctor_id)
        if self.speciality:
            out["speciality"] = self.speciality
        return out


def parse_filters(args) -> Filters:
    """Filters from the query string (`kind` repeated, `doctor`, `speciality`); BadRequest if malformed."""
    try:
        kinds = tuple(dict.fromkeys(Kind(k) for k in args.getlist("kind") if k))
        doctor = args.get("doctor", "").strip()
        doctor_id = uuid.UUID(doctor) if doctor else None
    except ValueError:
        raise BadRequest("That filter is not one the timeline offers.") from None
    speciality = " ".join(args.get("speciality", "").split())
    if len(speciality) > 60:
        raise BadRequest("That filter is not one the timeline offers.")
    return Filters(kinds, doctor_id, speciality or None)


def encode_cursor(at: datetime, event_id: uuid.UUID) -> str:
    """An opaque position: the (at, id) of the last item shown."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(struct.pack(">q", micros) + event_id.bytes).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The position a cursor stands for; None for no cursor; BadRequest for one the timeline did not make."""
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", text):
        raise BadRequest("That page of the timeline does not exist. Go back to the newest entries.")
    raw = base64.urlsafe_b64decode(text)
    try:
        at = _EPOCH + timedelta(microseconds=struct.unpack(">q", raw[:8])[0])
    except OverflowError:
        raise BadRequest("That page of the timeline does not exist. Go back to the newest entries.") from None
    return at, uuid.UUID(bytes=raw[8:])


# --- What a page shows ------------------------------------------------------------------------------------

@dataclass
class Doctor:
    id: uuid.UUID
    name: str
    speciality: str | None


@dataclass
class TimelinePanel:
    """A page of the timeline with its filter form's choices and the addresses of its neighbours."""

    patient_id: uuid.UUID
    items: list[Item]
    filters: Filters
    doctors: list[Doctor]
    url: str  # the timeline page, unfiltered
    next_url: str | None  # the next (older) page with the same filters
    first_url: str | None  # the newest page with the same filters, when this is not it
    kinds: tuple[Kind, ...] = tuple(Kind)  # the filter's choices: what this viewer may see

    @property
    def shows_record(self) -> bool:
        """Whether record changes and consent are among the entries (not for billing)."""
        return Kind.RECORD in self.kinds

    @property
    def specialities(self) -> list[str]:
        return sorted({d.speciality for d in self.doctors if d.speciality})


def panel(db: Session, *, clinic: Clinic, patient: Patient, access: Access, user_id: uuid.UUID, role: Role | None,
          filters: Filters | None = None, before: tuple[datetime, uuid.UUID] | None = None) -> TimelinePanel:
    """A page of the patient's timeline for this viewer (the first unless `before`; no audit: the page audits)."""
    filters, kinds = filters or Filters(), visible_kinds(role)
    doctors = _doctors(db, clinic.id)
    events = _slice(db, clinic.id, patient.id, filters, kinds, _doctor_ids(filters, doctors), before)
    more, events = len(events) > PAGE, events[:PAGE]
    items = Describer(db, clinic, patient, access, role).items(events)
    url = url_for("timeline.index", patient_id=patient.id)
    next_url = url_for("timeline.index", patient_id=patient.id, before=encode_cursor(events[-1].at, events[-1].id),
                       **filters.args()) if more else None
    first_url = url_for("timeline.index", patient_id=patient.id, **filters.args()) if before else None
    return TimelinePanel(patient.id, items, filters, doctors, url, next_url, first_url, kinds)


def heading(db: Session, patient: Patient) -> dict[str, str]:
    """The patient's name and MRN for the page's heading (decrypting those two fields only)."""
    ring = keyring(db, patient.clinic_id)
    return {name: ring.open("patient", name, patient.id, getattr(patient, f"{name}_enc"))
            for name in ("full_name", "mrn")}


def _slice(db: Session, clinic_id: uuid.UUID, patient_id: uuid.UUID, filters: Filters, visible: tuple[Kind, ...],
           doctor_ids: list[uuid.UUID] | None, before: tuple[datetime, uuid.UUID] | None) -> list[TimelineEvent]:
    """The page's events and one more, newest first (ties by id), in one query.

    Each doctor (or else each kind) asked for is its own ordered slice of PAGE + 1 from the
    (clinic, patient, doctor | kind, at, id) index, merged: an `IN` over several would read and sort every
    matching event of the patient's history.
    """
    event = TimelineEvent
    base = select(event).where(event.clinic_id == clinic_id, event.patient_id == patient_id)
    if before:
        base = base.where(tuple_(event.at, event.id) < tuple_(literal(before[0]), literal(before[1])))
    kinds = [k for k in filters.kinds if k in visible]
    if filters.kinds and not kinds:
        return []
    if not kinds and len(visible) < len(Kind):  # a few kinds hidden: skipped in the (at, id) order
        base = base.where(event.kind.not_in([k.value for k in Kind if k not in visible]))
    if doctor_ids is not None:
        if kinds:
            base = base.where(event.kind.in_([k.value for k in kinds]))
        branches = [base.where(event.doctor_id == d) for d in doctor_ids]
    else:
        branches = [base.where(event.kind == k.value) for k in kinds] or [base]
    if not branches:
        return []
    slices = [b.order_by(event.at.desc(), event.id.desc()).limit(PAGE + 1) for b in branches]
    if len(slices) == 1:
        return list(db.scalars(slices[0]))
    merged = aliased(TimelineEvent, union_all(*slices).subquery())
    return list(db.scalars(select(merged).order_by(merged.at.desc(), merged.id.desc()).limit(PAGE + 1)))


def _doctor_ids(filters: Filters, doctors: list[Doctor]) -> list[uuid.UUID] | None:
    """The doctors a doctor or speciality filter keeps (None: no such filter)."""
    if not filters.by_doctor:
        return None
    ids = [d.id for d in doctors if filters.speciality is None or d.speciality == filters.speciality]
    if filters.doctor_id is None:
        return ids
    return [filters.doctor_id] if filters.speciality is None or filters.doctor_id in ids else []


def _doctors(db: Session, clinic_id: uuid.UUID) -> list[Doctor]:
    """The clinic's doctors with their specialities (the filter's choices)."""
    rows = db.execute(select(StaffUser.id, StaffUser.full_name, StaffUser.speciality)
                      .join(Membership, Membership.user_id == StaffUser.id)
                      .where(Membership.clinic_id == clinic_id, Membership.role == Role.DOCTOR)
                      .order_by(StaffUser.full_name))
    return [Doctor(*row) for row in rows]
