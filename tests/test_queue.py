"""app/queue.py: a job asked for in a transaction reaches the real RQ queue, by dotted path, only once the
transaction commits; a rolled-back transaction or savepoint enqueues nothing, and Redis being down never fails
the commit."""

import uuid

from redis import Redis

from app.db import get_session
from app.queue import LOW, enqueue_after_commit, queue

PATH = "jobs.maintenance.purge_expired_sessions"


def _ask(db, name: str) -> str:
    job_id = f"test-{name}-{uuid.uuid4()}"
    enqueue_after_commit(db, PATH, name, urgency=LOW, job_id=job_id, description=name)
    return job_id


def test_a_committed_transaction_enqueues_the_dotted_path_and_a_rolled_back_one_nothing(app, app_config):
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        q = queue(connection, LOW)
        db = get_session()
        db.connection()
        rolled_back = _ask(db, "rolled-back")
        db.rollback()
        committed = _ask(db, "committed")
        assert q.fetch_job(committed) is None  # nothing before the commit
        db.commit()
        job = q.fetch_job(committed)
        assert (job.func_name, job.args, job.get_status()) == (PATH, ["committed"], "queued")
        assert q.fetch_job(rolled_back) is None
        db.commit()  # the next transaction has nothing left to enqueue
        assert q.fetch_job(rolled_back) is None
        job.delete()
    connection.close()


def test_a_rolled_back_savepoint_drops_only_the_jobs_asked_for_inside_it(app, app_config):
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        q = queue(connection, LOW)
        db = get_session()
        before = _ask(db, "before")
        with db.begin_nested():
            kept = _ask(db, "kept")  # released savepoint: waits for the outer commit
        assert q.fetch_job(kept) is None
        savepoint = db.begin_nested()
        dropped = _ask(db, "dropped")
        savepoint.rollback()
        db.commit()
        assert q.fetch_job(dropped) is None
        assert {q.fetch_job(i).get_status() for i in (before, kept)} == {"queued"}
        for job_id in (before, kept):
            q.fetch_job(job_id).delete()
    connection.close()


def test_redis_down_does_not_fail_the_commit(app, app_config, caplog):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        with app.app_context():
            db = get_session()
            _ask(db, "lost")
            db.commit()  # logged, not raised: the sweeps enqueue from the database later
    finally:
        app.config["REDIS_URL"] = app_config["REDIS_URL"]
    assert "could not enqueue 1 jobs after commit" in caplog.text
