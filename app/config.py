"""Settings from environment variables, with the demo's generated secrets as the fallback.

Every setting can come from the environment. For a local demo, `make run` generates the secrets
into the instance folder (0600) and records the URLs of the embedded PostgreSQL and Redis it
started in `instance/runtime.json`, so `flask --app wsgi ...` commands find them too.
"""

import json
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

APP_DB_ROLE = "clinicdesk_app"
OWNER_DB_ROLE = "clinicdesk_owner"


def instance_path() -> Path:
    """Where the instance folder is: INSTANCE_PATH or ./instance beside the app."""
    default = Path(__file__).resolve().parent.parent / "instance"
    return Path(os.environ.get("INSTANCE_PATH", default)).resolve()


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def ensure_instance_secrets(folder: Path) -> None:
    """Generate the demo's secrets (session key, database password, master key) once, mode 0600."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    secrets_file = folder / "secrets.json"
    if not secrets_file.exists():
        values = {"SECRET_KEY": secrets.token_hex(32), "APP_DB_PASSWORD": secrets.token_urlsafe(24)}
        _write_secret(secrets_file, json.dumps(values, indent=2))
    key_file = folder / "master.key"
    if not key_file.exists():
        _write_secret(key_file, secrets.token_hex(32) + "\n")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def runtime_app_url(admin_url: str, password: str) -> str:
    """The runtime role's URL: the admin URL with the app role's name and password."""
    url = make_url(admin_url).set(username=APP_DB_ROLE, password=password)
    return url.render_as_string(hide_password=False)


def load(overrides: dict | None = None) -> dict:
    """Build the Flask config mapping from the environment, instance files and overrides."""
    folder = instance_path()
    stored = _read_json(folder / "secrets.json")
    runtime = _read_json(folder / "runtime.json")
    env = os.environ
    config = {
        "INSTANCE_PATH": str(folder),
        "SECRET_KEY": env.get("SECRET_KEY") or stored.get("SECRET_KEY"),
        "DATABASE_URL": env.get("DATABASE_URL") or runtime.get("DATABASE_URL"),
        "DATABASE_APP_URL": env.get("DATABASE_APP_URL"),
        "APP_DB_PASSWORD": env.get("APP_DB_PASSWORD") or stored.get("APP_DB_PASSWORD"),
        "REDIS_URL": env.get("REDIS_URL") or runtime.get("REDIS_URL"),
        "PORT": int(env.get("PORT", "5000")),
        "SESSION_IDLE_SECONDS": int(env.get("SESSION_IDLE_SECONDS", "900")),
        "SESSION_MAX_SECONDS": int(env.get("SESSION_MAX_SECONDS", "43200")),
        "SESSION_WARNING_SECONDS": int(env.get("SESSION_WARNING_SECONDS", "120")),
        # Exports need the password typed this recently (at sign-in or on the confirmation page).
        "REAUTH_SECONDS": int(env.get("REAUTH_SECONDS", "600")),
        "MASTER_KEY_FILE": env.get("MASTER_KEY_FILE", str(folder / "master.key")),
        "MASTER_KEY": env.get("MASTER_KEY"),
        "HTTPS": env.get("HTTPS", "0") == "1",
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        "WTF_CSRF_TIME_LIMIT": None,
        # The guard checks the token and the origin itself, after the session (app/security/csrf.py); the origin
        # check, on both schemes, replaces Flask-WTF's Referer check on https.
        "WTF_CSRF_CHECK_DEFAULT": False,
        "WTF_CSRF_SSL_STRICT": False,
        "RQ_QUEUE": env.get("RQ_QUEUE", "clinicdesk"),
        # The address patients and Twilio reach the app at (links in messages, status callbacks, signatures).
        "PUBLIC_URL": env.get("PUBLIC_URL") or f"http://127.0.0.1:{env.get('PORT', '5000')}",
        # Tests only: Twilio's REST API at a local fake instead of api.twilio.com.
        "TWILIO_API_BASE": env.get("TWILIO_API_BASE") or None,
        # Benchmarks and diagnosis: a Server-Timing header with each request's SQL statements (app/timing.py).
        "SERVER_TIMING": env.get("SERVER_TIMING", "0") == "1",
        # Signed audit checkpoints are copied here as they are signed: keep it off the database's disk and backups.
        "AUDIT_CHECKPOINT_DIR": env.get("AUDIT_CHECKPOINT_DIR"),
    }
    config.update(overrides or {})
    # The "Still there?" warning opens at most halfway through the idle time: a lead time as long as the
    # timeout would open it as soon as a page loads, and it holds the keyboard while open.
    config["SESSION_WARNING_SECONDS"] = min(config["SESSION_WARNING_SECONDS"], config["SESSION_IDLE_SECONDS"] // 2)
    config["AUDIT_CHECKPOINT_DIR"] = config["AUDIT_CHECKPOINT_DIR"] or str(
        Path(config["INSTANCE_PATH"]) / "audit-checkpoints")
    if not config["DATABASE_APP_URL"] and config["DATABASE_URL"] and config["APP_DB_PASSWORD"]:
        config["DATABASE_APP_URL"] = runtime_app_url(config["DATABASE_URL"], config["APP_DB_PASSWORD"])
    missing = [k for k in ("SECRET_KEY", "DATABASE_APP_URL") if not config.get(k)]
    if missing:
        raise RuntimeError(
            f"ClinicDesk is missing {', '.join(missing)}: set them in the environment "
            "(see README) or start the demo with `make run`."
        )
    return config

