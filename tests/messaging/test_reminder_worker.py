"""Reminders sent by real RQ worker processes to the local fake of Twilio: each reminder reaches Twilio
once, with two workers, with the sweep racing the scheduler, after a worker is killed mid-send, and
after Redis has lost every job."""

import contextlib
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from jobs import reminders
from jobs.worker import HIGH, queue_name
from tests.messaging.booked import (
    book,
    burst,
    next_slot,
    register,
    rows,
    start_worker,
    use_twilio,
    worker_environment,
)
from tests.scheduling.conftest import working_day


@pytest.fixture(autouse=True)
def _jobs_use_this_app(app, monkeypatch):
    """Job functions called in this process (the sweep) run in the test app, as a worker runs them in its own."""
    monkeypatch.setattr("jobs.worker._app", app)


@pytest.fixture
def queue(app_config):
    connection = Redis.from_url(app_config["REDIS_URL"])
    q = Queue(queue_name(app_config["RQ_QUEUE"], HIGH), connection=connection, serializer=JSONSerializer)
    q.empty()
    yield q
    q.empty()


def _due_now(sql) -> list:
    """Every planned reminder due now (a test cannot wait for tomorrow's)."""
    sql("UPDATE reminder SET due_at = now() - interval '5 seconds' WHERE state = 'pending'")
    return [str(r.id) for r in rows(sql)]


def _book_several(app, ready, desk, count: int) -> list:
    """`count` appointments 15 minutes apart from 10:00 (clinic time) on a working day two days ahead."""
    patients = [register(desk) for _ in range(3)]
    zone = ZoneInfo("Asia/Kolkata")
    first = datetime.combine(working_day(2), clock_time(10, 0), zone).astimezone(UTC)
    return [book(app, ready, patients[i % 3], first + timedelta(minutes=15 * i)) for i in range(count)]


def test_two_workers_the_sweep_and_the_scheduler_send_each_reminder_once(app, app_config, sql, ready, desk,
                                                                         clinic, fake, queue, tmp_path):
    use_twilio(app, clinic.id)
    _book_several(app, ready, desk, 8)
    ids = _due_now(sql)
    assert len(ids) == 16
    for reminder_id in ids:  # the scheduler's jobs, and a racing copy of each under another id
        queue.enqueue(reminders.send_reminder, str(clinic.id), reminder_id, job_id=f"rem-{reminder_id}")
        queue.enqueue(reminders.send_reminder, str(clinic.id), reminder_id, job_id=f"race-{reminder_id}")
    env = worker_environment(app_config, fake)
    reminders.sweep()  # finds every row already queued
    first, second = start_worker(env, tmp_path / "first.log"), start_worker(env, tmp_path / "second.log")
    try:
        deadline = time.monotonic() + 90
        while len([r for r in rows(sql) if r.state == "sent"]) < 16 and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        for worker in (first, second):
            worker.send_signal(signal.SIGTERM)
        for worker in (first, second):
            worker.wait(timeout=30)
    assert sorted(r.state for r in rows(sql)) == ["sent"] * 16
    sent_to = [(m["To"], m["ContentVariables"]) for m in fake.messages]
    assert len(sent_to) == 16 and len(set(sent_to)) == 16
    assert {r.twilio_sid for r in rows(sql)} == {m["sid"] for m in fake.messages}


def test_a_worker_killed_after_twilio_accepted_leaves_a_row_the_sweep_reconciles(app, app_config, sql, ready, desk,
                                                                                 clinic, fake, queue, tmp_path):
    use_twilio(app, clinic.id)
    book(app, ready, register(desk), next_slot(timedelta(days=2)))
    first = _due_now(sql)[0]
    sql("UPDATE reminder SET state = 'skipped' WHERE id <> :i", i=first)
    fake.delay_next(30)  # Twilio records the message and has not answered when the worker dies
    queue.enqueue(reminders.send_reminder, str(clinic.id), first, job_id=f"rem-{first}")
    env = worker_environment(app_config, fake)
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while not fake.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake.messages, "the worker never reached Twilio"
    finally:
        _kill_with_children(worker)  # before Twilio's answer
    assert sorted(r.state for r in rows(sql)) == ["sending", "skipped"]
    sql("UPDATE reminder SET sending_at = sending_at - interval '2 minutes' WHERE id = :i", i=first)
    queue.empty()
    assert reminders.sweep() == 1
    result = burst(env)
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(r for r in rows(sql) if str(r.id) == first)
    assert (row.state, row.twilio_sid) == ("sent", fake.messages[0]["sid"])
    assert len(fake.messages) == 1


def test_after_redis_loses_every_job_the_sweep_sends_what_is_due(app, app_config, sql, ready, desk, clinic, fake,
                                                               queue):
    use_twilio(app, clinic.id)
    _book_several(app, ready, desk, 2)
    _due_now(sql)
    queue.connection.flushdb()  # Redis lost everything: the scheduled jobs are gone
    assert reminders.sweep() == 4
    result = burst(worker_environment(app_config, fake))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(r.state for r in rows(sql)) == ["sent"] * 4
    assert len(fake.messages) == 4


def test_a_booking_schedules_its_reminder_in_rq_for_its_moment(app, app_config, sql, ready, desk, clinic, queue):
    from rq.registry import ScheduledJobRegistry

    appointment = book(app, ready, register(desk), next_slot(timedelta(days=2)))
    planned = rows(sql, appointment)
    registry = ScheduledJobRegistry(queue=queue)
    for row in planned:
        job_id = reminders.job_id(row.id)
        assert job_id in registry.get_job_ids()
        assert abs(registry.get_scheduled_time(job_id).timestamp() - row.due_at.timestamp()) < 1


def _kill_with_children(process) -> None:
    """SIGKILL a worker and its work-horse (its child) at once, as a machine losing power would."""
    from pathlib import Path

    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdecimal():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == process.pid:
                children.append(int(entry.name))
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait(timeout=10)
