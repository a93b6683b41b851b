"""The master key and the keyed primitives derived from it.

The master key lives outside the database (a file, 0600, or the MASTER_KEY variable), so a copy
of the database alone reveals no sealed value. Each use gets its own HKDF-derived key, so the key
that seals TOTP seeds is never the key that hashes e-mail addresses. Sealed values carry a version
byte and the master key's id, and associated data binds each to the row and column it belongs to.
"""

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

VERSION = 1


class DecryptionError(Exception):
    """A sealed value failed authentication: wrong key, wrong row or column, or altered."""


class MasterKey:
    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes (64 hex characters)")
        self._key = key
        self.key_id = hashlib.sha256(b"clinicdesk-key-id" + key).digest()[:4]
        self._derived: dict[str, bytes] = {}

    @classmethod
    def from_config(cls, config) -> "MasterKey":
        """Read the key from MASTER_KEY (hex) or the file at MASTER_KEY_FILE."""
        text = config.get("MASTER_KEY")
        if not text:
            path = Path(config["MASTER_KEY_FILE"])
            if not path.exists():
                raise RuntimeError(f"master key file {path} is missing: set MASTER_KEY_FILE or run `make run`")
            text = path.read_text()
        return cls(bytes.fromhex(text.strip()))

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose, derived with HKDF-SHA256."""
        if purpose not in self._derived:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
            self._derived[purpose] = hkdf.derive(self._key)
        return self._derived[purpose]

    def seal(self, purpose: str, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM: version | key id | nonce | ciphertext+tag."""
        nonce = os.urandom(12)
        header = bytes([VERSION]) + self.key_id
        return header + nonce + AESGCM(self.derive(purpose)).encrypt(nonce, plaintext, header + aad)

    def unseal(self, purpose: str, blob: bytes, aad: bytes) -> bytes:
        """Open a sealed value, or raise DecryptionError without saying why."""
        header, nonce, body = blob[:5], blob[5:17], blob[17:]
        if header[:1] != bytes([VERSION]) or header[1:] != self.key_id:
            raise DecryptionError("unknown key or version")
        try:
            return AESGCM(self.derive(purpose)).decrypt(nonce, body, header + aad)
        except Exception as exc:
            raise DecryptionError("authentication failed") from exc

    def keyed_hash(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of a value under the purpose's key, hex."""
        return hmac.new(self.derive(purpose), value.encode(), hashlib.sha256).hexdigest()


def master_key() -> MasterKey:
    """The app's master key, loaded once."""
    ext = current_app.extensions
    if "master_key" not in ext:
        ext["master_key"] = MasterKey.from_config(current_app.config)
    return ext["master_key"]
