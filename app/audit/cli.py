"""`flask audit verify|checkpoint|export-checkpoints`: the audit chain from the command line.

`verify` only reads (it never links or signs) and exits 1 when any clinic's trail has a problem. It
checks the chain against the checkpoints shipped off the database as they were signed
(AUDIT_CHECKPOINT_DIR; `--without-shipped` skips them), so deleting the newest entries together with
their checkpoints in the database is reported. `checkpoint` signs now and ships what it signed.
`export-checkpoints` writes signed checkpoints as JSON lines, to keep elsewhere too; `verify
--checkpoints FILE` checks the chain against such a copy as well.
"""

import uuid

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.audit import shipping
from app.audit.chain import chain_pending, ship, sign_checkpoint, verify
from app.audit.models import AuditCheckpoint
from app.clinics.models import Clinic, ClinicRegistry
from app.db import get_session, set_tenant

audit = AppGroup("audit", help="The PHI audit trail: verify its hash chain, sign and export checkpoints.")
CLINIC = click.option("--clinic", "wanted", metavar="NAME_OR_ID", help="One clinic (default: every clinic).")


def clinics(db, wanted: str | None) -> list[tuple[uuid.UUID, str]]:
    """The clinics to act on: every clinic, or the one with this id or (unique) name."""
    set_tenant(db, clinic_id=None, user_id=None)
    found = []
    for clinic_id in db.scalars(select(ClinicRegistry.id).order_by(ClinicRegistry.id)).all():
        set_tenant(db, clinic_id=clinic_id, user_id=None)  # the clinic table shows one clinic at a time
        found.append((clinic_id, db.scalar(select(Clinic.name).where(Clinic.id == clinic_id)) or "?"))
        db.rollback()
    set_tenant(db, clinic_id=None, user_id=None)
    if wanted is None:
        return found
    key = wanted.strip()
    chosen = [c for c in found if str(c[0]) == key.lower()] or [c for c in found if c[1].casefold() == key.casefold()]
    if not chosen:
        raise click.ClickException(f"no clinic has the id or name {wanted!r}")
    if len(chosen) > 1:
        raise click.ClickException(f"{len(chosen)} clinics are named {wanted!r}: give the clinic id instead")
    return chosen


def read_checkpoints(lines) -> dict[uuid.UUID, list]:
    """Checkpoints from exported JSON lines, by clinic."""
    try:
        return shipping.read_lines(lines)
    except shipping.Unreadable as exc:
        raise click.ClickException(str(exc)) from exc


@audit.command("verify")
@CLINIC
@click.option("--checkpoints", "copies", type=click.File("r"), default=None, metavar="FILE",
              help="Also check against checkpoints exported earlier (JSON lines).")
@click.option("--without-shipped", is_flag=True,
              help="Do not read the checkpoints shipped off the database (AUDIT_CHECKPOINT_DIR).")
def verify_command(wanted: str | None, copies, without_shipped: bool):
    """Check every clinic's audit events and chain; print OK or the first problem; exit 1 on any."""
    db = get_session()
    external = read_checkpoints(copies) if copies else {}
    warning = None if without_shipped else shipping.same_disk_warning()
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    failed = 0
    for clinic_id, name in clinics(db, wanted):
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        result = verify(db, clinic_id, external.get(clinic_id), use_shipped=not without_shipped)
        click.echo(f"{name} ({clinic_id}): {result.summary()}")
        db.rollback()  # verify only reads
        failed += not result.ok
    set_tenant(db, clinic_id=None, user_id=None)
    if failed:
        click.echo(f"{failed} clinic(s) with a problem in the audit trail", err=True)
        click.get_current_context().exit(1)


@audit.command("checkpoint")
@CLINIC
def checkpoint_command(wanted: str | None):
    """Link every pending event now, sign each clinic's chain head and ship it off the database."""
    db = get_session()
    for clinic_id, name in clinics(db, wanted):
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        linked = 0
        while count := chain_pending(db, clinic_id, window=None):
            linked += count
            db.commit()
        checkpoint = sign_checkpoint(db, clinic_id)
        db.commit()
        try:
            shipped = ship(db, clinic_id)
            db.commit()  # the database's note of what was shipped
        except OSError as exc:
            raise click.ClickException(f"{name}: signed, but the checkpoint could not be shipped: {exc}") from exc
        finally:
            db.rollback()
        signed = f"signed position {checkpoint.position}" if checkpoint else "nothing to sign yet"
        click.echo(f"{name} ({clinic_id}): linked {linked} events, {signed}, shipped {shipped} checkpoints")
    set_tenant(db, clinic_id=None, user_id=None)


@audit.command("export-checkpoints")
@CLINIC
@click.argument("output", type=click.File("w"), metavar="FILE")
def export_checkpoints(wanted: str | None, output):
    """Write signed checkpoints (with their public key) as JSON lines to FILE ('-' for stdout)."""
    db = get_session()
    count = 0
    for clinic_id, name in clinics(db, wanted):
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        for cp in db.scalars(select(AuditCheckpoint).where(AuditCheckpoint.clinic_id == clinic_id)
                             .order_by(AuditCheckpoint.position)):
            output.write(shipping.to_line(cp, name) + "\n")
            count += 1
        db.rollback()
    set_tenant(db, clinic_id=None, user_id=None)
    click.echo(f"exported {count} checkpoints", err=True)
