"""Reminders and periodic work under faults, for real: a worker SIGKILLed in the middle of a sweep, a worker
restarting every few seconds, reminders queued behind a batch of PDFs, a reminder that missed its moment."""

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from app.auth.policy import Role
from jobs import reminders
from jobs.invoices import enqueue_pdf
from jobs.timer import tick
from jobs.worker import HIGH, LOW, queue
from tests.conftest import register_with
from tests.messaging.booked import ROOT, burst, rows, start_worker, use_twilio, worker_environment
from tests.messaging.test_reminder_worker import _book_several, _due_now, _kill_with_children


@pytest.fixture(autouse=True)
def _jobs_use_this_app(app, monkeypatch):
    monkeypatch.setattr("jobs.worker._app", app)


@pytest.fixture
def connection(app_config):
    connection = Redis.from_url(app_config["REDIS_URL"])
    yield connection
    connection.close()


@pytest.fixture
def queues(app, connection):
    """The high and low queues, emptied before and after; the timer's slots of this test forgotten."""
    with app.app_context():
        found = {HIGH: queue(connection, HIGH), LOW: queue(connection, LOW)}
    for q in found.values():
        q.empty()
    yield found
    for q in found.values():
        q.empty()
    for key in connection.scan_iter(f"{found[HIGH].name}:every:*"):
        connection.delete(key)


def start_timer(env, log) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "jobs.timer"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_sweep_killed_mid_run_does_not_stop_the_next(app, app_config, admin_url, sql, ready, desk, clinic, fake,
                                                       queues, connection, tmp_path):
    use_twilio(app, clinic.id)
    _book_several(app, ready, desk, 2)
    _due_now(sql)  # due now; their own jobs wait in RQ for the original moments: only a sweep sends them
    env = worker_environment(app_config, fake)
    with app.app_context():
        first = next(j for j in tick(connection) if "reminders_sweep" in j)
    engine = create_engine(admin_url)
    blocker = engine.connect()  # the sweep blocks on the clinic list until it is killed
    blocker.execute(text("LOCK TABLE clinic_registry IN ACCESS EXCLUSIVE MODE"))
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        wait_for(lambda: queues[HIGH].fetch_job(first).get_status() == "started", 60, "the sweep never started")
        time.sleep(0.5)
    finally:
        _kill_with_children(worker)  # SIGKILL, mid-sweep
        blocker.rollback()
        blocker.close()
        engine.dispose()
    assert fake.messages == [] and {r.state for r in rows(sql)} == {"pending"}

    with app.app_context():  # the next minute's slot: the timer enqueues the sweep, whatever became of the last
        later = tick(connection, datetime.now(UTC) + timedelta(seconds=60))
    assert any("reminders_sweep" in j for j in later)
    result = burst(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(r.state for r in rows(sql)) == ["sent"] * 4
    assert len(fake.messages) == 4


def test_a_worker_restarting_every_few_seconds_never_postpones_periodic_work(app, app_config, clinic, factory,
                                                                             new_browser, sql, queues, tmp_path):
    """The audit chain (every 10 s) keeps linking while the worker is SIGKILLed 4 s after each start."""
    desk = new_browser()
    desk.sign_in(factory.person(clinic, Role.RECEPTION))
    env = worker_environment(app_config)
    timer = start_timer(env, tmp_path / "timer.log")
    unchained = ("SELECT count(*) FROM audit_event e "
                 "WHERE NOT EXISTS (SELECT FROM audit_chain c WHERE c.event_id = e.id)")
    restarts = 0
    try:
        for round_ in range(2):  # the second round needs a later run than the one the timer starts with
            register_with(desk, full_name=f"Asha Round{round_} Pillai")
            deadline = time.monotonic() + 90
            while sql(unchained)[0][0] and time.monotonic() < deadline:
                log = tmp_path / f"worker-{restarts}.log"
                worker = start_worker(env, log)
                try:
                    wait_for(lambda log=log: "started with PID" in log.read_text(), 60, "the worker did not start")
                    time.sleep(4)  # up for 4 s: each start used to push the chain 10 s ahead
                finally:
                    _kill_with_children(worker)
                restarts += 1
            assert sql(unchained)[0][0] == 0, f"round {round_}: not chained after {restarts} restarts"
    finally:
        timer.kill()
        timer.wait(timeout=10)
    assert restarts >= 2


def test_reminders_go_before_a_batch_of_pdfs(app, app_config, sql, ready, desk, clinic, fake, queues):
    use_twilio(app, clinic.id)
    _book_several(app, ready, desk, 1)
    _due_now(sql)
    with app.app_context():
        pdfs = [enqueue_pdf(str(clinic.id), str(uuid.uuid4())).id for _ in range(30)]  # queued first
        assert reminders.sweep() == 2  # then the reminders
    assert queues[LOW].count == 30 and queues[HIGH].count == 1
    result = burst(worker_environment(app_config, fake))
    assert result.returncode == 0, result.stdout + result.stderr
    sent = max(r[0] for r in sql("SELECT sent_at FROM reminder"))
    started = [queues[LOW].fetch_job(job_id).started_at for job_id in pdfs]
    assert len(started) == 30 and all(started)
    assert sent < min(at.replace(tzinfo=at.tzinfo or UTC) for at in started), "a reminder waited behind the PDFs"


def test_a_reminder_that_missed_its_moment_is_shown_to_the_desk_as_missed(app, app_config, sql, ready, desk,
                                                                          clinic, fake, queues):
    use_twilio(app, clinic.id)
    [appointment] = _book_several(app, ready, desk, 1)
    _due_now(sql)
    sql("UPDATE reminder SET due_at = now() - interval '40 minutes'")  # the workers were down for 40 minutes
    with app.app_context():
        assert reminders.sweep() == 2
    result = burst(worker_environment(app_config, fake))
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake.messages == []  # never sent late
    assert {(r.state, r.error_text) for r in rows(sql)} == {("skipped", "too late")}

    page = desk.get("/reminders/calls").get_data(as_text=True)
    assert page.count('<tr id="call-') == 1
    assert "Missed: not sent at its time" in page
    page = desk.get(f"/schedule/appointments/{appointment}").get_data(as_text=True)
    assert page.count("<strong>Missed</strong>") == 2
