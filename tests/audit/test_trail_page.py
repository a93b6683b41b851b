"""The audit trail page (/audit/) and its CSV export: who may open them, filters (who looked at a
patient), MRN only and never a name, refused access, paging, formula-safe CSV, status of the chain."""

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import event as sa_event

from app.audit.models import AuditEvent
from app.audit.services import event_mac
from app.auth.policy import Role
from app.db import get_session, new_id, set_tenant
from tests.audit.conftest import EventTable
from tests.conftest import patient_id, register_with, run_worker

COLUMNS = ["when", "user", "role", "action", "patient", "outcome", "reason", "ip"]


class Trail:
    """The trail page's rows as dicts by column, and its 'Older events' link."""

    def __init__(self, text: str):
        table = EventTable(text, width=len(COLUMNS))
        self.rows = [dict(zip(COLUMNS, r, strict=True)) for r in table.rows]
        self.older = table.older


def rows_of(response) -> Trail:
    assert response.status_code == 200, response.status_code
    return Trail(response.get_data(as_text=True))


def actions(rows) -> list[tuple[str, str]]:
    """(user, action code) of each row, dropping the auditor's own audit.view records."""
    return [(r["user"], r["action"].split()[-1]) for r in rows if not r["action"].endswith("audit.view")]


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def seed(app, clinic):
    """Insert events with chosen times (sealed with their MAC, as the app writes them)."""
    def go(count=1, *, at=None, action="patient.view", user=None, role="reception", patient=None):
        at = at or datetime.now(UTC) - timedelta(days=1)
        with app.app_context():
            db = get_session()
            set_tenant(db, clinic_id=clinic.id, user_id=None)
            for i in range(count):
                e = AuditEvent(id=new_id(), clinic_id=clinic.id, at=at - timedelta(minutes=i), user_id=user,
                               role=role, action=action, object_type="patient", object_id=patient,
                               patient_id=patient, patient_ids=None, outcome="allowed", reason=f"seq-{i + 1:03d}",
                               flagged=False, ip="10.0.0.7", user_agent="test")
                e.mac = event_mac(e)
                db.add(e)
            db.commit()
    return go


# --- Who may open it -----------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR])
def test_admin_and_auditor_see_the_trail(new_browser, factory, clinic, register, role, sql):
    register(full_name="Meena Iyer")
    person = factory.person(clinic, role, name="Allowed Person")
    browser = new_browser()
    browser.sign_in(person)
    response = browser.get("/audit/")
    body = response.get_data(as_text=True)
    assert "Audit trail" in body and "Who looked at this patient?" in body
    assert [(r["user"], r["action"], r["patient"], r["outcome"]) for r in rows_of(response).rows] == [
        ("Ravi Reception", "Registered a patient patient.create", "MRN-000001", "Allowed")]
    assert 'href="/audit/"' in browser.get("/").get_data(as_text=True)
    assert "Meena" not in body and "Iyer" not in body
    # opening the page is itself recorded
    assert sql("SELECT user_id, role, action, outcome FROM audit_event WHERE action = 'audit.view'") == [
        (person.id, role.value, "audit.view", "allowed")]


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.NURSE, Role.BILLING])
def test_other_roles_are_refused(browser, factory, clinic, role, sql):
    browser.sign_in(factory.person(clinic, role))
    assert 'href="/audit/"' not in browser.get("/").get_data(as_text=True)
    for url in ("/audit/", "/audit/export.csv", "/audit/?mrn=MRN-000001"):
        response = browser.get(url)
        assert response.status_code == 403 and 'id="events"' not in response.get_data(as_text=True)
    assert sql("SELECT action, outcome FROM audit_event ORDER BY seq") == [
        ("denied:audit.index", "denied"), ("denied:audit.export", "denied"), ("denied:audit.index", "denied")]


# --- Who looked at this patient -----------------------------------------------------------------

def test_who_looked_at_a_patient(desk, factory, clinic, new_browser, as_auditor, sql):
    first = register_with(desk, full_name="Meena Iyer")
    register_with(desk, full_name="Farhan Qureshi")
    nurse = factory.person(clinic, Role.NURSE, name="Nisha Nurse")
    curious = new_browser()
    curious.sign_in(nurse)
    assert curious.get(first).status_code == 200
    desk.get(first)

    response = as_auditor.get("/audit/?mrn=mrn-000001", follow_redirects=True)
    body = response.get_data(as_text=True)
    assert "Who looked at MRN-000001" in body
    shown = rows_of(response).rows
    assert actions(shown) == [("Ravi Reception", "patient.view"), ("Nisha Nurse", "patient.view"),
                              ("Ravi Reception", "patient.create")]
    assert {r["patient"] for r in shown if not r["action"].endswith("audit.view")} == {"MRN-000001"}
    assert [r["role"] for r in shown][:2] == ["Receptionist", "Nurse"]
    for name in ("Meena", "Iyer", "Farhan", "Qureshi"):
        assert name not in body

    # the auditor's own look is recorded against the patient, without the MRN typed
    (pid,) = sql("SELECT patient_id FROM audit_event WHERE action = 'audit.view'")[0]
    assert str(pid) == patient_id(first)
    assert sql("SELECT reason FROM audit_event WHERE action = 'audit.view'") == [("filters: patient",)]

    # a search that listed the patient counts as a look too
    desk.post("/patients/search", {"q": "Meena"}, page="/patients/")
    looked = rows_of(as_auditor.get("/audit/?mrn=1", follow_redirects=True)).rows
    assert ("Ravi Reception", "patient.search") in actions(looked)

    unknown = as_auditor.get("/audit/?mrn=MRN-009999")
    assert "No patient in this clinic has the MRN MRN-009999" in unknown.get_data(as_text=True)
    assert actions(rows_of(unknown).rows) == []
    bad = as_auditor.get("/audit/?mrn=Meena")
    assert "Enter the patient&#39;s MRN" in bad.get_data(as_text=True)


def test_refused_cross_clinic_request_is_a_denied_record(desk, factory, other_clinic, new_browser, as_auditor):
    theirs = new_browser()
    theirs.sign_in(factory.person(other_clinic, Role.RECEPTION))
    foreign = register_with(theirs, full_name="Zoya Sheikh")
    assert desk.get(foreign).status_code == 404

    refused = rows_of(as_auditor.get("/audit/?action=refused")).rows
    assert [(r["user"], r["action"], r["patient"], r["outcome"], r["reason"]) for r in refused] == [
        ("Ravi Reception", "Viewed a patient patient.view", "a patient not in this clinic", "Refused",
         "not found in this clinic")]
    assert "Zoya" not in as_auditor.get("/audit/").get_data(as_text=True)


# --- Filters ------------------------------------------------------------------------------------

def test_filter_by_user_action_and_date(desk, reception, factory, clinic, new_browser, as_auditor, seed):
    url = register_with(desk, full_name="Meena Iyer")
    desk.get(url)
    nurse = factory.person(clinic, Role.NURSE, name="Nisha Nurse")
    seed(at=datetime(2026, 1, 10, 5, 0, tzinfo=UTC), user=nurse.id, role="nurse")  # 10:30 on 10 Jan in India
    seed(at=datetime(2026, 1, 10, 20, 0, tzinfo=UTC), user=nurse.id, role="nurse")  # 01:30 on 11 Jan in India

    page = as_auditor.get(f"/audit/?user={reception.id}")
    assert actions(rows_of(page).rows) == [("Ravi Reception", "patient.view"), ("Ravi Reception", "patient.create")]
    assert f'<option value="{reception.id}" selected>' in page.get_data(as_text=True)

    created = rows_of(as_auditor.get("/audit/?action=patient.create")).rows
    assert actions(created) == [("Ravi Reception", "patient.create")]

    eleventh = rows_of(as_auditor.get("/audit/?from=2026-01-11&to=2026-01-11")).rows
    assert [(r["user"], r["when"]) for r in eleventh] == [("Nisha Nurse", "11 Jan 2026, 01:30")]
    january = rows_of(as_auditor.get(f"/audit/?user={nurse.id}&action=patient.view&from=2026-01-01&to=2026-01-31"))
    assert [r["when"] for r in january.rows] == ["11 Jan 2026, 01:30", "10 Jan 2026, 10:30"]

    # unusable values are ignored, never an error page
    response = as_auditor.get("/audit/?user=nobody&action=drop table&from=soon")
    assert "From is not a date" in response.get_data(as_text=True)
    assert len(actions(rows_of(response).rows)) == 4


# --- Paging -------------------------------------------------------------------------------------

def test_older_link_pages_through_every_event_once(as_auditor, seed, auditor):
    seed(120, user=auditor.id, role="auditor", action="patient.search")
    first = rows_of(as_auditor.get("/audit/?action=patient.search"))
    assert len(first.rows) == 50 and first.older and "action=patient.search" in first.older

    fragment = as_auditor.client.get(first.older, headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and body.lstrip().startswith("<tr") and "<html" not in body
    assert "HX-Request" in fragment.headers["Vary"] and 'hx-target="#older-row"' in body
    second = Trail(body)
    assert "<html" in as_auditor.get(first.older).get_data(as_text=True)  # the plain link is a whole page
    third = rows_of(as_auditor.get(second.older))
    assert third.older is None
    seen = [r["reason"] for r in first.rows + second.rows + third.rows]
    assert seen == [f"seq-{i:03d}" for i in range(1, 121)]


def test_a_page_loads_names_and_mrns_in_bulk(app, desk, factory, clinic, new_browser, as_auditor, seed):
    """The number of queries does not grow with the rows shown (no N+1)."""
    urls = [register_with(desk, full_name=f"Patient {chr(65 + i)} Kumar") for i in range(6)]
    people = [factory.person(clinic, Role.NURSE, name=f"Nurse {i}") for i in range(6)]

    def count_queries(url):
        statements = []
        engine = app.extensions["db_engine"]
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        sa_event.listen(engine, "before_cursor_execute", listener)
        try:
            rows_of(as_auditor.client.get(url))  # the whole page: rows, filters and the chain's status
        finally:
            sa_event.remove(engine, "before_cursor_execute", listener)
        return len(statements)

    small = count_queries("/audit/?action=patient.create")
    for person, url in zip(people, urls, strict=True):
        seed(3, user=person.id, role="nurse", patient=patient_id(url))
    large = count_queries("/audit/?action=patient.view")
    assert large == small


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_export_with_filters_escapes_formulas_and_is_recorded(desk, factory, clinic, new_browser, as_auditor,
                                                                 sql):
    url = register_with(desk, full_name="Meena Iyer")
    sneaky = factory.person(clinic, Role.RECEPTION, name='=HYPERLINK("x")')
    other = new_browser()
    other.sign_in(sneaky)
    other.get(url)

    response = as_auditor.get("/audit/export.csv?mrn=MRN-000001")
    assert response.mimetype == "text/csv"
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata")).date().isoformat()
    assert response.headers["Content-Disposition"] == f'attachment; filename="audit-sunrise-clinic-{today}.csv"'
    text = response.get_data(as_text=True)
    assert "Meena" not in text and "Iyer" not in text
    rows = csv_rows(response)
    assert [(r["user"], r["action"], r["patient_mrn"]) for r in rows] == [
        ("Anita Auditor", "audit.export", "MRN-000001"),  # the export itself, recorded first
        ("'=HYPERLINK(\"x\")", "patient.view", "MRN-000001"), ("Ravi Reception", "patient.create", "MRN-000001")]
    assert all(r["time"].endswith("+05:30") and r["event_id"] for r in rows)

    everything = csv_rows(as_auditor.get("/audit/export.csv"))
    assert {r["action"] for r in everything} == {"patient.create", "patient.view", "audit.export"}
    assert sql("SELECT reason FROM audit_event WHERE action = 'audit.export' ORDER BY seq") == [
        ("filters: patient",), ("filters: none",)]


def test_csv_cells_that_start_like_formulas_are_quoted():
    from app.audit.trail import csv_cell

    for value in ("=1+1", "+91 98", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(value) == "'" + value
    for value in ("MRN-000001", "Ravi", "", None, "10.0.0.1"):
        assert csv_cell(value) == ("" if value is None else value)


# --- The chain's status -------------------------------------------------------------------------

def test_page_shows_the_chains_status_honestly(desk, as_auditor, cli, owner_engine):
    register_with(desk, full_name="Meena Iyer")
    body = as_auditor.get("/audit/").get_data(as_text=True)
    assert "Not verified yet" in body  # the page itself never re-reads the whole trail
    assert as_auditor.post("/audit/verify", {}).status_code == 303
    body = as_auditor.get("/audit/").get_data(as_text=True)
    assert "Trail intact" in body and "No signed checkpoint yet" in body and "not yet chained" in body

    assert cli("checkpoint").exit_code == 0
    as_auditor.post("/audit/verify", {}, page="/audit/")
    body = as_auditor.get("/audit/").get_data(as_text=True)
    assert "Trail intact" in body and re.search(r"signed checkpoint at position \d+", body)

    from sqlalchemy import text

    with owner_engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE audit_event SET reason = 'edited' WHERE action = 'patient.create'"))
    as_auditor.post("/audit/verify", {}, page="/audit/")
    body = html.unescape(as_auditor.get("/audit/").get_data(as_text=True))
    assert "Trail integrity problem" in body and "altered event" in body and "chain position 1" in body


def test_the_checkpoint_job_verifies_before_signing(app, app_config, desk, as_auditor, owner_engine, sql):
    """A real worker runs the checkpoint job: it stores an intact result; after tampering it stores the
    problem and signs nothing new."""
    from sqlalchemy import text

    from jobs.audit import sign_all_checkpoints
    from jobs.worker import queue

    register_with(desk, full_name="Job Verified")
    connection = Redis.from_url(app_config["REDIS_URL"])
    with app.app_context():
        queue(connection).enqueue(sign_all_checkpoints)
    assert run_worker(app_config).returncode == 0
    assert sql("SELECT ok FROM audit_verification") == [(True,)]
    signed = sql("SELECT count(*) FROM audit_checkpoint")[0][0]
    assert "Trail intact" in as_auditor.get("/audit/").get_data(as_text=True)

    with owner_engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE audit_event SET reason = 'edited' WHERE action = 'patient.create'"))
    with app.app_context():
        queue(connection).enqueue(sign_all_checkpoints)
    assert run_worker(app_config).returncode == 0
    connection.close()
    assert sql("SELECT ok FROM audit_verification ORDER BY checked_at") == [(True,), (False,)]
    assert sql("SELECT count(*) FROM audit_checkpoint")[0][0] == signed
    assert "Trail integrity problem" in as_auditor.get("/audit/").get_data(as_text=True)
