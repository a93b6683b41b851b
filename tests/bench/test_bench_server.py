"""The load bench's processes (bench/server.py) stop cleanly: a worker in the middle of a job is stopped
with its work-horse, and the timer with it; nothing is left running."""

import time

import psutil
from redis import Redis

from bench import server
from jobs.worker import queue


def test_stopping_the_bench_leaves_no_work_horse_running_a_job(app, app_config):
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        q = queue(connection)
    with server.running(app_config, workers=1, threads=2, rq_workers=1) as running:
        job = q.enqueue("time.sleep", 120)  # a job far longer than the stop's grace (20 s)
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != "started":
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.2)
        processes = [p for top in running.processes for p in [top, *top.children(recursive=True)]]
        assert any("jobs.timer" in " ".join(p.cmdline()) for p in processes)  # the timer runs beside them
        # RQ workers (and their work-horses) yield the CPU to the web workers
        [web] = {p.nice() for p in processes if "gunicorn" in " ".join(p.cmdline())}
        assert {p.nice() for p in processes if "jobs.worker" in " ".join(p.cmdline())} == {min(web + 10, 19)}
        started = time.monotonic()
    assert time.monotonic() - started < 40
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [" ".join(p.cmdline()) for p in left]
    connection.close()
