"""Faults in the background processes, for real: the Redis they use is stopped and started again (a
redis-server this test owns, on a free port), a worker under `make run`'s supervisor is SIGKILLed."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from redis import Redis

from app.local.processes import Supervisor
from app.local.run import commands
from bench.server import free_port
from jobs.maintenance import purge_expired_sessions
from jobs.worker import HIGH, queue
from tests.conftest import worker_env

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@contextmanager
def redis_server(port: int):
    """A redis-server of the test's own, without persistence: stopping it loses everything, as a crash would."""
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connection = Redis(port=port)
    try:
        wait_for(lambda: _pings(connection), 10, "redis-server did not start")
        yield server
    finally:
        connection.close()
        server.terminate()
        server.wait(timeout=10)


def _pings(connection: Redis) -> bool:
    try:
        return connection.ping()
    except Exception:  # noqa: BLE001 (not up yet)
        return False


def start(module: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def finished(connection: Redis, app, job_id: str) -> bool:
    with app.app_context():
        job = queue(connection).fetch_job(job_id)
    return job is not None and job.get_status() == "finished"


def periodic_ran(q) -> bool:
    return any(i.startswith("every-jobs_audit_chain") for i in q.finished_job_registry.get_job_ids())


def test_the_worker_and_the_timer_ride_out_a_redis_outage(app, app_config, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**worker_env(app_config), "REDIS_URL": url}
    with redis_server(port):
        worker = start("jobs.worker", env, tmp_path / "worker.log")
        timer = start("jobs.timer", env, tmp_path / "timer.log")
        connection = Redis.from_url(url)
        with app.app_context():
            job = queue(connection).enqueue("time.sleep", 4)  # Redis goes away in the middle of a job
        wait_for(lambda: job.get_status(refresh=True) == "started", 60, "the worker did not start the job")
        connection.close()
    try:
        time.sleep(12)  # Redis is down (RQ's own loop gave up when the job ended): both wait for it
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
        assert timer.poll() is None, (tmp_path / "timer.log").read_text()[-2000:]
        with redis_server(port):  # back, empty
            connection = Redis.from_url(url)
            with app.app_context():
                job = queue(connection).enqueue(purge_expired_sessions)
            wait_for(lambda: finished(connection, app, job.id), 90, "the worker did not take the job after the outage")
            with app.app_context():  # the timer enqueued the periodic work again, and the worker ran it
                high = queue(connection, HIGH)
            wait_for(lambda: periodic_ran(high), 90, "no periodic job ran after the outage")
            connection.close()
    finally:
        for process in (worker, timer):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 (our own http URL)
            return response.status == 200
    except OSError:
        return False


def test_make_run_starts_a_dead_worker_again_and_keeps_serving(app_config):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes = Supervisor(commands(sys.executable, str(port)), env={**worker_env(app_config), "PUBLIC_URL": url})
    processes.start()
    groups = []
    try:
        wait_for(lambda: _ready(url), 90, "the web server did not start")
        web, worker = processes.children["web"], processes.children["worker"]
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies (with its scheduler)
        wait_for(lambda: processes.check() and processes.children["worker"] is not worker, 30, "no new worker")
        assert processes.children["worker"].poll() is None
        assert processes.children["web"] is web and web.poll() is None and _ready(url)
        groups = [child.pid for child in processes.children.values()]
    finally:
        processes.stop(timeout=20)
    for pid in groups:  # nothing outlives the stop: no process is left in any of their groups
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"process group {pid} is still running")
