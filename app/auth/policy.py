"""Roles, permissions and the role -> permission table (PRODUCT.md §2), as data.

Deny by default: a role has only what this table grants it, and every route declares the one
permission it needs (`requires`). A test walks the URL map and fails on any route that does not.
"""

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    DOCTOR = "doctor"
    NURSE = "nurse"
    RECEPTION = "reception"
    BILLING = "billing"
    AUDITOR = "auditor"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.ADMIN: "Clinic admin",
    Role.DOCTOR: "Doctor",
    Role.NURSE: "Nurse",
    Role.RECEPTION: "Receptionist",
    Role.BILLING: "Billing",
    Role.AUDITOR: "Auditor",
}


class Permission(StrEnum):
    HOME_VIEW = "home:view"
    ACCOUNT_MANAGE = "account:manage"
    SCHEDULE_VIEW = "schedule:view"
    SCHEDULE_BOOK = "schedule:book"
    SCHEDULE_OVERBOOK = "schedule:overbook"
    QUEUE_OWN = "queue:own"
    PATIENT_VIEW = "patient:view"
    PATIENT_VIEW_CONTACT = "patient:view_contact"
    PATIENT_EDIT = "patient:edit"
    CLINICAL_READ = "clinical:read"
    CLINICAL_SUMMARY = "clinical:summary"
    CLINICAL_WRITE = "clinical:write"
    VITALS_READ = "vitals:read"
    VITALS_WRITE = "vitals:write"
    ALLERGY_WRITE = "allergy:write"
    BILLING_SETUP = "billing:setup"
    INVOICE_VIEW = "invoice:view"
    INVOICE_VIEW_OWN = "invoice:view_own"
    INVOICE_CREATE = "invoice:create"
    PAYMENT_TAKE = "payment:take"
    CREDIT_NOTE_CREATE = "credit_note:create"
    GST_EXPORT = "gst:export"
    DAY_CLOSE = "day:close"
    STAFF_MANAGE = "staff:manage"
    SETTINGS_MANAGE = "settings:manage"
    AUDIT_VIEW = "audit:view"
    BREAK_GLASS = "clinical:break_glass"
    BREAK_GLASS_REVIEW = "clinical:break_glass_review"
    REMINDERS_MANAGE = "reminders:manage"
    REMINDERS_VIEW = "reminders:view"


P = Permission
_EVERY_ROLE = {P.HOME_VIEW, P.ACCOUNT_MANAGE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(_EVERY_ROLE | {
        P.SCHEDULE_VIEW, P.SCHEDULE_BOOK, P.SCHEDULE_OVERBOOK, P.PATIENT_VIEW, P.PATIENT_VIEW_CONTACT, P.PATIENT_EDIT,
        P.BILLING_SETUP, P.INVOICE_VIEW, P.INVOICE_CREATE, P.PAYMENT_TAKE, P.CREDIT_NOTE_CREATE, P.GST_EXPORT,
        P.DAY_CLOSE, P.STAFF_MANAGE, P.SETTINGS_MANAGE, P.AUDIT_VIEW, P.BREAK_GLASS_REVIEW, P.REMINDERS_MANAGE,
        P.REMINDERS_VIEW,
    }),
    Role.DOCTOR: frozenset(_EVERY_ROLE | {
        P.SCHEDULE_VIEW, P.SCHEDULE_BOOK, P.SCHEDULE_OVERBOOK, P.QUEUE_OWN, P.PATIENT_VIEW, P.PATIENT_VIEW_CONTACT,
        P.PATIENT_EDIT, P.CLINICAL_READ, P.CLINICAL_SUMMARY, P.CLINICAL_WRITE, P.VITALS_READ, P.VITALS_WRITE,
        P.ALLERGY_WRITE, P.INVOICE_VIEW_OWN, P.BREAK_GLASS,
    }),
    Role.NURSE: frozenset(_EVERY_ROLE | {
        P.SCHEDULE_VIEW, P.SCHEDULE_BOOK, P.PATIENT_VIEW, P.PATIENT_VIEW_CONTACT,
        P.CLINICAL_SUMMARY, P.VITALS_READ, P.VITALS_WRITE, P.ALLERGY_WRITE, P.BREAK_GLASS,
    }),
    Role.RECEPTION: frozenset(_EVERY_ROLE | {
        P.SCHEDULE_VIEW, P.SCHEDULE_BOOK, P.SCHEDULE_OVERBOOK, P.PATIENT_VIEW, P.PATIENT_VIEW_CONTACT, P.PATIENT_EDIT,
        P.INVOICE_VIEW, P.INVOICE_CREATE, P.PAYMENT_TAKE, P.REMINDERS_VIEW,
    }),
    Role.BILLING: frozenset(_EVERY_ROLE | {
        P.SCHEDULE_VIEW, P.PATIENT_VIEW_CONTACT, P.BILLING_SETUP, P.INVOICE_VIEW, P.INVOICE_CREATE, P.PAYMENT_TAKE,
        P.CREDIT_NOTE_CREATE, P.GST_EXPORT, P.DAY_CLOSE,
    }),
    Role.AUDITOR: frozenset(_EVERY_ROLE | {P.AUDIT_VIEW}),
}

# Routes anyone may reach without signing in. Everything else needs a full (password + MFA)
# session and the route's declared permission in the current clinic.
PUBLIC = "public"
# Routes of the sign-in flow itself: reachable with a password-only session, and nothing else is.
SIGN_IN_STEP = "sign-in-step"


def can(role: Role | None, permission: Permission) -> bool:
    """Whether a role holds a permission (no role: nothing)."""
    return role is not None and permission in ROLE_PERMISSIONS[role]


def recent_password(view):
    """Declare that a view needs the password typed within REAUTH_SECONDS (exports: catalogue case 32);
    the guard sends anyone whose password is older to confirm it, then back here."""
    view.recent_password = True
    return view


def requires(permission: Permission | str, *, background: bool = False):
    """Declare the permission a view needs; `background` requests do not count as activity."""
    def decorate(view):
        view.permission = permission
        view.background = background
        return view
    return decorate
