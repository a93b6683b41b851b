"""The load test: the app as it runs in production (gunicorn, RQ workers: bench/server.py) driven by signed-in
receptionists and doctors through the front desk's day, as an open-loop load at a fixed arrival rate.

    python -m bench.load [--small] [--sizes small,full] [--rate 50] [--duration 60] [--scenarios one,spread]
                         [--capacity 30,40,50,60,80,100,150,200] [--step 20] [--gunicorn-workers 4]
                         [--threads 2] [--rq-workers 1] [--clinics N] [--database NAME]

Arrivals come as a Poisson process at the asked rate whether or not earlier requests have finished (as
at a real front desk: the next patient walks in regardless); each one is a request of the mix below,
timed from the moment it was due to arrive to its last byte, so a queue building up in the server shows
in the latency instead of slowing the arrivals (no coordinated omission). The client is one asyncio
process (aiohttp); its own CPU use is reported, since it shares the machine with the app.

The mix (share of arrivals): the day board's background poll, the queue board's poll, patient search as
you type, the patient page (the timeline's first page) and the timeline's next page as htmx asks for it,
the day board, the queue board, booking, check-in (a walk-in once no booked patient is left to check
in today), a bill drafted, a line added, viewed, issued and viewed again, and a consultation note saved
by its doctor. "one": every user is of the big clinic; "spread": the desks and doctors of every clinic.

Every response carries `Server-Timing` with its SQL statements (app/timing.py, on for the bench only).
"""

import asyncio
import random
import re
import statistics
import time as clock
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pyotp

from app.billing.models import BillingProfile, PriceItem
from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.demo.billing import price_list
from app.patients.models import Patient
from app.patients.services import open_patient
from app.scheduling import services
from bench import clinics, env
from bench.measure import pct
from bench.names import seeded
from bench.server import database_cpu_seconds

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
VERSION_RE = re.compile(r'name="version"[^>]*? value="(\d+)"')
STATEMENTS_RE = re.compile(r'desc="(\d+) statements"')
BOARD_POLL_RE = re.compile(r'hx-get="(/schedule/board\?[^"]+)"')
QUEUE_POLL_RE = re.compile(r'hx-get="(/queue/poll[^"]*)"')
NEXT_RE = re.compile(r'class="timeline-more" hx-get="([^"]+)"')
ID_RE = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
TAGS_RE = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALERT_RE = re.compile(r'role="alert"[^>]*>(.*?)</(?:p|div)>', re.S)
HTMX = {"HX-Request": "true"}
NOTE = {"subjective": "Fever for 2 days, no cough", "objective": "Temp 38.1 C, throat congested",
        "assessment": "Viral pharyngitis", "plan": "Paracetamol 650 mg SOS, fluids, review in 3 days"}

# (action, share of arrivals), as 50 clinics' desks make them at 50 requests a second: each desk's board and
# queue poll every 10 s (a hundred desks: 20 polls a second), a search is a few keystrokes, the doctor's note
# saves itself as they type; a visit (about 0.4 a second for 50 clinics seeing 300 patients a day each) is a
# booking, a check-in, looks at the patient and a bill of five requests (draft, line, view, issue, view).
MIX = [("board_poll", 24), ("queue_poll", 20), ("search", 18), ("patient", 10), ("timeline_next", 4),
       ("board", 6), ("queue", 4), ("book", 3), ("check_in", 3), ("bill", 1), ("note", 7)]
PAGES = {  # page name in the report -> the statuses that are right for it
    "day board": (200,), "board poll": (200, 204), "queue board": (200,), "queue poll": (200, 204),
    "patient search": (200,), "patient page": (200,), "timeline next page": (200,), "booking": (303,),
    "check-in": (303,), "walk-in": (303,), "bill: draft": (303,), "bill: add line": (303,),
    "bill: view": (200,), "bill: issue": (303,), "note save": (200,),
}


# --- Who, and on what ------------------------------------------------------------------------------------------

class User:
    """A signed-in member of staff: an aiohttp session of their own (cookies) and the page's CSRF token."""

    def __init__(self, base: str, address: str, password: str, secret: str, clinic_id: uuid.UUID, role: str):
        self.base, self.address, self.password, self.secret = base, address, password, secret
        self.clinic_id, self.role = clinic_id, role
        self.http: aiohttp.ClientSession | None = None
        self.token = ""
        self.board_poll: str | None = None
        self.queue_poll: str | None = None

    async def open(self) -> None:
        if self.http is None:
            self.http = aiohttp.ClientSession(self.base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                              connector=aiohttp.TCPConnector(limit=0),
                                              timeout=aiohttp.ClientTimeout(total=120))

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def request(self, method: str, url: str, form: dict | None = None, headers: dict | None = None):
        """(status, body, SQL statements, location); keeps the CSRF token of any page it gets."""
        data = {"csrf_token": self.token, **form} if form is not None else None
        async with self.http.request(method, url, data=data, headers=headers or {}, allow_redirects=False) as r:
            body = await r.text()
            timing = STATEMENTS_RE.search(r.headers.get("Server-Timing", ""))
            found = CSRF_RE.search(body)
            if found:
                self.token = found.group(1)
            # htmx is sent elsewhere with 204 and HX-Redirect (a session gone): that is no "nothing changed"
            location = r.headers.get("Location") or r.headers.get("HX-Redirect", "")
            return r.status, body, int(timing.group(1)) if timing else -1, location

    async def sign_in(self) -> None:
        """Password, then a TOTP code (the next time step's if this one was used already)."""
        await self.open()
        await self.request("GET", "/auth/login")
        status, *_ = await self.request("POST", "/auth/login", {"email": self.address, "password": self.password})
        if status != 303:
            raise SystemExit(f"{self.address}: password refused ({status})")
        for _ in range(3):
            await self.request("GET", "/auth/mfa")
            status, *_ = await self.request("POST", "/auth/mfa", {"code": pyotp.TOTP(self.secret).now()})
            if status == 303:
                await self.request("GET", "/")
                return
            await asyncio.sleep(30 - clock.time() % 30 + 1)
        raise SystemExit(f"{self.address}: TOTP code refused")

    async def ensure_signed_in(self) -> None:
        """Sign in again if the session has ended (15 minutes idle between phases)."""
        status, *_ = await self.request("GET", "/") if self.http else (0,)
        if status != 200:
            await self.close()
            await self.sign_in()


@dataclass
class Target:
    """One clinic's share of the load: its users, and what they work on."""

    clinic_id: uuid.UUID
    name: str
    today: date
    board_day: date
    desks: list[User] = field(default_factory=list)
    doctors: list[User] = field(default_factory=list)
    patients: list[uuid.UUID] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    next_pages: list[str] = field(default_factory=list)
    slots: list[tuple[str, str, str]] = field(default_factory=list)  # (doctor id, local start, type id)
    spare: list[uuid.UUID] = field(default_factory=list)  # patients to book or walk in, each once
    arrivals: list[uuid.UUID] = field(default_factory=list)  # today's booked appointments, to check in
    items: list[uuid.UUID] = field(default_factory=list)
    encounters: dict[uuid.UUID, list] = field(default_factory=dict)  # encounter -> [doctor user, version, lock]
    walk_in_doctors: list[uuid.UUID] = field(default_factory=list)
    used: set = field(default_factory=set)  # patients booked or walked in by this run


def _ensure_billing(db, clinic: Clinic) -> list[uuid.UUID]:
    """The clinic's active price items (the demo price list and a billing profile when it has none)."""
    items = db.scalars(PriceItem.__table__.select().with_only_columns(PriceItem.id).where(
        PriceItem.clinic_id == clinic.id, PriceItem.active)).all()
    if items:
        return list(items)
    if db.get(BillingProfile, clinic.id) is None:
        db.add(BillingProfile(clinic_id=clinic.id, signatory_name="Dr Bench", signatory_designation="Director",
                              invoice_prefix="INV", bill_of_supply_prefix="BOS", credit_note_prefix="CN",
                              receipt_prefix="RCT", fee_validity_days=0))
    made = price_list(db, clinic, None)
    db.commit()
    return [item.id for item in made.values()]


def prepare_target(app, bench: env.Bench, spec: clinics.Spec, *, rng: random.Random, patients: int,
                   board_day: date | None) -> Target:
    """What a clinic's users will work on, read through the app (tenant set) and the admin connection."""
    with bench.owner() as conn:
        clinic_id = conn.execute("SELECT id FROM clinic WHERE name = %s", [spec.name]).fetchone()[0]
        today = clock_today()
        salt = str(clock.time())  # others each run: a reused database has the earlier runs' bookings and walk-ins
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM patient WHERE clinic_id = %s ORDER BY md5(id::text || %s) LIMIT %s",
            [clinic_id, salt, patients])]
        spare = [r[0] for r in conn.execute(  # to book or walk in: nobody with an appointment from today on
            "SELECT id FROM patient p WHERE clinic_id = %s AND NOT EXISTS (SELECT FROM appointment a WHERE "
            "a.clinic_id = p.clinic_id AND a.patient_id = p.id AND a.day >= %s) ORDER BY md5(id::text || %s) "
            "LIMIT %s", [clinic_id, today, salt, patients * 5])]
        long_ones = [r[0] for r in conn.execute(
            "SELECT patient_id FROM timeline_event WHERE clinic_id = %s GROUP BY patient_id "
            "ORDER BY count(*) DESC LIMIT 20", [clinic_id])]
        arrivals = [r[0] for r in conn.execute(
            "SELECT id FROM appointment WHERE clinic_id = %s AND day = %s AND status IN ('booked', 'confirmed') "
            "ORDER BY starts_at", [clinic_id, today])]
    target = Target(clinic_id, spec.name, today, board_day or today, arrivals=arrivals)
    target.patients = ids + long_ones
    target.spare = [pid for pid in spare if pid not in set(ids)]
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        clinic = db.get(Clinic, clinic_id)
        people = [open_patient(db, db.get(Patient, (clinic_id, pid))) for pid in ids[:40]]  # what desks type
        for p in people:
            first, last = p.full_name.split()[0], p.full_name.split()[-1]
            target.queries += [first[:3], f"{first[:4]} {last[:3]}", (p.phone or p.guardian_phone or "")[-4:], p.mrn]
        doctors = services.doctors(db, clinic_id)
        target.walk_in_doctors = [d.id for d in doctors]
        types = {t.duration_minutes: t.id for t in reversed(services.appointment_types(db, clinic_id))}
        day = today + timedelta(days=1)
        while len(target.slots) < 600 and day < today + timedelta(days=21):
            for doctor in doctors:
                for slot in services.free_slots(db, clinic, doctor.id, day):
                    minutes = int((slot.ends - slot.starts).total_seconds() // 60)
                    if minutes in types:
                        local = slot.starts.astimezone(ZoneInfo(clinic.timezone))
                        target.slots.append((str(doctor.id), local.strftime("%Y-%m-%dT%H:%M"), str(types[minutes])))
            day += timedelta(days=1)
        target.items = _ensure_billing(db, clinic)
        db.rollback()
    rng.shuffle(target.slots)
    rng.shuffle(target.queries)
    return target


def clock_today() -> date:
    from datetime import datetime

    return datetime.now(ZoneInfo(clinics.TZ)).date()


def users_of(app, base: str, spec: clinics.Spec, clinic_id: uuid.UUID, *, desks: int, doctors: int):
    with app.app_context():
        password = clinics.password()
        make = [(clinics.email("desk", spec, n), "desk") for n in range(1, min(desks, spec.desks) + 1)]
        make += [(clinics.email("doctor", spec, n), "doctor") for n in range(1, min(doctors, spec.doctors) + 1)]
        return [User(base, address, password, clinics.totp_secret(address), clinic_id, role) for address, role in make]


async def gather_limited(calls, limit: int = 4) -> list:
    gate = asyncio.Semaphore(limit)

    async def one(call):
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def warm(target: Target) -> None:
    """Before measuring: each desk's poll URLs, the timeline's next pages, and an open consultation for
    each doctor (a walk-in the doctor calls in), so a note can be saved."""
    for user in target.desks:
        _, body, _, _ = await user.request("GET", f"/schedule/?day={target.board_day.isoformat()}")
        found = BOARD_POLL_RE.search(body)
        user.board_poll = unescape(found.group(1)) if found else None
        _, body, _, _ = await user.request("GET", "/queue/")
        found = QUEUE_POLL_RE.search(body)
        user.queue_poll = unescape(found.group(1)) if found else None
    desk = target.desks[0]
    for pid in target.patients[-20:]:
        _, body, _, _ = await desk.request("GET", f"/patients/{pid}")
        found = NEXT_RE.search(body)
        if found:
            target.next_pages.append(unescape(found.group(1)))
    for doctor in target.doctors:  # a clinic closed today takes no walk-in: its doctors save no notes
        doctor_id = doctor_id_of(doctor)
        await desk.request("GET", "/queue/walk-in")
        walk_in = {"patient_id": str(take_patient(target, seeded("warm", doctor_id))), "doctor_id": doctor_id,
                   "type_id": "", "reason": "", "intent": "add"}
        await desk.request("POST", "/queue/walk-in", walk_in)
        await doctor.request("GET", "/queue/mine")
        status, _, _, location = await doctor.request("POST", f"/queue/{doctor_id}/next", {"mine": "1"})
        found = ID_RE.search(location) if status == 303 and "/encounters/" in location else None
        if found:
            _, body, _, _ = await doctor.request("GET", f"/encounters/{found.group(1)}")
            target.encounters[uuid.UUID(found.group(1))] = [doctor, int(VERSION_RE.search(body).group(1)),
                                                            asyncio.Lock()]


_DOCTOR_IDS: dict[str, str] = {}


def doctor_id_of(user: User) -> str:
    return _DOCTOR_IDS[user.address]


def remember_doctor_ids(bench: env.Bench, users: list[User]) -> None:
    with bench.owner() as conn:
        for user in users:
            if user.role == "doctor":
                _DOCTOR_IDS[user.address] = str(conn.execute("SELECT id FROM staff_user WHERE email = %s",
                                                             [user.address]).fetchone()[0])


# --- The mix ----------------------------------------------------------------------------------------------------

@dataclass
class Sample:
    page: str
    ms: float
    status: int
    statements: int
    ok: bool


class Run:
    """One phase: its samples, as the actions add them."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.samples: list[Sample] = []
        self.failures: list[dict] = []  # the first few wrong answers, with what the page said (bench data only)

    async def timed(self, page: str, since: float, user: User, method: str, url: str, form=None, headers=None):
        try:
            status, body, statements, location = await user.request(method, url, form, headers)
        except (aiohttp.ClientError, TimeoutError):
            status, body, statements, location = 0, "", -1, ""
        ok = status in PAGES[page] and not (status == 204 and location)
        self.samples.append(Sample(page, (self.loop.time() - since) * 1000, status, statements, ok))
        if not ok and len(self.failures) < 10:
            alert = ALERT_RE.search(body)
            said = " ".join(TAGS_RE.sub(" ", alert.group(1) if alert else body).split())
            self.failures.append({"page": page, "status": status, "url": url, "sent to": location, "said": said[:400]})
            if not alert:  # the page itself, for a look (bench/results/ is not in a fresh clone)
                RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                (RESULTS_DIR / f"failure-{len(self.failures)}.html").write_text(body)
        return status, body, location


async def board_poll(run: Run, t: Target, due: float, rng: random.Random) -> None:
    user = rng.choice(t.desks)
    status, body, _ = await run.timed("board poll", due, user, "GET", user.board_poll, headers=HTMX)
    found = BOARD_POLL_RE.search(body) if status == 200 else None
    if found:  # the board changed: the poll brought the new one, with its stamp
        user.board_poll = unescape(found.group(1))


async def queue_poll(run: Run, t: Target, due: float, rng: random.Random) -> None:
    user = rng.choice(t.desks)
    status, body, _ = await run.timed("queue poll", due, user, "GET", user.queue_poll, headers=HTMX)
    found = QUEUE_POLL_RE.search(body) if status == 200 else None
    if found:
        user.queue_poll = unescape(found.group(1))


async def search(run: Run, t: Target, due: float, rng: random.Random) -> None:
    await run.timed("patient search", due, rng.choice(t.desks), "POST", "/patients/search",
                    {"q": rng.choice(t.queries)}, HTMX)


async def patient(run: Run, t: Target, due: float, rng: random.Random) -> None:
    await run.timed("patient page", due, rng.choice(t.desks), "GET", f"/patients/{rng.choice(t.patients)}")


async def timeline_next(run: Run, t: Target, due: float, rng: random.Random) -> None:
    if not t.next_pages:
        return await patient(run, t, due, rng)
    await run.timed("timeline next page", due, rng.choice(t.desks), "GET", rng.choice(t.next_pages), headers=HTMX)


async def board(run: Run, t: Target, due: float, rng: random.Random) -> None:
    await run.timed("day board", due, rng.choice(t.desks), "GET", f"/schedule/?day={t.board_day.isoformat()}")


async def queue(run: Run, t: Target, due: float, rng: random.Random) -> None:
    await run.timed("queue board", due, rng.choice(t.desks), "GET", "/queue/")


async def book(run: Run, t: Target, due: float, rng: random.Random) -> None:
    if not t.slots or not t.spare:  # no free slot in three weeks, or nobody left free to book: a search
        return await search(run, t, due, rng)
    doctor_id, start, type_id = t.slots.pop()
    form = {"doctor_id": doctor_id, "start": start, "patient_id": str(t.spare.pop()), "type_id": type_id,
            "reason": "Follow-up visit", "intent": "book"}
    await run.timed("booking", due, rng.choice(t.desks), "POST", "/schedule/book", form)


async def check_in(run: Run, t: Target, due: float, rng: random.Random) -> None:
    user = rng.choice(t.desks)
    if t.arrivals:
        await run.timed("check-in", due, user, "POST", f"/schedule/appointments/{t.arrivals.pop(0)}/status",
                        {"action": "check_in"})
    elif t.spare or len(t.used) < len(t.patients):  # nobody booked is left to arrive today: a patient walks in
        await run.timed("walk-in", due, user, "POST", "/queue/walk-in",
                        {"patient_id": str(take_patient(t, rng)), "doctor_id": str(rng.choice(t.walk_in_doctors)),
                         "type_id": "", "reason": "", "intent": "add"})
    else:  # a small clinic of the small data set has nobody left who is not in a queue today
        await search(run, t, due, rng)


async def bill(run: Run, t: Target, due: float, rng: random.Random) -> None:
    """Draft a bill for a patient, add a line, view it, issue it (a real RQ worker renders its PDF), view it."""
    user = rng.choice(t.desks)
    status, _, location = await run.timed("bill: draft", due, user, "POST", "/bills/new",
                                          {"patient_id": str(rng.choice(t.patients))})
    found = ID_RE.search(location) if status == 303 else None
    if not found:
        return
    url = f"/bills/{found.group(1)}"
    if (await run.timed("bill: add line", run.loop.time(), user, "POST", f"{url}/lines",
                        {"item_id": str(rng.choice(t.items)), "quantity": str(rng.randint(1, 3))}))[0] != 303:
        return
    status, body, _ = await run.timed("bill: view", run.loop.time(), user, "GET", url)
    version = VERSION_RE.search(body) if status == 200 else None
    if version and (await run.timed("bill: issue", run.loop.time(), user, "POST", f"{url}/issue",
                                    {"version": version.group(1)}))[0] == 303:
        await run.timed("bill: view", run.loop.time(), user, "GET", url)


async def note(run: Run, t: Target, due: float, rng: random.Random) -> None:
    """The doctor's note autosaved (one save at a time per consultation, as the page does)."""
    free = [e for e, (_, _, lock) in t.encounters.items() if not lock.locked()]
    encounter = rng.choice(free or list(t.encounters))
    doctor, _, lock = t.encounters[encounter]
    async with lock:
        form = {**NOTE, "plan": f"{NOTE['plan']} ({rng.randint(1, 10**6)})",
                "version": str(t.encounters[encounter][1])}
        status, body, _ = await run.timed("note save", due, doctor, "POST", f"/encounters/{encounter}/note", form,
                                          HTMX)
        found = VERSION_RE.search(body) if status == 200 else None
        if found:
            t.encounters[encounter][1] = int(found.group(1))


async def tour(target: Target) -> "Run":
    """Every action of the mix once, in turn, on one clinic: the bench refuses to measure a mix that errs."""
    run = Run(asyncio.get_running_loop())
    rng = seeded("tour", target.clinic_id)
    for action, _ in MIX:
        if action != "note" or target.encounters:
            await ACTIONS[action](run, target, run.loop.time(), rng)
    return run


ACTIONS = {"board_poll": board_poll, "queue_poll": queue_poll, "search": search, "patient": patient,
           "timeline_next": timeline_next, "board": board, "queue": queue, "book": book, "check_in": check_in,
           "bill": bill, "note": note}


# --- Phases -----------------------------------------------------------------------------------------------------

def summarise(samples: list[Sample]) -> dict:
    ms = sorted(s.ms for s in samples)
    statements = [s.statements for s in samples if s.statements >= 0]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1),
            "p99_ms": round(pct(ms, 99), 1), "max_ms": round(ms[-1], 1),
            "errors": sum(not s.ok for s in samples),
            "statuses": dict(Counter(str(s.status) for s in samples)),
            "sql_median": statistics.median(statements) if statements else None,
            "sql_max": max(statements) if statements else None}


async def phase(targets: list[Target], *, rate: float, duration: float, seed: int, server, audit_seq) -> dict:
    """Arrivals at `rate` per second for `duration` seconds, each a request of the mix for a random clinic
    of `targets` (weighted by its desks); then waits for the stragglers."""
    loop = asyncio.get_running_loop()
    rng = seeded("load", seed, rate)
    run = Run(loop)
    actions, weights = zip(*MIX, strict=True)
    clinic_weights = [len(t.desks) for t in targets]
    pending: set[asyncio.Task] = set()
    cpu, server_cpu, audit_before = clock.process_time(), server.cpu_seconds(), audit_seq()
    database_cpu = database_cpu_seconds()
    began = loop.time() + 0.2
    due, arrivals = began, 0
    while True:
        due += rng.expovariate(rate)
        if due - began >= duration:
            break
        await asyncio.sleep(max(0.0, due - loop.time()))
        target = rng.choices(targets, clinic_weights)[0]
        action = rng.choices(actions, weights)[0]
        if action == "note" and not target.encounters:
            action = "patient"
        task = loop.create_task(ACTIONS[action](run, target, due, seeded("arrival", seed, arrivals)))
        pending.add(task)
        task.add_done_callback(pending.discard)
        arrivals += 1
    sent_until = loop.time()
    if pending:
        await asyncio.wait(set(pending), timeout=120)
    wall = loop.time() - began
    audit_after = audit_seq()
    by_page = defaultdict(list)
    for sample in run.samples:
        by_page[sample.page].append(sample)
    return {"rate": rate, "duration_s": duration, "arrivals": arrivals, "requests": len(run.samples),
            "achieved_per_s": round(len(run.samples) / max(wall, 0.001), 1),
            "late_s": round(sent_until - (began + duration), 2), "wall_s": round(wall, 1), "unfinished": len(pending),
            "all": summarise(run.samples), "pages": {p: summarise(s) for p, s in sorted(by_page.items())},
            "failures": run.failures,
            "audit_per_s": round((audit_after - audit_before) / wall, 1),
            "client_cpu_pct": round(100 * (clock.process_time() - cpu) / wall, 1),
            "server_cpu_pct": round(100 * (server.cpu_seconds() - server_cpu) / wall, 1),
            "database_cpu_pct": round(100 * (database_cpu_seconds() - database_cpu) / wall, 1)}


def take_patient(t: Target, rng: random.Random) -> uuid.UUID:
    """A patient not booked or walked in by this run yet, while there are any (a tiny data set runs out)."""
    if t.spare:
        chosen = t.spare.pop()
    else:
        fresh = [p for p in t.patients if p not in t.used]
        chosen = rng.choice(fresh or t.patients)
    t.used.add(chosen)
    return chosen


async def capacity(targets: list[Target], rates: list[int], *, step: float, seed: int, server, audit_seq,
                   log) -> dict:
    """Step the arrival rate up until p95 passes 200 ms, a request fails or the server falls behind (fewer
    requests answered per second than asked, by more than 5%); the capacity is the last rate that held."""
    steps, held = [], 0
    for i, rate in enumerate(rates):
        result = await phase(targets, rate=rate, duration=step, seed=seed + 1000 + i, server=server,
                             audit_seq=audit_seq)
        ok = result["all"]["p95_ms"] <= 200 and result["all"]["errors"] == 0 and not result["unfinished"] \
            and result["late_s"] < 1
        steps.append({"rate": rate, "p50_ms": result["all"]["p50_ms"], "p95_ms": result["all"]["p95_ms"],
                      "p99_ms": result["all"]["p99_ms"], "errors": result["all"]["errors"],
                      "achieved_per_s": result["achieved_per_s"], "server_cpu_pct": result["server_cpu_pct"],
                      "client_cpu_pct": result["client_cpu_pct"], "held": ok})
        log(f"  {rate} arrivals/s: p95 {result['all']['p95_ms']} ms, {result['all']['errors']} errors, "
            f"{result['achieved_per_s']} requests/s answered -> {'held' if ok else 'missed'}")
        if not ok:
            break
        held = rate
    return {"capacity_per_s": held, "steps": steps}



# --- One data set, then the report ------------------------------------------------------------------------------

def audit_counter(bench: env.Bench):
    """The audit trail's sequence number now (records written since = the difference)."""
    def read() -> int:
        with bench.owner() as conn:
            return conn.execute("SELECT coalesce(max(seq), 0) FROM audit_event").fetchone()[0]
    return read


def busiest_today(bench: env.Bench, specs: list) -> clinics.Spec:
    """The clinic with the most patients booked for today: the big clinic on a working day; on a Sunday or a
    holiday, the biggest clinic open that day (a clinic closed today has nobody to check in)."""
    with bench.owner() as conn:
        counts = dict(conn.execute(
            "SELECT c.name, count(a.id) FROM clinic c LEFT JOIN appointment a ON a.clinic_id = c.id AND a.day = %s "
            "AND a.status IN ('booked', 'confirmed') GROUP BY c.name", [clock_today()]).fetchall())
    return max(specs, key=lambda spec: (counts.get(spec.name, 0), spec is specs[0]))


def build_targets(app, bench: env.Bench, base: str, args, rng: random.Random, log) -> tuple[dict, str]:
    """Every clinic's target: the busiest clinic today with up to 16 desks and 6 doctors (the "one" scenario's
    clinic), every other clinic its desks (up to 2) and a doctor. Each board shows today, or the clinic's next
    working day when it is closed today."""
    from bench.plan import bench_day_after

    today = clock_today()
    specs = clinics.SPECS[:args.clinics or None]
    busiest = busiest_today(bench, specs)
    targets = {}
    for spec in specs:
        big = spec is busiest
        day = today if big else bench_day_after(today, spec.place.state_code)
        target = prepare_target(app, bench, spec, rng=rng, patients=200 if big else 40, board_day=day)
        users = users_of(app, base, spec, target.clinic_id, desks=16 if big else 2, doctors=6 if big else 1)
        target.desks = [u for u in users if u.role == "desk"]
        target.doctors = [u for u in users if u.role == "doctor"]
        targets[spec.key] = target
    log(f"  targets: {len(targets)} clinics (the busiest today: {busiest.name}), "
        f"{sum(len(t.slots) for t in targets.values()):,} free slots to book, "
        f"{sum(len(t.arrivals) for t in targets.values()):,} booked patients to check in today")
    return targets, busiest.key


async def drive(app, bench: env.Bench, meta: dict, args, server, log) -> dict:
    rng = seeded("load targets", meta.get("seed", 2026))
    targets, busiest = build_targets(app, bench, server.url, args, rng, log)
    users = [u for t in targets.values() for u in t.desks + t.doctors]
    remember_doctor_ids(bench, users)
    try:
        started = clock.perf_counter()
        await gather_limited([u.sign_in() for u in users])
        log(f"  {len(users)} staff signed in ({clock.perf_counter() - started:.0f} s)")
        await gather_limited([warm(t) for t in targets.values()])
        toured = await tour(targets[busiest])
        if not all(s.ok for s in toured.samples):
            raise SystemExit(f"the mix does not work as it should: {toured.failures}")
        audit = audit_counter(bench)
        scenarios = {"one": [targets[busiest]], "spread": list(targets.values())}
        result = {"scenarios": {}, "tour": [s.__dict__ for s in toured.samples], "one_clinic": targets[busiest].name}
        for name in args.scenarios.split(","):
            await gather_limited([u.ensure_signed_in() for u in users], limit=8)
            await phase(scenarios[name], rate=args.rate, duration=min(10, args.duration), seed=7, server=server,
                        audit_seq=audit)  # warm-up, not counted
            found = await phase(scenarios[name], rate=args.rate, duration=args.duration, seed=11, server=server,
                                audit_seq=audit)
            result["scenarios"][name] = found
            log(f"  {name}: {found['requests']} requests at {args.rate}/s, p95 {found['all']['p95_ms']} ms, "
                f"{found['all']['errors']} errors, client CPU {found['client_cpu_pct']}%")
        if args.capacity:
            await gather_limited([u.ensure_signed_in() for u in users], limit=8)
            result["capacity"] = await capacity(scenarios["spread"], [int(r) for r in args.capacity.split(",")],
                                                step=args.step, seed=13, server=server, audit_seq=audit, log=log)
    finally:
        await asyncio.gather(*(u.close() for u in users))
    return result


def plan_reminders(app, log) -> None:
    """Catch the reminder planner up before measuring: a generated database has appointments ahead with no
    reminders planned, which the worker's sweep would otherwise plan, 5,000 a clinic a minute, during the run
    (a clinic in use plans each reminder as it books)."""
    from sqlalchemy import select

    from app.db import utcnow
    from app.messaging import outbox
    from jobs.reminders import plan_missing

    started, planned = clock.perf_counter(), 0
    with app.app_context():
        db = get_session()
        for clinic_id in db.scalars(select(Clinic.id)).all():
            set_tenant(db, clinic_id=clinic_id, user_id=None)
            clinic = db.get(Clinic, clinic_id)
            while outbox.settings_of(db, clinic_id).enabled and (found := plan_missing(db, clinic, utcnow())):
                planned += found
                db.commit()
            db.commit()
    log(f"  reminders planned for the appointments ahead: {planned:,} ({clock.perf_counter() - started:.0f} s)")


def run_size(size, args, log) -> dict:
    """Prepare (or reuse) the data set of this size, start the app as in production, and drive it."""
    from app.local.services import start_redis
    from bench import server as servers

    args.database = args.base_database if size.patients >= 100_000 else f"{args.base_database}_small"
    bench = env.resolve(args)
    app, meta = env.prepare(bench, size, fresh=args.fresh, workers=args.workers, log=log)
    if not bench.config["REDIS_URL"]:
        client, bench.config["REDIS_URL"] = start_redis(bench.folder / "redis")
        bench.keep.append(client)
    plan_reminders(app, log)
    app.extensions["db_engine"].dispose()
    with servers.running(bench.config, workers=args.gunicorn_workers, threads=args.threads,
                         rq_workers=args.rq_workers) as server:
        log(f"{size.patients:,} patients: app at {server.url} (gunicorn {args.gunicorn_workers} x "
            f"{args.threads} threads, {args.rq_workers} RQ worker)")
        found = asyncio.run(drive(app, bench, meta, args, server, log))
    with bench.owner() as conn:
        found["events"] = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'timeline_event'"
                                       ).fetchone()[0]
    found["meta"] = meta
    return found


# --- Report -----------------------------------------------------------------------------------------------------

TARGET_P95_MS, TARGET_CAPACITY, TARGET_RATIO = 50, 200, 1.25


def _background() -> dict:
    """The background figures of `make bench`'s earlier steps (bench/results/*.json), when present."""
    import json

    from bench.report import RESULTS

    found = {}
    for name, path in (("reminders_per_s", ("reminders", "per_second")),
                       ("reminder_duplicates", ("reminders", "duplicates")),
                       ("pdfs_per_s_per_worker", ("pdf", "per_second")),
                       ("bills_issued_per_s", ("issue", "per_second"))):
        file = RESULTS / ("reminders.json" if path[0] == "reminders" else "billing.json")
        if file.exists():
            value = json.loads(file.read_text()).get(path[0], {}).get(path[1])
            found[name] = round(value, 1) if isinstance(value, float) else value
    return found


def _page_table(found: dict) -> list[str]:
    lines = ["| page | n | p50 ms | p95 ms | p99 ms | errors | SQL statements (median, max) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for page, s in [*found["pages"].items(), ("**all**", found["all"])]:
        lines.append(f"| {page} | {s['n']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['errors']} | "
                     f"{s['sql_median']}, {s['sql_max']} |")
    lines.append("")
    lines.append(f"{found['requests']} requests from {found['arrivals']} arrivals in {found['wall_s']} s "
                 f"({found['achieved_per_s']}/s answered); audit records written: {found['audit_per_s']}/s; "
                 f"CPU (100% = one core; the machine has {_cpus()}): app and RQ workers {found['server_cpu_pct']}%, "
                 f"PostgreSQL {found['database_cpu_pct']}%, load generator {found['client_cpu_pct']}%")
    return lines


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def ratios(full: dict, small: dict) -> dict:
    """200k / 2k, page by page, for each scenario: the p95 ratio (and the p50 one)."""
    out = {}
    for name, found in full["scenarios"].items():
        other = small["scenarios"].get(name)
        if not other:
            continue
        out[name] = {page: {"p95_2k": other["pages"][page]["p95_ms"], "p95_200k": s["p95_ms"],
                            "ratio_p95": round(s["p95_ms"] / max(other["pages"][page]["p95_ms"], 0.1), 2),
                            "ratio_p50": round(s["p50_ms"] / max(other["pages"][page]["p50_ms"], 0.1), 2),
                            "sql_2k": other["pages"][page]["sql_max"], "sql_200k": s["sql_max"]}
                     for page, s in found["pages"].items() if page in other["pages"]}
    return out


def targets_met(sizes: dict, rate: float, found_ratios: dict) -> list[dict]:
    rows = []
    for label, found in sizes.items():
        for name, scenario in found["scenarios"].items():
            worst = max(scenario["pages"].items(), key=lambda kv: kv[1]["p95_ms"])
            rows.append({"target": f"p95 <= {TARGET_P95_MS} ms on every page at {rate:g}/s ({label}, {name})",
                         "found": f"worst: {worst[0]} {worst[1]['p95_ms']} ms",
                         "held": worst[1]["p95_ms"] <= TARGET_P95_MS})
            rows.append({"target": f"zero errors ({label}, {name})", "found": str(scenario["all"]["errors"]),
                         "held": scenario["all"]["errors"] == 0})
        if "capacity" in found:
            held = found["capacity"]["capacity_per_s"]
            rows.append({"target": f"capacity >= {TARGET_CAPACITY}/s with p95 <= 200 ms ({label})",
                         "found": f"{held}/s", "held": held >= TARGET_CAPACITY})
    for name, pages in found_ratios.items():
        worst = max(pages.items(), key=lambda kv: kv[1]["ratio_p95"])
        rows.append({"target": f"200k/2k p95 ratio <= {TARGET_RATIO} per page ({name})",
                     "found": f"worst: {worst[0]} {worst[1]['ratio_p95']}",
                     "held": worst[1]["ratio_p95"] <= TARGET_RATIO})
        grows = [p for p, r in pages.items() if r["sql_2k"] is not None and r["sql_200k"] != r["sql_2k"]]
        rows.append({"target": f"SQL statements per page the same at 2k and 200k ({name})",
                     "found": ", ".join(grows) or "the same on every page", "held": not grows})
    return rows


def text(info: dict, args, sizes: dict, found_ratios: dict, background: dict, met: list[dict]) -> str:
    lines = ["# Load test", "",
             f"Machine: {info['cpu_model']}, {info['cpus']} CPUs, {info['ram_gib']} GiB; PostgreSQL "
             f"{info['postgresql']['server_version']}; Python {info['python']}. App: gunicorn {args.gunicorn_workers} "
             f"workers x {args.threads} threads, {args.rq_workers} RQ worker; audit trail, field encryption and "
             f"row-level security on. Open-loop Poisson arrivals at {args.rate:g}/s for {args.duration:g} s per "
             "scenario, after a 10 s warm-up; latency from each request's due time to its last byte.", ""]
    for label, found in sizes.items():
        for name, scenario in found["scenarios"].items():
            where = f"all load on one clinic ({found.get('one_clinic')}, the busiest today)" if name == "one" \
                else f"spread over all {len(clinics.SPECS)} clinics"
            lines += [f"## {label}: {where}", "", *_page_table(scenario), ""]
    if found_ratios:
        lines += ["## 200k / 2k", "", "| scenario | page | p95 2k ms | p95 200k ms | ratio p95 | ratio p50 | "
                  "SQL 2k | SQL 200k |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for name, pages in found_ratios.items():
            lines += [f"| {name} | {p} | {r['p95_2k']} | {r['p95_200k']} | {r['ratio_p95']} | {r['ratio_p50']} | "
                      f"{r['sql_2k']} | {r['sql_200k']} |" for p, r in pages.items()]
        lines.append("")
    for label, found in sizes.items():
        if "capacity" in found:
            lines += [f"## Capacity, {label} (spread; a step holds with p95 <= 200 ms, no error, nobody left waiting)",
                      "", "| arrivals/s | answered/s | p50 ms | p95 ms | p99 ms | errors | app CPU % | client CPU % "
                      "| held |",
                      "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
            lines += [f"| {s['rate']} | {s['achieved_per_s']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | "
                      f"{s['errors']} | {s['server_cpu_pct']} | {s['client_cpu_pct']} | "
                      f"{'yes' if s['held'] else 'no'} |"
                      for s in found["capacity"]["steps"]]
            lines += ["", f"Capacity: **{found['capacity']['capacity_per_s']} arrivals/s**.", ""]
    if background:
        lines += ["## Background work", "", *[f"- {k.replace('_', ' ')}: {v}" for k, v in background.items()], ""]
    lines += ["## Targets", "", "| target | found | held |", "|---|---|---|"]
    lines += [f"| {m['target']} | {m['found']} | {'yes' if m['held'] else '**no**'} |" for m in met]
    return "\n".join(lines) + "\n"


def _arguments(argv: list[str] | None):
    p = env.parser("Load-test the app as it runs in production, open loop, at 2k and 200k patients.")
    p.add_argument("--sizes", default="small,full", help="data sets to drive: small (2k patients), full (200k)")
    p.add_argument("--rate", type=float, default=50, help="arrivals per second")
    p.add_argument("--duration", type=float, default=60, help="seconds per scenario")
    p.add_argument("--scenarios", default="one,spread", help="one (the big clinic), spread (every clinic)")
    p.add_argument("--capacity", default="30,40,50,60,80,100,150,200",
                   help="arrival rates to step through for the capacity ('' to skip)")
    p.add_argument("--step", type=float, default=20, help="seconds per capacity step")
    p.add_argument("--clinics", type=int, default=0, help="drive only the first N clinics (0: all)")
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    p.add_argument("--rq-workers", type=int, default=1)
    args = p.parse_args(argv)
    args.base_database = args.database
    return args


def main(argv: list[str] | None = None) -> None:
    from bench import data, report

    args = _arguments(argv)
    wanted = {"small": data.SMALL, "full": data.Size()}
    if args.small:
        args.sizes = "small"
    sizes = {}
    for key in args.sizes.split(","):
        size = env.size_of(args) if key == "full" and (args.patients or args.appointments) else wanted[key]
        label = f"{size.patients:,} patients"
        data.say(f"{label}:")
        sizes[label] = run_size(size, args, data.say)
    info = report.machine(env.resolve(args))  # the last data set driven (args.database is its database)
    labels = list(sizes)
    found_ratios = ratios(sizes[labels[-1]], sizes[labels[0]]) if len(labels) == 2 else {}
    background = _background()
    met = targets_met(sizes, args.rate, found_ratios)
    markdown = text(info, args, sizes, found_ratios, background, met)
    print("\n" + markdown)
    report.write(markdown, {"machine": info, "rate": args.rate, "duration_s": args.duration, "sizes": sizes,
                            "ratios": found_ratios, "background": background, "targets": met}, name="load")


if __name__ == "__main__":
    main()
