# ruff: noqa: F811
"""Document PDFs made by a real RQ worker process: rendered and stored sealed; a worker killed mid-render
leaves no half document, and the sweep gets the document rendered after all."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

from redis import Redis

from app.billing import pdf as bill_pdf
from app.billing.models import Bill
from app.db import get_session, set_tenant
from jobs.invoices import TEST_DELAY_ENV, enqueue_pdf, job_id, sweep_pdfs
from jobs.worker import LOW, queue
from tests.billing.conftest import billing_desk, gst_ready, issue_document, patient, prices  # noqa: F401
from tests.conftest import run_worker, worker_env

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 20)


def _issue(app, clinic, patient, *items) -> str:
    return issue_document(app, clinic, patient, *items)[0]


def _row(sql, bill_id):
    return sql("SELECT status, attempts, pdf_enc, sha256, rendered_at FROM bill_pdf WHERE bill_id = :b", b=bill_id)[0]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdecimal():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _regenerates(app, clinic, bill_id) -> bool:
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        same = bill_pdf.verify_regeneration(db, db.get(Bill, (clinic.id, uuid.UUID(bill_id))))
        db.rollback()
        return same


def test_worker_renders_an_issued_document_and_stores_it_sealed(app, app_config, sql, clinic, patient, prices):
    bill_id = _issue(app, clinic, patient, (prices.consultation, 1), (prices.medicine, 2))
    assert _row(sql, bill_id)[:3] == ("pending", 0, None)
    with app.app_context():
        job = enqueue_pdf(str(clinic.id), bill_id)
    assert job.id == job_id(bill_id)
    result = run_worker(app_config)
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    status, attempts, sealed, digest, rendered_at = _row(sql, bill_id)
    assert (status, attempts) == ("ready", 1) and rendered_at is not None
    assert job.return_value() == digest and len(digest) == 64
    sealed = bytes(sealed)
    assert b"%PDF" not in sealed and b"JVBER" not in sealed  # neither the PDF nor its base64 in the clear
    assert sql("SELECT action FROM billing_event WHERE bill_id = :b AND action = 'pdf_ready'", b=bill_id) == [
        ("pdf_ready",)]
    assert _regenerates(app, clinic, bill_id)
    # Run again: a ready document is left as it is.
    with app.app_context():
        enqueue_pdf(str(clinic.id), bill_id)
    assert run_worker(app_config).returncode == 0
    assert _row(sql, bill_id)[:2] == ("ready", 1)


def test_a_worker_killed_mid_render_leaves_no_half_document_and_the_sweep_finishes_it(app, app_config, sql, clinic,
                                                                                      patient, prices):
    bill_id = _issue(app, clinic, patient, (prices.cosmetic, 1))
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        job = enqueue_pdf(str(clinic.id), bill_id, connection=connection)
    # A long-running worker that pauses after rendering, before storing.
    worker = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT,
                              env={**worker_env(app_config), TEST_DELAY_ENV: "60"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != "started":
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.2)
        time.sleep(3)  # rendering done (about a second), now in the pause before the store
        assert _row(sql, bill_id)[:3] == ("pending", 0, None)
    finally:
        # RQ runs the job in a forked work horse that starts its own session: kill it as well as the worker.
        for pid in [*_children(worker.pid), worker.pid]:
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)

    started = time.monotonic()
    status, attempts, sealed, digest, rendered_at = _row(sql, bill_id)
    assert (status, attempts, sealed, digest, rendered_at) == ("pending", 0, None, None, None)
    assert sql("SELECT count(*) FROM billing_event WHERE bill_id = :b AND action = 'pdf_ready'", b=bill_id)[0][0] == 0

    # A minute later the sweep finds it still pending and queues it again; a fresh worker renders it.
    sql("UPDATE bill_pdf SET requested_at = now() - interval '2 minutes' WHERE bill_id = :b", b=bill_id)
    assert time.monotonic() - started < 10  # the dead job's row lock went with its connection
    with app.app_context():
        queue(connection).enqueue(sweep_pdfs)
    result = run_worker(app_config)
    assert result.returncode == 0, result.stderr[-2000:]
    status, attempts, sealed, digest, _ = _row(sql, bill_id)
    assert (status, attempts) == ("ready", 1) and sealed is not None, result.stderr[-2000:]
    assert _regenerates(app, clinic, bill_id)
    connection.close()


def test_render_after_commit_enqueues_only_once_committed_and_survives_redis_down(app, app_config, clinic, patient,
                                                                                 prices):
    committed, rolled_back = (_issue(app, clinic, patient, (prices.lab, 1)) for _ in range(2))
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        q = queue(connection, LOW)  # PDFs wait behind reminders
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        assert db.get(Bill, (clinic.id, uuid.UUID(rolled_back))).issued  # a view's transaction, as at issue
        bill_pdf.render_after_commit(db, clinic.id, [rolled_back])
        db.rollback()
        bill_pdf.render_after_commit(db, clinic.id, [committed])
        assert q.fetch_job(job_id(committed)) is None  # nothing before the commit
        db.commit()
    assert q.fetch_job(job_id(committed)).get_status() == "queued"
    assert q.fetch_job(job_id(rolled_back)) is None
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        with app.app_context():
            db = get_session()
            set_tenant(db, clinic_id=clinic.id, user_id=None)
            bill_pdf.render_after_commit(db, clinic.id, [rolled_back])
            db.commit()  # logged, not raised: the sweep queues it later
    finally:
        app.config["REDIS_URL"] = app_config["REDIS_URL"]
    assert q.fetch_job(job_id(rolled_back)) is None
    connection.close()
