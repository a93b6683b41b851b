"""Template globals shared by every page: the role's navigation, and the filters for time, dates and money."""

from dataclasses import dataclass
from datetime import datetime

from flask import Flask, g, url_for

from app import formats
from app.auth.policy import Permission, can


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    prefix: str


# (label, endpoint, permission, the endpoints it is "current" for by prefix)
NAV = [
    ("Schedule", "scheduling.day", Permission.SCHEDULE_VIEW, "scheduling."),
    ("Queue", "scheduling_queue.board", Permission.SCHEDULE_VIEW, "scheduling_queue.board"),
    ("My queue", "scheduling_queue.mine", Permission.QUEUE_OWN, "scheduling_queue.mine"),
    ("Patients", "patients.index", Permission.PATIENT_VIEW_CONTACT, "patients."),
    ("Billing", "billing.index", Permission.INVOICE_VIEW, "billing."),
    ("Day close", "billing_report.day_close", Permission.DAY_CLOSE, "billing_report."),
    ("Prices", "billing_setup.prices", Permission.BILLING_SETUP, "billing_setup."),
    ("Staff", "staff.index", Permission.STAFF_MANAGE, "staff."),
    ("Clinic settings", "clinics.settings", Permission.SETTINGS_MANAGE, "clinics."),
    ("Needs a call", "messaging_desk.calls", Permission.REMINDERS_VIEW, "messaging_desk.calls"),
    ("Reminders", "messaging_desk.settings", Permission.REMINDERS_MANAGE, "messaging_desk.settings"),
    ("Schedule setup", "scheduling_setup.index", Permission.SETTINGS_MANAGE, "scheduling_setup."),
    ("Audit trail", "audit.index", Permission.AUDIT_VIEW, "audit.index"),
    ("Sign-in activity", "audit.sign_ins", Permission.AUDIT_VIEW, "audit.sign_ins"),
]


def nav_items() -> list[NavItem]:
    role = g.get("role")
    return [NavItem(label, url_for(endpoint), current) for label, endpoint, permission, current in NAV
            if can(role, permission)]


def can_search() -> bool:
    """Whether the header shows the patient search box."""
    return can(g.get("role"), Permission.PATIENT_VIEW_CONTACT)


def clock(value: datetime | None) -> str:
    """'10:30' in the current clinic's time zone."""
    if value is None:
        return ""
    return formats.clock(value, g.clinic.timezone)


def localtime(value: datetime | None, tz: str = "Asia/Kolkata") -> str:
    """'21 Nov 2026, 10:42' in the clinic's time zone."""
    return formats.moment(value, tz) or "—"


FIELD_LABELS = {
    "full_name": "Name", "sex": "Sex", "dob": "Date of birth", "dob_estimated": "Age estimated", "phone": "Mobile",
    "alt_phone": "Alternate phone", "email": "E-mail", "address_line": "Address", "city": "City", "pin_code": "PIN",
    "state_code": "State", "language": "Language", "abha_number": "ABHA number", "guardian_name": "Guardian",
    "guardian_relation": "Guardian's relation", "guardian_phone": "Guardian's phone", "mrn": "MRN",
}


def state_name(code: str | None) -> str:
    from app.clinics.states import BY_CODE

    return BY_CODE[code].name if code in BY_CODE else ""


def language_name(code: str) -> str:
    from app.patients.forms import LANGUAGES

    return LANGUAGES.get(code, code)


def init_app(app: Flask) -> None:
    from app.patients.forms import display_phone

    app.jinja_env.globals.update(nav_items=nav_items, can_search=can_search, state_name=state_name,
                                 language_name=language_name, field_label=lambda name: FIELD_LABELS.get(name, name))
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["inr"] = formats.inr
    app.jinja_env.filters["percent"] = formats.percent
    app.jinja_env.filters["day"] = formats.day
    app.jinja_env.filters["clock"] = clock
    app.jinja_env.filters["phone"] = display_phone
