"""The timeline benchmark: the first page of a patient's unified timeline when the patient has 5,000
events and when they have 5, on the bench database (bench/env.py, bench/data.py), and a few more pages
of the long one (the next page as htmx asks for it, a page deep in the history, filtered pages, the
receptionist's view).

    python -m bench.timeline [--small | --patients N --appointments M] [--fresh] [--requests 200]
                             [--events 5000]

In the big clinic, two doctors of their own (general medicine, cardiology) follow three patients registered
through the app: one with a long history (bench/history.py: visits with their appointments, vitals,
consultations, prescriptions, charted allergies and problems, addenda, record and consent changes, all
sealed with the clinic's key, COPYed with their timeline events), one with 30 events (a full first page)
and one with five. The generator makes them with every bench database (5,000 events; marked in `app_meta`);
another `--events` makes a new set beside them. The app runs in this
process as `wsgi.py` builds it and is driven through Flask's test client by the general physician, signed
in with password and TOTP (a care relationship with all three, so the page decrypts everything a doctor
sees). The first pages are measured turn about, so drift hits them alike. Prints a table; writes
bench/results/timeline.json and timeline.md.
"""

import json
import os
import re
import sys
from datetime import UTC, date, datetime, time, timedelta
from html import unescape

from sqlalchemy import select

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, seal_totp_secret
from app.clinics.models import Membership
from app.db import get_session, new_id, set_tenant, utcnow
from app.patients import services as patients
from app.patients.services import PatientData
from app.security.fields import keyring
from app.timeline.services import encode_cursor
from bench import clinics, data, env, explain, history, report
from bench.measure import Desk, Result, SqlCounter, desks, timed

META_KEY = "bench_timeline"
FORMAT = 2
LONG_EVENTS = 5000  # the long-followed patient's timeline events, made with the bench data (bench/data.py)
SPECIALITIES = ("General medicine", "Cardiology")
# The long-followed patient, one with a page and a bit, one with five events.
PEOPLE = [("Kamala Venkatesh", "F", date(1956, 3, 14), "+919845012345"),
          ("Suresh Hegde", "M", date(1971, 6, 30), "+919845012347"),
          ("Ramesh Gowda", "M", date(1988, 9, 2), "+919845012346")]
OLDER_RE = re.compile(r'<a href="([^"]+)" rel="next">Older</a>')


# --- The patients ------------------------------------------------------------------------------------------

def _marker(bench: env.Bench) -> dict | None:
    """The benchmark's patients of this bench database (`app_meta` holds at most 200 characters)."""
    with bench.owner() as conn:
        found = conn.execute("SELECT value FROM app_meta WHERE key = %s", [META_KEY]).fetchone()
    return json.loads(found[0]) if found else None


def _clinic(bench: env.Bench) -> dict:
    """The big clinic: its id, its first desk, its consultation type, the last queue token of each day."""
    with bench.owner() as conn:
        clinic_id = conn.execute("SELECT id FROM clinic WHERE name = %s", [clinics.SPECS[0].name]).fetchone()[0]
        desk = conn.execute("SELECT id FROM staff_user WHERE email = %s",
                            [clinics.email("desk", clinics.SPECS[0], 1)]).fetchone()[0]
        type_id = conn.execute("SELECT id FROM appointment_type WHERE clinic_id = %s AND name = 'Consultation'",
                               [clinic_id]).fetchone()[0]
        tokens = dict(conn.execute("SELECT day, max(token) FROM appointment WHERE clinic_id = %s "
                                   "AND token IS NOT NULL GROUP BY day", [clinic_id]).fetchall())
        rx = conn.execute("SELECT value FROM clinic_counter WHERE clinic_id = %s AND name = 'rx'",
                          [clinic_id]).fetchone()
    return {"id": clinic_id, "desk": desk, "type_id": type_id, "tokens": tokens, "rx": rx[0] if rx else 0}


def doctor_address(cohort: int, n: int) -> str:
    """The n-th doctor of a cohort: each set of patients the benchmark makes has doctors of its own, so a new
    set's appointments never meet an older set's in the doctors' diaries."""
    return clinics.email("physician", clinics.SPECS[0], cohort * 10 + n)


def _doctor(db, clinic_id, cohort: int, n: int, speciality: str) -> StaffUser:
    """One of the benchmark's own doctors (signs in like every bench account)."""
    address = doctor_address(cohort, n)
    user = db.scalar(select(StaffUser).where(StaffUser.email == address))
    if user is None:
        user = StaffUser(id=new_id(), email=address, full_name=f"Dr. {('Kavitha Rao', 'Sanjay Iyer')[n - 1]}",
                         password_hash=hash_password(clinics.password()), speciality=speciality,
                         qualifications="MBBS, MD", registration_number=f"KMC-{40210 + n}",
                         registration_council="Karnataka Medical Council")
        user.totp_secret_enc = seal_totp_secret(user, clinics.totp_secret(address))
        user.mfa_enrolled_at = user.password_changed_at = utcnow()
        db.add(user)
        db.flush()
        db.add(Membership(clinic_id=clinic_id, user_id=user.id, role=Role.DOCTOR))
        db.flush()
    return user


def _register(db, clinic: dict, name: str, sex: str, born: date, phone: str):
    person = PatientData(full_name=name, sex=sex, dob=born, phone=phone, state_code="29", language="kn",
                         address_line="14, 2nd Cross, Jayanagar", city="Bengaluru", pin_code="560011")
    return patients.register(db, clinic_id=clinic["id"], data=person, by=clinic["desk"], consents={"treatment": True})


def make_subjects(app, bench: env.Bench, events: int, *, log=data.say) -> dict:
    """Register three patients through the app (2 events each: registered, consent given) and COPY the rest
    of their histories: `events`, 30 (more than a page) and 5 events in all. Returns the marker stored in
    `app_meta`."""
    clinic, previous = _clinic(bench), _marker(bench)
    cohort = previous.get("cohort", 0) + 1 if previous else 1
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic["id"], user_id=None)
        doctor_ids = [_doctor(db, clinic["id"], cohort, n, s).id for n, s in enumerate(SPECIALITIES, 1)]
        people = [_register(db, clinic, *person) for person in PEOPLE]
        ring = keyring(db, clinic["id"])
        db.commit()
    end = datetime.now(UTC) - timedelta(hours=1)
    casts = [history.Cast(clinic["id"], p.id, doctor_ids, clinic["desk"], clinic["type_id"], clinic["tokens"],
                          token_offset=n) for n, p in enumerate(people, 1)]
    rows = [history.make(ring, casts[0], events=events - 2, end=end, rx_after=clinic["rx"])]
    rows += [history.make(ring, casts[1], events=30 - 2, end=end, at=time(12, 0), rx_after=rows[0].number),
             history.arrival(ring, casts[2], starts=end - timedelta(hours=1))]
    with bench.owner() as conn:
        for cast, made in zip(casts, rows, strict=True):
            history.load(conn, clinic["id"], made)
            with conn.transaction():
                conn.execute("SELECT set_config('app.clinic_id', %s, true)", [str(clinic["id"])])
                conn.execute("UPDATE patient SET version = %s WHERE clinic_id = %s AND id = %s",
                             [made.version, clinic["id"], cast.patient_id])
        with conn.transaction():  # the app numbers its next prescription after theirs
            conn.execute("SELECT set_config('app.clinic_id', %s, true)", [str(clinic["id"])])
            conn.execute("INSERT INTO clinic_counter (clinic_id, name, value) VALUES (%s, 'rx', %s) ON CONFLICT "
                         "(clinic_id, name) DO UPDATE SET value = excluded.value", [clinic["id"], rows[1].number])
        conn.execute("ANALYZE timeline_event")
    ids = {key: str(p.id) for key, p in zip(("long", "page", "short"), people, strict=True)}
    marker = {"format": FORMAT, "events": events, "cohort": cohort, **ids}
    with bench.owner() as conn:
        conn.execute("INSERT INTO app_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                     "excluded.value", [META_KEY, json.dumps(marker, separators=(",", ":"))])
    log(f"timeline patients made: {events:,}, 30 and 5 events")
    return marker


def subjects(app, bench: env.Bench, events: int, *, log=data.say) -> dict:
    """The two patients of this bench database, made if missing (or made for another number of events)."""
    found = _marker(bench)
    if found and found.get("format") == FORMAT and found.get("events") == events:
        log(f"reusing the timeline patients ({events:,}, 30 and 5 events)")
        return found
    return make_subjects(app, bench, events, log=log)


# --- Measuring ---------------------------------------------------------------------------------------------

def doctor(app, marker: dict) -> Desk:
    """The general physician who sees the three patients, signed in."""
    address = doctor_address(marker["cohort"], 1)
    with app.app_context():
        password, secret = clinics.password(), clinics.totp_secret(address)
    desk = Desk(app, address, password, secret)
    desk.sign_in()
    return desk


def turn_about(counter: SqlCounter, requests: int, measures: list[tuple[Result, Desk, str, dict]]) -> list[Result]:
    """Each measure's request in turn, `requests` rounds after 10 warm-up rounds; every answer must be 200."""
    for round_ in range(10 + requests):
        for result, desk, url, headers in measures:
            sample, response, _ = timed(counter, lambda d=desk, u=url, h=headers: d.client.get(u, headers=h))
            if response.status_code != 200:
                raise SystemExit(f"{result.name}: {url} answered {response.status_code}")
            if round_ >= 10:
                result.samples.append(sample)
    return [m[0] for m in measures]


def deep_cursor(bench: env.Bench, marker: dict, offset: int) -> str:
    """The cursor that opens the long timeline after its `offset` newest events."""
    with bench.owner() as conn:
        at, event_id = conn.execute("SELECT at, id FROM timeline_event WHERE patient_id = %s ORDER BY at DESC, "
                                    "id DESC OFFSET %s LIMIT 1", [marker["long"], offset - 1]).fetchone()
    return encode_cursor(at, event_id)


def measures(bench: env.Bench, marker: dict, physician: Desk, receptionist: Desk) -> list[list[tuple]]:
    """What is measured, in groups measured turn about."""
    short, page, long = (f"/patients/{marker[k]}/timeline" for k in ("short", "page", "long"))
    events = marker["events"]
    first = physician.get(long).get_data(as_text=True)
    second = unescape(OLDER_RE.search(first).group(1))
    offset = max(25, (events * 3 // 4) // 25 * 25)
    deep = f"{long}?before={deep_cursor(bench, marker, offset)}"
    htmx = {"HX-Request": "true"}
    return [
        [(Result("first page, 5 events (doctor, full page)"), physician, short, {}),
         (Result("first page, 30 events (doctor, full page)"), physician, page, {}),
         (Result(f"first page, {events:,} events (doctor, full page)"), physician, long, {})],
        [(Result(f"next page, {events:,} events (doctor, htmx fragment)"), physician, second, htmx),
         (Result(f"page {offset // 25 + 1}, {events:,} events (doctor, htmx fragment)"), physician, deep, htmx)],
        [(Result(f"first page, {events:,} events, prescriptions only (doctor)"), physician,
          f"{long}?kind=prescription", {}),
         (Result(f"first page, {events:,} events, Cardiology only (doctor)"), physician,
          f"{long}?speciality=Cardiology", {}),
         (Result(f"first page, {events:,} events, vitals and allergies/problems (doctor)"), physician,
          f"{long}?kind=vitals&kind=chart", {}),
         (Result(f"first page, {events:,} events (receptionist, full page)"), receptionist, long, {})],
    ]


def slice_plans(app, bench: env.Bench, desk: Desk, counter: SqlCounter, urls: list[str]) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of the timeline's slice query for each address (as the app role)."""
    out = []
    for url in urls:
        _, _, kept = timed(counter, lambda u=url: desk.client.get(u), keep=True)
        sliced = [s for s in kept if "FROM timeline_event" in s["sql"]]
        for plan in explain.plans(app, bench, sliced):
            out.append({"url": url, "ms": plan["ms"], "seq_scan": "Seq Scan on timeline_event" in plan["plan"],
                        "plan": plan["plan"]})
    return out


# --- Report ------------------------------------------------------------------------------------------------

def text(meta: dict, info: dict, marker: dict, results: list[dict], plans: list[dict]) -> str:
    rows = info["rows"]
    by_name = {r["name"]: r for r in results}
    short, page, long = (by_name[f"first page, {n} events (doctor, full page)"]
                         for n in ("5", "30", f"{marker['events']:,}"))
    head = (f"ClinicDesk timeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"Data: {rows['patient']:,} patients, {rows['appointment']:,} appointments, "
            f"{rows['timeline_event']:,} timeline events in {rows['clinic']} clinics; database "
            f"{info['database_size']}; generated {meta['anchor']}. Measured: a patient with {marker['events']:,} "
            "events of every kind, one with 30 and one with 5, followed by the signed-in doctor (care "
            "relationship).\n"
            f"Machine: {info['cpu_model']}, {info['cpus']} CPUs, {info['ram_gib']} GiB RAM; PostgreSQL "
            f"{info['postgresql']['server_version']} (shared_buffers {info['postgresql']['shared_buffers']}); "
            f"Python {info['python']}; app in-process (Flask test client); load average "
            f"{info['load'][0]:.1f} before, {info['load'][1]:.1f} after the measures.\n\n"
            "Each request is served whole: session, tenant, permission, care-relationship check, the page's "
            "slice (25 + 1 events), a query per kind on the page for the details (decrypted as far as the "
            "viewer may see), staff names, the filter's doctors, the audit record, the commit.\n")
    ratio = (f"First page, {marker['events']:,} events vs 5: p50 {long['p50_ms']:.1f} vs {short['p50_ms']:.1f} ms "
             f"(x{long['p50_ms'] / short['p50_ms']:.2f}), 25 items shown vs 5, statements {long['queries_max']} vs "
             f"{short['queries_max']} (a detail query per kind on the page: five events show fewer kinds). "
             f"Against 30 events (a full page too): {long['p50_ms']:.1f} vs {page['p50_ms']:.1f} ms "
             f"(x{long['p50_ms'] / page['p50_ms']:.2f}), statements {long['queries_max']} vs {page['queries_max']}.")
    plan_lines = "\n".join(f"- {p['ms']:.2f} ms{' SEQ SCAN' if p['seq_scan'] else ''}: {p['url']}\n  "
                           + "\n  ".join(p["plan"].splitlines()[:8]) for p in plans)
    return f"{head}\n{report.table(results)}\n\n{ratio}\n\nThe slice query (EXPLAIN ANALYZE as the app role):\n" \
           f"{plan_lines}\n"


def _arguments(argv: list[str] | None):
    p = env.parser("Benchmark the first page of the timeline for a patient with many events and one with few.")
    p.add_argument("--requests", type=int, default=200, help="measured requests per measure (after 10 warm-up)")
    p.add_argument("--events", type=int, default=LONG_EVENTS, help="timeline events of the long-followed patient")
    args, others = p.parse_known_args(argv)  # `make bench` passes one BENCH_ARGS to every benchmark
    if others:
        print(f"bench.timeline: ignoring what it does not take: {' '.join(others)}", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    bench = env.resolve(args)
    app, meta = env.prepare(bench, env.size_of(args), fresh=args.fresh, workers=args.workers)
    marker = subjects(app, bench, args.events)
    counter = SqlCounter(app.extensions["db_engine"])
    physician, receptionist = doctor(app, marker), desks(app, 1)[0]
    results, load = [], os.getloadavg()[0]
    for group in measures(bench, marker, physician, receptionist):
        results += turn_about(counter, args.requests, group)
    long = f"/patients/{marker['long']}/timeline"
    plans = slice_plans(app, bench, physician, counter, [long, f"{long}?kind=prescription",
                                                         f"{long}?kind=vitals&kind=chart",
                                                         f"{long}?speciality=Cardiology"])
    summaries = [r.summary() for r in results]
    info = report.machine(bench) | {"load": (load, os.getloadavg()[0])}
    markdown = text(meta, info, marker, summaries, plans)
    print("\n" + markdown)
    report.write(markdown, {"meta": meta, "machine": info, "subjects": marker, "results": summaries,
                            "plans": plans}, name="timeline")


if __name__ == "__main__":
    main()
