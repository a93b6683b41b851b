"""PostgreSQL itself keeps clinics apart: RLS with FORCE, a runtime role that cannot bypass it."""

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from app.auth.policy import Role
from app.clinics.models import Clinic, Membership
from app.config import APP_DB_ROLE
from app.db import get_session, new_id, set_tenant


def test_runtime_role_is_not_superuser_cannot_bypass_rls_and_owns_nothing(sql):
    (superuser, bypass), = sql("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r", r=APP_DB_ROLE)
    assert superuser is False and bypass is False
    owned = sql("SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                "WHERE r.rolname = :r", r=APP_DB_ROLE)
    assert owned == []


def test_app_connects_as_the_runtime_role(app):
    with app.app_context():
        assert get_session().scalar(text("SELECT current_user")) == APP_DB_ROLE


def test_every_table_with_clinic_id_has_forced_rls_and_its_policy(sql):
    tables = [t for (t,) in sql(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'clinic_id'")]
    assert "membership" in tables
    for table in tables:
        (enabled, forced), = sql("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                                 "WHERE relname = :t AND relnamespace = 'public'::regnamespace", t=table)
        assert enabled and forced, f"{table} lacks ENABLE/FORCE ROW LEVEL SECURITY"
        policies = sql("SELECT qual, with_check FROM pg_policies WHERE tablename = :t AND policyname = "
                       "'clinic_isolation'", t=table)
        assert policies, f"{table} has no clinic_isolation policy"
        qual, check = policies[0]
        assert "app.clinic_id" in qual and "app.clinic_id" in check


@pytest.fixture
def two_clinics(factory):
    a = factory.clinic("Clinic A", state_code="29")
    b = factory.clinic("Clinic B", state_code="27")
    alice = factory.person(a, Role.RECEPTION, name="Alice")
    bob = factory.person(b, Role.RECEPTION, name="Bob")
    return a, b, alice, bob


def test_no_clinic_set_means_no_rows(app, two_clinics):
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=None, user_id=None)
        assert db.scalars(select(Membership)).all() == []
        assert db.scalars(select(Clinic)).all() == []


def test_without_app_filters_a_clinic_sees_only_its_own_rows(app, two_clinics):
    a, b, alice, _bob = two_clinics
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=a.id, user_id=None)
        # No WHERE clause at all: only the database's policy stands between the clinics.
        assert {m.user_id for m in db.scalars(select(Membership))} == {alice.id}
        assert [c.name for c in db.scalars(select(Clinic))] == ["Clinic A"]
        assert db.scalar(text("SELECT count(*) FROM membership WHERE clinic_id = :b"), {"b": b.id}) == 0


def test_writes_to_another_clinic_are_refused_by_the_database(app, two_clinics, sql):
    a, b, alice, bob = two_clinics
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=a.id, user_id=None)
        changed = db.execute(update(Membership).where(Membership.clinic_id == b.id).values(role=Role.ADMIN))
        assert changed.rowcount == 0
        db.commit()
        set_tenant(db, clinic_id=a.id, user_id=None)
        db.add(Membership(clinic_id=b.id, user_id=alice.id, role=Role.ADMIN))
        with pytest.raises(DBAPIError, match="row-level security"):
            db.flush()
        db.rollback()
    assert sql("SELECT role FROM membership WHERE user_id = :u", u=bob.id) == [("reception",)]
    assert sql("SELECT count(*) FROM membership WHERE user_id = :u", u=alice.id)[0][0] == 1


def test_clinic_setting_does_not_leak_to_the_next_transaction_on_a_pooled_connection(app, two_clinics):
    a, *_ = two_clinics
    engine = app.extensions["db_engine"]
    with engine.connect() as conn:
        conn.execute(text("SELECT set_config('app.clinic_id', :c, true)"), {"c": str(a.id)})
        assert conn.scalar(text("SELECT count(*) FROM membership")) == 1
        conn.commit()
        assert conn.scalar(text("SELECT current_setting('app.clinic_id', true)")) == ""
        assert conn.scalar(text("SELECT count(*) FROM membership")) == 0


def test_a_user_sees_own_memberships_in_every_clinic_but_not_colleagues_elsewhere(app, factory):
    a = factory.clinic("Clinic A")
    b = factory.clinic("Clinic B", state_code="27")
    doctor = factory.person([a, b], Role.DOCTOR)
    colleague = factory.person(b, Role.NURSE)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=None, user_id=doctor.id)
        mine = db.scalars(select(Membership)).all()
        assert {m.clinic_id for m in mine} == {a.id, b.id}
        assert colleague.id not in {m.user_id for m in mine}


def test_new_clinic_rows_need_their_clinic_set(app):
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=new_id(), user_id=None)
        db.add(Clinic(id=new_id(), name="Sneaky", legal_name="Sneaky", address_line="x", city="x",
                      pin_code="560001", state_code="29"))
        with pytest.raises(DBAPIError, match="row-level security"):
            db.flush()
        db.rollback()


def test_doctor_in_two_clinics_switches_clinic_in_the_header(browser, factory):
    a = factory.clinic("Indiranagar Clinic")
    b = factory.clinic("Kothrud Clinic", state_code="27", city="Pune")
    other = factory.clinic("Not Mine Clinic")
    doctor = factory.person([a, b], Role.DOCTOR, name="Dr. Rao")
    browser.sign_in(doctor)
    home = browser.get("/").get_data(as_text=True)
    assert 'id="clinic-switch"' in home and "Kothrud Clinic" in home and "Not Mine Clinic" not in home
    working_in = "Indiranagar Clinic" if "working in <strong>Indiranagar Clinic" in home else "Kothrud Clinic"
    target = b if working_in == "Indiranagar Clinic" else a
    response = browser.post("/session/clinic", {"clinic_id": str(target.id)})
    assert response.status_code == 303
    assert f"working in <strong>{target.name}</strong>" in browser.get("/").get_data(as_text=True)
    refused = browser.post("/session/clinic", {"clinic_id": str(other.id)}, page="/")
    assert refused.status_code == 404
    assert f"working in <strong>{target.name}</strong>" in browser.get("/").get_data(as_text=True)


def test_single_clinic_user_has_no_switcher(browser, factory):
    clinic = factory.clinic("Solo Clinic")
    person = factory.person(clinic, Role.NURSE)
    browser.sign_in(person)
    html = browser.get("/").get_data(as_text=True)
    assert 'id="clinic-switch"' not in html and "Solo Clinic" in html


def test_user_without_any_clinic_is_refused(browser, factory, sql):
    clinic = factory.clinic()
    person = factory.person(clinic, Role.NURSE)
    browser.sign_in(person)
    sql("DELETE FROM membership WHERE user_id = :u", u=person.id)
    response = browser.get("/")
    assert response.status_code == 403
    assert "no access to any clinic" in response.get_data(as_text=True)
