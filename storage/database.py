"""`Database`: one open database, its repositories, and its upkeep.

    db = await Database.open("sqlite+aiosqlite:///data/flowloom.db", data_dir=Path("data"))
    flow = await db.flows.create(document)
    ...
    await db.close()

Opening migrates the schema first (see `storage.migrations`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from storage import migrations
from storage.credentials import CredentialStore
from storage.encryption import SecretKey, given_key, key_from_file
from storage.engines import DatabaseEngines, database_url, describe, sqlite_file
from storage.flows import FlowRepository
from storage.memory import ConversationStore
from storage.migrations import MigrationResult
from storage.records import StorageError
from storage.retention import prune
from storage.runs import RunRepository
from storage.runtimes import RuntimeRepository
from storage.stats import StatsRepository
from storage.subscriptions import SubscriptionRepository
from storage.triggers import TriggerRepository

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024


class Database:
    """An open FlowLoom database. Make one with `await Database.open(url)`."""

    def __init__(
        self,
        engines: DatabaseEngines,
        key: SecretKey | None,
        *,
        max_payload_bytes: int,
        migration: MigrationResult,
    ) -> None:
        self._engines = engines
        self.migration = migration
        """What opening did to the schema (`before`, `after`, `backup`)."""
        self.flows = FlowRepository(engines)
        self.runs = RunRepository(engines, max_payload_bytes=max_payload_bytes)
        self.runtimes = RuntimeRepository(engines)
        self.credentials = CredentialStore(engines, key)
        self.triggers = TriggerRepository(engines)
        self.memory = ConversationStore(engines)
        self.stats = StatsRepository(engines)
        self.subscriptions = SubscriptionRepository(engines, self.credentials)

    @classmethod
    async def open(
        cls,
        url: str | URL,
        *,
        data_dir: Path | None = None,
        secret_key: str | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> Database:
        """Open the database at `url`, migrating its schema to the current one first.

        `secret_key` (a Fernet key or any passphrase) encrypts credentials; without it the
        key is kept in `data_dir/secret.key` (for SQLite, `data_dir` defaults to the database
        file's folder). Raises StorageError when the database cannot be reached.
        """
        address = database_url(url)
        migration = await migrations.upgrade(address)  # creates an SQLite file's folder too

        if secret_key:
            key: SecretKey | None = given_key(secret_key)
        else:
            database_file = sqlite_file(address)
            key_dir = data_dir or (database_file.parent if database_file else None)
            key = await asyncio.to_thread(key_from_file, key_dir) if key_dir else None

        engines = DatabaseEngines(address)
        database = cls(engines, key, max_payload_bytes=max_payload_bytes, migration=migration)
        try:
            await database.credentials.settle_interrupted_rotation()
        except BaseException:
            await engines.dispose()
            raise
        engines.start()
        return database

    @property
    def dialect(self) -> str:
        """Which database this is: "sqlite" or "postgresql"."""
        return self._engines.dialect

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return describe(self._engines.url)

    async def close(self) -> None:
        """Close every connection. The Database cannot be used afterwards."""
        await self._engines.dispose()

    async def ping(self) -> None:
        """Check that the database answers; StorageError if it does not."""
        try:
            async with self._engines.reader.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (OSError, SQLAlchemyError) as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StorageError(f"The database at {self.url} does not answer: {reason}") from exc

    async def schema_is_current(self) -> bool:
        """Whether every migration this FlowLoom ships has been applied to the database."""
        async with self._engines.reader.connect() as connection:
            revision = await connection.run_sync(migrations.revision_of)
        return revision == migrations.head_revision()

    async def prune(
        self,
        *,
        days: int = 30,
        max_runs_per_flow: int = 1000,
        now: datetime | None = None,
    ) -> dict[str, int]:
        """Delete finished runs older than `days` or beyond the newest `max_runs_per_flow` of
        their flow (a flow's `retention` overrides both), then compact the database.

        Returns {"runs_deleted", "steps_deleted", "bytes_before", "bytes_after"}.
        """
        return await prune(self._engines, days=days, max_runs_per_flow=max_runs_per_flow, now=now)
