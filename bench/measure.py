"""Driving the app as the desk does and timing it: receptionists signed in with password and TOTP (a Flask
test client each, posting forms with the page's CSRF token), the SQL each request sends (counted on the
app's engine, per thread), and percentiles."""

import re
import statistics
import threading
import time as clock
from collections import Counter
from dataclasses import dataclass, field

import pyotp
from sqlalchemy import event

from bench import clinics

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class SqlCounter:
    """Counts the statements (and their time) each thread sends through the app's engine; COMMITs are
    not statements here (they are counted apart)."""

    def __init__(self, engine):
        self.local = threading.local()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit)

    def start(self, keep: bool = False) -> None:
        self.local.count, self.local.commits, self.local.ms = 0, 0, 0.0
        self.local.kept = [] if keep else None

    def stop(self) -> tuple[int, int, float, list | None]:
        found = (self.local.count, self.local.commits, self.local.ms, self.local.kept)
        self.local.count = None
        return found

    def _on(self) -> bool:
        return getattr(self.local, "count", None) is not None

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if self._on():
            self.local.count += 1
            self.local.began = clock.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self._on():
            took = (clock.perf_counter() - self.local.began) * 1000
            self.local.ms += took
            if self.local.kept is not None:
                self.local.kept.append({"sql": statement, "params": parameters, "ms": took})

    def _commit(self, conn):
        if self._on():
            self.local.commits += 1


class Desk:
    """A signed-in receptionist: a test client that posts forms with the page's CSRF token."""

    def __init__(self, app, address: str, password: str, secret: str):
        self.client = app.test_client()
        self.address, self.password, self.secret = address, password, secret
        self.token = None

    def get(self, url: str, **kw):
        response = self.client.get(url, **kw)
        self._keep_token(response)
        return response

    def post(self, url: str, form: dict, **kw):
        response = self.client.post(url, data={"csrf_token": self.token, **form}, **kw)
        self._keep_token(response)
        return response

    def _keep_token(self, response) -> None:
        if response.mimetype == "text/html":
            found = CSRF_RE.search(response.get_data(as_text=True))
            self.token = found.group(1) if found else self.token

    def sign_in(self) -> None:
        """Password, then a TOTP code (waiting for the next time step if this one was used already)."""
        self.get("/auth/login")
        response = self.post("/auth/login", {"email": self.address, "password": self.password})
        if response.status_code != 303:
            raise SystemExit(f"{self.address}: password refused ({response.status_code})")
        for _ in range(3):
            self.get("/auth/mfa")
            if self.post("/auth/mfa", {"code": pyotp.TOTP(self.secret).now()}).status_code == 303:
                return
            clock.sleep(30 - clock.time() % 30 + 1)
        raise SystemExit(f"{self.address}: TOTP code refused")


def desks(app, count: int) -> list[Desk]:
    """`count` receptionists of the big clinic, signed in."""
    spec = clinics.SPECS[0]
    with app.app_context():
        password = clinics.password()
        people = [(clinics.email("desk", spec, n), clinics.totp_secret(clinics.email("desk", spec, n)))
                  for n in range(1, count + 1)]
    signed_in = [Desk(app, address, password, secret) for address, secret in people]
    for desk in signed_in:
        desk.sign_in()
    return signed_in


@dataclass
class Sample:
    """One request: how long, what it answered, its SQL, its size, when it ran."""

    ms: float
    status: int
    queries: int
    sql_ms: float
    size: int = 0
    began: float = 0.0
    ended: float = 0.0
    commits: int = 0


@dataclass
class Result:
    """One measure: its samples and whatever else it found."""

    name: str
    samples: list[Sample] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        ms = sorted(s.ms for s in self.samples)
        queries = [s.queries for s in self.samples]
        return {"name": self.name, "n": len(ms), "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99),
                "mean_ms": statistics.fmean(ms), "max_ms": ms[-1],
                "queries_min": min(queries), "queries_max": max(queries),
                "commits_max": max(s.commits for s in self.samples),
                "sql_ms_p50": pct(sorted(s.sql_ms for s in self.samples), 50),
                "statuses": dict(Counter(str(s.status) for s in self.samples)),
                "bytes_p50": pct(sorted(s.size for s in self.samples), 50), **self.extra}


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (linear interpolation between the nearest ranks)."""
    if len(values) == 1:
        return values[0]
    rank = (len(values) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def timed(counter: SqlCounter, call, keep: bool = False) -> tuple[Sample, object, list | None]:
    """Make one request (`call`), timed to its last byte, with its SQL counted (and kept, if asked)."""
    counter.start(keep)
    began = clock.perf_counter()
    response = call()
    body = response.get_data()
    ended = clock.perf_counter()
    queries, commits, sql_ms, kept = counter.stop()
    sample = Sample((ended - began) * 1000, response.status_code, queries, sql_ms, len(body), began, ended, commits)
    return sample, response, kept
