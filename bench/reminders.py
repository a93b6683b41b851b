"""The reminders benchmark: N reminders due at once, queued as the sweep queues them (jobs of 50 ids), sent by
two real RQ worker processes (the production
worker, `python -m jobs.worker --burst`) through the real twilio SDK to the local fake of Twilio's API.
Reports messages per second (first job taken to last row sent) and duplicates: messages the fake received
beyond one per reminder, which must be zero.

    python -m bench.reminders [--reminders 10000] [--workers 2] [--database clinicdesk_bench_reminders]

Against a `clinicdesk_bench_reminders` database on the DATABASE_URL server (rebuilt each run: a clinic on
Twilio, doctors, patients who consented to WhatsApp, one appointment and one due reminder per message),
else an embedded PostgreSQL in instance/bench; Redis at REDIS_URL, else an embedded one. Prints a table;
writes bench/results/reminders.json and reminders.md.
"""

import argparse
import json
import os
import subprocess
import sys
import time as clock
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import func, insert, select

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.clinics.models import Clinic, Membership
from app.db import get_session, new_id, set_tenant, utcnow
from app.messaging import texts
from app.messaging.models import Reminder, ReminderSettings, ReminderTemplate, State, Transport
from app.patients import services as patients
from app.patients.services import PatientData
from app.scheduling.models import Appointment, Status
from app.security.fields import keyring
from bench import data, env, report
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "clinicdesk_bench_reminders"
DOCTORS = 20


def setup(app, *, reminders: int, patients_count: int = 200) -> uuid.UUID:
    """A clinic on Twilio (the fake's credentials), patients with WhatsApp consent, and one appointment per
    reminder with its reminder due now; returns the clinic id."""
    with app.app_context():
        db = get_session()
        clinic = Clinic(id=new_id(), name="Bench Reminders Clinic", legal_name="Bench Reminders LLP",
                        address_line="1 MG Road", city="Bengaluru", pin_code="560001", state_code="29")
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        db.add(clinic)
        db.flush()
        ring = keyring(db, clinic.id)
        # No quiet hours: the bench sends whatever the hour it is run at.
        db.add(ReminderSettings(clinic_id=clinic.id, enabled=True, channels="whatsapp,sms", transport=Transport.TWILIO,
                                quiet_start=time(0), quiet_end=time(0),
                                account_sid=ACCOUNT_SID, whatsapp_from="whatsapp:+14155238886", sms_from="CLNCDK",
                                auth_token_enc=ring.seal("reminder_settings", "auth_token", clinic.id, AUTH_TOKEN)))
        db.add(ReminderTemplate(clinic_id=clinic.id, language="en", whatsapp_content_sid="HX" + "ab" * 16,
                                offer_content_sid="HX" + "cd" * 16, sms_text=texts.SMS_TEXTS["en"],
                                offer_sms_text=texts.OFFER_SMS_TEXTS["en"]))
        doctors = _doctors(db, clinic.id)
        people = [patients.register(db, clinic_id=clinic.id, by=None, consents={"whatsapp": True}, data=PatientData(
            full_name=f"Bench Patient {n}", sex="F", dob=date(1980, 1, 1 + n % 28), phone=f"+9198450{n:05d}",
            state_code="29")).id for n in range(patients_count)]
        db.commit()
        _appointments(db, clinic.id, doctors, people, reminders, ring.active.version)
        return clinic.id


def _doctors(db, clinic_id: uuid.UUID) -> list[uuid.UUID]:
    ids = []
    for n in range(DOCTORS):
        user = StaffUser(id=new_id(), email=f"doctor{n}.{uuid.uuid4().hex[:6]}@bench.example.in",
                         full_name=f"Dr Bench {n}", password_hash="!")  # noqa: S106 (no password: cannot sign in)
        db.add(user)
        db.flush()
        db.add(Membership(clinic_id=clinic_id, user_id=user.id, role=Role.DOCTOR))
        ids.append(user.id)
    return ids


def _appointments(db, clinic_id, doctors, people, count: int, key_version: int) -> None:
    """One appointment per reminder from tomorrow, a minute apart (each doctor's 15-minute visits 20 minutes
    apart), and its due reminder."""
    start = (utcnow() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    now = utcnow()
    for first in range(0, count, 1000):
        batch, rows = [], []
        for n in range(first, min(count, first + 1000)):
            starts = start + timedelta(minutes=n)
            appointment_id, patient_id = new_id(), people[n % len(people)]
            batch.append(dict(clinic_id=clinic_id, id=appointment_id, patient_id=patient_id,
                              doctor_id=doctors[n % DOCTORS], walk_in=False,
                              day=starts.astimezone(ZoneInfo("Asia/Kolkata")).date(), starts_at=starts,
                              ends_at=starts + timedelta(minutes=15), status=Status.BOOKED, overbooked=False,
                              key_version=key_version, version=1, created_at=now, updated_at=now))
            rows.append(dict(clinic_id=clinic_id, id=new_id(), appointment_id=appointment_id, appointment_version=1,
                             patient_id=patient_id, kind="24h", channel="whatsapp", due_at=now, state=State.PENDING,
                             attempts=0, key_version=1, created_at=now))
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        db.execute(insert(Appointment), batch)
        db.execute(insert(Reminder), rows)
        db.commit()


def worker_environment(config: dict, fake_url: str, queue_name: str) -> dict:
    environment = {**os.environ, "DATABASE_URL": config["DATABASE_URL"], "APP_DB_PASSWORD": config["APP_DB_PASSWORD"],
                   "REDIS_URL": config["REDIS_URL"], "SECRET_KEY": config["SECRET_KEY"],
                   "MASTER_KEY": config["MASTER_KEY"], "INSTANCE_PATH": config["INSTANCE_PATH"],
                   "RQ_QUEUE": queue_name, "TWILIO_API_BASE": fake_url, "PUBLIC_URL": "https://clinic.example.in",
                   "NO_PROXY": "127.0.0.1,localhost"}
    environment.pop("DATABASE_APP_URL", None)
    return environment


def send_all(app, config: dict, clinic_id: uuid.UUID, *, workers: int, timeout: float) -> dict:
    """Queue every due reminder, run the workers until the queue is empty, and count what the fake got."""
    from jobs.reminders import enqueue_many

    queue_name = f"bench-reminders-{uuid.uuid4().hex[:8]}"
    q = Queue(queue_name, connection=Redis.from_url(config["REDIS_URL"]), serializer=JSONSerializer)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        ids = list(db.scalars(select(Reminder.id).where(Reminder.clinic_id == clinic_id)))
        db.rollback()
    enqueue_many([(clinic_id, reminder_id, None) for reminder_id in ids], q=q)
    with FakeTwilio() as fake:
        environment = worker_environment(config, fake.url, queue_name)
        began = clock.perf_counter()
        processes = [subprocess.Popen([sys.executable, "-m", "jobs.worker", "--burst"], cwd=ROOT, env=environment,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        try:
            for process in processes:
                process.wait(timeout=timeout)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        elapsed = clock.perf_counter() - began
        received = fake.messages
    q.delete(delete_jobs=True)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        states = dict(db.execute(select(Reminder.state, func.count()).where(Reminder.clinic_id == clinic_id)
                                 .group_by(Reminder.state)).all())
        db.rollback()
    sent = states.get(State.SENT, 0)
    return {"reminders": len(ids), "workers": workers, "seconds": round(elapsed, 2),
            "per_second": round(sent / elapsed, 1) if elapsed else 0.0, "sent": sent,
            "received_by_fake": len(received), "duplicates": duplicates(received), "not_sent": len(ids) - sent,
            "states": {str(k.value if hasattr(k, "value") else k): v for k, v in states.items()}}


def duplicates(received: list[dict]) -> int:
    """Messages beyond one per appointment: each reminder's appointment is its number, date and time (a
    second send would carry a new link, so the link cannot tell)."""
    seen = set()
    for message in received:
        variables = json.loads(message["ContentVariables"])
        seen.add((message["To"], variables["2"], variables["3"]))
    return len(received) - len(seen)


def text(info: dict, result: dict) -> str:
    return (f"Reminders: {result['reminders']} due at once, {result['workers']} RQ workers (jobs/worker.py, "
            f"burst), real twilio SDK to the local fake, on {info.get('cpus', '?')} CPUs\n\n"
            "| reminders | workers | seconds | messages/s | received by the fake | duplicates | not sent |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {result['reminders']} | {result['workers']} | {result['seconds']} | {result['per_second']} | "
            f"{result['received_by_fake']} | {result['duplicates']} | {result['not_sent']} |\n")


def run(app, config: dict, *, reminders: int, workers: int = 2, patients_count: int = 200,
        timeout: float = 3600) -> dict:
    clinic_id = setup(app, reminders=reminders, patients_count=patients_count)
    return send_all(app, config, clinic_id, workers=workers, timeout=timeout)


def _arguments(argv: list[str] | None):
    p = argparse.ArgumentParser(description="Benchmark sending due reminders through RQ workers to a fake Twilio.")
    p.add_argument("--reminders", type=int, default=10_000, help="reminders due at once (default 10000)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--small", action="store_true", help="a quick run: 500 reminders")
    p.add_argument("--database", default=DATABASE, help="database name on the DATABASE_URL server")
    args, others = p.parse_known_args(argv)
    if others:
        print(f"bench.reminders: ignoring what it does not take: {' '.join(others)}", file=sys.stderr)
    if args.small:
        args.reminders = min(args.reminders, 500)
    return args


def main(argv: list[str] | None = None) -> None:
    from app import create_app
    from app.migrate import migrate

    args = _arguments(argv)
    bench = env.resolve(args)
    if env.state(bench.admin_url) == "other":
        raise SystemExit(f"{bench.safe_url} holds data the bench did not make: choose another --database")
    if not bench.config["REDIS_URL"]:
        from app.local.services import start_redis

        client, bench.config["REDIS_URL"] = start_redis(bench.folder / "redis")
        bench.keep.append(client)
    env.recreate(bench.admin_url)
    migrate(bench.admin_url, bench.config["APP_DB_PASSWORD"])
    with bench.owner() as conn:  # marks the database as the bench's own, so the next run may rebuild it
        conn.execute("INSERT INTO app_meta (key, value) VALUES (%s, %s)", [data.META_KEY, '{"reminders": true}'])
    app = create_app(bench.config)
    result = run(app, bench.config, reminders=args.reminders, workers=args.workers)
    info = report.machine(bench)
    markdown = text(info, result)
    print("\n" + markdown)
    report.write(markdown, {"machine": info, "reminders": result, "at": datetime.now().isoformat()}, name="reminders")


if __name__ == "__main__":
    main()
