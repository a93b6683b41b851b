"""Alembic is the only way the schema is made, and the models never drift from it."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.migrate import alembic_config
from app.schema import metadata


def test_models_and_migrations_do_not_drift(owner_engine):
    with owner_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_database_is_at_the_single_head(owner_engine, admin_url):
    script = ScriptDirectory.from_config(alembic_config(admin_url))
    assert len(script.get_heads()) == 1
    with owner_engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == script.get_current_head()


def test_sign_in_events_are_append_only(sql, app, factory):
    clinic = factory.clinic()
    person = factory.person(clinic)
    with app.test_request_context():
        from app.auth.models import AuthEventKind
        from app.auth.services import record_event
        from app.db import get_session

        db = get_session()
        record_event(db, AuthEventKind.PASSWORD_OK, user_id=person.id)
        db.commit()
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        for statement in ("UPDATE auth_event SET detail = 'x'", "DELETE FROM auth_event"):
            try:
                db.execute(text(statement))
                raise AssertionError(f"{statement} was allowed")
            except DBAPIError as exc:
                assert "permission denied" in str(exc)
            db.rollback()
    # not even the owner can change history through the trigger
    import pytest
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="append-only"):
        sql("UPDATE auth_event SET detail = 'tampered'")
