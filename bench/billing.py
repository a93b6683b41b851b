"""The billing benchmark: (a) documents issued per second with several desks issuing at once, each with
its own session, from drafts made beforehand (a consultation and a medicine: invoices-cum-bills of supply),
with every issue's time and a check that the numbers came out consecutive, no gap and no duplicate; (b)
PDFs rendered per second by one worker (one process runs jobs/invoices.py `render_bill_pdf` in turn).

    python -m bench.billing [--threads 8] [--documents 400] [--pdfs 50] [--database clinicdesk_bench_billing]

Against a `clinicdesk_bench_billing` database on the DATABASE_URL server (rebuilt each run: a clinic, its GST
profile and the demo price list, patients registered through the app), else an embedded PostgreSQL in
instance/bench. Prints a table; writes bench/results/billing.json and billing.md.
"""

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import date
from decimal import Decimal

from app.billing import issuing, services
from app.billing.models import Bill, BillingProfile, BillPdf, PdfStatus, PriceItem
from app.clinics.models import Clinic
from app.db import get_session, new_id, set_tenant
from app.demo.billing import clinic_gstin, price_list
from app.patients import services as patients
from app.patients.models import Patient
from app.patients.services import PatientData
from bench import env, report
from bench.measure import pct

DAY = date(2026, 11, 20)
DATABASE = "clinicdesk_bench_billing"


def setup(app, *, patients_count: int = 20) -> dict:
    """A GST-ready clinic in Karnataka with the demo price list and some patients."""
    with app.app_context():
        db = get_session()
        clinic = Clinic(id=new_id(), name=f"Bench Billing {uuid.uuid4().hex[:6]}", legal_name="Bench Billing LLP",
                        address_line="1 MG Road", city="Bengaluru", pin_code="560001", state_code="29",
                        gstin=clinic_gstin("29"))
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        db.add(clinic)
        db.flush()
        db.add(BillingProfile(clinic_id=clinic.id, signatory_name="Dr Bench", signatory_designation="Director",
                              invoice_prefix="INV", bill_of_supply_prefix="BOS", credit_note_prefix="CN",
                              receipt_prefix="RCT", fee_validity_days=0))
        items = price_list(db, clinic, None)
        ids = []
        for n in range(patients_count):
            person = PatientData(full_name=f"Bench Patient {n}", sex="F", dob=date(1980, 1, 1 + n % 28),
                                 phone=f"+9198450{n:05d}", state_code="29")
            ids.append(patients.register(db, clinic_id=clinic.id, data=person, by=None, consents={}).id)
        db.commit()
        return {"clinic_id": clinic.id, "patients": ids, "consult": items["CONSULT"].id,
                "medicines": [items[c].id for c in ("PARA650", "AMOX500", "ORS", "COUGH100", "CREPE10")]}


def make_drafts(app, ctx: dict, count: int) -> list[uuid.UUID]:
    """`count` drafts, each a consultation and one to three strips of a medicine."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=ctx["clinic_id"], user_id=None)
        clinic = db.get(Clinic, ctx["clinic_id"])
        consult = db.get(PriceItem, (clinic.id, ctx["consult"]))
        medicines = [db.get(PriceItem, (clinic.id, i)) for i in ctx["medicines"]]
        ids = []
        for n in range(count):
            patient = db.get(Patient, (clinic.id, ctx["patients"][n % len(ctx["patients"])]))
            bill = services.new_draft(db, clinic=clinic, patient=patient, appointment=None, by=None, day=DAY)
            services.add_line(db, bill, item=consult, quantity=Decimal(1), discount=None, by=None, day=DAY)
            services.add_line(db, bill, item=medicines[n % len(medicines)], quantity=Decimal(1 + n % 3),
                              discount=None, by=None, day=DAY)
            ids.append(bill.id)
        db.commit()
        return ids


def issue_rate(app, ctx: dict, *, threads: int, documents: int) -> dict:
    """Issue `documents` drafts from `threads` threads at once (each its own session); times and checks."""
    drafts = make_drafts(app, ctx, documents)
    shares = [drafts[n::threads] for n in range(threads)]
    times: list[float] = []
    errors: list[str] = []
    lock, start = threading.Lock(), threading.Barrier(threads)
    maker = app.extensions["db_sessionmaker"]

    def desk(share: list[uuid.UUID]) -> None:
        db = maker()
        set_tenant(db, clinic_id=ctx["clinic_id"], user_id=None)
        mine = []
        try:
            start.wait()
            for bill_id in share:
                began = time.perf_counter()
                try:
                    clinic = db.get(Clinic, ctx["clinic_id"])
                    issuing.issue(db, clinic=clinic, bill=db.get(Bill, (ctx["clinic_id"], bill_id)), by=None,
                                   day=DAY)
                    db.commit()
                except Exception as exc:  # noqa: BLE001 (counted and reported)
                    db.rollback()
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                mine.append((time.perf_counter() - began) * 1000)
        finally:
            db.close()
            with lock:
                times.extend(mine)

    workers = [threading.Thread(target=desk, args=(share,)) for share in shares]
    began = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=ctx["clinic_id"], user_id=None)
        numbers = [n for (n,) in db.query(Bill.number).filter(Bill.clinic_id == ctx["clinic_id"],
                                                             Bill.id.in_(drafts), Bill.number.is_not(None))]
    counters = sorted(int(n.rsplit("/", 1)[1]) for n in numbers)
    first = counters[0] if counters else 1
    ms = sorted(times)
    return {"name": "issue (consultation + medicine)", "threads": threads, "documents": documents,
            "issued": len(numbers), "errors": len(errors), "first_errors": errors[:3], "seconds": elapsed,
            "per_second": len(numbers) / elapsed if elapsed else 0.0, "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95),
            "consecutive": counters == list(range(first, first + len(counters))),
            "duplicates": len(numbers) - len(set(numbers))}


def pdf_rate(app, ctx: dict, *, documents: int) -> dict:
    """Render `documents` pending PDFs one after another in this process (one worker)."""
    from jobs.invoices import render_bill_pdf

    render = getattr(render_bill_pdf, "__wrapped__", render_bill_pdf)  # in this app, not the worker's
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=ctx["clinic_id"], user_id=None)
        pending = [b for (b,) in db.query(BillPdf.bill_id).filter(BillPdf.clinic_id == ctx["clinic_id"],
                                                                  BillPdf.status == PdfStatus.PENDING)
                   .order_by(BillPdf.requested_at).limit(documents)]
    times, sizes, failed = [], [], 0
    began = time.perf_counter()
    for bill_id in pending:
        with app.app_context():
            started = time.perf_counter()
            try:
                digest = render(str(ctx["clinic_id"]), str(bill_id))
            except Exception:  # noqa: BLE001 (counted and reported)
                digest = None
            times.append((time.perf_counter() - started) * 1000)
            failed += digest is None
    elapsed = time.perf_counter() - began
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=ctx["clinic_id"], user_id=None)
        for row in db.query(BillPdf).filter(BillPdf.clinic_id == ctx["clinic_id"], BillPdf.bill_id.in_(pending),
                                            BillPdf.status == PdfStatus.READY):
            sizes.append(len(row.pdf_enc))
    ms = sorted(times) or [0.0]
    return {"name": "PDF render (1 worker)", "documents": len(pending), "rendered": len(sizes), "failed": failed,
            "seconds": elapsed, "per_second": len(sizes) / elapsed if elapsed else 0.0, "p50_ms": pct(ms, 50),
            "p95_ms": pct(ms, 95), "sealed_kb_mean": statistics.fmean(sizes) / 1024 if sizes else 0.0}


def text(info: dict, issued: dict, pdfs: dict) -> str:
    return "\n".join([
        "# Billing benchmark", "",
        f"Machine: {info.get('cpu_model', '?')}, {info.get('cpus') or os.cpu_count()} CPUs; PostgreSQL "
        f"{info.get('postgresql', {}).get('server_version', '?')}.", "",
        "| measure | n | per second | p50 ms | p95 ms | checks |", "|---|---:|---:|---:|---:|---|",
        f"| {issued['name']}, {issued['threads']} threads | {issued['issued']} | {issued['per_second']:.1f} "
        f"| {issued['p50_ms']:.1f} | {issued['p95_ms']:.1f} | consecutive: {issued['consecutive']}, duplicates: "
        f"{issued['duplicates']}, errors: {issued['errors']} |",
        f"| {pdfs['name']} | {pdfs['rendered']} | {pdfs['per_second']:.2f} | {pdfs['p50_ms']:.1f} "
        f"| {pdfs['p95_ms']:.1f} | failed: {pdfs['failed']}, sealed PDF {pdfs['sealed_kb_mean']:.0f} KB |", ""])


def run(app, *, threads: int, documents: int, pdfs: int, patients_count: int = 20) -> dict:
    ctx = setup(app, patients_count=patients_count)
    issued = issue_rate(app, ctx, threads=threads, documents=documents)
    rendered = pdf_rate(app, ctx, documents=pdfs)
    return {"issue": issued, "pdf": rendered}


def _arguments(argv: list[str] | None):
    p = argparse.ArgumentParser(description="Benchmark issuing billing documents and rendering their PDFs.")
    p.add_argument("--threads", type=int, default=8, help="desks issuing at once (default 8)")
    p.add_argument("--documents", type=int, default=400, help="drafts issued in all (default 400)")
    p.add_argument("--pdfs", type=int, default=50, help="PDFs rendered by the one worker (default 50)")
    p.add_argument("--small", action="store_true", help="a quick run: 80 documents, 10 PDFs")
    p.add_argument("--database", default=DATABASE, help="database name on the DATABASE_URL server")
    args, others = p.parse_known_args(argv)  # `make bench` passes one BENCH_ARGS to every benchmark
    if others:
        print(f"bench.billing: ignoring what it does not take: {' '.join(others)}", file=sys.stderr)
    if args.small:
        args.documents, args.pdfs = min(args.documents, 80), min(args.pdfs, 10)
    return args


def main(argv: list[str] | None = None) -> None:
    from app import create_app
    from app.migrate import migrate

    args = _arguments(argv)
    bench = env.resolve(args)
    if env.state(bench.admin_url) == "other":  # holds staff: not a database this bench made
        raise SystemExit(f"{bench.safe_url} holds data the bench did not make: choose another --database")
    env.recreate(bench.admin_url)
    migrate(bench.admin_url, bench.config["APP_DB_PASSWORD"])
    app = create_app(bench.config)
    results = run(app, threads=args.threads, documents=args.documents, pdfs=args.pdfs)
    info = report.machine(bench)
    markdown = text(info, results["issue"], results["pdf"])
    print("\n" + markdown)
    report.write(markdown, {"machine": info, **results}, name="billing")


if __name__ == "__main__":
    main()
