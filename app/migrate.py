"""Create the database roles and migrate: Alembic is the only way the schema is made.

Two roles: `clinicdesk_owner` owns every table and is used only here (the admin connection at
DATABASE_URL switches to it with SET ROLE); `clinicdesk_app` is what the app and workers log in
as: not a superuser, no BYPASSRLS, owns nothing, and gets only the grants the migrations give.
"""

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import create_engine, text

from app.config import APP_DB_ROLE, OWNER_DB_ROLE

ROOT = Path(__file__).resolve().parent.parent


def bootstrap_roles(admin_url: str, app_password: str | None) -> None:
    """Create or update the owner and runtime roles (idempotent)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = set(conn.scalars(text("SELECT rolname FROM pg_roles WHERE rolname IN (:o, :a)"),
                                  {"o": OWNER_DB_ROLE, "a": APP_DB_ROLE}))
        if OWNER_DB_ROLE not in exists:
            conn.execute(text(f"CREATE ROLE {OWNER_DB_ROLE} NOLOGIN"))
        if APP_DB_ROLE not in exists:
            conn.execute(text(f"CREATE ROLE {APP_DB_ROLE} LOGIN"))
        conn.execute(text(f"ALTER ROLE {APP_DB_ROLE} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"))
        if app_password:
            # ALTER ROLE takes no bind parameters; the password is quoted as an SQL literal.
            conn.execute(text(f"ALTER ROLE {APP_DB_ROLE} PASSWORD '{_quote(app_password)}'"))
        conn.execute(text(f"GRANT {OWNER_DB_ROLE} TO CURRENT_USER"))
        database = conn.scalar(text("SELECT current_database()"))
        conn.execute(text(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {APP_DB_ROLE}'))
        conn.execute(text(f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_DB_ROLE}"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {APP_DB_ROLE}"))
        # Extensions need the admin's rights; the schema's exclusion constraints use btree_gist.
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
    engine.dispose()


def _quote(value: str) -> str:
    return value.replace("'", "''")


def alembic_config(admin_url: str) -> Config:
    cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["admin_url"] = admin_url
    return cfg


def migrate(admin_url: str, app_password: str | None, revision: str = "head") -> None:
    """Bootstrap the roles, then upgrade the schema to `revision`."""
    bootstrap_roles(admin_url, app_password)
    command.upgrade(alembic_config(admin_url), revision)


@click.command("migrate")
@with_appcontext
def migrate_command():
    """Create the database roles and upgrade the schema to the newest revision."""
    migrate(current_app.config["DATABASE_URL"], current_app.config["APP_DB_PASSWORD"])
    click.echo("database is at the newest revision")
