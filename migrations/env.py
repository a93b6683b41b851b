"""Alembic environment: connect as the admin, SET ROLE to the owner, migrate."""

from alembic import context
from sqlalchemy import create_engine, text

from app.config import OWNER_DB_ROLE
from app.schema import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.attributes.get("admin_url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text(f"SET ROLE {OWNER_DB_ROLE}"))
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    engine.dispose()


run_migrations_online()
