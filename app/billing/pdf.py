"""An issued document's PDF: templates/billing/print.html (the same `_paper.html` as the page) through
WeasyPrint, reading only static files (static/bill_paper.css, vendored fonts), failing on a missing one.

Deterministic: the PDF's dates are the document's issue time and it carries no random identifier, so
the same document always gives the same bytes (`verify_regeneration` checks that against the stored hash).

`render_after_commit(db, clinic_id, bill_ids)`: the billing views call it right after issuing, before
their commit; the worker jobs are enqueued by dotted path once the transaction has committed (never for a
rolled-back issue: app/queue.py). If Redis is down the page still works: the failure is logged and the
periodic sweep (jobs/invoices.py) enqueues the document later.
"""

import hashlib
import uuid
from datetime import UTC

from flask import render_template
from rq import Retry
from sqlalchemy.orm import Session

from app.billing.documents import paper, pdf_row
from app.billing.models import Bill
from app.pdf import write_pdf
from app.queue import LOW, enqueue_after_commit

SHEET = "bill_paper.css"
RENDER_JOB = "jobs.invoices.render_bill_pdf"
MAX_ATTEMPTS = 3  # the job's tries before the document's PDF is failed (the page then offers "Retry")
RETRY = (5, 15, 60)


def pdf_of(html: str) -> bytes:
    """The PDF (A4, from static/bill_paper.css) of a print page, with no random identifier."""
    return write_pdf(html, SHEET, pdf_identifier=False, uncompressed_pdf=False)


def print_html(db: Session, bill: Bill) -> str:
    """The PDF's page: the document as issued (no marks added after issue)."""
    issued_at = bill.issued_at
    if issued_at is not None and issued_at.tzinfo is None:
        issued_at = issued_at.replace(tzinfo=UTC)
    stamp = issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if issued_at else ""
    return render_template("billing/print.html", paper=paper(db, bill, as_issued=True), stamp=stamp)


def render(db: Session, bill: Bill) -> bytes:
    """The document's PDF bytes (an issued document; a draft is never rendered)."""
    if not bill.issued:
        raise ValueError("a draft has no PDF")
    return pdf_of(print_html(db, bill))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_regeneration(db: Session, bill: Bill) -> bool:
    """Render the document again: True when the bytes hash to the stored PDF's sha256."""
    row = pdf_row(db, bill)
    if row is None or not row.sha256:
        return False
    return sha256(render(db, bill)) == row.sha256


# --- Enqueue after commit ----------------------------------------------------------------------------

def job_id(bill_id) -> str:
    return f"bill-pdf-{bill_id}"


def job_options(bill_id) -> dict:
    """The PDF job's options: a fixed id per document (queued once), RQ's retries, a description."""
    return {"job_id": job_id(bill_id), "retry": Retry(max=MAX_ATTEMPTS - 1, interval=list(RETRY)),
            "description": f"PDF of bill {bill_id}"}


def render_after_commit(db: Session, clinic_id: uuid.UUID | str, bill_ids) -> None:
    """Enqueue the PDF jobs of these documents, on the low-urgency queue, once `db` commits (nothing if it rolls
    back)."""
    for bill_id in bill_ids:
        enqueue_after_commit(db, RENDER_JOB, str(clinic_id), str(bill_id), urgency=LOW, **job_options(bill_id))
