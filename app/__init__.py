"""ClinicDesk: the front desk of outpatient clinics."""

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as settings
from app import db
from app.security.csrf import csrf

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment (and `config` overrides)."""
    values = settings.load(config)
    app = Flask(__name__, instance_path=values["INSTANCE_PATH"],
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.update(values)
    app.config.update(SESSION_COOKIE_SECURE=values["HTTPS"], MAX_CONTENT_LENGTH=2 * 1024 * 1024)
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from app import ui
    from app.auth import guard
    from app.security import errors, headers, logs, sessions, text

    logs.init_app(app)
    db.init_app(app)
    sessions.init_app(app)
    csrf.init_app(app)
    guard.init_app(app)
    text.init_app(app)  # after the guard: an expired session goes to sign in, a forged form is refused
    headers.init_app(app)
    errors.init_app(app)
    ui.init_app(app)
    _register_blueprints(app)
    _register_cli(app)
    app.jinja_env.globals["static_version"] = _static_version
    from app import timing

    timing.init_app(app)  # the outermost layer: it counts the whole request
    return app


def _register_blueprints(app: Flask) -> None:
    """Every blueprint, each imported under its own name (endpoint `a_b.x` is in app/a/b_views.py)."""
    from app.audit import views as audit
    from app.auth import reauth_views as auth_reauth
    from app.auth import views as auth
    from app.billing import payment_views as billing_payment
    from app.billing import pdf_views as billing_pdf
    from app.billing import report_views as billing_report
    from app.billing import setup_views as billing_setup
    from app.billing import views as billing
    from app.clinical import chart_views as clinical_chart
    from app.clinical import rx_views as clinical_rx
    from app.clinical import views as clinical
    from app.clinics import views as clinics
    from app.dashboard import views as dashboard
    from app.health import views as health
    from app.messaging import desk_views as messaging_desk
    from app.messaging import visit_views as messaging_visit
    from app.messaging import webhook_views as messaging_webhook
    from app.patients import views as patients
    from app.scheduling import queue_views as scheduling_queue
    from app.scheduling import setup_views as scheduling_setup
    from app.scheduling import views as scheduling
    from app.staff import views as staff
    from app.timeline import views as timeline

    for module in (auth, auth_reauth, clinics, dashboard, health, staff, audit, patients, scheduling, scheduling_queue,
                   scheduling_setup, clinical, clinical_chart, clinical_rx, timeline, billing_setup, billing,
                   billing_payment, billing_pdf, billing_report, messaging_desk, messaging_webhook, messaging_visit):
        app.register_blueprint(module.bp)


def _register_cli(app: Flask) -> None:
    from app.audit.cli import audit
    from app.demo.cli import demo_users, seed_demo
    from app.migrate import migrate_command
    from app.security.cli import keys

    app.cli.add_command(demo_users)
    app.cli.add_command(seed_demo)
    app.cli.add_command(migrate_command)
    app.cli.add_command(keys)
    app.cli.add_command(audit)


def _static_version(filename: str) -> str:
    path = ROOT / "static" / filename
    return str(int(path.stat().st_mtime)) if path.exists() else "0"
