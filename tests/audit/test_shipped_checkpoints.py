"""Checkpoints shipped off the database as the worker signs them (catalogue case 37): the database's owner
deletes the newest entries together with every checkpoint in the database, and `flask audit verify` and
the auditor's page still report the deleted entries, from the shipped copy."""

import html
import json

from app.audit import shipping
from jobs.audit import sign_all_checkpoints
from tests.audit import test_chain
from tests.audit.test_chain import activity, assert_problem, links

tamper = test_chain.tamper  # the fixture, bound here so pytest finds it


def shipped_lines(app, clinic) -> list[dict]:
    with app.app_context():
        path = shipping.log_path(clinic.id)
    assert str(path).startswith(app.config["INSTANCE_PATH"])  # the default: under the instance folder
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_deleting_the_tail_and_its_checkpoints_is_caught_by_the_shipped_copy(app, desk, clinic, run_job, tamper,
                                                                             cli, sql, as_auditor):
    activity(desk)
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 6}
    chain = links(sql, clinic)
    [copy] = shipped_lines(app, clinic)
    assert (copy["clinic_id"], copy["position"], copy["chain_hash"]) == (str(clinic.id), 6, chain[-1][3])
    body = as_auditor.get("/audit/").get_data(as_text=True)
    assert "Last checkpoint kept outside the database: position 6" in body

    # the same head is shipped once
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 7}  # the auditor's look is chained and signed
    assert [c["position"] for c in shipped_lines(app, clinic)] == [6, 7]

    tail = [event for _, event, _, _ in links(sql, clinic)[-3:]]
    tamper("DELETE FROM audit_chain WHERE position > 4", "DELETE FROM audit_event WHERE id = ANY(:ids)",
           "DELETE FROM audit_checkpoint", ids=tail)
    assert sql("SELECT count(*) FROM audit_checkpoint") == [(0,)]
    assert_problem(cli, "deleted tail", "checkpoint at position 7", "last position 4", "entries 5-7 were deleted")
    assert cli("verify", "--without-shipped").exit_code == 0  # what the database alone still shows

    assert as_auditor.post("/audit/verify", {}, page="/audit/").status_code == 303
    body = html.unescape(as_auditor.get("/audit/").get_data(as_text=True))
    assert "Trail integrity problem" in body and "deleted tail" in body and "entries 5-7 were deleted" in body
    assert "Last checkpoint kept outside the database: position 7" in body

    # the checkpoint job does not sign over the cut, and ships nothing new
    assert run_job(sign_all_checkpoints) == {str(clinic.id): None}
    assert [c["position"] for c in shipped_lines(app, clinic)] == [6, 7]


def test_a_line_cut_short_by_a_crash_is_skipped_then_replaced_by_the_next_write(app, desk, clinic, run_job,
                                                                                    cli, as_auditor):
    [url] = activity(desk, count=1)
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 2}
    with app.app_context():
        path = shipping.log_path(clinic.id)
    with open(path, "a") as fh:
        fh.write('{"clinic_id": "')  # a crash in the middle of the next line
    assert cli("verify").exit_code == 0
    assert "position 2" in as_auditor.get("/audit/").get_data(as_text=True)

    assert desk.get(url).status_code == 200
    run_job(sign_all_checkpoints)
    positions = [json.loads(line)["position"] for line in path.read_text().splitlines()]  # all whole
    assert len(positions) == 2 and positions[0] == 2 and positions[1] > 2
    result = cli("verify")
    assert result.exit_code == 0 and "(2 checkpoints shipped off the database)" in result.output, result.output


def test_a_checkpoint_that_could_not_be_shipped_is_shipped_by_the_next_run(app, desk, clinic, run_job, cli, sql,
                                                                            tmp_path, monkeypatch):
    activity(desk)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with monkeypatch.context() as patch:
        patch.setitem(app.config, "AUDIT_CHECKPOINT_DIR", str(blocked / "checkpoints"))
        result = cli("checkpoint")
    assert result.exit_code == 1 and "signed, but the checkpoint could not be shipped" in result.output, result.output
    assert sql("SELECT position FROM audit_checkpoint WHERE clinic_id = :c", c=clinic.id) == [(6,)]
    with app.app_context():
        assert not shipping.log_path(clinic.id).exists()

    assert run_job(sign_all_checkpoints) == {str(clinic.id): 6}  # nothing new to sign: the same head
    assert [c["position"] for c in shipped_lines(app, clinic)] == [6]
    assert "(1 checkpoints shipped off the database)" in cli("verify").output


def test_deleting_the_shipped_file_with_the_tail_is_caught_by_the_database_note(app, desk, clinic, run_job, tamper,
                                                                                cli, sql):
    """Once the database notes that checkpoints were shipped, a missing shipped file is a problem (it no
    longer reads as "nothing shipped yet"), and so is a file holding less than was shipped."""
    urls = activity(desk)
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 6}
    assert run_job(sign_all_checkpoints) == {str(clinic.id): 6}  # nothing new: shipped once
    assert sql("SELECT position, count FROM audit_shipment WHERE clinic_id = :c", c=clinic.id) == [(6, 1)]
    assert cli("verify").exit_code == 0
    with app.app_context():
        path = shipping.log_path(clinic.id)
    kept = path.read_text()

    path.unlink()
    assert_problem(cli, "shipped checkpoints missing", "shipped up to position 6", "is missing or empty")
    path.write_text(kept)
    assert cli("verify").exit_code == 0

    assert desk.get(urls[0]).status_code == 200
    run_job(sign_all_checkpoints)
    assert len(path.read_text().splitlines()) == 2
    path.write_text(kept)  # cut back to the first checkpoint, as if with the tail
    output = assert_problem(cli, "shipped checkpoints missing", "holds only up to position 6")
    assert "Warning: AUDIT_CHECKPOINT_DIR is the default" in output


def test_the_default_checkpoint_folder_is_warned_about(app, desk, clinic, run_job, cli, as_auditor, tmp_path,
                                                       monkeypatch):
    activity(desk)
    run_job(sign_all_checkpoints)
    body = html.unescape(as_auditor.get("/audit/").get_data(as_text=True))
    assert "AUDIT_CHECKPOINT_DIR is the default" in body and "same disk as the embedded database" in body
    result = cli("verify")
    assert result.exit_code == 0 and "Warning: AUDIT_CHECKPOINT_DIR is the default" in result.output
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    assert "AUDIT_CHECKPOINT_DIR is the default" not in as_auditor.get("/audit/").get_data(as_text=True)
    assert "Warning" not in cli("verify", "--without-shipped").output
