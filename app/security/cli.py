"""`flask keys rotate` and `flask keys status`: per-clinic data key rotation from the command line."""

import uuid

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clinics.models import Clinic, ClinicRegistry
from app.db import get_session, set_tenant
from app.security.rotation import GRACE_SECONDS, enqueue_reencrypt, rotation_status, start_rotation

keys = AppGroup("keys", help="Per-clinic data keys: rotate them and see where each version is used.")


def _clinics(db: Session) -> list[tuple[uuid.UUID, str]]:
    """Every clinic's id and name (names are read one clinic at a time: the clinic table is scoped)."""
    set_tenant(db, clinic_id=None, user_id=None)
    ids = db.scalars(select(ClinicRegistry.id).order_by(ClinicRegistry.id)).all()
    db.commit()
    found = []
    for clinic_id in ids:
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        found.append((clinic_id, db.scalar(select(Clinic.name).where(Clinic.id == clinic_id)) or "?"))
        db.commit()
    set_tenant(db, clinic_id=None, user_id=None)
    return found


def _chosen(db: Session, wanted: str | None) -> list[tuple[uuid.UUID, str]]:
    clinics = _clinics(db)
    if wanted is None:
        return clinics
    chosen = [(cid, name) for cid, name in clinics if str(cid) == wanted.strip().lower()]
    chosen = chosen or [(cid, name) for cid, name in clinics if name.casefold() == wanted.strip().casefold()]
    if not chosen:
        raise click.ClickException(f"no clinic has the id or name {wanted!r}")
    if len(chosen) > 1:
        raise click.ClickException(f"{len(chosen)} clinics are named {wanted!r}: give the clinic id instead")
    return chosen


@keys.command("rotate")
@click.option("--clinic", "wanted", metavar="NAME_OR_ID", help="One clinic (default: every clinic).")
@click.option("--grace", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="How long after the rotation the job waits before retiring the old key (default 30).")
def rotate(wanted: str | None, grace: float | None):
    """Give each clinic a new data key and queue the job that re-encrypts its records under it."""
    db = get_session()
    chosen = _chosen(db, wanted)
    if not chosen:
        click.echo("no clinics: nothing to rotate")
    for clinic_id, name in chosen:
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        version = start_rotation(db, clinic_id)
        db.commit()
        job = enqueue_reencrypt(clinic_id, GRACE_SECONDS if grace is None else grace)
        click.echo(f"{name} ({clinic_id}): key version {version} is active; older versions are decrypt-only "
                   f"until re-encryption job {job.id} finishes")
    set_tenant(db, clinic_id=None, user_id=None)


@keys.command("status")
@click.option("--clinic", "wanted", metavar="NAME_OR_ID", help="One clinic (default: every clinic).")
def status(wanted: str | None):
    """Show each clinic's key versions, their status and how many rows each one still protects."""
    db = get_session()
    for clinic_id, name in _chosen(db, wanted):
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        rows = rotation_status(db, clinic_id)
        db.commit()
        click.echo(f"{name} ({clinic_id})")
        if not rows:
            click.echo("  no data key yet")
        for row in rows:
            click.echo(f"  v{row['version']:<3} {row['status']:<12} patients={row['patients']} "
                       f"tokens={row['tokens']} history={row['history']} other={row['other']}")
    set_tenant(db, clinic_id=None, user_id=None)
