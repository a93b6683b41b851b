"""The bench data generator: fifty clinics, N patients and M appointments over about three years, and
the consultations, vitals, prescriptions, bills, payments and reminders of the visits.

`python -m bench.data [--small | --patients N --appointments M] [--fresh]` fills the bench database
(see bench/env.py); `python -m bench.schedule` does the same before it measures.

The set-up (clinics, staff, hours, sessions, leave, types, data keys) goes through the app's models and
runtime role (bench/clinics.py). Then bench/plan.py decides how many appointments each doctor has each
day, and worker processes make patients (bench/patients.py), then appointments (bench/visits.py) and
what followed from them (bench/records.py: a clinic per task, its days in order, so its numbers are
gapless) and load them by binary COPY on the admin connection with `app.clinic_id` set (a superuser
skips the foreign-key and guard triggers: the keys hold by construction). The timeline feed of the
appointment, record and consent history is filled by SQL after the load; the records write their own.
Last, bench/timeline.py's patients join the big clinic (one with 5,000 events). Secondary indexes are dropped for the
load and rebuilt from their own definitions afterwards; the no-overlap exclusion constraint stays and
checks every appointment as it goes in. Everything random comes from a fixed seed.
"""

import json
import multiprocessing
import os
import sys
import time as clock
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.auth.models import StaffUser
from app.db import get_session, set_tenant
from app.patients.models import Patient
from app.patients.services import open_patient
from app.security.crypto import DecryptionError
from app.security.fields import Keyring, keyring
from bench import clinics, patients, records, visits
from bench.names import seeded
from bench.patients import CachingRing
from bench.plan import FUTURE_DAYS, SMALL, Plan, Size, bench_day_after, history_days, plan_counts, share_patients

__all__ = ["FUTURE_DAYS", "SMALL", "Size", "bench_day_after", "existing", "generate", "matches", "readable"]

FORMAT = 3  # bump when the generator changes what it makes: older bench databases are rebuilt
META_KEY = "bench"
COLUMNS = patients.COLUMNS | visits.COLUMNS | records.COLUMNS
TABLES = (*COLUMNS, "bill_series", "clinic_counter")
PIECE = 12_000  # appointments made and loaded in one transaction


# --- Loading --------------------------------------------------------------------------------------------------

_PLAN: Plan | None = None
_RINGS: dict[uuid.UUID, Keyring] = {}
_CONN: psycopg.Connection | None = None
_TYPES: dict[str, list[str]] = {}


def say(text: str) -> None:
    """Progress for whoever runs the generator (flushed: `make bench` may be writing to a file)."""
    print(text, flush=True)


def conninfo(admin_url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    return make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _connect(info: str, superuser: bool) -> None:
    global _CONN
    _CONN = psycopg.connect(info)
    _CONN.execute("SET synchronous_commit = off")
    if superuser:  # loading generated rows: the foreign keys hold by construction, so skip their triggers
        _CONN.execute("SET session_replication_role = replica")
    _CONN.commit()


def _types(table: str) -> list[str]:
    if table not in _TYPES:
        found = dict(_CONN.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped", [table]).fetchall())
        _TYPES[table] = [found[c] for c in COLUMNS[table]]
    return _TYPES[table]


def _copy(table: str, rows: list[tuple]) -> None:
    types = _types(table)  # before the COPY starts: the connection serves nothing else during it
    statement = f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN (FORMAT BINARY)"
    with _CONN.cursor() as cur, cur.copy(statement) as cp:
        cp.set_types(types)
        for row in rows:
            cp.write_row(row)


def _task(task: tuple) -> tuple[str, int, object]:
    """Make and COPY one piece of work: a clinic's patients low..high in one transaction (returns their
    contact details), or all of a clinic's days with what followed from its visits, a transaction per
    some 12,000 appointments (returns how many rows of each table)."""
    kind, ci, arg = task
    cp = _PLAN.clinics[ci]
    ring = _RINGS[cp.id]
    if kind == "patients":
        contacts: dict[int, patients.Contact] = {}
        _load(cp, patients.make(_PLAN, cp, ring, *arg, contacts))
        return kind, arg[1] - arg[0], (ci, contacts)
    pieces, contacts = arg
    maker, loaded = records.Maker(_PLAN, cp, ring, contacts), 0
    for days in pieces:
        made: list[visits.Made] = []
        rows = visits.make(_PLAN, cp, ring, days, made)
        _load(cp, rows | maker.make(made))
        loaded += len(made)
    with _CONN.transaction():
        _CONN.execute("SELECT set_config('app.clinic_id', %s, true)", [str(cp.id)])
        maker.finish(_CONN)
    return kind, loaded, maker.counts


def _load(cp, rows: dict[str, list[tuple]]) -> None:
    _CONN.execute("SELECT set_config('app.clinic_id', %s, true)", [str(cp.id)])
    for table, table_rows in rows.items():
        if table_rows:
            _copy(table, table_rows)
    _CONN.commit()


def _tasks(plan: Plan) -> tuple[list[tuple], list[tuple]]:
    """A clinic's patients 4,000 at a time; its days in pieces of some 12,000 appointments, a clinic per
    task (its numbers run in order through its days), biggest clinics first."""
    patient_tasks = [("patients", cp.index, (low, min(low + 4000, cp.patients + 1)))
                     for cp in plan.clinics for low in range(1, cp.patients + 1, 4000)]
    appointments = []
    for cp in plan.clinics:
        pieces, days, total, day = [], [], 0, plan.first
        while day <= plan.last:
            days.append(day)
            total += sum(plan.counts.get((cp.index, day), ()))
            if total >= PIECE or day == plan.last:
                pieces.append(days)
                days, total = [], 0
            day += timedelta(days=1)
        size = sum(sum(c) for (ci, _), c in plan.counts.items() if ci == cp.index)
        appointments.append((size, cp.index, pieces))
    return patient_tasks, [("appointments", ci, pieces) for _, ci, pieces in sorted(appointments, key=lambda t: -t[0])]


# The timeline feed of what was loaded, as the services that write the history tables write it (and as
# migration 0004 fills it for history made before the feed existed): one event per appointment event,
# record change and consent change, its id and ref that of the source row.
TIMELINE_FILL = """
INSERT INTO timeline_event (clinic_id, id, patient_id, at, kind, action, doctor_id, ref_id, by)
SELECT e.clinic_id, e.id, a.patient_id, e.at, 'appointment', e.action, a.doctor_id, e.id, e.by
  FROM appointment_event e JOIN appointment a ON a.clinic_id = e.clinic_id AND a.id = e.appointment_id
 WHERE e.clinic_id = %(c)s
UNION ALL
SELECT clinic_id, id, patient_id, changed_at, 'record', action, NULL, id, changed_by FROM patient_history
 WHERE clinic_id = %(c)s
UNION ALL
SELECT clinic_id, id, patient_id, at, 'consent', CASE WHEN granted THEN 'given' ELSE 'withdrawn' END, NULL, id,
       recorded_by FROM consent_event WHERE clinic_id = %(c)s
"""


def fill_timeline(conn: psycopg.Connection, plan: Plan, superuser: bool, log) -> float:
    """Write the timeline feed of every clinic's loaded history, a clinic per transaction."""
    started, done = clock.perf_counter(), 0
    for cp in plan.clinics:
        with conn.transaction():
            conn.execute("SELECT set_config('app.clinic_id', %s, true)", [str(cp.id)])
            if superuser:  # the keys hold by construction, as for the COPY
                conn.execute("SET LOCAL session_replication_role = replica")
            done += conn.execute(TIMELINE_FILL, {"c": cp.id}).rowcount
    elapsed = clock.perf_counter() - started
    log(f"  timeline: {done:,} events ({done / max(elapsed, 0.001):,.0f}/s, {elapsed:.0f} s)")
    return elapsed


def _run(tasks: list[tuple], pool, total: int, what: str, log) -> tuple[float, list]:
    started, done, shown, results = clock.perf_counter(), 0, 0, []
    for _, count, result in (pool.imap_unordered(_task, tasks) if pool else map(_task, tasks)):
        done += count
        results.append(result)
        if done - shown >= total / 10 or done == total:
            shown = done
            elapsed = clock.perf_counter() - started
            log(f"  {what}: {done:,} of {total:,} ({done / elapsed:,.0f}/s, {elapsed:.0f} s)")
    return clock.perf_counter() - started, results


@contextmanager
def indexes_deferred(conn: psycopg.Connection, log):
    """Drop the loaded tables' secondary indexes and rebuild them afterwards from their own definitions
    (also when the load fails). Constraints stay: the no-overlap exclusion constraint checks every row
    as it arrives (and a rebuilt one would not read back exactly as the migration wrote it)."""
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
        "WHERE indrelid = ANY(%s::regclass[]) AND NOT EXISTS "
        "(SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)", [list(TABLES)]).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    try:
        yield
    finally:
        started = clock.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            conn.execute(definition)
            log(f"  index {name} rebuilt ({clock.perf_counter() - started:.0f} s)")


def _check_columns(conn: psycopg.Connection) -> None:
    """Fail clearly when the schema gained a required column this generator does not fill."""
    for table, columns in COLUMNS.items():
        required = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND is_nullable = 'NO' "
            "AND column_default IS NULL", [table])}
        if required - set(columns):
            raise SystemExit(f"bench/data.py does not fill {table}.{', '.join(sorted(required - set(columns)))}")


def _mark(admin_url: str, meta: dict) -> None:
    """The bench marker in `app_meta`: which generator made this database, at what size, when."""
    with psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
        conn.execute("INSERT INTO app_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                     "excluded.value", [META_KEY, json.dumps(meta, separators=(",", ":"))])


def _finish(conn: psycopg.Connection, plan: Plan) -> None:
    """Counters the app continues from (MRNs, today's queue tokens) and fresh statistics."""
    for cp in plan.clinics:
        with conn.transaction():
            conn.execute("SELECT set_config('app.clinic_id', %s, true)", [str(cp.id)])
            conn.execute("INSERT INTO clinic_counter (clinic_id, name, value) VALUES (%s, 'mrn', %s)",
                         [cp.id, cp.patients])
            conn.execute("INSERT INTO clinic_counter (clinic_id, name, value) SELECT clinic_id, %s, max(token) "
                         "FROM appointment WHERE clinic_id = %s AND day = %s AND token IS NOT NULL GROUP BY clinic_id",
                         [f"token:{plan.anchor.isoformat()}", cp.id, plan.anchor])
    for table in TABLES:
        conn.execute(f"VACUUM (ANALYZE) {table}")


def generate(app, admin_url: str, size: Size, *, workers: int | None = None, log=say) -> dict:
    """Fill an empty, migrated database; returns the bench marker stored in `app_meta`."""
    global _PLAN, _RINGS
    started = clock.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    anchor = now.astimezone(ZoneInfo(clinics.TZ)).date()
    bench_day = bench_day_after(anchor, clinics.SPECS[0].place.state_code)
    first, last = anchor - timedelta(days=history_days(size)), anchor + timedelta(days=FUTURE_DAYS)
    with app.app_context():
        db = get_session()
        if db.scalar(select(StaffUser.id).limit(1)) is not None:
            raise SystemExit("the bench database is not empty")
        _mark(admin_url, {"format": FORMAT, "loading": True})  # from here on, a rebuild may drop it
        plans = clinics.create(db, seeded(size.seed, "set-up"), first=first, last=last, bench_day=bench_day,
                               ms=int(now.timestamp() * 1000))
        rings = {cp.id: CachingRing(keyring(db, cp.id)) for cp in plans}
        db.commit()
    plan = Plan(size, now, anchor, first, last, bench_day, plans)
    plan_counts(plan)
    share_patients(plan)
    log(f"set-up: {len(plans)} clinics, {sum(len(c.doctors) for c in plans)} doctors, appointments "
        f"{first} to {last}, benchmark day {bench_day} ({clock.perf_counter() - started:.1f} s)")
    _PLAN, _RINGS = plan, rings
    workers = workers or os.cpu_count() or 1
    patient_tasks, appointment_tasks = _tasks(plan)
    info = conninfo(admin_url)
    timings = {}
    with psycopg.connect(info, autocommit=True) as conn:
        _check_columns(conn)
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        if not superuser:  # issued documents' lines go in after them: only replica mode skips the guard trigger
            raise SystemExit("the bench generator loads issued bills: it needs a superuser DATABASE_URL")
        with indexes_deferred(conn, log):
            pool = multiprocessing.get_context("fork").Pool(workers, _connect, (info, superuser)) \
                if workers > 1 else None
            if pool is None:
                _connect(info, superuser)
            try:
                timings["patients_s"], found = _run(patient_tasks, pool, size.patients, "patients", log)
                contacts: dict[int, dict] = {}
                for ci, part in found:
                    contacts.setdefault(ci, {}).update(part)
                appointment_tasks = [(kind, ci, (pieces, contacts.get(ci, {})))
                                     for kind, ci, pieces in appointment_tasks]
                timings["appointments_s"], counted = _run(appointment_tasks, pool, size.appointments,
                                                          "appointments and what followed", log)
            finally:
                if pool:
                    pool.close()
                    pool.join()
                elif _CONN:
                    _CONN.close()
            made = {}
            for part in counted:
                for table, n in part.items():
                    made[table] = made.get(table, 0) + n
            log("  made " + ", ".join(f"{n:,} {table}" for table, n in made.items()))
            timings["timeline_s"] = fill_timeline(conn, plan, superuser, log)
            index_started = clock.perf_counter()
        timings["indexes_s"] = clock.perf_counter() - index_started
        meta = {"format": FORMAT, **asdict(size), "anchor": anchor.isoformat(), "bench_day": bench_day.isoformat(),
                "load_s": 0}
        analyze_started = clock.perf_counter()
        _finish(conn, plan)
        timings["analyze_s"] = clock.perf_counter() - analyze_started
    subjects_started = clock.perf_counter()
    _long_history(app, admin_url, log)
    _token_counters(admin_url, anchor)  # the long history's visits today took queue tokens too
    timings["long_history_s"] = clock.perf_counter() - subjects_started
    meta["load_s"] = round(clock.perf_counter() - started)
    _mark(admin_url, meta)
    log("loaded in " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items()) + f"; {meta['load_s']} s in all")
    return meta


def _token_counters(admin_url: str, day) -> None:
    """Today's queue-token counters at least the highest token given today, so the desk's next walk-in or
    check-in takes the next number."""
    with psycopg.connect(conninfo(admin_url)) as conn:
        for (clinic_id,) in conn.execute("SELECT id FROM clinic").fetchall():
            with conn.transaction():
                conn.execute("SELECT set_config('app.clinic_id', %s, true)", [str(clinic_id)])
                conn.execute(
                    "INSERT INTO clinic_counter (clinic_id, name, value) SELECT clinic_id, %s, max(token) "
                    "FROM appointment WHERE clinic_id = %s AND day = %s AND token IS NOT NULL GROUP BY clinic_id "
                    "ON CONFLICT (clinic_id, name) "
                    "DO UPDATE SET value = greatest(clinic_counter.value, excluded.value)",
                    [f"token:{day.isoformat()}", clinic_id, day])


def _long_history(app, admin_url: str, log) -> None:
    """The timeline benchmark's patients in the big clinic, one of them with 5,000 events (bench/timeline.py)."""
    from bench import env, timeline

    timeline.make_subjects(app, env.Bench(admin_url, {}, Path(".")), timeline.LONG_EVENTS, log=log)


def existing(admin_url: str) -> dict | None:
    """The bench marker of a generated database, or None."""
    with psycopg.connect(conninfo(admin_url)) as conn:
        found = conn.execute("SELECT to_regclass('app_meta') IS NOT NULL").fetchone()[0] and conn.execute(
            "SELECT value FROM app_meta WHERE key = %s", [META_KEY]).fetchone()
    return json.loads(found[0]) if found else None


def matches(meta: dict | None, size: Size) -> bool:
    """Whether a finished bench database of this generator has this size."""
    return bool(meta) and meta.get("format") == FORMAT and not meta.get("loading") and all(
        meta.get(k) == v for k, v in asdict(size).items())


def readable(app, admin_url: str) -> bool:
    """Whether this app's master key opens the bench data (one patient's record)."""
    with psycopg.connect(conninfo(admin_url)) as conn:
        row = conn.execute("SELECT clinic_id, id FROM patient LIMIT 1").fetchone()
    if row is None:
        return False
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=row[0], user_id=None)
        try:
            open_patient(db, db.get(Patient, (row[0], row[1])))
        except DecryptionError:
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    from bench import env

    args = env.parser("Generate the bench database (reused when it already has this size).").parse_args(argv)
    bench = env.resolve(args)
    env.prepare(bench, env.size_of(args), fresh=args.fresh, workers=args.workers)
    print(f"bench database ready: {bench.safe_url}", file=sys.stderr)


if __name__ == "__main__":
    main()
