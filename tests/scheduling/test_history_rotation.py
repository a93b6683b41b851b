"""An appointment's history is append-only for the app's database role, except re-sealing under a newer
key; key rotation re-seals visit reasons and history details and then retires the old key, although most
appointments and history entries hold no sealed value at all."""

import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db import get_session, set_tenant
from app.security.rotation import reencrypt_batch, remaining, retire_unused_keys, start_rotation
from tests.conftest import patient_id
from tests.scheduling.conftest import appointment_id, book, insert_appointment, slot, today, working_day

VISIT, CANCEL = "Sentinelvisitreason lump in left breast", "Sentinelcancelreason admitted elsewhere"


@pytest.fixture
def history(desk, setup, register, sql, clinic) -> dict:
    """An appointment with a visit reason, cancelled with a reason (one detail sealed in its history), and
    appointments with no reason at all (booked over HTTP, and written directly)."""
    day = working_day()
    patient = patient_id(register(full_name="Uma Rotation"))
    sealed = appointment_id(book(desk, setup, slot(day, "09:00"), patient, reason=VISIT).headers["Location"])
    response = desk.post(f"/schedule/appointments/{sealed}/status", {"action": "cancel", "reason": CANCEL},
                         page="/schedule/book")
    assert response.status_code == 303
    plain = [appointment_id(book(desk, setup, slot(day, hhmm), patient, reason="").headers["Location"])
             for hhmm in ("10:00", "10:30", "11:00")]
    plain.append(str(insert_appointment(sql, clinic.id, setup.doctor_id, patient, day=today(),
                                        starts_at=datetime.now(UTC) + timedelta(hours=2), type_id=setup.type_id)))
    assert sql("SELECT count(*) FROM appointment WHERE reason_enc IS NULL")[0][0] == len(plain)
    assert sql("SELECT count(*) FROM appointment_event WHERE detail_enc IS NOT NULL")[0][0] == 1
    return {"sealed": sealed, "plain": plain}


@contextmanager
def as_app_role(app, clinic):
    """A connection as the app's runtime database role with the tenant set (rolled back at the end)."""
    with app.extensions["db_engine"].connect() as conn:
        conn.execute(text("SELECT set_config('app.clinic_id', :c, true)"), {"c": str(clinic.id)})
        assert conn.scalar(text("SELECT count(*) FROM appointment_event")) > 0  # the tenant is set
        try:
            yield conn
        finally:
            conn.rollback()


@pytest.mark.parametrize("statement, refusal", [
    ("UPDATE appointment_event SET action = 'x'", "permission denied"),
    ("UPDATE appointment_event SET at = now(), key_version = key_version + 1", "permission denied"),
    ("DELETE FROM appointment_event", "permission denied"),
    # Erasing a sealed detail, or adding one where there was none, is no re-sealing.
    ("UPDATE appointment_event SET detail_enc = NULL, key_version = key_version + 1 WHERE detail_enc IS NOT NULL",
     "append-only"),
    ("UPDATE appointment_event SET detail_enc = '\\x01'::bytea, key_version = key_version + 1 "
     "WHERE detail_enc IS NULL", "append-only"),
    ("UPDATE appointment_event SET detail_enc = detail_enc WHERE detail_enc IS NOT NULL", "append-only"),
])
def test_the_app_role_cannot_change_history(app, clinic, history, sql, statement, refusal):
    before = sql("SELECT t::text FROM appointment_event t ORDER BY id")
    with as_app_role(app, clinic) as conn, pytest.raises(DBAPIError, match=refusal):
        conn.execute(text(statement))
    assert sql("SELECT t::text FROM appointment_event t ORDER BY id") == before


def test_the_app_role_may_reseal_history_under_a_newer_key(app, clinic, history):
    with as_app_role(app, clinic) as conn:
        resealed = conn.execute(text("UPDATE appointment_event SET detail_enc = detail_enc, "
                                     "key_version = key_version + 1 WHERE detail_enc IS NOT NULL"))
        assert resealed.rowcount == 1


def sealed_versions(sql) -> set[int]:
    blobs = [b for (b,) in sql("SELECT reason_enc FROM appointment")]
    blobs += [b for (b,) in sql("SELECT detail_enc FROM appointment_event")]
    return {int.from_bytes(bytes(b)[1:5], "big") for b in blobs if b is not None}


def test_rotation_reseals_reasons_and_history_and_retires_the_old_key(app, clinic, history, desk, sql):
    assert sealed_versions(sql) == {1}
    plain_before = sql("SELECT id::text, version, updated_at FROM appointment WHERE reason_enc IS NULL ORDER BY id")
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        assert start_rotation(db, clinic.id) == 2
        db.commit()
        for _ in range(20):
            done = reencrypt_batch(db, clinic.id, batch_size=2)
            db.commit()
            if not done:
                break
        assert remaining(db, clinic.id) == 0
        assert retire_unused_keys(db, clinic.id) == [1]
        db.commit()
    assert sql("SELECT version, status FROM clinic_key WHERE clinic_id = :c ORDER BY version", c=clinic.id) == [
        (1, "retired"), (2, "active")]
    assert sealed_versions(sql) == {2}
    # Rows with nothing sealed are left as they were (a rotation is no change to the schedule).
    assert sql("SELECT id::text, version, updated_at FROM appointment WHERE reason_enc IS NULL "
               "ORDER BY id") == plain_before
    page = desk.get(f"/schedule/appointments/{history['sealed']}").get_data(as_text=True)
    assert VISIT in page and CANCEL in page  # still open, under the new key


def key_versions_named(sql, clinic_id) -> dict[str, set[tuple[int, str]]]:
    """The compliance query: per table with a key_version column, each version its rows name and that
    key's status (found from the schema, so a table added later is checked too)."""
    tables = [t for (t,) in sql("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                                "AND column_name = 'key_version' AND table_name <> 'clinic_key' ORDER BY 1")]
    return {table: set(sql(f"SELECT DISTINCT t.key_version, k.status FROM {table} t JOIN clinic_key k "
                           "ON k.clinic_id = t.clinic_id AND k.version = t.key_version WHERE t.clinic_id = :c",
                           c=clinic_id)) for table in tables}


def test_after_rotation_no_row_names_a_retired_key(app, app_config, clinic, history, desk, setup, register, sql):
    """Rows with nothing sealed (appointments without a reason, their history, pending reminders) name the
    active key after a rotation by `flask keys rotate` and the worker, as do rows written afterwards."""
    from tests.security.test_rotation import flask_cli, run_worker

    consenting = patient_id(register(full_name="Rekha Reminders", language="en", consent_whatsapp="y"))
    book(desk, setup, slot(working_day(3), "09:00"), consenting, reason="")
    before = key_versions_named(sql, clinic.id)
    assert before["appointment"] == before["appointment_event"] == before["reminder"] == {(1, "active")}

    flask_cli(app_config, "keys", "rotate", "--grace", "0")
    run_worker(app_config)
    assert sql("SELECT version, status FROM clinic_key WHERE clinic_id = :c ORDER BY version", c=clinic.id) == [
        (1, "retired"), (2, "active")]
    named = key_versions_named(sql, clinic.id)
    assert {table: versions for table, versions in named.items() if (1, "retired") in versions} == {}
    assert named["appointment"] == named["appointment_event"] == named["reminder"] == {(2, "active")}

    # Written after the rotation, with nothing sealed: the active key, never the first one.
    book(desk, setup, slot(working_day(4), "09:00"), consenting, reason="")
    named = key_versions_named(sql, clinic.id)
    assert {table: versions for table, versions in named.items() if (1, "retired") in versions} == {}
    status = flask_cli(app_config, "keys", "status").stdout
    assert re.search(r"v1\s+retired\s+patients=0 tokens=0 history=0 other=0", status), status
