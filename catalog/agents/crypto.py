"""Fernet encryption of vendor API keys, and the portal's Ed25519 provenance key.

- Fernet key: settings.GOLDPATH_FERNET_KEY, or derived from SECRET_KEY (HKDF-SHA256) when unset.
- Ed25519 key: a PEM file at GOLDPATH["PROVENANCE_KEY_PATH"] (default GOLDPATH_HOME/keys/provenance-ed25519.pem),
  generated on first use (created exclusively, 0600, so two workers racing end with the same key).
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from ..conf import goldpath_settings


def fernet() -> Fernet:
    key = getattr(settings, "GOLDPATH_FERNET_KEY", "") or ""
    if not key:
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"goldpath-fernet", info=b"vendor-api-keys").derive(
            settings.SECRET_KEY.encode()
        )
        key = base64.urlsafe_b64encode(raw).decode()
    return Fernet(key.encode() if isinstance(key, str) else key)


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the vendor API key cannot be decrypted (was GOLDPATH_FERNET_KEY changed?)") from exc


def provenance_key_path() -> Path:
    configured = goldpath_settings.PROVENANCE_KEY_PATH
    return Path(configured) if configured else Path(settings.GOLDPATH_HOME) / "keys" / "provenance-ed25519.pem"


@lru_cache(maxsize=4)
def _load_key(path: str) -> Ed25519PrivateKey:
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{p} is not an Ed25519 private key")
    return key


def signing_key() -> Ed25519PrivateKey:
    return _load_key(str(provenance_key_path()))


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def public_key_raw() -> bytes:
    return public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem() -> str:
    return (
        public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    )


def key_id() -> str:
    return hashlib.sha256(public_key_raw()).hexdigest()


def sign(data: bytes) -> str:
    return base64.b64encode(signing_key().sign(data)).decode()


def verify(data: bytes, signature_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key().verify(base64.b64decode(signature_b64), data)
    except (InvalidSignature, ValueError):
        return False
    return True
