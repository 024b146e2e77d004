"""The key that encrypts credentials at rest (Fernet: AES-128-CBC with an HMAC-SHA256 tag).

Where the key comes from, in order:

1. the `secret_key` given to `Database.open` (FLOWLOOM_SECRET_KEY): a Fernet key as made by
   `Fernet.generate_key()`, or any passphrase, from which a key is derived with HKDF-SHA256;
2. else `<data_dir>/secret.key`, generated on first use and readable by its owner only.

Rotating a key that lives in the file writes the new key to `secret.key.next` first, then
re-encrypts every credential in one transaction, then renames the file over `secret.key`.
If the process dies in between, the next start finds `secret.key.next` and settles on
whichever key the stored credentials are encrypted with (`CredentialStore.open`).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.records import StorageError

KEY_FILE_NAME = "secret.key"
NEXT_KEY_FILE_NAME = "secret.key.next"
_HKDF_SALT = b"flowloom credentials"
_HKDF_INFO = b"flowloom/1 fernet key"


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A Fernet key, and the file it is kept in when it was not given by the caller."""

    fernet: Fernet
    file: Path | None = None


def fernet_key(secret: str) -> bytes:
    """`secret` itself when it is a Fernet key, else a Fernet key derived from it."""
    candidate = secret.strip().encode("ascii", errors="ignore")
    try:
        if len(base64.urlsafe_b64decode(candidate)) == 32 and len(candidate) == 44:
            return candidate
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(derived)


def given_key(secret: str) -> SecretKey:
    """The key from a passphrase or Fernet key the caller holds (not kept in a file)."""
    return SecretKey(Fernet(fernet_key(secret)))


def key_from_file(data_dir: Path) -> SecretKey:
    """The key in `<data_dir>/secret.key`, generated (mode 0600) when there is none."""
    path = data_dir / KEY_FILE_NAME
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        if not write_key_file(path, key, replace=False):
            key = path.read_bytes().strip()  # another process made it first: use theirs
    try:
        return SecretKey(Fernet(key), path)
    except ValueError:
        raise StorageError(
            f"{path} does not hold a valid key. Restore it from a backup (credentials saved "
            "with it cannot be decrypted otherwise), or delete it to start with a new key."
        ) from None


def write_key_file(path: Path, key: bytes, *, replace: bool) -> bool:
    """Write `key` to `path` atomically, readable and writable by the owner only.

    Without `replace`, an existing file is kept and False returned.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(descriptor, key + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if replace:
        os.replace(temporary, path)
        return True
    try:
        os.link(temporary, path)  # fails if the file exists, unlike a rename
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True


def new_secret_key() -> str:
    """A new random Fernet key, as text."""
    return Fernet.generate_key().decode("ascii")
