"""Document PDFs: status, download, retry.

The PDF is made by a worker (jobs/invoices.py) after issue and kept sealed; these routes show its
progress (templates/billing/_pdf_status.html, polled by htmx while pending), hand out the stored bytes
(audited: the PDF shows the recipient) and let a failed one be tried again.
"""

import base64

from flask import Blueprint, Response, render_template, url_for
from flask_login import current_user

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, requires
from app.billing import documents, services
from app.billing.models import Bill, PdfStatus
from app.billing.pdf import render_after_commit
from app.db import get_session, utcnow
from app.htmx import client_redirect, html, is_htmx, render_partial
from app.security.fields import keyring

bp = Blueprint("billing_pdf", __name__)

STATUS = "billing/_pdf_status.html"
PAGE = "billing/pdf_status_page.html"


def _status_response(bill: Bill, status: int = 200) -> Response:
    db = get_session()
    state = documents.pdf_state(db, bill)
    if is_htmx():
        return render_partial(STATUS, status=status, pdf_state=state)
    body = render_template(PAGE, pdf_state=state, number=bill.number or "the draft")
    return html(body, status)


@bp.get("/bills/<uuid:bill_id>.pdf")
@requires(Permission.INVOICE_VIEW)
def download(bill_id):
    """The stored PDF (ready), or 409 with the status while it is being made."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.download")
    row = documents.pdf_row(db, bill) if bill.issued else None
    if row is None or row.status is not PdfStatus.READY or row.pdf_enc is None:
        db.rollback()
        message = ("A draft has no PDF: issue it first." if not bill.issued else
                   "The PDF could not be made: try again." if row is not None and row.status is PdfStatus.FAILED
                   else "The PDF is still being made. Try again in a few seconds.")
        body = render_template(PAGE, pdf_state=documents.pdf_state(db, bill), number=bill.number or "the draft",
                               message=message)
        return Response(body, status=409, mimetype="text/html")
    sealed = keyring(db, bill.clinic_id).open("bill_pdf", "pdf", bill.id, row.pdf_enc)
    data = base64.b64decode(sealed)
    record(db, "bill.download", patient_id=bill.patient_id, object_type="bill", object_id=bill.id)
    db.commit()
    response = Response(data, mimetype="application/pdf")
    filename = bill.number.replace("/", "-")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/bills/<uuid:bill_id>/pdf-status")
@requires(Permission.INVOICE_VIEW, background=True)
def status(bill_id):
    """The PDF's progress: the fragment for htmx (polled while pending), else a small page."""
    bill = load_or_404(Bill, bill_id, "bill.pdf_status")
    response = _status_response(bill)
    get_session().rollback()  # nothing written on GET; end the read transaction
    return response


@bp.post("/bills/<uuid:bill_id>/pdf/retry")
@requires(Permission.INVOICE_CREATE)
def retry(bill_id):
    """Try a failed (or stuck) PDF again: back to pending, queued once the change has committed."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.pdf_retry")
    row = documents.pdf_row(db, bill, for_update=True) if bill.issued else None
    if row is None:
        db.rollback()
        return _status_response(bill, status=409)
    if row.status is not PdfStatus.READY:
        services.write_history(db, bill, "pdf_retry", current_user.id, {"attempts": row.attempts, "error": row.error})
        row.status, row.attempts, row.error, row.requested_at = PdfStatus.PENDING, 0, None, utcnow()
        render_after_commit(db, bill.clinic_id, [bill.id])
        record(db, "bill.pdf_retry", patient_id=bill.patient_id, object_type="bill", object_id=bill.id)
    db.commit()
    if is_htmx():
        return _status_response(bill)
    return client_redirect(url_for("billing.show", bill_id=bill.id))
