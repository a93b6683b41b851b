"""`make run`: everything a fresh machine needs to serve the demo, and nothing left behind.

Generates the instance secrets, starts embedded PostgreSQL and Redis when DATABASE_URL and
REDIS_URL are unset, migrates, seeds the demo into an empty database, prints the demo staff,
then serves the app with gunicorn on 127.0.0.1:$PORT beside an RQ worker and the timer of periodic jobs.
A worker or timer that dies is started again (the web server keeps serving); Ctrl-C stops all of it.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from app import config as settings
from app.local.processes import Supervisor
from app.migrate import migrate


def _write_runtime(folder: Path, values: dict) -> Path:
    path = folder / "runtime.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return path


def _seed_and_show() -> None:
    from app import create_app
    from app.demo.cli import demo_users, seed_demo

    app = create_app()
    runner = app.test_cli_runner()
    print(runner.invoke(seed_demo).output.strip())
    shown = runner.invoke(demo_users)
    print("\nDemo staff (role, e-mail, password, TOTP secret — add the secret to any authenticator app):")
    print(shown.output if shown.exit_code == 0 else "  (not a demo database: no demo credentials to show)")


def gunicorn_command(port: str, python: str = sys.executable) -> list[str]:
    """The web server, its access log on stdout; run from ROOT, where it reads gunicorn.conf.py (the log's format,
    link tokens masked, control characters escaped)."""
    return [python, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}",
            "--access-logfile", "-", "wsgi:app"]


def commands(python: str, port: str) -> dict[str, list[str]]:
    """The processes `make run` keeps up: the web server, an RQ worker and the timer of periodic jobs."""
    return {"web": gunicorn_command(port, python), "worker": [python, "-m", "jobs.worker"],
            "timer": [python, "-m", "jobs.timer"]}


def main() -> None:
    folder = settings.instance_path()
    settings.ensure_instance_secrets(folder)
    secrets_file = json.loads((folder / "secrets.json").read_text())
    port = os.environ.get("PORT", "5000")
    keep = []  # embedded servers stay up while these objects live
    runtime = {}
    if not os.environ.get("DATABASE_URL"):
        from app.local.services import start_postgres

        server, runtime["DATABASE_URL"] = start_postgres(folder, "clinicdesk")
        keep.append(server)
        print("embedded PostgreSQL 18 running (data in instance/pgdata)")
    if not os.environ.get("REDIS_URL"):
        from app.local.services import start_redis

        client, runtime["REDIS_URL"] = start_redis(folder / "redis")
        keep.append(client)
        print("embedded Redis running (instance/redis)")
    runtime_file = _write_runtime(folder, runtime)
    os.environ.update(runtime)
    admin_url = os.environ["DATABASE_URL"]
    migrate(admin_url, os.environ.get("APP_DB_PASSWORD") or secrets_file["APP_DB_PASSWORD"])
    _seed_and_show()

    processes = Supervisor(commands(sys.executable, port))
    processes.start()
    print(f"\nClinicDesk is running at http://127.0.0.1:{port}/  (Ctrl-C stops everything)\n")

    def stop(*_):
        processes.stop()
        runtime_file.unlink(missing_ok=True)
        for thing in keep:
            if hasattr(thing, "shutdown"):
                thing.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while processes.check():
        time.sleep(1)
    print("the web server stopped unexpectedly; stopping the rest", file=sys.stderr)
    stop()


if __name__ == "__main__":
    main()
