"""Audit chain jobs: link every clinic's new audit events (every ~10 s) and sign each head (~5 min),
shipping each signed checkpoint off the database (app/audit/shipping.py).

Both visit every clinic from `clinic_registry`, set the tenant per clinic and commit per clinic, so
one clinic's failure never holds back another's. The timer (jobs/timer.py) enqueues them.
"""

import logging
import uuid

from sqlalchemy import select

from app.audit.chain import LATE_COMMIT_WINDOW, chain_pending, record_verification, ship, sign_checkpoint, verify
from app.clinics.models import ClinicRegistry
from app.db import get_session, set_tenant
from jobs.worker import in_app_context

log = logging.getLogger(__name__)

BATCH = 5000


def clinic_ids(db) -> list[uuid.UUID]:
    """Every clinic's id (the registry is outside row-level security)."""
    set_tenant(db, clinic_id=None, user_id=None)
    ids = list(db.scalars(select(ClinicRegistry.id).order_by(ClinicRegistry.id)))
    db.commit()
    return ids


def _each_clinic(step, after_commit=None) -> dict[str, int]:
    """Run `step(db, clinic_id)` per clinic in its own transaction, then `after_commit(db, clinic_id)`;
    returns {clinic id: step's result}."""
    db = get_session()
    done = {}
    for clinic_id in clinic_ids(db):
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        try:
            done[str(clinic_id)] = step(db, clinic_id)
            db.commit()
            if after_commit is not None:
                after_commit(db, clinic_id)
                db.commit()
        except Exception:
            db.rollback()
            log.exception("audit job failed for clinic %s", clinic_id)
    set_tenant(db, clinic_id=None, user_id=None)
    return done


def _chain_all(db, clinic_id, window=LATE_COMMIT_WINDOW) -> int:
    """Link the clinic's pending events; a backlog in batches, each committed."""
    total = 0
    while True:
        count = chain_pending(db, clinic_id, limit=BATCH, window=window)
        total += count
        if count < BATCH:
            return total
        db.commit()


@in_app_context
def chain_all_clinics() -> dict[str, int]:
    """Link committed, unlinked audit events of every clinic; returns {clinic id: events linked}."""
    linked = _each_clinic(_chain_all)
    if any(linked.values()):
        log.info("audit chain: linked %d events in %d clinics", sum(linked.values()),
                 sum(1 for n in linked.values() if n))
    return linked


@in_app_context
def sign_all_checkpoints() -> dict[str, int | None]:
    """Chain, then sign each clinic's head and ship it off the database once committed (a shipping that
    failed is caught up by the next run); returns {clinic id: signed position or None}."""
    def step(db, clinic_id):
        # No window here: an event dated long before the head (clock skew, a long transaction) is
        # linked at the latest by the next checkpoint, so deleting it later is caught.
        _chain_all(db, clinic_id, window=None)
        # Verify the whole trail before signing its head: a tampered chain is reported, not blessed.
        result = verify(db, clinic_id)
        record_verification(db, result)
        if not result.ok:
            log.error("audit trail of clinic %s failed verification: %s", clinic_id, result.problem)
            return None
        checkpoint = sign_checkpoint(db, clinic_id)
        return checkpoint.position if checkpoint else None
    return _each_clinic(step, after_commit=ship)
