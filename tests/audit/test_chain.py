"""The audit hash chain end to end: HTTP activity, a real RQ worker links it, `flask audit verify`
finds it intact, and every kind of tampering is reported with the entry it concerns."""

import json
import threading
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.audit.chain import GENESIS, chain_pending, link_hash
from app.audit.models import AuditEvent
from app.audit.services import event_mac
from app.auth.policy import Role
from app.db import get_session, new_id, set_tenant, utcnow
from jobs.audit import chain_all_clinics, sign_all_checkpoints
from tests.conftest import register_with


def activity(desk, count=3) -> list[str]:
    """Register `count` patients and open each one's page: 2 audit events per patient."""
    urls = [register_with(desk, full_name=f"Patient {chr(65 + i)} Kumar") for i in range(count)]
    for url in urls:
        assert desk.get(url).status_code == 200
    return urls


def links(sql, clinic) -> list[tuple]:
    return sql("SELECT c.position, c.event_id, e.seq, c.chain_hash FROM audit_chain c "
               "LEFT JOIN audit_event e ON e.clinic_id = c.clinic_id AND e.id = c.event_id "
               "WHERE c.clinic_id = :c ORDER BY c.position", c=clinic.id)


@pytest.fixture
def tamper(owner_engine):
    """Run SQL as the superuser with triggers off (session_replication_role = replica), in one transaction."""
    def run(*statements, **params):
        with owner_engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                conn.execute(text(statement), params)
    return run


@pytest.fixture
def chained(desk, clinic, run_job, sql, cli):
    """Six events of HTTP activity, linked by the worker and signed; verify says OK."""
    activity(desk)
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 6}
    result = cli("verify")
    assert result.exit_code == 0, result.output
    return links(sql, clinic)


def assert_problem(cli, *expected: str, args=()) -> str:
    result = cli("verify", *args)
    assert result.exit_code == 1, result.output
    for part in expected:
        assert part in result.output, result.output
    return result.output


# --- Linking ------------------------------------------------------------------------------------

def test_http_activity_is_linked_by_the_worker_and_verifies(desk, clinic, other_clinic, factory, new_browser,
                                                            run_job, sql, cli, tmp_path):
    activity(desk)
    theirs = new_browser()
    theirs.sign_in(factory.person(other_clinic, Role.RECEPTION))
    register_with(theirs)
    assert sql("SELECT count(*) FROM audit_chain")[0][0] == 0

    assert run_job(chain_all_clinics) == {str(clinic.id): 6, str(other_clinic.id): 1}
    chain = links(sql, clinic)
    assert [p for p, *_ in chain] == list(range(1, 7))
    seqs = [s for _, _, s, _ in chain]
    assert seqs == sorted(seqs)
    events = sql("SELECT id, mac FROM audit_event WHERE clinic_id = :c ORDER BY seq", c=clinic.id)
    assert [e for _, e, _, _ in chain] == [e for e, _ in events]
    with desk.client.application.app_context():  # the documented hash, recomputed here
        prev = GENESIS
        for (_, event_id, _, stored), (_, mac) in zip(chain, events, strict=True):
            prev = link_hash(clinic.id, prev, event_id, mac)
            assert stored == prev
    assert [p for p, *_ in links(sql, other_clinic)] == [1]

    # nothing new: a second run links nothing and positions stay consecutive
    assert run_job(chain_all_clinics) == {str(clinic.id): 0, str(other_clinic.id): 0}

    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "Sunrise Clinic" in result.output and "Lakeside Clinic" in result.output
    assert "OK: 6 events chained and intact, no signed checkpoint yet, 0 events not yet chained" in result.output

    # new activity is reported as not yet chained, and verify writes nothing
    desk.get(f"/patients/{chain[0][1]}")
    before = sql("SELECT (SELECT count(*) FROM audit_chain), (SELECT count(*) FROM audit_checkpoint)")
    result = cli("verify", "--clinic", "Sunrise Clinic")
    assert result.exit_code == 0 and "1 events not yet chained" in result.output
    assert "Lakeside" not in result.output
    assert sql("SELECT (SELECT count(*) FROM audit_chain), (SELECT count(*) FROM audit_checkpoint)") == before

    result = cli("checkpoint", "--clinic", str(clinic.id))
    assert result.exit_code == 0 and "linked 1 events, signed position 7" in result.output, result.output
    assert [p for p, *_ in links(sql, clinic)] == list(range(1, 8))

    out = tmp_path / "checkpoints.jsonl"
    result = cli("export-checkpoints", str(out))
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["clinic_id"], e["position"]) for e in exported] == [(str(clinic.id), 7)]
    with desk.client.application.app_context():
        from app.audit.chain import public_key_hex

        assert exported[0]["public_key"] == public_key_hex() and len(exported[0]["signature"]) == 128
    assert cli("verify", "--checkpoints", str(out)).exit_code == 0


def _event(db, clinic, at) -> AuditEvent:
    event = AuditEvent(id=new_id(), clinic_id=clinic.id, at=at, action="patient.view", outcome="allowed",
                       flagged=False)
    event.mac = event_mac(event)
    db.add(event)
    db.flush()
    return event


def test_an_event_committed_late_is_linked_on_a_later_run(app, desk, clinic, run_job, sql, cli):
    db = app.extensions["db_sessionmaker"]()  # a session of its own, not the one requests share
    with app.app_context():
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        late = _event(db, clinic, utcnow())  # its seq is taken now; its transaction commits later
    try:
        activity(desk, count=1)
        assert run_job(chain_all_clinics) == {str(clinic.id): 2}
        db.commit()
    finally:
        db.close()
    assert run_job(chain_all_clinics) == {str(clinic.id): 1}
    chain = links(sql, clinic)
    assert [p for p, *_ in chain] == [1, 2, 3] and chain[-1][1] == late.id
    assert chain[-1][2] < chain[0][2]  # linked last although its seq is the lowest
    assert cli("verify").exit_code == 0


def test_an_event_far_older_than_the_head_waits_for_a_full_sweep(app, desk, clinic, run_job, cli):
    activity(desk, count=1)
    run_job(chain_all_clinics)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        _event(db, clinic, utcnow() - timedelta(hours=3))
        db.commit()
    assert run_job(chain_all_clinics) == {str(clinic.id): 0}
    result = cli("verify")
    assert result.exit_code == 0 and "1 events not yet chained" in result.output, result.output
    result = cli("checkpoint")
    assert "linked 1 events, signed position 3" in result.output, result.output
    assert "0 events not yet chained" in cli("verify").output


def test_checkpoint_job_signs_each_head_once(desk, clinic, run_job, sql):
    activity(desk, count=1)
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 2}
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 2}  # same head: no second row
    rows = sql("SELECT position, length(signature), length(public_key) FROM audit_checkpoint")
    assert rows == [(2, 64, 64)]


def test_concurrent_requests_all_end_up_chained_at_consecutive_positions(app, factory, clinic, new_browser, desk,
                                                                         run_job, sql, cli):
    urls = activity(desk, count=2)
    readers = []
    for _ in range(6):
        browser = new_browser()
        browser.sign_in(factory.person(clinic, Role.RECEPTION))
        readers.append(browser)
    stop, errors = threading.Event(), []

    def read(browser):
        try:
            for i in range(8):
                assert browser.client.get(urls[i % 2]).status_code == 200
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def chainer():
        try:
            with app.app_context():
                db = get_session()
                set_tenant(db, clinic_id=clinic.id, user_id=None)
                while not stop.is_set():
                    chain_pending(db, clinic.id, limit=3)
                    db.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    chainers = [threading.Thread(target=chainer) for _ in range(2)]
    threads = [threading.Thread(target=read, args=(b,)) for b in readers]
    for t in chainers + threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in chainers:
        t.join()
    assert errors == []

    run_job(chain_all_clinics)
    total = sql("SELECT count(*) FROM audit_event WHERE clinic_id = :c", c=clinic.id)[0][0]
    assert total == 4 + 6 * 8
    assert [p for p, *_ in links(sql, clinic)] == list(range(1, total + 1))
    assert sql("SELECT count(DISTINCT event_id) FROM audit_chain")[0][0] == total
    result = cli("verify")
    assert result.exit_code == 0 and f"OK: {total} events chained" in result.output, result.output


# --- Tampering ----------------------------------------------------------------------------------

def test_runtime_role_cannot_change_or_remove_audit_rows(app, chained, clinic, sql):
    engine = app.extensions["db_engine"]
    statements = ["UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event", "TRUNCATE audit_event",
                  "UPDATE audit_chain SET chain_hash = 'x'", "DELETE FROM audit_chain", "TRUNCATE audit_chain",
                  "UPDATE audit_checkpoint SET chain_hash = 'x'", "DELETE FROM audit_checkpoint",
                  "TRUNCATE audit_checkpoint"]
    for statement in statements:
        with engine.connect() as conn:
            conn.execute(text("SELECT set_config('app.clinic_id', :c, true)"), {"c": str(clinic.id)})
            assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar() == 6  # tenant is set
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text(statement))
            conn.rollback()
    # and the owner is refused by the triggers
    for statement in ("UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_chain", "TRUNCATE audit_checkpoint"):
        with pytest.raises(DBAPIError, match="append-only"):
            sql(statement)
    assert sql("SELECT count(*) FROM audit_event")[0][0] == 6


def test_edited_event_is_reported(chained, tamper, cli):
    _, event_id, _, _ = chained[2]
    tamper("UPDATE audit_event SET reason = 'nothing to see' WHERE id = :e", e=event_id)
    assert_problem(cli, "altered event", str(event_id), "chain position 3", "does not match its MAC")


def test_edited_event_not_yet_chained_is_reported(chained, desk, sql, tamper, cli):
    assert desk.get("/audit/sign-ins").status_code == 403  # a refused look: one more (unchained) event
    (event_id,) = sql("SELECT id FROM audit_event WHERE outcome = 'denied'")[0]
    tamper("UPDATE audit_event SET outcome = 'allowed' WHERE id = :e", e=event_id)
    assert_problem(cli, "altered event", str(event_id), "not yet chained")


def test_deleted_event_is_reported(chained, tamper, cli):
    _, event_id, _, _ = chained[1]
    tamper("DELETE FROM audit_event WHERE id = :e", e=event_id)
    assert_problem(cli, "missing event", "chain position 2", str(event_id), "deleted")


def test_deleted_chain_link_is_reported(chained, tamper, cli, run_job, clinic):
    tamper("DELETE FROM audit_chain WHERE position = 3")
    assert_problem(cli, "missing link", "chain position 3 is missing")
    # the chainer links the orphaned event again at the end, but the gap stays visible
    assert run_job(chain_all_clinics) == {str(clinic.id): 1}
    assert_problem(cli, "missing link", "chain position 3 is missing")


def test_deleted_tail_is_caught_against_the_last_checkpoint(chained, tamper, cli, desk, run_job, clinic, sql,
                                                            tmp_path):
    copies = tmp_path / "checkpoints.jsonl"
    assert cli("export-checkpoints", str(copies)).exit_code == 0
    tail = [e for _, e, _, _ in chained[-2:]]
    tamper("DELETE FROM audit_chain WHERE position > 4", "DELETE FROM audit_event WHERE id = ANY(:ids)", ids=tail)
    assert_problem(cli, "deleted tail", "checkpoint at position 6", "last position 4", "entries 5-6 were deleted")

    # new events take the deleted positions: the signed checkpoint no longer matches there
    desk.get(f"/patients/{chained[0][1]}")
    desk.get(f"/patients/{chained[0][1]}")
    assert run_job(chain_all_clinics) == {str(clinic.id): 2}
    assert_problem(cli, "rewritten chain", "checkpoint at position 6")

    # removing the checkpoints too hides nothing from the copies shipped or exported outside the database
    tamper("DELETE FROM audit_checkpoint")
    assert_problem(cli, "rewritten chain", "checkpoint at position 6")
    assert cli("verify", "--without-shipped").exit_code == 0
    assert_problem(cli, "rewritten chain", "checkpoint at position 6",
                   args=("--without-shipped", "--checkpoints", str(copies)))


def test_swapped_event_contents_are_reported(chained, tamper, cli):
    (_, first, _, _), (_, second, _, _) = chained[1], chained[3]
    columns = "at, user_id, role, action, object_type, object_id, patient_id, patient_ids, outcome, reason, " \
              "flagged, ip, user_agent, mac"
    tamper(f"CREATE TEMP TABLE swap AS SELECT id, {columns} FROM audit_event WHERE id IN (:a, :b)",
           f"UPDATE audit_event e SET ({columns}) = (SELECT {columns} FROM swap s WHERE s.id <> e.id) "
           "WHERE e.id IN (:a, :b)", a=first, b=second)
    assert_problem(cli, "altered event", str(first), "chain position 2")


def test_reordered_links_are_reported(chained, tamper, cli):
    (_, first, _, _), (_, second, _, _) = chained[1], chained[3]
    tamper("UPDATE audit_chain SET event_id = :tmp WHERE position = 2",
           "UPDATE audit_chain SET event_id = :a WHERE position = 4",
           "UPDATE audit_chain SET event_id = :b WHERE position = 2", a=first, b=second, tmp=uuid.uuid4())
    assert_problem(cli, "reordered", "chain position 2", str(second))


def test_altered_link_hash_is_reported(chained, tamper, cli):
    tamper("UPDATE audit_chain SET chain_hash = :h WHERE position = 3", h="f" * 64)
    assert_problem(cli, "chain link altered", "chain position 3")


def test_forged_or_altered_checkpoints_are_reported(app, chained, clinic, tamper, cli, sql):
    tamper("UPDATE audit_checkpoint SET signature = :s", s=bytes(64))
    assert_problem(cli, "bad checkpoint signature", "position 6", "does not verify")

    # the runtime role may insert checkpoints, but not with the key derived from the master key
    tamper("DELETE FROM audit_checkpoint")
    forger = Ed25519PrivateKey.generate()
    public = forger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text("SELECT set_config('app.clinic_id', :c, true)"), {"c": str(clinic.id)})
        conn.execute(text("INSERT INTO audit_checkpoint (clinic_id, position, chain_hash, signed_at, public_key, "
                          "signature) VALUES (:c, 6, :h, now(), :k, :s)"),
                     {"c": clinic.id, "h": chained[-1][3], "k": public, "s": forger.sign(b"anything")})
    assert_problem(cli, "bad checkpoint signature", "unknown key", public)
