"""Template globals shared by every page: the role's navigation and local time display."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, g, url_for

from app.auth.policy import Permission, can


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    prefix: str


# (label, endpoint, permission); shown only to roles holding the permission.
NAV = [
    ("Staff", "staff.index", Permission.STAFF_MANAGE),
    ("Clinic settings", "clinics.settings", Permission.SETTINGS_MANAGE),
    ("Sign-in activity", "audit.sign_ins", Permission.AUDIT_VIEW),
]


def nav_items() -> list[NavItem]:
    role = g.get("role")
    return [NavItem(label, url_for(endpoint), endpoint.split(".")[0] + ".")
            for label, endpoint, permission in NAV if can(role, permission)]


def localtime(value: datetime | None, tz: str = "Asia/Kolkata") -> str:
    """'21 Nov 2026, 10:42' in the clinic's time zone."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(tz)).strftime("%d %b %Y, %H:%M")


def init_app(app: Flask) -> None:
    app.jinja_env.globals["nav_items"] = nav_items
    app.jinja_env.filters["localtime"] = localtime
