"""Field-level encryption and blind indexes with per-clinic data keys.

A clinic's data key (DEK, 256 bits) is stored wrapped by the key wrapper (the master key today,
a KMS tomorrow: anything with `wrap`/`unwrap`). From each DEK, HKDF derives one key for AES-256-GCM
field encryption and another for HMAC blind indexes, so the two uses never share a key.

Sealed value: version (1 byte) | key version (4 bytes) | nonce (12) | ciphertext+tag. The
associated data binds it to clinic, table, column and row: copied anywhere else it fails to open.
Blind-index tokens are HMAC-SHA256(index key, kind:value) truncated to 96 bits; the same value in two
clinics gives different tokens. While a key rotates, lookups compute tokens under every live key.
"""

import hashlib
import hmac
import logging
import os
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import g, has_app_context
from sqlalchemy import LargeBinary, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import MappedColumn, Session, mapped_column

from app.security.crypto import DecryptionError, master_key
from app.security.models import ClinicKey

log = logging.getLogger(__name__)
FORMAT = 1
TOKEN_BYTES = 12


class MasterKeyWrapper:
    """Wraps data keys with the master key (AES-256-GCM). A KMS client can take its place."""

    def wrap(self, dek: bytes, context: bytes) -> bytes:
        return master_key().seal("clinic-dek", dek, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        return master_key().unseal("clinic-dek", blob, context)


wrapper = MasterKeyWrapper()


def _context(clinic_id: uuid.UUID, version: int) -> bytes:
    return f"clinic_key|{clinic_id}|{version}".encode()


def _hkdf(dek: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(dek)


class _Version:
    def __init__(self, version: int, dek: bytes, status: str):
        self.version, self.status = version, status
        self.aead = AESGCM(_hkdf(dek, "clinicdesk field encryption v1"))
        self.index_key = _hkdf(dek, "clinicdesk blind index v1")


class Keyring:
    """A clinic's live data keys (active and decrypt_only), unwrapped for this request or job."""

    def __init__(self, clinic_id: uuid.UUID, versions: list[_Version]):
        self.clinic_id = clinic_id
        self.versions = {v.version: v for v in versions}
        self.active = max((v for v in versions if v.status == "active"), key=lambda v: v.version)

    def seal(self, table: str, column: str, row_id: uuid.UUID, value: str | None) -> bytes | None:
        """Encrypt a field value under the active key (None stays None)."""
        if value is None or value == "":
            return None
        header = bytes([FORMAT]) + self.active.version.to_bytes(4, "big")
        nonce = os.urandom(12)
        aad = header + self._aad(table, column, row_id)
        return header + nonce + self.active.aead.encrypt(nonce, value.encode(), aad)

    def open(self, table: str, column: str, row_id: uuid.UUID, blob: bytes | None) -> str | None:
        """Decrypt a field value; a value that fails is logged (no contents) and raises."""
        if blob is None:
            return None
        blob = bytes(blob)
        header, nonce, body = blob[:5], blob[5:17], blob[17:]
        version = self.versions.get(int.from_bytes(header[1:5], "big"))
        try:
            if header[0] != FORMAT or version is None:
                raise DecryptionError("unknown key version")
            return version.aead.decrypt(nonce, body, header + self._aad(table, column, row_id)).decode()
        except Exception as exc:
            log.warning("field decryption failed: clinic=%s %s.%s row=%s", self.clinic_id, table, column, row_id)
            raise DecryptionError("a protected value could not be read") from exc

    def _aad(self, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return f"|{self.clinic_id}|{table}|{column}|{row_id}".encode()

    def token(self, kind: str, value: str, version: int | None = None) -> str:
        """The blind-index token of a normalised value under one key version (default: active)."""
        key = (self.versions[version] if version else self.active).index_key
        return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).digest()[:TOKEN_BYTES].hex()

    def tokens_all(self, kind: str, value: str) -> dict[int, str]:
        """The token under every live key (for lookups while a rotation runs)."""
        return {v: self.token(kind, value, v) for v in self.versions}


def ensure_clinic_key(db: Session, clinic_id: uuid.UUID) -> None:
    """Give a clinic its first data key if it has none (safe under concurrency)."""
    exists = db.scalar(select(ClinicKey.version).where(ClinicKey.clinic_id == clinic_id).limit(1))
    if exists is None:
        dek = os.urandom(32)
        db.execute(insert(ClinicKey).values(
            clinic_id=clinic_id, version=1, wrapped_key=wrapper.wrap(dek, _context(clinic_id, 1)), status="active",
        ).on_conflict_do_nothing())
        db.flush()


def add_key_version(db: Session, clinic_id: uuid.UUID) -> int:
    """Start a rotation: a new active key; every other live key becomes decrypt_only."""
    current = db.scalar(select(ClinicKey.version).where(ClinicKey.clinic_id == clinic_id)
                        .order_by(ClinicKey.version.desc()).limit(1).with_for_update()) or 0
    for key in db.scalars(select(ClinicKey).where(ClinicKey.clinic_id == clinic_id, ClinicKey.status == "active")):
        key.status = "decrypt_only"
    version = current + 1
    db.add(ClinicKey(clinic_id=clinic_id, version=version, status="active",
                     wrapped_key=wrapper.wrap(os.urandom(32), _context(clinic_id, version))))
    db.flush()
    _cache().pop(clinic_id, None)
    return version


def keyring(db: Session, clinic_id: uuid.UUID) -> Keyring:
    """The clinic's keyring, unwrapped once per request or job."""
    cache = _cache()
    if clinic_id not in cache:
        ensure_clinic_key(db, clinic_id)
        rows = db.scalars(select(ClinicKey).where(ClinicKey.clinic_id == clinic_id,
                                                  ClinicKey.status != "retired")).all()
        cache[clinic_id] = Keyring(clinic_id, [_Version(r.version, _unwrap(clinic_id, r), r.status) for r in rows])
    return cache[clinic_id]


def _unwrap(clinic_id: uuid.UUID, row: ClinicKey) -> bytes:
    try:
        return wrapper.unwrap(row.wrapped_key, _context(clinic_id, row.version))
    except DecryptionError:
        log.warning("data key failed to unwrap: clinic=%s version=%s", clinic_id, row.version)
        raise


def forget_keys() -> None:
    """Drop cached keyrings (after a rotation step in a long-running job)."""
    _cache().clear()


_job_cache: dict = {}


def _cache() -> dict:
    if has_app_context():
        if "keyrings" not in g:
            g.keyrings = {}
        return g.keyrings
    return _job_cache


# How a sealed column's values are re-sealed when a clinic's key rotates (app/security/rotation.py).
ROWS = "rows"  # row by row, under the clinic's active key
PATIENT = "patient"  # with the patient, whose search tokens are rewritten at the same time
MASTER = "master"  # under the master key (staff secrets): no clinic's rotation touches it


def sealed(rotated: str = ROWS) -> MappedColumn:
    """A `*_enc` column of sealed values, declared so key rotation finds it in the metadata (`info["sealed"]`)."""
    return mapped_column(LargeBinary, info={"sealed": rotated})

