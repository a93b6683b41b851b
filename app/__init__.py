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
    from app.audit.views import bp as audit_bp
    from app.auth.reauth_views import bp as reauth_bp
    from app.auth.views import bp as auth_bp
    from app.billing.payment_views import bp as payments_bp
    from app.billing.pdf_views import bp as bill_pdf_bp
    from app.billing.report_views import bp as billing_reports_bp
    from app.billing.setup_views import bp as billing_setup_bp
    from app.billing.views import bp as billing_bp
    from app.clinical.chart_views import bp as chart_bp
    from app.clinical.rx_views import bp as prescriptions_bp
    from app.clinical.views import bp as clinical_bp
    from app.clinics.views import bp as clinics_bp
    from app.dashboard.views import bp as dashboard_bp
    from app.health.views import bp as health_bp
    from app.messaging.desk_views import bp as reminders_bp
    from app.messaging.visit_views import bp as visit_bp
    from app.messaging.webhook_views import bp as twilio_bp
    from app.patients.views import bp as patients_bp
    from app.scheduling.queue_views import bp as queue_bp
    from app.scheduling.setup_views import bp as schedule_setup_bp
    from app.scheduling.views import bp as schedule_bp
    from app.staff.views import bp as staff_bp
    from app.timeline.views import bp as timeline_bp

    for bp in (auth_bp, reauth_bp, clinics_bp, dashboard_bp, health_bp, staff_bp, audit_bp, patients_bp, schedule_bp,
               queue_bp, schedule_setup_bp, clinical_bp, chart_bp, prescriptions_bp, timeline_bp, billing_setup_bp,
               billing_bp, payments_bp, bill_pdf_bp, billing_reports_bp, reminders_bp, twilio_bp, visit_bp):
        app.register_blueprint(bp)


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
