"""What the scheduling pages share: who sees contact details only, the doctor a page is about, and the
signal that makes every board on the page refresh."""

from flask import Response, g

from app.audit.services import deny_not_found
from app.auth.policy import Permission, can
from app.db import get_session
from app.htmx import trigger
from app.scheduling import services
from app.scheduling.services import Doctor


def contact_only() -> bool:
    """Whether the role sees patients' names and contact details only (not sex, age or visit reasons)."""
    return not can(g.role, Permission.PATIENT_VIEW)


def doctor_or_404(doctor_id) -> Doctor:
    """The clinic's doctor (or former doctor with appointments here), or a denied audit record and 404."""
    db = get_session()
    doctor = services.find_doctor(db, g.clinic.id, doctor_id)
    if doctor is None:
        deny_not_found(db, "doctor.view", object_type="staff", object_id=doctor_id)
    return doctor


def board_changed(response: Response) -> Response:
    """Tell every board on this page to refresh now."""
    return trigger(response, "board-changed")
