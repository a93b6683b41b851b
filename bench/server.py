"""The app as it runs in production, for the load test: gunicorn with several worker processes (threads
in each) on a local port, RQ workers (`python -m jobs.worker`, with the scheduler, at nice 10) and the timer of periodic
jobs (`python -m jobs.timer`), each in a session of its own (stopping it stops its work-horse too), all on the bench's
database, secrets and Redis, with `SERVER_TIMING=1` so every response says how many SQL statements it
took (app/timing.py). Their output goes to instance/bench/server.log; their CPU time is read with psutil.
"""

import os
import socket
import subprocess
import sys
import time as clock
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.local.processes import stop_groups

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(config: dict, **extra: str) -> dict:
    """The processes' environment: the bench's database, secrets and Redis (the app connects as its
    runtime role, derived from the admin URL and the role's password, as in production)."""
    values = {**os.environ, "DATABASE_URL": config["DATABASE_URL"], "APP_DB_PASSWORD": config["APP_DB_PASSWORD"],
              "REDIS_URL": config["REDIS_URL"], "SECRET_KEY": config["SECRET_KEY"],
              "MASTER_KEY": config["MASTER_KEY"], "INSTANCE_PATH": config["INSTANCE_PATH"], "SERVER_TIMING": "1",
              "RQ_QUEUE": config.get("RQ_QUEUE") or "clinicdesk", "NO_PROXY": "127.0.0.1,localhost", **extra}
    values.pop("DATABASE_APP_URL", None)
    return values


def database_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL processes (all of them: the server is the bench's when local)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] and process.info["name"].startswith("postgres") and process.info["cpu_times"]:
            total += process.info["cpu_times"].user + process.info["cpu_times"].system
    return total


@dataclass
class Running:
    url: str
    processes: list[psutil.Process] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of gunicorn's and the RQ workers' processes, children included."""
        total = 0.0
        for process in self.processes:
            try:
                for p in [process, *process.children(recursive=True)]:
                    times = p.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total


def _wait_ready(url: str, processes: list[subprocess.Popen], log_path: Path, timeout: float = 90) -> None:
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"the app did not start; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 (our own http URL)
                if response.status == 200:
                    return
        except OSError:
            pass
        clock.sleep(0.3)
    raise SystemExit(f"the app was not ready within {timeout:.0f} s; see {log_path}")


@contextmanager
def running(config: dict, *, workers: int, threads: int, rq_workers: int):
    """gunicorn, the RQ workers and the timer, up until the block ends; then stopped, children and all."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    values = environment(config, PORT=str(port), PUBLIC_URL=url)
    log_path = Path(config["INSTANCE_PATH"]) / "server.log"
    with open(log_path, "ab") as log:
        started = [subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
             "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--backlog", "2048", "--timeout", "60",
             "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=values, stdout=log, stderr=log,
            start_new_session=True)]
        # RQ workers at a lower CPU priority than the web workers, as wherever both share a machine: a PDF or a
        # reminder can wait a second, a desk's click should not (`nice` execs the worker: same pid).
        started += [subprocess.Popen([*command, "-m", module], cwd=ROOT, env=values,  # noqa: S603
                                     stdout=log, stderr=log, start_new_session=True)
                    for command, module in [(["nice", "-n", "10", sys.executable], "jobs.worker")] * rq_workers
                    + [([sys.executable], "jobs.timer")]]
        try:
            _wait_ready(url, started, log_path)
            yield Running(url, [psutil.Process(p.pid) for p in started])
        finally:
            stop_groups(started, timeout=20)
