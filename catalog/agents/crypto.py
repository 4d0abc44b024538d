"""Fernet encryption of vendor API keys, and the portal's Ed25519 provenance key.

- Fernet key: settings.GOLDPATH_FERNET_KEY, or GOLDPATH_HOME/keys/fernet.key generated once (0600, created
  exclusively) when unset. Values written by older versions were encrypted with a key derived from
  SECRET_KEY (HKDF-SHA256; by default the demo constant): they still decrypt (MultiFernet), and
  migration 0012 re-encrypts them with the current key.
- Ed25519 key: a PEM file at GOLDPATH["PROVENANCE_KEY_PATH"] (default GOLDPATH_HOME/keys/provenance-ed25519.pem),
  generated on first use (created exclusively, 0600, so two workers racing end with the same key).
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from ..conf import goldpath_home, goldpath_settings
from ..homefiles import read_or_create_secret

# The SECRET_KEY every laptop install had before keys were generated: decrypt-only, for old values.
LEGACY_DEMO_SECRET_KEY = "goldpath-insecure-development-key-change-me-0123456789abcdef"


def fernet_key_path() -> Path:
    return goldpath_home() / "keys" / "fernet.key"


def current_key() -> bytes:
    key = goldpath_settings.FERNET_KEY or os.environ.get("GOLDPATH_FERNET_KEY", "")
    if key:
        return key.encode() if isinstance(key, str) else key
    return read_or_create_secret(fernet_key_path(), Fernet.generate_key)


def legacy_key(secret_key: str) -> bytes:
    """The Fernet key older versions derived from SECRET_KEY when GOLDPATH_FERNET_KEY was unset."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"goldpath-fernet", info=b"vendor-api-keys").derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


def fernet() -> MultiFernet:
    """Encrypts with the current key; decrypts with it or a legacy SECRET_KEY-derived key."""
    keys = [current_key()]
    for secret in (settings.SECRET_KEY, LEGACY_DEMO_SECRET_KEY):
        legacy = legacy_key(secret)
        if legacy not in keys:
            keys.append(legacy)
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "the stored secret cannot be decrypted: was GOLDPATH_FERNET_KEY changed, or is it unset on one machine "
            "(each machine then generates its own GOLDPATH_HOME/keys/fernet.key)?"
        ) from exc


def reencrypt(token: str) -> str:
    """`token` encrypted with the current key (ValueError when no known key decrypts it)."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the value cannot be decrypted with the current or a legacy key") from exc


def provenance_key_path() -> Path:
    configured = goldpath_settings.PROVENANCE_KEY_PATH
    return Path(configured) if configured else goldpath_home() / "keys" / "provenance-ed25519.pem"


@lru_cache(maxsize=4)
def _load_key(path: str) -> Ed25519PrivateKey:
    p = Path(path)

    def generate() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    # published whole and exclusively: a process racing this one never reads a half-written file
    key = serialization.load_pem_private_key(read_or_create_secret(p, generate), password=None)
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
    try:
        public_key().verify(base64.b64decode(signature_b64), data)
    except (InvalidSignature, ValueError):
        return False
    return True
