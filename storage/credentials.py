"""Credentials: named secrets, encrypted at rest, described to the API without their values.

`get_credential` is the engine's `CredentialProvider`: the only way the decrypted fields
leave storage. Nothing here logs a value or puts one in an error message.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select, update

from storage.encryption import (
    NEXT_KEY_FILE_NAME,
    SecretKey,
    fernet_key,
    write_key_file,
)
from storage.engines import DatabaseEngines
from storage.models import Credential, Subscription, utc_now
from storage.records import CredentialInfo, NotFound, StorageError
from storage.upsert import upsert


class CredentialStore:
    """`db.credentials`: put, describe, delete and decrypt credentials; rotate the key."""

    def __init__(self, engines: DatabaseEngines, key: SecretKey | None) -> None:
        self._engines = engines
        self._key = key

    async def put(self, name: str, type: str, data: Mapping[str, str]) -> CredentialInfo:
        """Create the credential, or replace its type and fields if it exists."""
        if not name or not name.strip():
            raise ValueError("a credential needs a name")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ValueError(f"the fields of credential '{name}' must all be text")
        fernet = self._fernet()
        secret = fernet.encrypt(json.dumps(dict(data)).encode("utf-8")).decode("ascii")
        now = utc_now()
        row = {
            "name": name,
            "type": type,
            "fields": sorted(data),
            "secret": secret,
            "created_at": now,
            "updated_at": now,
        }
        statement = upsert(
            self._engines.dialect,
            Credential,
            keys=("name",),
            update=("type", "fields", "secret", "updated_at"),
        )
        async with self._engines.writing() as session:
            await session.execute(statement, row)
            stored = await session.get(Credential, name, populate_existing=True)
            assert stored is not None
            return _info(stored)

    async def list(self) -> builtins.list[CredentialInfo]:
        """Every credential, by name, without secrets."""
        async with self._engines.reading() as session:
            credentials = await session.scalars(select(Credential).order_by(Credential.name))
            return [_info(credential) for credential in credentials]

    async def info(self, name: str) -> CredentialInfo:
        """The credential without its secrets; NotFound."""
        async with self._engines.reading() as session:
            credential = await session.get(Credential, name)
        if credential is None:
            raise _not_found(name)
        return _info(credential)

    async def delete(self, name: str) -> None:
        """Delete the credential; NotFound."""
        async with self._engines.writing() as session:
            result = await session.execute(delete(Credential).where(Credential.name == name))
        if not getattr(result, "rowcount", 0):
            raise _not_found(name)

    async def get_credential(self, name: str) -> dict[str, str]:
        """The credential's decrypted fields; KeyError if there is none (the engine's
        `CredentialProvider`)."""
        async with self._engines.reading() as session:
            secret = await session.scalar(select(Credential.secret).where(Credential.name == name))
        if secret is None:
            raise KeyError(name)
        try:
            decrypted = self._fernet().decrypt(secret.encode("ascii"))
        except InvalidToken:
            raise StorageError(
                f"Credential '{name}' cannot be decrypted with the current secret key: "
                "FLOWLOOM_SECRET_KEY (or the data dir's secret.key) changed since it was "
                "saved. Restore the old key, or enter the credential again."
            ) from None
        fields: dict[str, str] = json.loads(decrypted)
        return fields

    def seal(self, text: str) -> str:
        """`text` encrypted with the credentials' key (subscription secrets use it too)."""
        return self._fernet().encrypt(text.encode("utf-8")).decode("ascii")

    def unseal(self, token: str) -> str:
        """What `seal` encrypted; StorageError if the key changed since."""
        try:
            return self._fernet().decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise StorageError(
                "A stored secret cannot be decrypted with the current secret key: "
                "FLOWLOOM_SECRET_KEY (or the data dir's secret.key) changed since it was saved."
            ) from None

    async def rotate_key(self, new_key: str) -> int:
        """Re-encrypt every credential with `new_key` (a Fernet key or a passphrase), in one
        transaction; returns how many. When the current key lives in the data dir's
        secret.key, the file then holds the new key; otherwise the caller must give the new
        key from now on (FLOWLOOM_SECRET_KEY)."""
        old = self._fernet()
        new_bytes = fernet_key(new_key)
        new = Fernet(new_bytes)
        key_file = self._key.file if self._key else None
        pending = key_file.with_name(NEXT_KEY_FILE_NAME) if key_file else None
        if pending is not None:
            await asyncio.to_thread(write_key_file, pending, new_bytes, replace=True)
        try:
            async with self._engines.writing() as session:
                rows = (await session.execute(select(Credential.name, Credential.secret))).all()
                for name, secret in rows:
                    try:
                        plain = old.decrypt(secret.encode("ascii"))
                    except InvalidToken:
                        raise StorageError(
                            f"Credential '{name}' cannot be decrypted with the current key, "
                            "so the key was not rotated. Enter it again or delete it first."
                        ) from None
                    await session.execute(
                        update(Credential)
                        .where(Credential.name == name)
                        .values(secret=new.encrypt(plain).decode("ascii"))
                    )
                # Subscription secrets are sealed with the same key.
                sealed = await session.execute(
                    select(Subscription.id, Subscription.secret).where(
                        Subscription.secret.is_not(None)
                    )
                )
                for subscription_id, token in sealed.all():
                    if token is None:
                        continue
                    try:
                        plain = old.decrypt(token.encode("ascii"))
                    except InvalidToken:
                        continue  # already unreadable; re-encrypting cannot help it
                    await session.execute(
                        update(Subscription)
                        .where(Subscription.id == subscription_id)
                        .values(secret=new.encrypt(plain).decode("ascii"))
                    )
        except BaseException:
            if pending is not None:
                pending.unlink(missing_ok=True)
            raise
        if key_file is not None and pending is not None:
            await asyncio.to_thread(pending.replace, key_file)
        self._key = SecretKey(new, key_file)
        return len(rows)

    async def settle_interrupted_rotation(self) -> None:
        """Finish or undo a `rotate_key` the process died in (see storage/encryption.py)."""
        if self._key is None or self._key.file is None:
            return
        key_file = self._key.file
        pending = key_file.with_name(NEXT_KEY_FILE_NAME)
        if not await asyncio.to_thread(pending.exists):
            return
        new_bytes = await asyncio.to_thread(_read_key, pending)
        async with self._engines.reading() as session:
            sample = await session.scalar(select(Credential.secret).limit(1))
        try:
            if sample is not None:
                Fernet(new_bytes).decrypt(sample.encode("ascii"))
        except InvalidToken:  # the re-encryption never committed: the old key stays
            await asyncio.to_thread(pending.unlink)
            return
        await asyncio.to_thread(pending.replace, key_file)
        self._key = SecretKey(Fernet(new_bytes), key_file)

    def _fernet(self) -> Fernet:
        if self._key is None:
            raise StorageError(
                "Credentials cannot be stored without a secret key: set FLOWLOOM_SECRET_KEY, "
                "or give FlowLoom a data directory to keep a generated key in."
            )
        return self._key.fernet


def _read_key(path: Path) -> bytes:
    return path.read_bytes().strip()


def _info(credential: Credential) -> CredentialInfo:
    return CredentialInfo(
        name=credential.name,
        type=credential.type,
        fields=list(credential.fields),
        created_at=credential.created_at,
        updated_at=credential.updated_at,
    )


def _not_found(name: str) -> NotFound:
    return NotFound(f"There is no credential named '{name}'.")
