"""Document PDFs: render an issued document's PDF and keep it sealed; sweep up documents left pending.

- `render_bill_pdf(clinic_id, bill_id)` locks the document's `bill_pdf` row (SKIP LOCKED: another worker
  has it, so return), renders, seals the base64 of the bytes and marks it ready, all in ONE commit: a
  worker killed mid-render leaves the row pending with no PDF, and a retry starts over.
- A failure is rolled back, then counted in a transaction of its own (attempts, a short error, no PHI);
  after MAX_ATTEMPTS the row is failed (the page offers "Retry"). The exception is re-raised so RQ's
  Retry runs the job again.
- `enqueue_pdf` uses a fixed job id per document (bill-pdf-<id>), so a document is queued once.
- `sweep_pdfs` (every 60 s: jobs/timer.py) re-enqueues rows still pending a minute after they were
  requested: Redis was down at issue, or a worker died.
- PDFs go on the low-urgency queue: a batch of them never holds up a reminder.
"""

import base64
import logging
import os
import time
import uuid
from datetime import timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import select

from app.billing import pdf as bill_pdf
from app.billing import services
from app.billing.models import Bill, BillPdf, PdfStatus
from app.billing.pdf import MAX_ATTEMPTS, job_id  # noqa: F401 (job_id: the PDF job's id, for callers)
from app.db import get_session, set_tenant, utcnow
from app.queue import enqueue
from app.security.fields import keyring
from jobs.worker import in_app_context

log = logging.getLogger(__name__)

SWEEP_AFTER = timedelta(seconds=60)
# Tests only: seconds to sleep after rendering and before storing, so a test can kill a worker mid-render.
TEST_DELAY_ENV = "CLINICDESK_TEST_PDF_DELAY"


def _queue(connection: Redis | None = None) -> Queue:
    from flask import current_app, has_app_context

    from jobs.worker import LOW, flask_app, queue, redis_connection

    config = current_app.config if has_app_context() else flask_app().config
    return queue(connection or redis_connection(config["REDIS_URL"]), LOW)


def enqueue_pdf(clinic_id: str, bill_id: str, *, connection: Redis | None = None):
    """Queue the document's PDF job (once: a job already queued under its id is left as it is)."""
    # A started job may belong to a worker that died; running it twice is harmless (SKIP LOCKED, ready rows skipped).
    return enqueue(_queue(connection), bill_pdf.RENDER_JOB, str(clinic_id), str(bill_id),
                   **bill_pdf.job_options(bill_id))


def _short(exc: BaseException) -> str:
    """The error as stored: the exception's type and first line, no more than 200 characters."""
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip().rstrip(":")
    return text[:200]


@in_app_context
def render_bill_pdf(clinic_id: str, bill_id: str) -> str | None:
    """Render, seal and store one document's PDF; returns its sha256 (None: nothing to do)."""
    db = get_session()
    clinic, bill_key = uuid.UUID(str(clinic_id)), uuid.UUID(str(bill_id))
    set_tenant(db, clinic_id=clinic, user_id=None)
    try:
        row = db.scalars(select(BillPdf).where(BillPdf.clinic_id == clinic, BillPdf.bill_id == bill_key)
                         .with_for_update(skip_locked=True)).one_or_none()
        if row is None or row.status is PdfStatus.READY:
            db.rollback()
            return None
        bill = db.get(Bill, (clinic, bill_key))
        data = bill_pdf.render(db, bill)
        delay = os.environ.get(TEST_DELAY_ENV)
        if delay:
            time.sleep(float(delay))
        digest = bill_pdf.sha256(data)
        ring = keyring(db, clinic)
        row.pdf_enc = ring.seal("bill_pdf", "pdf", bill_key, base64.b64encode(data).decode("ascii"))
        row.key_version = ring.active.version
        row.sha256, row.status, row.error = digest, PdfStatus.READY, None
        row.rendered_at = utcnow()
        row.attempts += 1
        services.write_history(db, bill, "pdf_ready", None, {"sha256": digest})
        db.commit()
        return digest
    except Exception as exc:
        db.rollback()
        _count_failure(db, clinic, bill_key, exc)
        raise
    finally:
        set_tenant(db, clinic_id=None, user_id=None)


def _count_failure(db, clinic: uuid.UUID, bill_id: uuid.UUID, exc: BaseException) -> None:
    try:
        set_tenant(db, clinic_id=clinic, user_id=None)
        row = db.get(BillPdf, (clinic, bill_id), with_for_update=True)
        if row is not None and row.status is not PdfStatus.READY:
            row.attempts += 1
            row.error = _short(exc)
            if row.attempts >= MAX_ATTEMPTS:
                row.status = PdfStatus.FAILED
        db.commit()
        log.warning("PDF of bill %s failed (attempt %s): %s", bill_id, row.attempts if row else "?", _short(exc))
    except Exception:
        db.rollback()
        log.exception("could not record the failed PDF of bill %s", bill_id)


# --- The sweep ---------------------------------------------------------------------------------------

@in_app_context
def sweep_pdfs() -> int:
    """Re-enqueue every clinic's documents still pending a minute after they were requested."""
    from jobs.audit import clinic_ids

    db = get_session()
    cutoff = utcnow() - SWEEP_AFTER
    stale: list[tuple[uuid.UUID, uuid.UUID]] = []
    for clinic in clinic_ids(db):
        set_tenant(db, clinic_id=clinic, user_id=None)
        try:
            stale += [(clinic, bill_id) for bill_id in db.scalars(
                select(BillPdf.bill_id).where(BillPdf.clinic_id == clinic, BillPdf.status == PdfStatus.PENDING,
                                              BillPdf.requested_at < cutoff).order_by(BillPdf.requested_at))]
            db.commit()
        except Exception:
            db.rollback()
            log.exception("PDF sweep failed for clinic %s", clinic)
    set_tenant(db, clinic_id=None, user_id=None)
    q = _queue()
    for clinic, bill_id in stale:
        enqueue_pdf(str(clinic), str(bill_id), connection=q.connection)
    if stale:
        log.info("PDF sweep: re-enqueued %d documents", len(stale))
    return len(stale)
