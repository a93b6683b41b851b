"""Signed checkpoints shipped off the database: one append-only JSON-lines file per clinic.

The database's owner can delete the newest audit entries together with their checkpoints. A copy of
each checkpoint kept outside the database and its backups (AUDIT_CHECKPOINT_DIR: another disk, a
mount of another host, a write-once bucket) still names the position and hash the chain reached, so
`verify` reads these files by default and reports the deleted tail.

Each checkpoint is appended once, after the transaction that signed it commits, as one `write` to a
file opened with O_APPEND and then fsynced: a line is whole or, after a crash mid-write, a torn last
line without its newline, which readers skip and the next append cuts off before writing. The same lines are
what `flask audit export-checkpoints` writes, and `verify --checkpoints FILE` reads either.

Each shipping is also noted in the database (`audit_shipment`: up to which position, when), once the
lines are durable: a file missing, or holding less than the database says was shipped, is a problem
for `verify`, never "nothing shipped". The default folder, under the instance folder, shares the
database's disk: `verify` and the auditor's page warn about it.
"""

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditCheckpoint, AuditShipment
from app.db import utcnow

TAIL_BYTES = 4096  # enough for the last few lines: the auditor's page reads no more than that


class Unreadable(ValueError):
    """A line of a checkpoint file that is not a checkpoint."""


def folder() -> Path:
    """Where shipped checkpoints are kept (AUDIT_CHECKPOINT_DIR)."""
    return Path(current_app.config["AUDIT_CHECKPOINT_DIR"])


def same_disk_warning() -> str | None:
    """A warning when the checkpoints are kept in the default folder, under the instance folder."""
    instance = Path(current_app.config["INSTANCE_PATH"]).resolve()
    if not folder().resolve().is_relative_to(instance):
        return None
    return (f"AUDIT_CHECKPOINT_DIR is the default {folder()}, under the instance folder on the same disk as the "
            "embedded database: losing or rolling back that disk loses the shipped checkpoints too. Set it to "
            "another disk or host.")


def log_path(clinic_id: uuid.UUID) -> Path:
    """The clinic's shipped-checkpoint file."""
    return folder() / f"{clinic_id}.jsonl"


def to_line(cp, name: str | None = None) -> str:
    """One checkpoint as a JSON line (with the clinic's name when exported for people to read)."""
    item = {"clinic_id": str(cp.clinic_id), "position": cp.position, "chain_hash": cp.chain_hash,
            "signed_at": cp.signed_at.isoformat(), "public_key": cp.public_key,
            "signature": bytes(cp.signature).hex()}
    return json.dumps(item if name is None else {**item, "clinic": name})


def from_line(line: str) -> SimpleNamespace:
    """A checkpoint from its JSON line; raises Unreadable."""
    try:
        item = json.loads(line)
        return SimpleNamespace(clinic_id=uuid.UUID(item["clinic_id"]), position=int(item["position"]),
                               chain_hash=item["chain_hash"], signed_at=datetime.fromisoformat(item["signed_at"]),
                               public_key=item["public_key"], signature=bytes.fromhex(item["signature"]))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise Unreadable(str(exc)) from exc


def read_lines(lines, source: str = "the checkpoint file") -> dict[uuid.UUID, list[SimpleNamespace]]:
    """Checkpoints from JSON lines, by clinic; raises Unreadable naming the bad line."""
    found: dict[uuid.UUID, list[SimpleNamespace]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cp = from_line(line)
        except Unreadable as exc:
            raise Unreadable(f"line {number} of {source} is not a checkpoint: {exc}") from exc
        found.setdefault(cp.clinic_id, []).append(cp)
    return found


def _whole_lines(text: str) -> list[str]:
    """The complete lines: a last line without its newline is a write cut short, not a checkpoint."""
    return text.split("\n")[:-1]


def shipped(clinic_id: uuid.UUID) -> list[SimpleNamespace]:
    """Every checkpoint shipped for the clinic (none when nothing was); raises Unreadable or OSError."""
    path = log_path(clinic_id)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    found = read_lines(_whole_lines(text), f"the shipped checkpoints {path}")
    if set(found) - {clinic_id}:
        raise Unreadable(f"{path} holds checkpoints of another clinic")
    return found.get(clinic_id, [])


def last_shipped(clinic_id: uuid.UUID) -> SimpleNamespace | None:
    """The newest checkpoint shipped for the clinic, from the file's tail; None when none (or unreadable)."""
    try:
        with open(log_path(clinic_id), "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - TAIL_BYTES))
            lines = _whole_lines(fh.read().decode(errors="replace"))
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return from_line(line)
        except Unreadable:
            continue  # the first line of a tail cut mid-line
    return None


def _drop_torn_line(fd: int) -> None:
    """Cut a last line a crash left without its newline (never a whole line: those end in one)."""
    size = os.fstat(fd).st_size
    start = max(0, size - TAIL_BYTES)
    tail = os.pread(fd, size - start, start)
    if tail and not tail.endswith(b"\n"):
        os.ftruncate(fd, start + tail.rfind(b"\n") + 1)


def _append(path: Path, lines: list[str]) -> None:
    """Append whole lines in one write, and make them durable before returning."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        created = os.fstat(fd).st_size == 0
        _drop_torn_line(fd)
        os.write(fd, "".join(line + "\n" for line in lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new file's name must survive a crash too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def ship_new(db: Session, clinic_id: uuid.UUID, good) -> int:
    """Append the clinic's committed checkpoints beyond the last one shipped (a missed shipping is caught up
    by the next); `good(cp)` says whether a checkpoint's signature holds. Returns how many were shipped."""
    last = last_shipped(clinic_id)
    stmt = select(AuditCheckpoint).where(AuditCheckpoint.clinic_id == clinic_id).order_by(AuditCheckpoint.position)
    if last is not None:
        stmt = stmt.where(AuditCheckpoint.position > last.position)
    checkpoints = [cp for cp in db.scalars(stmt) if good(cp)]
    if checkpoints:
        _append(log_path(clinic_id), [to_line(cp) for cp in checkpoints])
        db.add(AuditShipment(clinic_id=clinic_id, position=checkpoints[-1].position, shipped_at=utcnow(),
                             count=len(checkpoints)))
        db.flush()
    return len(checkpoints)


def missing(db: Session, clinic_id: uuid.UUID, copies: list) -> str | None:
    """The problem when the file holds less than the database says was shipped (None when it holds all)."""
    recorded = db.execute(select(func.max(AuditShipment.position), func.max(AuditShipment.shipped_at))
                          .where(AuditShipment.clinic_id == clinic_id)).one()
    if recorded[0] is None or max((cp.position for cp in copies), default=0) >= recorded[0]:
        return None
    held = f"holds only up to position {max(cp.position for cp in copies)}" if copies else "is missing or empty"
    return (f"shipped checkpoints missing: the database records checkpoints shipped up to position {recorded[0]} "
            f"(last at {recorded[1]:%Y-%m-%d %H:%M} UTC), but {log_path(clinic_id)} {held}")
