"""Key rotation jobs: re-encrypt a clinic's rows under its active data key, then retire old keys.

`flask keys rotate` starts a rotation and enqueues `reencrypt_clinic`. The job commits after every
batch, so it can be stopped and run again (or run twice at once) without harm. Before retiring
an old key it waits out a grace period from the start of the rotation: a request that loaded the
clinic's keys just before the rotation may still write under the old key, and a last sweep moves it.
"""

import logging
import time
import uuid
from datetime import timedelta

from sqlalchemy import select

from app.db import get_session, set_tenant, utcnow
from app.security.fields import forget_keys
from app.security.models import ClinicKey
from app.security.rotation import GRACE_SECONDS, reencrypt_batch, remaining, retire_unused_keys
from jobs.worker import in_app_context

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# When rows remain but every one is locked by someone else (SKIP LOCKED), wait this long and retry.
LOCKED_RETRY_SECONDS = 0.5
LOCKED_RETRIES = 60


def _sweep(db, clinic: uuid.UUID, batch_size: int) -> int:
    """Re-encrypt batch after batch (a commit each) until nothing is left; returns rows done."""
    done, idle = 0, 0
    while True:
        forget_keys()  # a rotation started meanwhile is seen by the next batch
        count = reencrypt_batch(db, clinic, batch_size)
        db.commit()
        done += count
        if count:
            idle = 0
            continue
        left = remaining(db, clinic)
        db.commit()
        if not left or idle >= LOCKED_RETRIES:
            return done
        idle += 1
        time.sleep(LOCKED_RETRY_SECONDS)


def _wait_for_grace(db, clinic: uuid.UUID, grace_seconds: float) -> None:
    started = db.scalar(select(ClinicKey.created_at).where(ClinicKey.clinic_id == clinic,
                                                           ClinicKey.status == "active")
                        .order_by(ClinicKey.version.desc()).limit(1))
    db.commit()
    if started is not None:
        left = (started + timedelta(seconds=grace_seconds) - utcnow()).total_seconds()
        if left > 0:
            time.sleep(left)


@in_app_context
def reencrypt_clinic(clinic_id: str, grace_seconds: float = GRACE_SECONDS, batch_size: int = BATCH_SIZE) -> dict:
    """Move every row of the clinic to its active key, then retire keys no row uses; returns a summary."""
    clinic = uuid.UUID(clinic_id)
    db = get_session()
    set_tenant(db, clinic_id=clinic, user_id=None)
    done = _sweep(db, clinic, batch_size)
    _wait_for_grace(db, clinic, grace_seconds)
    done += _sweep(db, clinic, batch_size)
    retired = retire_unused_keys(db, clinic)
    db.commit()
    forget_keys()
    left = remaining(db, clinic)
    db.commit()
    log.info("key rotation: clinic=%s rows re-encrypted=%d retired versions=%s rows left=%d",
             clinic, done, retired, left)
    return {"reencrypted": done, "retired": retired, "remaining": left}
