"""Where the benchmark runs: a database of its own, its own secrets, and the app configured for it.

With DATABASE_URL set, the bench uses a database named `clinicdesk_bench` (or `--database NAME`) on that
server, never the database DATABASE_URL names. Without it, an embedded PostgreSQL with its data in
instance/bench/pgdata. The bench's master key, session key and app-role password live in
instance/bench/secrets.json (0600). The database is dropped and rebuilt only when it is empty or
was made by this generator (marked in `app_meta`); any other database is refused.
"""

import argparse
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from app import config as settings
from app import create_app
from app.local.services import ensure_database
from app.migrate import migrate
from bench import data

DEFAULT_DATABASE = "clinicdesk_bench"


@dataclass
class Bench:
    admin_url: str
    config: dict
    folder: Path
    keep: list = field(default_factory=list)  # an embedded server stays up while this lives

    @property
    def safe_url(self) -> str:
        return make_url(self.admin_url).render_as_string(hide_password=True)

    def owner(self) -> psycopg.Connection:
        """A connection as the admin (owner or superuser: no row-level security), for set-up and checks."""
        return psycopg.connect(data.conninfo(self.admin_url), autocommit=True)


def parser(description: str) -> argparse.ArgumentParser:
    """The command-line options the generator and the benchmark share."""
    full, small = data.Size(), data.SMALL
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--small", action="store_true",
                   help=f"quick size: {small.patients:,} patients, {small.appointments:,} appointments")
    p.add_argument("--patients", type=int, default=None, help=f"patients in all (default {full.patients:,})")
    p.add_argument("--appointments", type=int, default=None,
                   help=f"appointments in all (default {full.appointments:,})")
    p.add_argument("--day-appointments", type=int, default=full.day_appointments,
                   help="the big clinic's appointments on the benchmark day")
    p.add_argument("--fresh", action="store_true", help="rebuild the bench database even if it has this size")
    p.add_argument("--workers", type=int, default=None, help="generator processes (default: one per CPU)")
    p.add_argument("--database", default=DEFAULT_DATABASE, help="database name on the DATABASE_URL server")
    return p


def size_of(args: argparse.Namespace) -> data.Size:
    base = data.SMALL if args.small else data.Size()
    return data.Size(args.patients or base.patients, args.appointments or base.appointments, args.day_appointments)


def _secrets(folder: Path) -> dict:
    path = folder / "secrets.json"
    if not path.exists():
        values = {"SECRET_KEY": secrets.token_hex(32), "MASTER_KEY": secrets.token_hex(32),
                  "APP_DB_PASSWORD": secrets.token_urlsafe(24)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(values, fh, indent=2)
    return json.loads(path.read_text())


def resolve(args: argparse.Namespace) -> Bench:
    """The bench database's admin URL and the app configuration that goes with it."""
    folder = settings.instance_path() / "bench"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stored = _secrets(folder)
    keep = []
    server = os.environ.get("DATABASE_URL")
    if server:
        admin_url = make_url(server).set(drivername="postgresql+psycopg", database=args.database)
        admin_url = admin_url.render_as_string(hide_password=False)
    else:
        from app.local.services import start_postgres

        started, admin_url = start_postgres(folder, args.database)
        keep.append(started)
    config = {
        "DATABASE_URL": admin_url, "DATABASE_APP_URL": None,
        "APP_DB_PASSWORD": os.environ.get("APP_DB_PASSWORD") or stored["APP_DB_PASSWORD"],
        "REDIS_URL": os.environ.get("REDIS_URL"), "SECRET_KEY": stored["SECRET_KEY"],
        "MASTER_KEY": stored["MASTER_KEY"], "INSTANCE_PATH": str(folder),
    }
    return Bench(admin_url, config, folder, keep)


def _maintenance(admin_url: str) -> str:
    return make_url(admin_url).set(database="postgres").render_as_string(hide_password=False)


def state(admin_url: str) -> str:
    """'missing', 'empty', 'bench' (made by the generator, finished or not) or 'other'."""
    name = make_url(admin_url).database
    with psycopg.connect(data.conninfo(_maintenance(admin_url)), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return "missing"
    with psycopg.connect(data.conninfo(admin_url)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        if "app_meta" in tables and conn.execute("SELECT 1 FROM app_meta WHERE key = %s", [data.META_KEY]).fetchone():
            return "bench"
        if "staff_user" not in tables or not conn.execute("SELECT 1 FROM staff_user LIMIT 1").fetchone():
            return "empty"
    return "other"


def recreate(admin_url: str) -> None:
    name = make_url(admin_url).database
    with psycopg.connect(data.conninfo(_maintenance(admin_url)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ensure_database(_maintenance(admin_url), name)


def prepare(bench: Bench, size: data.Size, *, fresh: bool = False, workers: int | None = None, log=data.say):
    """Reuse the bench database if it holds this size and this master key opens it; else rebuild it.
    Returns (app, bench marker)."""
    found = state(bench.admin_url)
    if found == "other":
        raise SystemExit(f"{bench.safe_url} holds data the bench generator did not make: refusing to touch it "
                         "(choose another --database)")
    meta = data.existing(bench.admin_url) if found == "bench" else None
    password = bench.config["APP_DB_PASSWORD"]
    if not fresh and data.matches(meta, size):
        migrate(bench.admin_url, password)
        app = create_app(bench.config)
        if data.readable(app, bench.admin_url):
            log(f"reusing the bench database {bench.safe_url} (made {meta['anchor']} in {meta['load_s']} s)")
            return app, meta
        log("the bench data was sealed under another master key: rebuilding it")
        app.extensions["db_engine"].dispose()
    log(f"building the bench database {bench.safe_url}: {size.patients:,} patients, "
        f"{size.appointments:,} appointments")
    recreate(bench.admin_url)
    migrate(bench.admin_url, password)
    app = create_app(bench.config)
    return app, data.generate(app, bench.admin_url, size, workers=workers, log=log)
