"""The schedule benchmark: the big clinic's day board (20 doctors, 400 appointments), its background poll,
the booking panel's patient search, and booking under concurrent load, against the bench database
(bench/env.py, bench/data.py).

    python -m bench.schedule [--small | --patients N --appointments M] [--fresh] [--requests 200]
                             [--polls 500] [--searches 200] [--clients 1,8] [--bookings 160]
                             [--collisions 0.25] [--profile]

The app runs in this process, built by `create_app` exactly as `wsgi.py` builds it (its runtime role,
row-level security, CSRF, server-side sessions, the audit trail), and is driven through Flask's test
client by receptionists who signed in with password and TOTP (bench/measure.py). Every request's SQL
statements are counted on the app's engine. Prints a table; writes bench/results/schedule.json and
schedule.md (bench/report.py).
"""

import re
import threading
import time as clock
from dataclasses import dataclass
from datetime import date, timedelta
from html import unescape

from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.patients.models import Patient
from app.patients.services import open_patient
from app.scheduling import services
from app.scheduling.models import HOLDS_SLOT
from app.scheduling.slots import holiday_name
from bench import clinics, data, env, explain, report
from bench.measure import Desk, Result, Sample, SqlCounter, desks, pct, timed
from bench.names import seeded

POLL_RE = re.compile(r'hx-get="(/schedule/board\?[^"]+)"')


def board(desk: Desk, counter: SqlCounter, day: date, requests: int, *, htmx: bool = False) -> Result:
    """GET the day board `requests` times after a warm-up (full page, or the fragment htmx asks for)."""
    headers = {"HX-Request": "true"} if htmx else {}
    url = f"/schedule/?day={day.isoformat()}"
    for _ in range(10):
        desk.get(url, headers=headers)
    result = Result("day board, htmx fragment" if htmx else "day board, full page")
    for _ in range(requests):
        sample, response, _ = timed(counter, lambda: desk.client.get(url, headers=headers))
        if response.status_code != 200:
            raise SystemExit(f"the board answered {response.status_code}")
        result.samples.append(sample)
    return result


def poll(desk: Desk, counter: SqlCounter, day: date, requests: int) -> Result:
    """The board's background poll with the stamp of the board on screen: 204 while nothing changed (the
    stamp also moves every 5 minutes; then the poll gets the new board and carries on with its stamp)."""
    page = desk.get(f"/schedule/?day={day.isoformat()}").get_data(as_text=True)
    url = unescape(POLL_RE.search(page).group(1))
    result = Result("board poll, nothing changed (204)")
    refreshed = 0
    for _ in range(10 + requests):
        sample, response, _ = timed(counter, lambda url=url: desk.client.get(url, headers={"HX-Request": "true"}))
        if response.status_code == 200:
            refreshed += 1
            url = unescape(POLL_RE.search(response.get_data(as_text=True)).group(1))
            continue
        result.samples.append(sample)
    result.samples = result.samples[-requests:]
    result.extra["refreshed"] = refreshed
    return result


def statements(desk: Desk, counter: SqlCounter, url: str) -> list[dict]:
    """The statements of one request, with their parameters and times."""
    _, _, kept = timed(counter, lambda: desk.client.get(url), keep=True)
    return kept


def find_patient(app, bench: env.Bench, desk: Desk, counter: SqlCounter, requests: int) -> Result:
    """The booking panel's patient search (htmx, as typed at the desk): a first name's first letters, first
    name and surname prefixes, a phone's last 4 digits, an MRN, for patients of the big clinic."""
    with bench.owner() as conn:
        clinic_id, ids = conn.execute(
            "SELECT clinic_id, array_agg(id) FROM (SELECT clinic_id, id FROM patient WHERE clinic_id = "
            "(SELECT id FROM clinic WHERE name = %s) ORDER BY md5(id::text) LIMIT %s) p GROUP BY clinic_id",
            [clinics.SPECS[0].name, max(1, requests // 4)]).fetchone()
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        people = [open_patient(db, db.get(Patient, (clinic_id, pid))) for pid in ids]
    queries = [q for p in people for q in (
        ("first letters", p.full_name.split()[0][:3]),
        ("name prefixes", f"{p.full_name.split()[0][:4]} {p.full_name.split()[-1][:3]}"),
        ("phone, last 4", (p.phone or p.guardian_phone)[-4:]), ("MRN", p.mrn))][:requests]
    result, by_kind = Result("booking panel: find the patient"), {}
    for kind, query in [("warm-up", q) for _, q in queries[:10]] + queries:
        form = {"q": query, "intent": "search"}
        sample, response, _ = timed(counter, lambda form=form: desk.post("/schedule/book", form,
                                                                         headers={"HX-Request": "true"}))
        if response.status_code != 200:
            raise SystemExit(f"the patient search answered {response.status_code}")
        if kind != "warm-up":
            result.samples.append(sample)
            by_kind.setdefault(kind, []).append(sample.ms)
    result.extra["p50_ms_by_query"] = {k: round(pct(sorted(v), 50), 1) for k, v in by_kind.items()}
    return result


# --- Booking under load ------------------------------------------------------------------------------------------

@dataclass
class Job:
    doctor_id: str
    start: str  # local time, as the booking form sends it
    type_id: str
    patient_id: str
    twin: bool = False  # a deliberate second attempt at a slot another client is booking


def booking_day(bench: env.Bench, meta: dict, after: date) -> date:
    """The first working day after the generated horizon (and after `after`) with no appointments of the
    big clinic: every run books a day of its own."""
    spec = clinics.SPECS[0]
    day = max(date.fromisoformat(meta["anchor"]) + timedelta(days=data.FUTURE_DAYS + 1), after + timedelta(days=1))
    with bench.owner() as conn:
        clinic_id = conn.execute("SELECT id FROM clinic WHERE name = %s", [spec.name]).fetchone()[0]
        while True:
            day = data.bench_day_after(day, spec.place.state_code)
            taken = conn.execute("SELECT 1 FROM appointment WHERE clinic_id = %s AND day = %s LIMIT 1",
                                 [clinic_id, day]).fetchone()
            closed = conn.execute("SELECT 1 FROM clinic_day WHERE clinic_id = %s AND day = %s",
                                  [clinic_id, day]).fetchone()
            if not taken and not closed and not holiday_name(spec.place.state_code, day):
                return day
            day += timedelta(days=1)


def booking_jobs(app, bench: env.Bench, day: date, bookings: int, collisions: float, seed: int) -> list[Job]:
    """`bookings` free slots of the big clinic's doctors on `day` (round robin over the doctors), each for a
    different patient, and after a share of them a second attempt at the same slot for another patient."""
    with bench.owner() as conn:
        clinic_id = conn.execute("SELECT id FROM clinic WHERE name = %s", [clinics.SPECS[0].name]).fetchone()[0]
        patients = [r[0] for r in conn.execute(
            "SELECT id FROM patient WHERE clinic_id = %s ORDER BY md5(id::text || %s) LIMIT %s",
            [clinic_id, f"{seed}|{day}", bookings * 2])]
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        clinic = db.get(Clinic, clinic_id)
        doctors = services.doctors(db, clinic_id)
        types = {t.duration_minutes: t.id for t in reversed(services.appointment_types(db, clinic_id))}
        avail = services.availability(db, clinic, [day], [d.id for d in doctors])
        free = [[(s, d.id) for s in avail[(d.id, day)].slots()] for d in doctors]
    chosen = [column[i] for i in range(max(map(len, free))) for column in free if i < len(column)][:bookings]
    rng = seeded(seed, "bookings", day)
    jobs = []
    for slot, doctor_id in chosen:
        minutes = int((slot.ends - slot.starts).total_seconds() // 60)
        job = Job(str(doctor_id), slot.starts.strftime("%Y-%m-%dT%H:%M"), str(types[minutes]), str(patients.pop()))
        jobs.append(job)
        if rng.random() < collisions:
            jobs.append(Job(job.doctor_id, job.start, job.type_id, str(patients.pop()), twin=True))
    return jobs


def book(app, desks_: list[Desk], counter: SqlCounter, jobs: list[Job], name: str) -> Result:
    """Every desk books its share of the jobs at once (dealt round robin, so a slot and its twin go to two
    desks at about the same moment); 303 is booked, 409 is 'someone else has just booked this slot'."""
    shares = [jobs[i::len(desks_)] for i in range(len(desks_))]
    for desk, share in zip(desks_, shares, strict=True):  # warm up: open the booking form once
        if share:
            desk.get(f"/schedule/book?doctor_id={share[0].doctor_id}&start={share[0].start}")
    gate = threading.Barrier(len(desks_) + 1)
    samples: list[list[tuple[Job, Sample]]] = [[] for _ in desks_]

    kept: list[dict] = []

    def run(desk: Desk, share: list[Job], out: list) -> None:
        gate.wait()
        for job in share:
            form = {"doctor_id": job.doctor_id, "start": job.start, "patient_id": job.patient_id,
                    "type_id": job.type_id, "reason": "bench booking", "intent": "book"}
            keep = desk is desks_[0] and not out  # the statements of one booking, for the report
            sample, _, statements_ = timed(counter, lambda form=form: desk.post("/schedule/book", form), keep=keep)
            kept.extend(statements_ or [])
            out.append((job, sample))

    threads = [threading.Thread(target=run, args=(d, s, o)) for d, s, o in zip(desks_, shares, samples, strict=True)]
    for thread in threads:
        thread.start()
    gate.wait()
    began = clock.perf_counter()
    for thread in threads:
        thread.join()
    wall = clock.perf_counter() - began
    done = [pair for out in samples for pair in out]
    result = Result(name, [s for _, s in done])
    booked = sum(s.status == 303 for _, s in done)
    result.extra.update(clients=len(desks_), wall_s=wall, bookings_per_s=booked / wall,
                        attempts_per_s=len(done) / wall, booked=booked,
                        refused_409=sum(s.status == 409 for _, s in done), twins=sum(j.twin for j, _ in done),
                        twins_in_flight_together=_raced(done), statements=_listed(kept))
    return result


def _listed(statements: list[dict]) -> list[dict]:
    return [{"ms": round(s["ms"], 2), "sql": " ".join(s["sql"].split())[:200]} for s in statements]


def _raced(done: list[tuple[Job, Sample]]) -> int:
    """How many second attempts overlapped in time with the first attempt at the same slot."""
    first = {(j.doctor_id, j.start): s for j, s in done if not j.twin}
    return sum(1 for j, s in done if j.twin and s.began < first[(j.doctor_id, j.start)].ended
               and first[(j.doctor_id, j.start)].began < s.ended)


def check_no_overlap(bench: env.Bench, day: date) -> dict:
    """Afterwards, in the database: no doctor holds two overlapping appointments that day (any clinic)."""
    holding = [s.value for s in HOLDS_SLOT]
    with bench.owner() as conn:
        pairs = conn.execute(
            "SELECT count(*) FROM appointment a JOIN appointment b ON a.clinic_id = b.clinic_id "
            "AND a.doctor_id = b.doctor_id AND a.id < b.id AND b.day = a.day "
            "AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at) "
            "AND a.starts_at IS NOT NULL AND b.starts_at IS NOT NULL "
            "WHERE a.day = %s AND a.status = ANY(%s) AND b.status = ANY(%s) "
            "AND NOT a.overbooked AND NOT b.overbooked", [day, holding, holding]).fetchone()[0]
        count = conn.execute("SELECT count(*) FROM appointment WHERE day = %s", [day]).fetchone()[0]
    return {"overlapping_pairs": pairs, "appointments_that_day": count}


def _arguments(argv: list[str] | None):
    p = env.parser("Benchmark the day board, its poll, the booking panel's search and booking under load.")
    p.add_argument("--requests", type=int, default=200, help="measured board requests (after 10 warm-up)")
    p.add_argument("--polls", type=int, default=500, help="measured board polls")
    p.add_argument("--searches", type=int, default=200, help="measured patient searches in the booking panel")
    p.add_argument("--clients", default="1,8", help="concurrent booking desks, one run per number")
    p.add_argument("--bookings", type=int, default=160, help="distinct slots each booking run books")
    p.add_argument("--collisions", type=float, default=0.25, help="share of slots also tried by a second desk")
    p.add_argument("--profile", action="store_true", help="print where a board request spends its time")
    return p.parse_args(argv)


def _bookings(app, bench: env.Bench, meta: dict, signed_in: list[Desk], counter: SqlCounter, args) -> list[Result]:
    """One booking run per number of desks, each on a day of its own, checked in the database afterwards."""
    results, day = [], date.fromisoformat(meta["anchor"])
    for clients in [int(n) for n in args.clients.split(",")]:
        day = booking_day(bench, meta, day)
        jobs = booking_jobs(app, bench, day, args.bookings, args.collisions, meta["seed"])
        name = f"booking, {clients} desks at once" if clients > 1 else "booking, 1 desk"
        result = book(app, signed_in[:clients], counter, jobs, name)
        result.extra.update(day=day.isoformat(), **check_no_overlap(bench, day))
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    bench = env.resolve(args)
    app, meta = env.prepare(bench, env.size_of(args), fresh=args.fresh, workers=args.workers)
    counter = SqlCounter(app.extensions["db_engine"])
    signed_in = desks(app, max(int(n) for n in args.clients.split(",")))
    desk, day = signed_in[0], date.fromisoformat(meta["bench_day"])
    url = f"/schedule/?day={day.isoformat()}"
    results = [board(desk, counter, day, args.requests), board(desk, counter, day, args.requests, htmx=True),
               poll(desk, counter, day, args.polls), find_patient(app, bench, desk, counter, args.searches)]
    plans = explain.plans(app, bench, statements(desk, counter, url))
    if args.profile:
        explain.profile(desk.client, url)
    info, board_info = report.machine(bench), explain.board_facts(bench, day)  # before the bookings add rows
    results += _bookings(app, bench, meta, signed_in, counter, args)
    summaries = [r.summary() for r in results]
    text = report.text(meta, info, summaries, plans, board_info)
    print("\n" + text)
    report.write(text, {"meta": meta, "machine": info, "board": board_info, "results": summaries, "plans": plans})
    failed = [r["name"] for r in summaries if "clients" in r and (r["overlapping_pairs"] or r["booked"] + r[
        "refused_409"] != r["n"] or r["booked"] != r["appointments_that_day"])]
    if failed:
        raise SystemExit("booking check failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
