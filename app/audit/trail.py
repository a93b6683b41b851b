"""The auditor's view of the PHI audit trail: filters, keyset pages, bulk names and MRNs, CSV rows.

An auditor sees who did what to which record, never what the record says: a patient appears by MRN
alone (only that field is decrypted), and a typed MRN is matched through its blind-index tokens.
"""

import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, cast, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.auth.models import StaffUser
from app.auth.policy import Role
from app.clinics.models import Clinic, Membership
from app.patients.models import PatientToken
from app.patients.services import mrn_number, mrns_of
from app.security.fields import keyring

PAGE = 50
EXPORT_BATCH = 1000
MRNS_SHOWN = 5
REFUSED = "refused"
# Actions an auditor can pick; REFUSED stands for every refused access (outcome "denied").
ACTIONS = {
    "patient.view": "Viewed a patient",
    "patient.search": "Searched for patients",
    "patient.create": "Registered a patient",
    "patient.edit_form": "Opened a patient to edit",
    "patient.update": "Changed a patient",
    "patient.duplicate_check": "Checked for duplicates",
    "consent.change": "Changed a consent",
    "encounter.open": "Opened a consultation",
    "encounter.view": "Read a consultation",
    "encounter.save": "Saved a consultation note",
    "encounter.sign": "Signed a consultation",
    "encounter.addendum": "Added an addendum",
    "encounter.revisions": "Read a note's history",
    "clinical.view": "Looked at a clinical record",
    "timeline.view": "Viewed a patient's timeline",
    "break_glass.open": "Broke the glass",
    "break_glass.review": "Reviewed a break-the-glass",
    "break_glass.list": "Listed break-the-glass accesses",
    "audit.view": "Viewed the audit trail",
    "audit.export": "Exported the audit trail",
    "auth.reauth": "Confirmed their password for a download",
    REFUSED: "Any refused access",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CSV_HEADER = ["time", "user", "role", "action", "patient_mrn", "outcome", "reason", "ip", "event_id"]


@dataclass
class Filters:
    """The trail's filters as typed (for the form and links) and as resolved (for the query)."""

    mrn: str = ""
    patient: str = ""  # the patient's id: what links carry instead of the MRN
    user: str = ""
    action: str = ""
    date_from: str = ""
    date_to: str = ""
    patient_ids: list[uuid.UUID] | None = None  # None: no patient filter; []: the MRN matched nobody
    patient_mrn: str = ""  # the matched patient's MRN as the clinic writes it
    user_id: uuid.UUID | None = None
    start: datetime | None = None
    end: datetime | None = None
    errors: list[str] = field(default_factory=list)

    def args(self) -> dict[str, str]:
        """The non-empty filters as URL parameters."""
        values = {"patient": self.patient, "user": self.user, "action": self.action, "from": self.date_from,
                  "to": self.date_to}
        return {k: v for k, v in values.items() if v}

    def describe(self) -> str:
        """What was filtered, for the audit record: no MRN or other PHI, only what kind of filter."""
        parts = []
        if self.patient_ids is not None:
            parts.append("patient" if self.patient_ids else "patient (no match)")
        if self.user_id:
            parts.append(f"user={self.user_id}")
        if self.action:
            parts.append(f"action={self.action}")
        if self.start:
            parts.append(f"from={self.date_from}")
        if self.end:
            parts.append(f"to={self.date_to}")
        return "filters: " + (", ".join(parts) if parts else "none")


@dataclass
class Row:
    """One event as the auditor sees it."""

    event: AuditEvent
    user_name: str
    mrns: list[str]
    unknown_patient: bool

    @property
    def role_label(self) -> str:
        return Role(self.event.role).label if self.event.role in Role._value2member_map_ else (self.event.role or "")

    @property
    def action_label(self) -> str:
        if self.event.action.startswith("denied:"):
            return "Refused: " + self.event.action.removeprefix("denied:")
        return ACTIONS.get(self.event.action, self.event.action)

    def patient_text(self, limit: int | None = MRNS_SHOWN, none: str = "—") -> str:
        """The MRNs of the event's patients (`none` when none), the first `limit` and how many more."""
        shown = self.mrns if limit is None else self.mrns[:limit]
        text = ", ".join(shown)
        if len(self.mrns) > len(shown):
            text += f" and {len(self.mrns) - len(shown)} more"
        if self.unknown_patient:
            text = (text + "; " if text else "") + "a patient not in this clinic"
        return text or none


# --- Filters ------------------------------------------------------------------------------------

def staff_choices(db: Session, clinic_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """The clinic's staff (id, name), for the user filter."""
    return list(db.execute(select(StaffUser.id, StaffUser.full_name)
                           .join(Membership, Membership.user_id == StaffUser.id)
                           .where(Membership.clinic_id == clinic_id).order_by(StaffUser.full_name)).all())


def patients_with_mrn(db: Session, clinic_id: uuid.UUID, typed: str) -> list[uuid.UUID] | None:
    """The clinic's patients whose MRN is the typed one (through blind-index tokens); None if not an MRN."""
    number = mrn_number(typed)
    if number is None:
        return None
    tokens = list(keyring(db, clinic_id).tokens_all("mrn", number).values())
    return list(db.scalars(select(PatientToken.patient_id).distinct().where(
        PatientToken.clinic_id == clinic_id, PatientToken.kind == "mrn", PatientToken.token.in_(tokens))))


def _day(value: str, errors: list[str], label: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label} is not a date (use YYYY-MM-DD).")
        return None
    if not 2000 <= day.year <= 2100:
        errors.append(f"{label} must be between 2000 and 2100.")
        return None
    return day


def parse_filters(db: Session, clinic: Clinic, args, staff: list[tuple[uuid.UUID, str]]) -> Filters:
    """Read the filters from request arguments; anything unusable is reported and ignored."""
    get = lambda name: (args.get(name) or "").strip()[:64]  # noqa: E731
    f = Filters(mrn=get("mrn"), user=get("user"), action=get("action"), date_from=get("from"), date_to=get("to"))
    if f.mrn:
        f.patient_ids = patients_with_mrn(db, clinic.id, f.mrn)
        if f.patient_ids is None:
            f.errors.append("Enter the patient's MRN, like MRN-000123.")
            f.patient_ids, f.mrn = None, ""
    elif get("patient"):
        try:
            wanted = uuid.UUID(get("patient"))
        except ValueError:
            wanted = None
        f.patient_ids = [wanted] if wanted and mrns_of(db, clinic.id, {wanted}) else []
    if f.patient_ids:
        f.patient = str(f.patient_ids[0])
        f.patient_mrn = mrns_of(db, clinic.id, set(f.patient_ids)).get(f.patient_ids[0], f.mrn)
        f.mrn = f.patient_mrn
    if f.user:
        f.user_id = next((uid for uid, _ in staff if str(uid) == f.user), None)
        if f.user_id is None:
            f.user = ""
    if f.action and f.action not in ACTIONS:
        f.action = ""
    tz = ZoneInfo(clinic.timezone)
    start, end = _day(f.date_from, f.errors, "From"), _day(f.date_to, f.errors, "To")
    f.start = datetime.combine(start, time.min, tz) if start else None
    f.end = datetime.combine(end + timedelta(days=1), time.min, tz) if end else None
    f.date_from, f.date_to = (start.isoformat() if start else ""), (end.isoformat() if end else "")
    return f


def _where(clinic_id: uuid.UUID, f: Filters) -> list:
    conditions = [AuditEvent.clinic_id == clinic_id]
    if f.patient_ids is not None:
        ids = f.patient_ids or [uuid.UUID(int=0)]
        conditions.append(or_(AuditEvent.patient_id.in_(ids),
                              and_(AuditEvent.object_type == "patient", AuditEvent.object_id.in_(ids)),
                              AuditEvent.patient_ids.overlap(cast(ids, ARRAY(UUID(as_uuid=True))))))
    if f.user_id:
        conditions.append(AuditEvent.user_id == f.user_id)
    if f.action == REFUSED:
        conditions.append(AuditEvent.outcome == "denied")
    elif f.action:
        conditions.append(AuditEvent.action == f.action)
    if f.start:
        conditions.append(AuditEvent.at >= f.start)
    if f.end:
        conditions.append(AuditEvent.at < f.end)
    return conditions


# --- Pages --------------------------------------------------------------------------------------

def cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    """An 'older than' cursor `<iso time>_<event id>`, or None when absent or malformed."""
    try:
        at, event_id = (value or "").rsplit("_", 1)
        parsed = datetime.fromisoformat(at)
        return (parsed, uuid.UUID(event_id)) if parsed.tzinfo else None
    except ValueError:
        return None


def page(db: Session, clinic_id: uuid.UUID, f: Filters, before=None, size: int = PAGE) -> tuple[list[Row], str | None]:
    """One page of events, newest first, and the cursor of the next (older) page or None."""
    stmt = (select(AuditEvent).where(*_where(clinic_id, f))
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(size + 1))
    if before:
        stmt = stmt.where(tuple_(AuditEvent.at, AuditEvent.id) < before)
    events = list(db.scalars(stmt))
    more = None
    if len(events) > size:
        events, last = events[:size], events[size - 1]
        more = f"{last.at.isoformat()}_{last.id}"
    return rows_for(db, clinic_id, events), more


def _patients_of(event: AuditEvent) -> list[uuid.UUID]:
    ids = [event.patient_id] if event.patient_id else []
    ids += [p for p in (event.patient_ids or []) if p not in ids]
    if not ids and event.object_type == "patient" and event.object_id:
        ids = [event.object_id]
    return ids


def rows_for(db: Session, clinic_id: uuid.UUID, events: list[AuditEvent]) -> list[Row]:
    """Events with their users' names and patients' MRNs, each loaded in one query."""
    user_ids = {e.user_id for e in events if e.user_id}
    names = dict(db.execute(select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(user_ids)))
                 .all()) if user_ids else {}
    mrns = mrns_of(db, clinic_id, {p for e in events for p in _patients_of(e)})
    rows = []
    for e in events:
        ids = _patients_of(e)
        rows.append(Row(event=e, user_name=names.get(e.user_id, "—") if e.user_id else "System",
                        mrns=[mrns[p] for p in ids if p in mrns], unknown_patient=any(p not in mrns for p in ids)))
    return rows


# --- CSV ----------------------------------------------------------------------------------------

def csv_cell(value) -> str:
    """A cell a spreadsheet will not run as a formula: a leading = + - @ tab or CR gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.lstrip(" ").startswith(FORMULA_START) else text


def csv_line(values: list) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([csv_cell(v) for v in values])
    return out.getvalue()


def csv_lines(db: Session, clinic: Clinic, f: Filters):
    """The header and every matching event as CSV lines, newest first, fetched in keyset batches."""
    tz = ZoneInfo(clinic.timezone)
    yield csv_line(CSV_HEADER)
    before = None
    while True:
        rows, more = page(db, clinic.id, f, before, EXPORT_BATCH)
        for r in rows:
            e = r.event
            yield csv_line([e.at.astimezone(tz).isoformat(timespec="seconds"), r.user_name, r.role_label, e.action,
                            r.patient_text(limit=None, none=""), e.outcome, e.reason, e.ip, e.id])
        if more is None:
            return
        before = cursor(more)
        db.rollback()  # one short transaction per batch


def export_filename(clinic: Clinic, today: date) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", clinic.name.lower()).strip("-") or "clinic"
    return f"audit-{slug}-{today.isoformat()}.csv"
