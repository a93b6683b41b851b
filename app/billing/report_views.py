"""Day close and the GSTR-1 export: the desk's end-of-day reconciliation, the month's GSTR-1 summary
on screen, and its downloads (the portal's JSON, the offline tool's CSVs in a ZIP).

The day close names who still owes (PHI: one audit record listing the patients); the GSTR-1 files hold
no PHI but are a sensitive export, so each download is audited too.
"""

import re
import uuid
from datetime import date, timedelta

from flask import Blueprint, Response, current_app, g, request, url_for

from app.audit.services import record
from app.auth.policy import Permission, recent_password, requires
from app.billing import reports
from app.db import get_session
from app.htmx import render
from app.scheduling.services import today

bp = Blueprint("billing_report", __name__)
MONTH_RE = re.compile(r"(\d{4})-(\d{2})")


def _day(raw: str | None) -> tuple[date, str | None]:
    """The day asked for (default: the clinic's today), or today and a message."""
    if not raw:
        return today(g.clinic), None
    try:
        return date.fromisoformat(raw), None
    except ValueError:
        return today(g.clinic), "Enter a date as YYYY-MM-DD, for example 2026-11-20."


def _month(raw: str | None) -> tuple[date, str | None]:
    """The month asked for (default: last month), or last month and a message."""
    last = (today(g.clinic).replace(day=1) - timedelta(days=1)).replace(day=1)
    if not raw:
        return last, None
    match = MONTH_RE.fullmatch(raw)
    if match and 2017 <= int(match[1]) <= 9999 and 1 <= int(match[2]) <= 12:
        return date(int(match[1]), int(match[2]), 1), None
    return last, f"{raw[:20]} is not a month. Enter a month as YYYY-MM, for example 2026-11."


def bill_url(bill_id: uuid.UUID) -> str:
    """A document's page (the billing blueprint's)."""
    if "billing.show" in current_app.view_functions:
        return url_for("billing.show", bill_id=bill_id)
    return f"/bills/{bill_id}"


def _refused(template: str, block: str, message: str, **context) -> Response:
    return render(template, block, status=422, problem=message, report=None, **context)


@bp.get("/billing/day-close")
@requires(Permission.DAY_CLOSE)
def day_close():
    """The day's collections by mode and staff, documents issued, credit notes, cancellations, open balances."""
    raw = request.args.get("day", "")
    day, problem = _day(raw)
    if problem:
        return _refused("billing/day_close.html", "report", problem, day=day, raw_day=raw)
    db = get_session()
    report = reports.day_close(db, g.clinic, day)
    record(db, "billing.day_close", patient_ids=report.patient_ids, reason=f"day close {day.isoformat()}")
    db.commit()
    return render("billing/day_close.html", "report", report=report, day=day, raw_day=day.isoformat(),
                  problem=None, previous=day - timedelta(days=1), next=day + timedelta(days=1),
                  is_today=day >= today(g.clinic), bill_url=bill_url)


@bp.get("/billing/day-close.csv")
@requires(Permission.DAY_CLOSE)
@recent_password
def day_close_csv():
    """The day close as a CSV download (names who owes: audited)."""
    day, problem = _day(request.args.get("day"))
    if problem:
        return Response(problem, status=422, mimetype="text/plain")
    db = get_session()
    report = reports.day_close(db, g.clinic, day)
    record(db, "billing.day_close", patient_ids=report.patient_ids, reason=f"day close {day.isoformat()} csv")
    db.commit()
    return _download(reports.day_close_csv(report), "text/csv", f"day-close-{day.isoformat()}.csv")


@bp.get("/billing/gstr1")
@requires(Permission.GST_EXPORT)
def gstr1():
    """The month's GSTR-1 tables as the accountant checks them before filing."""
    raw = request.args.get("month", "")
    month, problem = _month(raw)
    if problem:
        return _refused("billing/gstr1.html", "report", problem, month=month, raw_month=raw, gstin=g.clinic.gstin)
    report = reports.gstr1(get_session(), g.clinic, month)
    return render("billing/gstr1.html", "report", report=report, month=month, raw_month=month.strftime("%Y-%m"),
                  problem=None, supply_types=reports.SUPPLY_TYPES, natures=reports.DOC_NATURES,
                  state_label=reports.state_label, gstin=g.clinic.gstin)


def _export(fmt: str):
    """The month's report for a download, or a 422 answer; the download is audited."""
    month, problem = _month(request.args.get("month", ""))
    if problem:
        return None, Response(problem, status=422, mimetype="text/plain")
    db = get_session()
    report = reports.gstr1(db, g.clinic, month)
    record(db, "gst.export", reason=f"GSTR-1 {month.strftime('%Y-%m')} {fmt}")
    db.commit()
    return report, None


def _download(body: str | bytes, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/billing/gstr1.json")
@requires(Permission.GST_EXPORT)
@recent_password
def gstr1_json():
    """The month's GSTR-1 as the GST portal's JSON."""
    report, refused = _export("json")
    if refused:
        return refused
    gstin = g.clinic.gstin or ""
    return _download(reports.portal_json_text(report, gstin), "application/json", f"GSTR1_{gstin}_{report.fp}.json")


@bp.get("/billing/gstr1.zip")
@requires(Permission.GST_EXPORT)
@recent_password
def gstr1_zip():
    """The month's GSTR-1 as the GST offline tool's CSV files, zipped."""
    report, refused = _export("zip")
    if refused:
        return refused
    return _download(reports.offline_zip(report), "application/zip", f"GSTR1_{g.clinic.gstin or ''}_{report.fp}.zip")
