"""Engine, sessions, the declarative Base and the per-transaction tenant context.

The app connects as a runtime role that owns nothing and cannot bypass row-level security.
Every transaction starts by setting `app.clinic_id` and `app.user_id` with
`set_config(..., true)`, so PostgreSQL itself scopes every clinic-owned table.
"""

import uuid
from datetime import UTC, datetime

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import DateTime, Enum, MetaData, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The errors a database call raises; `unavailable(exc)` tells which of them mean "try again in a moment".
DATABASE_ERRORS = (sa_exc.DBAPIError, sa_exc.TimeoutError)
# SQLSTATEs of a server that cannot be reached or went away: connection exceptions (class 08), an admin or
# crash shutdown and "cannot connect now" (57P01-57P03).
UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


def unavailable(exc: BaseException) -> bool:
    """Whether a database error means the database could not be reached just now (the same request may
    succeed in a moment): the pool timed out, the connection was closed or invalidated, the server gave no
    answer (psycopg raises OperationalError without a SQLSTATE then), or a connection-class SQLSTATE. A
    deadlock, serialization failure, lock or statement timeout or full disk is an error like any other."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if not isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    return exc.connection_invalidated or state is None or state.startswith(UNREACHABLE_STATES)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True)}


def enum_by_value(enum_cls, length: int = 32) -> Enum:
    """Store a Python enum by its value as VARCHAR (no native PostgreSQL enum to migrate)."""
    return Enum(enum_cls, native_enum=False, length=length, validate_strings=True,
                values_callable=lambda cls: [m.value for m in cls])


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """A time-ordered UUIDv7, so new rows land at the end of their indexes."""
    ms = int(datetime.now(UTC).timestamp() * 1000)
    rand = int.from_bytes(uuid.uuid4().bytes, "big") & ((1 << 74) - 1)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def make_engine(url: str):
    """An engine for the URL: pool pre-ping survives a database restart; statement parameters (which
    can hold PHI or hashes) never reach logs or error messages."""
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True)


def init_app(app: Flask) -> None:
    """Create the runtime engine and session factory for this app."""
    engine = make_engine(app.config["DATABASE_APP_URL"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.after_request(_release_connection)
    app.teardown_appcontext(_close_session)


def _release_connection(response):
    """Give the request's connection back to the pool once the response is made: saving the sign-in
    session afterwards uses a connection of its own, and holding both at once would halve the
    requests the pool can serve."""
    _close_session(None)
    return response


def get_session() -> Session:
    """The request's (or job's) one database session."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def committed() -> bool:
    """Whether the request (or job) has committed a transaction in its database session."""
    return g.get("db_committed", False)


def commit_outcome_unknown() -> bool:
    """Whether the request's COMMIT was sent and never answered: the connection was lost during commit(),
    so its work may or may not have been saved (sending it again could save it twice)."""
    return g.get("db_commit_sent", False)


@event.listens_for(Session, "after_commit")
def _note_commit(session: Session) -> None:
    if has_app_context() and g.get("db_session") is session:
        g.db_committed = True
        g.db_commit_sent = False  # answered


@event.listens_for(Session, "after_begin")
def _note_connection(session: Session, transaction, connection) -> None:
    if has_app_context() and g.get("db_session") is session:
        g.db_connection = connection


@event.listens_for(Engine, "commit")
def _note_commit_sent(connection) -> None:
    if has_app_context() and g.get("db_connection") is connection:
        g.db_commit_sent = True


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def set_tenant(session: Session, *, clinic_id: uuid.UUID | None, user_id: uuid.UUID | None) -> None:
    """Scope this session to a clinic and user, now and at every transaction it begins."""
    session.info["clinic_id"] = clinic_id
    session.info["user_id"] = user_id
    if session.in_transaction():
        _apply_tenant(session, session.connection())


@event.listens_for(Session, "after_begin")
def _tenant_on_begin(session: Session, transaction, connection) -> None:
    if transaction.nested:  # a savepoint: set_config(..., true) already holds to the outer transaction's end
        return
    _apply_tenant(session, connection)


def _apply_tenant(session: Session, connection) -> None:
    clinic_id = session.info.get("clinic_id")
    user_id = session.info.get("user_id")
    connection.execute(
        text("SELECT set_config('app.clinic_id', :c, true), set_config('app.user_id', :u, true)"),
        {"c": str(clinic_id) if clinic_id else "", "u": str(user_id) if user_id else ""},
    )
