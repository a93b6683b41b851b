"""The timer (jobs/timer.py): each periodic job is enqueued once per slot of its interval, whatever restarts,
however many timers run, and however its last run ended."""

from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from jobs.timer import PERIODIC, slot_of, tick
from jobs.worker import HIGH, queue

START = datetime(2027, 3, 31, 18, 30, tzinfo=UTC)  # IST midnight at the financial year's end: a 10-minute slot's start


@pytest.fixture
def high(app, app_config):
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        q = queue(connection, HIGH)
    q.empty()
    yield q
    q.empty()
    for key in connection.scan_iter(f"{q.name}:every:*"):
        connection.delete(key)
    connection.close()


def paths(job_ids: list[str], q) -> list[str]:
    return sorted(q.fetch_job(job_id).func_name for job_id in job_ids)


def test_every_periodic_job_is_enqueued_once_a_slot_by_dotted_path_on_the_high_queue(app, high):
    with app.app_context():
        first = tick(high.connection, START)
        assert paths(first, high) == sorted(job.path for job in PERIODIC)
        assert set(high.job_ids) == set(first)
        assert tick(high.connection, START + timedelta(seconds=5)) == []  # the same slots: a second timer
        high.empty()  # a worker took them
        later = tick(high.connection, START + timedelta(seconds=60))
    assert paths(later, high) == ["jobs.audit.chain_all_clinics", "jobs.invoices.sweep_pdfs", "jobs.reminders.sweep"]


def test_a_run_still_waiting_for_a_worker_is_not_queued_again(app, high):
    """No worker up for an hour: one chain run waits in the queue, not 360 of them."""
    with app.app_context():
        tick(high.connection, START)
        for seconds in range(10, 3600, 10):
            tick(high.connection, START + timedelta(seconds=seconds))
    chained = [j for j in high.jobs if j.func_name == "jobs.audit.chain_all_clinics"]
    assert len(chained) == 1


def test_slots_are_counted_from_the_epoch_so_a_restart_never_postpones_a_run():
    sweep = next(job for job in PERIODIC if job.path == "jobs.reminders.sweep")
    assert slot_of(sweep, START + timedelta(seconds=59)) == slot_of(sweep, START)
    assert slot_of(sweep, START + timedelta(seconds=60)) == slot_of(sweep, START) + 1
