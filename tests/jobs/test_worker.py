"""Jobs run by a real RQ worker process (burst mode) against real Redis and PostgreSQL."""

from pathlib import Path

from redis import Redis

from app.auth.policy import Role
from jobs.maintenance import purge_expired_sessions
from jobs.worker import queue
from tests.conftest import run_worker

ROOT = Path(__file__).resolve().parents[2]


def test_worker_purges_expired_sessions(app, app_config, browser, new_browser, factory, sql):
    clinic = factory.clinic()
    stale, fresh = factory.person(clinic, Role.NURSE), factory.person(clinic, Role.RECEPTION)
    browser.sign_in(stale)
    other = new_browser()
    other.sign_in(fresh)
    sql("UPDATE user_session SET last_activity_at = now() - interval '2 hours' WHERE user_id = :u", u=stale.id)

    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        job = queue(connection).enqueue(purge_expired_sessions)
    result = run_worker(app_config)
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    assert job.return_value() == 1
    assert sql("SELECT count(*) FROM user_session WHERE user_id = :u", u=stale.id)[0][0] == 0
    assert sql("SELECT count(*) FROM user_session WHERE user_id = :u", u=fresh.id)[0][0] == 1
    connection.close()
