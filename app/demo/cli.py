"""`flask seed-demo` and `flask demo-users`."""

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import get_session, set_tenant
from app.demo import seed as demo


def credentials_file() -> Path:
    return Path(current_app.instance_path) / "demo-credentials.json"


@click.command("seed-demo")
@with_appcontext
def seed_demo():
    """Fill an empty database with the demo clinics and staff (does nothing otherwise)."""
    db = get_session()
    set_tenant(db, clinic_id=None, user_id=None)
    if not demo.is_empty(db):
        click.echo("database already has data; demo seed skipped")
        return
    people = demo.seed(db, credentials_file())
    db.commit()
    click.echo(f"seeded {len(demo.CLINICS)} clinics and {len(people)} staff roles")


@click.command("demo-users")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@with_appcontext
def demo_users(as_json: bool):
    """Print the demo staff's e-mail, password, role, clinic and TOTP secret (demo databases only)."""
    db = get_session()
    path = credentials_file()
    if not demo.is_demo(db) or not path.exists():
        raise click.ClickException("this is not a demo database: refusing to print credentials")
    people = json.loads(path.read_text())
    if as_json:
        click.echo(json.dumps(people, indent=2))
        return
    for p in people:
        click.echo(f"{p['role']:<10} {p['email']:<36} {p['password']:<18} {p['totp_secret']}  ({p['clinic']})")
