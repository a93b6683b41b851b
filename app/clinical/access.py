"""Who may see what of a patient's clinical record (PRODUCT.md §2, minimum necessary).

- Vitals and allergies (triage): doctors and nurses of the clinic.
- Notes, diagnoses, problems, prescriptions: a doctor with a care relationship (the patient has or
  had an appointment or an encounter with them, see `in_care`); any other doctor or nurse only after breaking the
  glass (a stated reason, a time box, a flagged audit record, the admins told). A nurse sees the
  summary (diagnoses, problems, prescriptions), never the note's text.
- Everyone else (reception, billing, auditor, admin): no clinical content, ever; the timeline shows
  them that a consultation happened and with whom, nothing of what was said.

Every view that shows clinical content asks `access_for` once and audits with `basis`.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from app.auth.policy import Permission, Role, can
from app.clinical.models import Encounter
from app.patients import break_glass
from app.patients.models import BreakGlass
from app.scheduling.models import Appointment, Status


@dataclass(frozen=True)
class Access:
    triage: bool = False  # vitals and allergies
    summary: bool = False  # diagnoses, problems, prescriptions
    notes: bool = False  # the note's text and addenda
    write: bool = False  # may write notes, diagnoses, problems, prescriptions
    basis: str | None = None  # "care relationship" or "break-the-glass"
    grant: BreakGlass | None = None
    may_break_glass: bool = False

    @property
    def any_clinical(self) -> bool:
        return self.triage or self.summary

    @property
    def flagged(self) -> bool:
        """Reads under break-the-glass are flagged in the audit trail."""
        return self.grant is not None

    @property
    def reason(self) -> str | None:
        """The audit reason of a read: the basis, and for break-the-glass when it ends."""
        if self.grant is not None:
            return f"break-the-glass until {self.grant.expires_at:%Y-%m-%d %H:%M} UTC"
        return self.basis


NONE = Access()


# Appointments that make a care relationship on their own: the patient came to this doctor.
SEEN = (Status.ARRIVED, Status.IN_CONSULTATION, Status.COMPLETED)
# Booked and not yet come: a relationship only if someone else booked it (the desk, another doctor), so a
# doctor cannot open a record by booking the patient in with themselves.
EXPECTED = (Status.BOOKED, Status.CONFIRMED)


def in_care(db: Session, clinic_id: uuid.UUID, doctor_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
    """Whether the patient has (or had) an appointment or an encounter with this doctor.

    A visit that happened counts; an upcoming one counts unless the doctor booked it themselves; a
    cancelled booking or a no-show does not (the doctor never saw the patient).
    """
    mine = (Appointment.clinic_id == clinic_id, Appointment.patient_id == patient_id,
            Appointment.doctor_id == doctor_id)
    came = exists().where(*mine, Appointment.status.in_(SEEN))
    expected = exists().where(*mine, Appointment.status.in_(EXPECTED),
                              or_(Appointment.created_by.is_(None), Appointment.created_by != doctor_id))
    seen = exists().where(Encounter.clinic_id == clinic_id, Encounter.patient_id == patient_id,
                          Encounter.doctor_id == doctor_id)
    return bool(db.scalar(select(or_(came, expected, seen))))


def access_for(db: Session, *, clinic_id: uuid.UUID, user_id: uuid.UUID, role: Role | None,
               patient_id: uuid.UUID) -> Access:
    """What this user, in this role, may see of this patient's clinical record right now."""
    triage = can(role, Permission.VITALS_READ)
    if not (can(role, Permission.CLINICAL_READ) or can(role, Permission.CLINICAL_SUMMARY)):
        return Access(triage=triage)
    doctor = can(role, Permission.CLINICAL_READ)
    if doctor and in_care(db, clinic_id, user_id, patient_id):
        return Access(triage=True, summary=True, notes=True, write=can(role, Permission.CLINICAL_WRITE),
                      basis="care relationship")
    grant = break_glass.active_grant(db, clinic_id=clinic_id, user_id=user_id, patient_id=patient_id)
    if grant is not None:
        return Access(triage=True, summary=True, notes=doctor, write=doctor and can(role, Permission.CLINICAL_WRITE),
                      basis="break-the-glass", grant=grant)
    return Access(triage=triage, may_break_glass=can(role, Permission.BREAK_GLASS))
