"""The audit hash chain: linking committed events, signing the head, and verifying it all.

Requests only insert events. `chain_pending` (a background job, one chainer per clinic under an
advisory lock) links committed, unlinked events in seq order at consecutive positions:
chain_hash = HMAC(audit_key, prev_hash | event_id | event_mac), with 64 zeros before position 1.
`sign_checkpoint` signs the head with an Ed25519 key derived from the master key, and `ship` copies each
committed checkpoint off the database (app/audit/shipping.py), so a deleted tail shows against the last
checkpoint even when the checkpoints in the database were deleted with it.
`verify` only reads: it recomputes every MAC and link, checks every checkpoint (in the database,
shipped, and any exported copy given) and names the first entry that is wrong.
"""

import hashlib
import hmac
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import and_, exists, insert, select, text
from sqlalchemy.orm import Session

from app.audit import shipping
from app.audit.models import AuditChainLink, AuditCheckpoint, AuditEvent, AuditVerification
from app.audit.services import audit_key, canonical
from app.db import utcnow
from app.security.crypto import master_key

GENESIS = "0" * 64
SIGNING_PURPOSE = "audit-checkpoint-signing"
# An event whose transaction commits after later events were chained is still linked when its time
# is within this window of the head; anything older stays "not yet chained" and verify reports it.
LATE_COMMIT_WINDOW = timedelta(hours=1)
EVENT_COLUMNS = [c for c in AuditEvent.__table__.columns if c.name not in ("seq",)]


# --- Keys and hashes ----------------------------------------------------------------------------

def link_hash(clinic_id: uuid.UUID, prev_hash: str, event_id: uuid.UUID, mac: str) -> str:
    """The chain hash of one link: HMAC(audit key, prev_hash | event id | event MAC)."""
    message = f"{prev_hash}|{event_id}|{mac}".encode()
    return hmac.new(audit_key(clinic_id), message, hashlib.sha256).hexdigest()


def signing_key() -> Ed25519PrivateKey:
    """The checkpoint signing key, derived from the master key (never stored)."""
    return Ed25519PrivateKey.from_private_bytes(master_key().derive(SIGNING_PURPOSE))


def public_key_hex() -> str:
    """The hex public key that checkpoints must be signed with."""
    return signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def checkpoint_message(clinic_id, position: int, chain_hash: str, signed_at: datetime) -> bytes:
    """The bytes a checkpoint signature covers."""
    return f"clinicdesk-audit-checkpoint|{clinic_id}|{position}|{chain_hash}|{_utc(signed_at)}".encode()


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _lock(db: Session, clinic_id: uuid.UUID) -> None:
    key = int.from_bytes(hashlib.sha256(b"audit-chain|" + clinic_id.bytes).digest()[:8], "big", signed=True)
    db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# --- Chaining and signing -----------------------------------------------------------------------

def head(db: Session, clinic_id: uuid.UUID) -> AuditChainLink | None:
    """The clinic's last chain link, or None before the first."""
    return db.scalar(select(AuditChainLink).where(AuditChainLink.clinic_id == clinic_id)
                     .order_by(AuditChainLink.position.desc()).limit(1))


def _unlinked():
    return ~exists().where(AuditChainLink.clinic_id == AuditEvent.clinic_id,
                           AuditChainLink.event_id == AuditEvent.id)


def chain_pending(db: Session, clinic_id: uuid.UUID, limit: int = 5000,
                  window: timedelta | None = LATE_COMMIT_WINDOW) -> int:
    """Link up to `limit` committed, unlinked events of the clinic in seq order; returns how many."""
    _lock(db, clinic_id)  # taken first, so every read below sees the previous chainer's commit
    last = head(db, clinic_id)
    stmt = (select(AuditEvent.id, AuditEvent.mac).where(AuditEvent.clinic_id == clinic_id, _unlinked())
            .order_by(AuditEvent.seq).limit(limit))
    if last is not None and window is not None:
        head_at = db.scalar(select(AuditEvent.at).where(AuditEvent.clinic_id == clinic_id,
                                                        AuditEvent.id == last.event_id))
        if head_at is not None:
            stmt = stmt.where(AuditEvent.at >= head_at - window)
    events = db.execute(stmt).all()
    position, prev = (last.position, last.chain_hash) if last else (0, GENESIS)
    rows, now = [], utcnow()
    for event_id, mac in events:
        position += 1
        prev = link_hash(clinic_id, prev, event_id, mac)
        rows.append({"clinic_id": clinic_id, "position": position, "event_id": event_id, "chain_hash": prev,
                     "chained_at": now})
    if rows:
        db.execute(insert(AuditChainLink), rows)
        db.flush()
    return len(rows)


def sign_checkpoint(db: Session, clinic_id: uuid.UUID) -> AuditCheckpoint | None:
    """Sign the current chain head (nothing before the first link; the same head is signed once)."""
    _lock(db, clinic_id)
    last = head(db, clinic_id)
    if last is None:
        return None
    existing = db.get(AuditCheckpoint, (clinic_id, last.position))
    if existing is not None:
        return existing
    signed_at = utcnow()
    signature = signing_key().sign(checkpoint_message(clinic_id, last.position, last.chain_hash, signed_at))
    checkpoint = AuditCheckpoint(clinic_id=clinic_id, position=last.position, chain_hash=last.chain_hash,
                                 signed_at=signed_at, public_key=public_key_hex(), signature=signature)
    db.add(checkpoint)
    db.flush()
    return checkpoint


def ship(db: Session, clinic_id: uuid.UUID) -> int:
    """Copy the clinic's committed, well-signed checkpoints not yet shipped off the database; returns how many.
    Call after the commit that signed them: a checkpoint of a chain rolled back must never be kept."""
    _lock(db, clinic_id)  # one shipper per clinic at a time (the job and `flask audit checkpoint`)
    key = public_key_hex()
    return shipping.ship_new(db, clinic_id, lambda cp: checkpoint_problem(clinic_id, cp, key) is None)


# --- Verifying ----------------------------------------------------------------------------------

@dataclass
class VerifyResult:
    """What `verify` found: the first problem (None when intact) and counts."""

    clinic_id: uuid.UUID
    problem: str | None = None
    chained: int = 0
    unchained: int = 0
    checkpoints: int = 0
    shipped: int = 0
    last_checkpoint: AuditCheckpoint | None = None
    checked_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        """One line: OK with counts, or the problem."""
        if not self.ok:
            return f"PROBLEM: {self.problem}"
        signed = (f"last signed checkpoint at position {self.last_checkpoint.position} "
                  f"({self.shipped} checkpoints shipped off the database)"
                  if self.last_checkpoint else "no signed checkpoint yet")
        return (f"OK: {self.chained} events chained and intact, {signed}, "
                f"{self.unchained} events not yet chained")


def _event_view(values: dict) -> SimpleNamespace:
    """A detached, read-only copy of an event row with its time in UTC (as its MAC was made)."""
    values = dict(values)
    values["at"] = values["at"].astimezone(UTC)
    return SimpleNamespace(**values)


def _mac_ok(event: SimpleNamespace) -> bool:
    expected = hmac.new(audit_key(event.clinic_id), canonical(event), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, event.mac or "")


def _describe(event: SimpleNamespace) -> str:
    return f"event {event.id} ({event.action} at {_utc(event.at)})"


def checkpoint_problem(clinic_id: uuid.UUID, cp, expected_key: str) -> str | None:
    """Why a checkpoint's signature is not good, or None."""
    where = f"checkpoint at position {cp.position} (signed {_utc(cp.signed_at)})"
    if cp.public_key != expected_key:
        return f"bad checkpoint signature: {where} is signed by an unknown key {cp.public_key}"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp.public_key)).verify(
            bytes(cp.signature), checkpoint_message(clinic_id, cp.position, cp.chain_hash, cp.signed_at))
    except (InvalidSignature, ValueError):
        return f"bad checkpoint signature: {where} does not verify"
    return None


def _link_problem(clinic_id, link, event, prev_hash: str, expected_position: int, next_pair) -> str | None:
    """The problem at one chain position, or None."""
    if link.position != expected_position:
        missing = (f"position {expected_position}" if link.position == expected_position + 1
                   else f"positions {expected_position}-{link.position - 1}")
        return f"missing link: chain {missing} is missing (the chain jumps to position {link.position})"
    if event is None:
        return (f"missing event: chain position {link.position} links event {link.event_id}, "
                "which is no longer in the audit log (deleted)")
    if not _mac_ok(event):
        return f"altered event: {_describe(event)} at chain position {link.position} does not match its MAC"
    expected = link_hash(clinic_id, prev_hash, event.id, event.mac)
    if hmac.compare_digest(expected, link.chain_hash):
        return None
    return _hash_problem(clinic_id, link, event, expected, next_pair)


def _hash_problem(clinic_id, link, event, expected: str, next_pair) -> str:
    """Name a bad link: its own hash changed (the next link still fits), or it links another event (reordered)."""
    where = f"chain position {link.position} ({_describe(event)})"
    if next_pair is None:
        return f"chain link altered: {where} does not match its hash (the link was changed or the entry replaced)"
    next_link, next_event = next_pair
    if next_event is not None and next_link.position == link.position + 1 and hmac.compare_digest(
            link_hash(clinic_id, expected, next_event.id, next_event.mac), next_link.chain_hash):
        return f"chain link altered: the hash stored at {where} was changed"
    return (f"reordered: chain position {link.position} links {_describe(event)}, but the link was made for "
            "a different event (entries moved or swapped)")


def _walk(db: Session, clinic_id: uuid.UUID):
    """Chain links in position order, each with its event (None when the event is gone)."""
    stmt = (select(AuditChainLink, *EVENT_COLUMNS)
            .outerjoin(AuditEvent, and_(AuditEvent.clinic_id == AuditChainLink.clinic_id,
                                        AuditEvent.id == AuditChainLink.event_id))
            .where(AuditChainLink.clinic_id == clinic_id).order_by(AuditChainLink.position)
            .execution_options(yield_per=2000))
    with db.execute(stmt) as result:  # a server-side cursor: closed even when the walk stops early
        for row in result:
            values = {c.name: row._mapping[c] for c in EVENT_COLUMNS}
            yield row[0], (_event_view(values) if values["id"] is not None else None)


def verify(db: Session, clinic_id: uuid.UUID, external: list | None = None, *,
           use_shipped: bool = True) -> VerifyResult:
    """Recompute every MAC and link, check checkpoints (in the database, shipped unless told not to, and
    exported copies given); report the first problem."""
    result = VerifyResult(clinic_id)
    key = public_key_hex()
    checkpoints = list(db.scalars(select(AuditCheckpoint).where(AuditCheckpoint.clinic_id == clinic_id)
                                  .order_by(AuditCheckpoint.position, AuditCheckpoint.signed_at)))
    checkpoints += list(external or [])
    if use_shipped:
        try:
            copies = shipping.shipped(clinic_id)
        except (shipping.Unreadable, OSError) as exc:
            result.problem = f"shipped checkpoints unreadable: {exc}"
            return result
        result.shipped = len(copies)
        result.problem = shipping.missing(db, clinic_id, copies)
        if result.problem:
            return result
        checkpoints += copies
    checkpoints.sort(key=lambda c: c.position)
    result.checkpoints = len(checkpoints)
    result.last_checkpoint = checkpoints[-1] if checkpoints else None
    result.problem = _verify_chain(db, clinic_id, checkpoints, key, result)
    if result.problem is None:
        result.problem = _verify_unchained(db, clinic_id, result)
    return result


def _verify_chain(db: Session, clinic_id: uuid.UUID, checkpoints: list, key: str, result: VerifyResult) -> str | None:
    """Walk the chain (one link of look-ahead) and check checkpoints as their positions pass."""
    by_position: dict[int, list] = {}
    for cp in checkpoints:
        by_position.setdefault(cp.position, []).append(cp)
    prev_hash, expected_position = GENESIS, 1
    with closing(_walk(db, clinic_id)) as walk:
        current = next(walk, None)
        while current is not None:
            following = next(walk, None)
            link, event = current
            problem = _link_problem(clinic_id, link, event, prev_hash, expected_position, following)
            for cp in [] if problem else by_position.pop(link.position, []):
                problem = problem or checkpoint_problem(clinic_id, cp, key) or (
                    None if hmac.compare_digest(cp.chain_hash, link.chain_hash) else
                    f"rewritten chain: checkpoint at position {link.position} (signed {_utc(cp.signed_at)}) does "
                    f"not match the chain's hash there ({_describe(event)})")
            if problem:
                return problem
            prev_hash, expected_position = link.chain_hash, link.position + 1
            result.chained += 1
            current = following
    beyond = [cp for position in sorted(by_position) for cp in by_position[position]]
    problem = next(filter(None, (checkpoint_problem(clinic_id, cp, key) for cp in beyond)), None)
    if problem or not beyond:
        return problem
    last_position, cp = expected_position - 1, beyond[-1]  # the furthest checkpoint: how much is gone
    return (f"deleted tail: checkpoint at position {cp.position} (signed {_utc(cp.signed_at)}) is beyond the end "
            f"of the chain (last position {last_position}): entries {last_position + 1}-{cp.position} were deleted")


def _verify_unchained(db: Session, clinic_id: uuid.UUID, result: VerifyResult) -> str | None:
    """Check the MAC of each event not yet chained, and count them."""
    stmt = (select(*EVENT_COLUMNS).where(AuditEvent.clinic_id == clinic_id, _unlinked())
            .order_by(AuditEvent.seq).execution_options(yield_per=2000))
    with db.execute(stmt) as rows:
        for row in rows:
            event = _event_view(row._mapping)
            if not _mac_ok(event):
                return f"altered event: {_describe(event)} (not yet chained) does not match its MAC"
            result.unchained += 1
    return None


def record_verification(db: Session, result: VerifyResult, *, by: uuid.UUID | None = None) -> AuditVerification:
    """Keep a verification's outcome (append-only), for the auditor's page."""
    row = AuditVerification(clinic_id=result.clinic_id, checked_at=result.checked_at, ok=result.ok,
                            problem=(result.problem or None) and result.problem[:500], chained=result.chained,
                            unchained=result.unchained, checked_by=by,
                            checkpoint_position=result.last_checkpoint.position if result.last_checkpoint else None)
    db.add(row)
    db.flush()
    return row


def latest_verification(db: Session, clinic_id: uuid.UUID) -> AuditVerification | None:
    """The clinic's most recent stored verification, if any."""
    return db.scalar(select(AuditVerification).where(AuditVerification.clinic_id == clinic_id)
                     .order_by(AuditVerification.checked_at.desc()).limit(1))
