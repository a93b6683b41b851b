"""Rotating a clinic's data key: every record stays readable and findable, none stays on the old key.

Patients are registered, edited and searched over HTTP as a receptionist; the re-encryption runs in a
real RQ worker process (burst mode) against real Redis and PostgreSQL, or in threads while traffic
goes on. Afterwards no patient, token or history row — nor the header of any sealed value — is on
the old key version, and the old key is retired.
"""

import re
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.patients import services
from app.patients.models import PHI_FIELDS, Patient
from app.security.fields import forget_keys, keyring
from app.security.rotation import (
    enqueue_reencrypt,
    reencrypt_batch,
    remaining,
    retire_unused_keys,
    rotation_status,
    start_rotation,
)
from jobs.worker import queue
from tests.conftest import run_worker as run_burst_worker
from tests.conftest import worker_env

ROOT = Path(__file__).resolve().parents[2]
FIRST = ["Meera", "Arjun", "Kavya", "Rohan", "Divya", "Suresh", "Lakshmi", "Vikram", "Ananya", "Rahul",
         "Priya", "Karthik", "Sneha", "Manoj", "Pooja", "Naveen", "Asha", "Gopal", "Nisha", "Ravi"]
LAST = ["Krishnan", "Iyer", "Reddy", "Nair", "Sharma", "Patil", "Menon", "Rao", "Gowda", "Pillai"]
ENC_COLUMNS = ", ".join(f"{name}_enc" for name in PHI_FIELDS)


# --- Helpers -------------------------------------------------------------------------------------

class Registered:
    """A patient as the test registered them: the id and the values a reader must get back."""

    def __init__(self, pid: uuid.UUID, form: dict):
        self.id, self.form = pid, form
        self.name, self.phone = form["full_name"], form["phone"]

    @property
    def name_query(self) -> str:
        first, last = self.name.split()
        return f"{first} {last[:3]}"


def person_form(i: int, **extra) -> dict:
    """Distinct name, phone and date of birth for patient number i (i < 200), so no duplicate warning."""
    form = {"full_name": f"{FIRST[i % 20]} {LAST[i // 20 % 10]}", "sex": "FMO"[i % 3],
            "dob": f"{1950 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}", "phone": f"98450{i:05d}",
            "state_code": "29", "language": "en", "consent_treatment": "y", "city": "Bengaluru"}
    form.update(extra)
    return form


def register(browser, form: dict) -> Registered:
    response = browser.post("/patients/new", form, page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    pid = uuid.UUID(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert browser.get(response.headers["Location"]).status_code == 200
    return Registered(pid, form)


def edit(browser, patient: Registered, **changes) -> None:
    page = browser.get(f"/patients/{patient.id}/edit")
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    version = re.search(r'name="version"[^>]*value="(\d+)"', page.get_data(as_text=True)).group(1)
    form = {k: v for k, v in patient.form.items() if not k.startswith("consent_")}
    form.update(changes, version=version)
    response = browser.post(f"/patients/{patient.id}/edit", form)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    patient.form.update(changes)
    patient.name = patient.form["full_name"]


def assert_readable(browser, patient: Registered) -> None:
    """The patient page shows the record; search by name prefix and by phone finds it."""
    page = browser.get(f"/patients/{patient.id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200, body[:2000]
    assert patient.name in body
    if "city" in patient.form:  # the current address, not only the history's before/after
        address = re.search(r"<dt>Address</dt><dd>([^<]*)</dd>", body)
        assert address and patient.form["city"] in address.group(1), address and address.group(1)
    for query in (patient.name_query, patient.phone):
        assert f"/patients/{patient.id}" in search(browser, query), f"search {query!r} misses {patient.name}"


def search(browser, query: str) -> str:
    """The search-as-you-type fragment for a query (a POST: search terms never sit in a URL)."""
    response = browser.post("/patients/search", {"q": query}, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def key_usage(sql, clinic_id) -> dict[str, dict[int, int]]:
    """Rows per key version in each table, by the key_version columns."""
    return {table: dict(sql(f"SELECT key_version, count(*) FROM {table} WHERE clinic_id = :c GROUP BY 1",
                            c=clinic_id))
            for table in ("patient", "patient_token", "patient_history")}


def sealed_versions(sql, clinic_id) -> set[int]:
    """The key versions named in the header of every sealed value of the clinic (patients and history)."""
    blobs = [b for row in sql(f"SELECT {ENC_COLUMNS} FROM patient WHERE clinic_id = :c", c=clinic_id) for b in row]
    blobs += [b for (b,) in sql("SELECT changes_enc FROM patient_history WHERE clinic_id = :c", c=clinic_id)]
    return {int.from_bytes(bytes(b)[1:5], "big") for b in blobs if b is not None}


def key_states(sql, clinic_id) -> dict[int, tuple[str, bool]]:
    """Each key version's status and whether it has a retired_at time."""
    return {v: (status, retired_at is not None) for v, status, retired_at in sql(
        "SELECT version, status, retired_at FROM clinic_key WHERE clinic_id = :c ORDER BY version", c=clinic_id)}


def assert_all_on(sql, clinic_id, version: int) -> None:
    usage = key_usage(sql, clinic_id)
    assert all(set(counts) <= {version} for counts in usage.values()), usage
    assert usage["patient"] and usage["patient_token"] and usage["patient_history"], usage
    assert sealed_versions(sql, clinic_id) == {version}


@contextmanager
def clinic_db(app, clinic_id):
    """An app context and session scoped to one clinic, as a job has."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        yield db


def rotate(app, clinic_id) -> int:
    with clinic_db(app, clinic_id) as db:
        version = start_rotation(db, clinic_id)
        db.commit()
        return version


def run_worker(app_config: dict) -> subprocess.CompletedProcess:
    result = run_burst_worker(app_config)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def flask_cli(app_config: dict, *args: str) -> subprocess.CompletedProcess:
    """`flask --app wsgi ...` in its own process, configured like a deployment."""
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                            env=worker_env(app_config), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def job_error(job) -> str:
    result = job.latest_result()
    return (result.exc_string or "")[-3000:] if result else "no result"


@pytest.fixture
def rq_queue(app, app_config):
    """The test run's queue, emptied before and after (jobs left by a failed test must not leak)."""
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        q = queue(connection)
    q.empty()
    yield q
    q.empty()
    connection.close()


@pytest.fixture
def reception(factory, clinic, browser):
    person = factory.person(clinic, Role.RECEPTION, name="Rekha Reception")
    browser.sign_in(person)
    return browser


# --- Tests ---------------------------------------------------------------------------------------

def test_rotation_by_cli_and_worker_reencrypts_every_row_and_retires_the_old_key(
        app, app_config, reception, clinic, sql, rq_queue):
    patients = [register(reception, person_form(i)) for i in range(6)]
    edit(reception, patients[0], city="Mysuru", email="meera.k@example.in")
    edit(reception, patients[1], full_name="Arjun Krishnamurthy")
    assert_all_on(sql, clinic.id, 1)

    runner = app.test_cli_runner()
    missing = runner.invoke(args=["keys", "rotate", "--clinic", "Nowhere Clinic"])
    assert missing.exit_code != 0 and "no clinic has the id or name" in missing.output
    assert key_states(sql, clinic.id) == {1: ("active", False)}

    result = runner.invoke(args=["keys", "rotate", "--clinic", "Sunrise Clinic", "--grace", "0"])
    assert result.exit_code == 0, result.output
    assert "Sunrise Clinic" in result.output and "key version 2" in result.output
    assert key_states(sql, clinic.id) == {1: ("decrypt_only", False), 2: ("active", False)}
    [job_id] = rq_queue.get_job_ids()

    run_worker(app_config)
    job = rq_queue.fetch_job(job_id)
    assert job.get_status() == "finished", job_error(job)
    summary = job.return_value()
    assert summary["retired"] == [1] and summary["remaining"] == 0
    assert summary["reencrypted"] == 6 + 8  # six patients, six "created" and two "updated" history entries

    assert key_states(sql, clinic.id) == {1: ("retired", True), 2: ("active", False)}
    assert_all_on(sql, clinic.id, 2)
    for patient in patients:
        assert_readable(reception, patient)
    page = reception.get(f"/patients/{patients[0].id}").get_data(as_text=True)
    assert "Mysuru" in page and "Bengaluru" in page  # the history (before and after) opens too
    assert "meera.k@example.in" in page

    status = runner.invoke(args=["keys", "status"])
    assert status.exit_code == 0, status.output
    assert re.search(r"v1\s+retired\s+patients=0 tokens=0 history=0", status.output), status.output
    assert re.search(r"v2\s+active\s+patients=6 tokens=\d+ history=8", status.output), status.output


def test_reads_writes_and_search_work_while_both_keys_are_live(app, reception, clinic, sql):
    old = [register(reception, person_form(i)) for i in range(3)]
    assert rotate(app, clinic.id) == 2
    assert key_states(sql, clinic.id) == {1: ("decrypt_only", False), 2: ("active", False)}

    for patient in old:  # still on key 1: opened with the decrypt_only key, found by its tokens
        assert_readable(reception, patient)
    new = register(reception, person_form(20))  # "Meera Iyer": one search finds old "Meera Krishnan" too
    assert sql("SELECT key_version FROM patient WHERE id = :p", p=new.id) == [(2,)]
    found = search(reception, "Meera")
    assert f"/patients/{new.id}" in found and f"/patients/{old[0].id}" in found
    assert_readable(reception, new)

    # The duplicate check sees records under either key.
    duplicate = reception.post("/patients/new", person_form(40, phone=old[1].phone), page="/patients/new")
    assert duplicate.status_code == 200 and old[1].name in duplicate.get_data(as_text=True)

    edit(reception, old[2], city="Hubballi")  # an edit moves the record (not its old history) to key 2
    assert sql("SELECT key_version FROM patient WHERE id = :p", p=old[2].id) == [(2,)]
    assert {v for (v,) in sql("SELECT key_version FROM patient_token WHERE patient_id = :p", p=old[2].id)} == {2}
    assert sorted(sql("SELECT action, key_version FROM patient_history WHERE patient_id = :p", p=old[2].id)) == [
        ("created", 1), ("updated", 2)]
    page = reception.get(f"/patients/{old[2].id}").get_data(as_text=True)
    assert "Hubballi" in page and "Bengaluru" in page
    assert_readable(reception, old[2])

    with clinic_db(app, clinic.id) as db:  # nothing may be retired while rows still need key 1
        assert retire_unused_keys(db, clinic.id) == []
        db.commit()
    assert key_states(sql, clinic.id)[1] == ("decrypt_only", False)


def test_batches_resume_and_skip_rows_locked_by_others(app, admin_url, reception, clinic, sql):
    patients = [register(reception, person_form(i)) for i in range(5)]
    rotate(app, clinic.id)
    with clinic_db(app, clinic.id) as db:
        assert reencrypt_batch(db, clinic.id, batch_size=2) == 4  # two patients and two history entries
        db.commit()
        assert remaining(db, clinic.id) == 6
        db.commit()
    assert key_usage(sql, clinic.id)["patient"] == {1: 3, 2: 2}
    for patient in patients:  # half-way is a normal state
        assert_readable(reception, patient)

    locker = create_engine(admin_url)
    try:
        with locker.connect() as conn:  # someone else holds one stale patient and its history entry
            held = conn.execute(text("SELECT id FROM patient WHERE key_version = 1 ORDER BY id LIMIT 1 FOR UPDATE")
                                ).scalar_one()
            conn.execute(text("SELECT id FROM patient_history WHERE patient_id = :p FOR UPDATE"), {"p": held})
            with clinic_db(app, clinic.id) as db:
                assert reencrypt_batch(db, clinic.id) == 4  # the rest, without waiting
                db.commit()
                assert reencrypt_batch(db, clinic.id) == 0
                assert retire_unused_keys(db, clinic.id) == []
                db.commit()
            conn.rollback()
    finally:
        locker.dispose()

    with clinic_db(app, clinic.id) as db:
        assert reencrypt_batch(db, clinic.id) == 2
        assert retire_unused_keys(db, clinic.id) == [1]
        db.commit()
        status = {row["version"]: row for row in rotation_status(db, clinic.id)}
    assert status[1]["status"] == "retired" and status[1]["patients"] == status[1]["history"] == 0
    assert status[2]["patients"] == 5 and status[2]["history"] == 5
    assert_all_on(sql, clinic.id, 2)
    for patient in patients:
        assert_readable(reception, patient)


def test_rotation_while_staff_register_edit_and_search(app, reception, clinic, sql):
    before = [register(reception, person_form(i)) for i in range(24)]
    rotate(app, clinic.id)
    traffic_done = threading.Event()
    # Each step of traffic lets the rotation take a few batches, so the two really interleave
    # however fast or slow the machine is.
    permits = threading.Semaphore(0)
    done_counts: list[int] = []
    errors: list[Exception] = []

    def rotate_in_batches():
        try:
            with clinic_db(app, clinic.id) as db:
                while True:
                    if not traffic_done.is_set():
                        permits.acquire(timeout=10)
                    forget_keys()
                    count = reencrypt_batch(db, clinic.id, batch_size=1)
                    db.commit()
                    done_counts.append(count)
                    if not count and traffic_done.is_set() and not remaining(db, clinic.id):
                        db.commit()
                        return
                    db.commit()
                    time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    workers = [threading.Thread(target=rotate_in_batches) for _ in range(2)]
    for thread in workers:
        thread.start()
    try:
        added, stale_seen = [], []
        for i in range(8):
            stale_seen.append(key_usage(sql, clinic.id)["patient"].get(1, 0))
            for _ in range(2):
                permits.release()
            added.append(register(reception, person_form(100 + i)))
            edit(reception, before[i * 3], city=f"Town{'abcdefgh'[i]}")
            assert_readable(reception, before[i * 3 + 1])
            assert_readable(reception, added[-1])
    finally:
        traffic_done.set()
        for _ in workers:
            permits.release()
        for thread in workers:
            thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in workers)
    assert sum(1 for n in stale_seen if n) >= 3, stale_seen  # the traffic really met a half-rotated clinic
    # Every "created" history entry and every patient the traffic did not edit (which re-seals it
    # under the new key by itself) was moved by the rotation; the end state is checked below.
    assert sum(done_counts) >= 24 + (24 - 8)

    with clinic_db(app, clinic.id) as db:
        assert retire_unused_keys(db, clinic.id) == [1]
        db.commit()
    assert key_states(sql, clinic.id) == {1: ("retired", True), 2: ("active", False)}
    assert_all_on(sql, clinic.id, 2)
    for patient in before + added:
        assert_readable(reception, patient)


def test_rotating_twice_and_running_the_job_twice(app, app_config, factory, reception, clinic, new_browser, sql,
                                                   rq_queue):
    other = factory.clinic("Lakeside Clinic", state_code="27")
    other_browser = new_browser()
    other_browser.sign_in(factory.person(other, Role.RECEPTION, name="Omkar Reception"))
    ours = [register(reception, person_form(i)) for i in range(4)]
    theirs = [register(other_browser, person_form(i)) for i in range(3)]  # same people, another clinic

    result = flask_cli(app_config, "keys", "rotate", "--grace", "0")  # every clinic
    assert "Sunrise Clinic" in result.stdout and "Lakeside Clinic" in result.stdout
    run_worker(app_config)
    for clinic_id in (clinic.id, other.id):
        assert key_states(sql, clinic_id) == {1: ("retired", True), 2: ("active", False)}
        assert_all_on(sql, clinic_id, 2)

    # Twice more before any job runs: keys 2 and 3 are decrypt_only at once, two jobs for each clinic.
    flask_cli(app_config, "keys", "rotate", "--grace", "0")
    flask_cli(app_config, "keys", "rotate", "--clinic", str(clinic.id), "--grace", "0")
    assert key_states(sql, clinic.id) == {1: ("retired", True), 2: ("decrypt_only", False),
                                          3: ("decrypt_only", False), 4: ("active", False)}
    for patient in ours:
        assert_readable(reception, patient)
    job_ids = rq_queue.get_job_ids()
    assert len(job_ids) == 3
    run_worker(app_config)
    for job_id in job_ids:
        job = rq_queue.fetch_job(job_id)
        assert job.get_status() == "finished", job_error(job)

    assert key_states(sql, clinic.id) == {1: ("retired", True), 2: ("retired", True), 3: ("retired", True),
                                          4: ("active", False)}
    assert key_states(sql, other.id) == {1: ("retired", True), 2: ("retired", True), 3: ("active", False)}
    assert_all_on(sql, clinic.id, 4)
    assert_all_on(sql, other.id, 3)
    for patient in ours:
        assert_readable(reception, patient)
    for patient in theirs:
        assert_readable(other_browser, patient)

    status = flask_cli(app_config, "keys", "status", "--clinic", "Lakeside Clinic").stdout
    assert "Sunrise Clinic" not in status
    assert re.search(r"v3\s+active\s+patients=3", status), status


def test_the_job_waits_out_requests_that_began_before_the_rotation(app, app_config, reception, clinic, sql, rq_queue):
    """A request that loaded the keys just before `keys rotate` may write under the old key after the
    first sweep; the job's grace period and last sweep move that write too before retiring the key."""
    patients = [register(reception, person_form(i)) for i in range(3)]
    with clinic_db(app, clinic.id) as stale:  # the slow request: keys and record loaded before the rotation
        keyring(stale, clinic.id)
        record = stale.get(Patient, (clinic.id, patients[0].id))
        data = services.open_patient(stale, record)
        stale.commit()

        rotate(app, clinic.id)
        with app.app_context():
            job = enqueue_reencrypt(clinic.id, grace_seconds=20)  # room for a slow machine between the sweeps
        worker = subprocess.Popen([sys.executable, "-m", "jobs.worker", "--burst"], cwd=ROOT,
                                  env=worker_env(app_config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        try:
            deadline = time.monotonic() + 30
            while sealed_versions(sql, clinic.id) != {2}:  # the first sweep
                assert time.monotonic() < deadline and worker.poll() is None, "the first sweep did not finish"
                time.sleep(0.1)
            time.sleep(0.5)  # the sweep's last (empty) batch: the job now waits out its grace period
            assert job.get_status(refresh=True) == "started"

            data.city = "Dharwad"  # the slow request now saves, sealing under the key it loaded: 1
            services.update(stale, record, data, None)
            late = services.register(stale, clinic_id=clinic.id, by=None, consents={"treatment": True},
                                     data=services.PatientData(full_name="Latika Deshpande", sex="F",
                                                               dob=date(1990, 2, 2), phone="+919845099999"))
            stale.commit()
            # Both are sealed under key 1 (the edited record's key_version column may still say 2: the
            # slow request's ORM state had 1 already, so its UPDATE leaves that column out).
            late_blobs = sql(f"SELECT {ENC_COLUMNS} FROM patient WHERE id IN (:a, :b)", a=late.id, b=record.id)
            assert {int.from_bytes(bytes(b)[1:5], "big") for row in late_blobs for b in row if b} == {1}
            assert job.get_status(refresh=True) == "started", "the job finished before the late writes"
            _, errors = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    assert worker.returncode == 0, errors[-3000:]
    assert job.get_status(refresh=True) == "finished", job_error(job)
    assert job.return_value()["retired"] == [1]
    assert key_states(sql, clinic.id) == {1: ("retired", True), 2: ("active", False)}
    assert_all_on(sql, clinic.id, 2)
    patients[0].form["city"] = "Dharwad"
    for patient in patients:
        assert_readable(reception, patient)
    assert "Latika Deshpande" in reception.get(f"/patients/{late.id}").get_data(as_text=True)


def test_a_write_from_state_loaded_before_the_rotation_keeps_key_version_true(app, reception, clinic, sql):
    """`patient.key_version` must name the key its fields are sealed under, even when the writer's
    copy of the row is older than the re-encryption that moved it (the writer seals under key 1)."""
    patient = register(reception, person_form(0))
    with clinic_db(app, clinic.id) as stale:
        keyring(stale, clinic.id)
        record = stale.get(Patient, (clinic.id, patient.id))
        data = services.open_patient(stale, record)
        stale.commit()

        rotate(app, clinic.id)
        with clinic_db(app, clinic.id) as db:
            assert reencrypt_batch(db, clinic.id) == 2
            db.commit()

        data.city = "Dharwad"
        services.update(stale, record, data, None)
        stale.commit()
    [(column, name_enc)] = sql("SELECT key_version, full_name_enc FROM patient WHERE id = :p", p=patient.id)
    assert column == int.from_bytes(bytes(name_enc)[1:5], "big") == 1
