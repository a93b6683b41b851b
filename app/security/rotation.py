"""Rotating a clinic's data key: a new active key, re-encryption in batches, then retiring the old one.

`start_rotation` adds a key version; from then on every write seals under it while reads still open
values under the older, decrypt_only versions. `reencrypt_batch` moves rows to the active key a
batch at a time (`FOR UPDATE SKIP LOCKED`, so several workers, a second run or live edits never
collide) and `retire_unused_keys` retires an old version once no row uses it. A row with nothing
sealed moves too (only its `key_version`): afterwards no row names a retired key, so a compliance
query on the column finds none. Each function
flushes and leaves the commit to its caller; all need the session's tenant set to the clinic.
"""

import uuid
from collections import Counter
from functools import cache

from flask import current_app
from rq.job import Job
from sqlalchemy import and_, exists, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

import app.schema  # noqa: F401 (every model mapped before the sealed columns are looked for)
from app.db import Base, utcnow
from app.patients.models import Patient, PatientHistory, PatientToken
from app.patients.services import open_patient, seal_into, write_tokens
from app.queue import enqueue, queue, redis_connection
from app.security.fields import ROWS, add_key_version, keyring
from app.security.models import ClinicKey

REENCRYPT_JOB = "jobs.keys.reencrypt_clinic"
GRACE_SECONDS = 30  # before retiring an old key: a request that loaded the keys just before may still write
JOB_TIMEOUT = 6 * 3600


def start_rotation(db: Session, clinic_id: uuid.UUID) -> int:
    """Add a new active key version for the clinic (the old one becomes decrypt_only); returns it."""
    return add_key_version(db, clinic_id)


def enqueue_reencrypt(clinic_id: uuid.UUID, grace_seconds: float = GRACE_SECONDS) -> Job:
    """Queue the re-encryption job (jobs/keys.py) for a clinic whose rotation has committed."""
    connection = redis_connection(current_app.config["REDIS_URL"])
    return enqueue(queue(connection), REENCRYPT_JOB, str(clinic_id), grace_seconds, job_timeout=JOB_TIMEOUT,
                   description=f"re-encrypt clinic {clinic_id}")


def _sealed_under(column):
    """The key version in a sealed value's header (bytes 2-5), as 4 bytes."""
    return func.substring(column, 2, 4)


def _version_bytes(version: int) -> bytes:
    """A key version as it appears in a sealed header."""
    return version.to_bytes(4, "big")


def _stale_patients(clinic_id: uuid.UUID, active: int):
    """Patients whose fields (by column or sealed header) or search tokens are not all under the active key."""
    # The header is checked besides `key_version`: a write from stale ORM state can leave that column
    # unchanged while the fields were sealed under an older key.
    stale_token = exists().where(PatientToken.clinic_id == Patient.clinic_id, PatientToken.patient_id == Patient.id,
                                 PatientToken.key_version != active)
    return select(Patient).where(Patient.clinic_id == clinic_id, or_(
        Patient.key_version != active, _sealed_under(Patient.full_name_enc) != _version_bytes(active), stale_token))


@cache
def sealed_tables() -> list[tuple[type, str, list[tuple[str, str]]]]:
    """Every model besides patients with values sealed under the clinic's key, found in the metadata (columns
    declared `sealed()`): (model, table, [(attribute, column as sealed)]), by table name. Each such row has a
    `key_version` naming the key its values are sealed under."""
    found = []
    for mapper in Base.registry.mappers:
        attrs = [(prop.key, prop.columns[0].name.removesuffix("_enc")) for prop in mapper.column_attrs
                 if prop.columns[0].info.get("sealed") == ROWS]
        if attrs:
            found.append((mapper.class_, mapper.local_table.name, attrs))
    return sorted(found, key=lambda entry: entry[1])


def _stale_rows(model, attrs, clinic_id: uuid.UUID, active: int):
    """Rows holding a sealed value, with a value not under the active key or the row naming another key."""
    columns = [getattr(model, attr) for attr, _ in attrs]
    stale = [and_(c.is_not(None), _sealed_under(c) != _version_bytes(active)) for c in columns]
    return select(model).where(model.clinic_id == clinic_id, or_(*[c.is_not(None) for c in columns]),
                               or_(*stale, model.key_version != active))


def _unsealed_rows(model, attrs, clinic_id: uuid.UUID, active: int):
    """Rows with nothing sealed (most appointments and their history) that still name another key."""
    empty = [getattr(model, attr).is_(None) for attr, _ in attrs]
    return select(model).where(model.clinic_id == clinic_id, model.key_version != active, *empty)


def _move_unsealed(db: Session, model, attrs, clinic_id: uuid.UUID, active: int, batch_size: int) -> int:
    """Point up to `batch_size` rows with nothing sealed at the active key (nothing else changes)."""
    key = list(model.__table__.primary_key.columns)
    chosen = (_unsealed_rows(model, attrs, clinic_id, active).with_only_columns(*key).order_by(*key)
              .limit(batch_size).with_for_update(skip_locked=True))
    moved = db.execute(update(model).where(tuple_(*key).in_(chosen)).values(key_version=active)
                       .execution_options(synchronize_session=False))
    return moved.rowcount


def _reseal_rows(db: Session, ring, clinic_id: uuid.UUID, batch_size: int) -> int:
    """Re-seal up to `batch_size` rows of each sealed table under the active key (and move as many
    rows with nothing sealed)."""
    active, count = ring.active.version, 0
    for model, table, attrs in sealed_tables():
        key = model.__table__.primary_key.columns
        rows = db.scalars(_stale_rows(model, attrs, clinic_id, active).order_by(*key).limit(batch_size)
                          .with_for_update(skip_locked=True).execution_options(populate_existing=True)).all()
        for row in rows:
            for attr, column in attrs:
                value = ring.open(table, column, row.id, getattr(row, attr))
                setattr(row, attr, ring.seal(table, column, row.id, value))
            row.key_version = active
        count += len(rows) + _move_unsealed(db, model, attrs, clinic_id, active, batch_size)
    return count


def reencrypt_batch(db: Session, clinic_id: uuid.UUID, batch_size: int = 200) -> int:
    """Re-seal up to `batch_size` patients and rows of each sealed table not on the active key; returns how many."""
    ring = keyring(db, clinic_id)
    active = ring.active.version
    # populate_existing: the rows as locked now, never a copy the session loaded before someone's write.
    patients = db.scalars(_stale_patients(clinic_id, active).order_by(Patient.id).limit(batch_size)
                          .with_for_update(skip_locked=True, of=Patient)
                          .execution_options(populate_existing=True)).all()
    for patient in patients:
        data = open_patient(db, patient)
        seal_into(ring, patient, data)
        db.flush()
        write_tokens(db, ring, patient, data)
    others = _reseal_rows(db, ring, clinic_id, batch_size)
    db.flush()
    return len(patients) + others


def remaining(db: Session, clinic_id: uuid.UUID) -> int:
    """How many patients and other sealed rows are not yet on the active key."""
    active = keyring(db, clinic_id).active.version
    patients = db.scalar(select(func.count()).select_from(_stale_patients(clinic_id, active).subquery()))
    stale = [query(m, a, clinic_id, active) for m, _, a in sealed_tables() for query in (_stale_rows, _unsealed_rows)]
    return patients + sum(db.scalar(select(func.count()).select_from(q.subquery())) for q in stale)


def _in_use(db: Session, clinic_id: uuid.UUID, version: int) -> bool:
    """Whether any row of the clinic names the key version, in its column or its sealed header."""
    sealed = _version_bytes(version)
    checks = [
        (Patient, or_(Patient.key_version == version, _sealed_under(Patient.full_name_enc) == sealed)),
        (PatientToken, PatientToken.key_version == version),
    ] + [(model, or_(model.key_version == version, *[_sealed_under(getattr(model, a)) == sealed for a, _ in attrs]))
         for model, _, attrs in sealed_tables()]
    return any(db.scalar(select(exists().where(model.clinic_id == clinic_id, check))) for model, check in checks)


def retire_unused_keys(db: Session, clinic_id: uuid.UUID) -> list[int]:
    """Retire every decrypt_only key that no row uses or names; returns their versions."""
    keys = db.scalars(select(ClinicKey).where(ClinicKey.clinic_id == clinic_id, ClinicKey.status == "decrypt_only")
                      .order_by(ClinicKey.version).with_for_update()).all()
    retired = []
    for key in keys:
        if not _in_use(db, clinic_id, key.version):
            key.status, key.retired_at = "retired", utcnow()
            retired.append(key.version)
    db.flush()
    return retired


def rotation_status(db: Session, clinic_id: uuid.UUID) -> list[dict]:
    """Each key version of the clinic with its status and how many patient, token, history and other
    rows (every other table with sealed values) name it."""
    def counts(model) -> Counter:
        return Counter(dict(db.execute(select(model.key_version, func.count()).where(model.clinic_id == clinic_id)
                                       .group_by(model.key_version)).all()))

    patients, tokens, entries = counts(Patient), counts(PatientToken), counts(PatientHistory)
    others = sum((counts(model) for model, _, _ in sealed_tables() if model is not PatientHistory), Counter())
    keys = db.scalars(select(ClinicKey).where(ClinicKey.clinic_id == clinic_id).order_by(ClinicKey.version)).all()
    return [{"version": k.version, "status": k.status, "created_at": k.created_at, "retired_at": k.retired_at,
             "patients": patients[k.version], "tokens": tokens[k.version], "history": entries[k.version],
             "other": others[k.version]} for k in keys]
