"""Bring a database's schema to the version this FlowLoom expects (alembic, run in-process).

    result = await upgrade("sqlite+aiosqlite:///data/flowloom.db")
    result.before, result.after, result.backup   # None, "0001", None for a new database

Before migrating an SQLite file that already holds tables, a consistent copy of it is kept
next to it as `<name>.before-<revision>.bak` (`base` when it has no revision yet), so an
upgrade that goes wrong can be undone by putting the copy back. Nothing is copied when the
schema is already current. On PostgreSQL an advisory lock keeps two processes starting at
once from migrating together; on SQLite `BEGIN IMMEDIATE` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engines import create_migration_engine, database_url, describe, sqlite_file
from storage.records import StorageError

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

SCRIPT_LOCATION = Path(__file__).resolve().parent
# Any fixed number: the key of the PostgreSQL advisory lock held while migrating.
_POSTGRES_MIGRATION_LOCK = 0x466C6F774C6F6F6D


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """The schema revision before and after; `backup` is the SQLite copy made, if any."""

    before: str | None
    after: str | None
    backup: Path | None = None

    @property
    def migrated(self) -> bool:
        return self.before != self.after


# alembic (with mako and pygments) takes a good part of FlowLoom's start-up to import, and
# is only needed when a migration runs: the current and newest revisions are read without it.
_REVISION_LINE = re.compile(r"""^(down_revision|revision)\s*=\s*['"]?([\w-]+)['"]?""", re.M)


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(SCRIPT_LOCATION))


@lru_cache(maxsize=4)
def _head_of(location: Path) -> str:
    revisions, parents = set(), set()
    for path in (location / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
            parents.add(found.get("down_revision"))
    heads = revisions - parents
    assert len(heads) == 1, f"storage/migrations/versions has heads {sorted(heads)}, not one"
    return heads.pop()


def head_revision() -> str:
    """The newest revision: what `upgrade` brings a database to (read from the revision
    files' `revision` and `down_revision` lines, as alembic would find it)."""
    return _head_of(SCRIPT_LOCATION)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


async def upgrade(url: str | URL, revision: str = "head") -> MigrationResult:
    """Migrate the database at `url` up to `revision`; raises StorageError if it cannot."""
    return await _migrate(database_url(url), "upgrade", revision)


async def downgrade(url: str | URL, revision: str) -> MigrationResult:
    """Migrate the database at `url` down to `revision` (`base` drops every table)."""
    return await _migrate(database_url(url), "downgrade", revision)


async def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at; None for an empty database."""
    address = database_url(url)
    engine = create_migration_engine(address)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(revision_of)
    except (OSError, SQLAlchemyError) as exc:
        raise _unreachable(address, exc) from exc
    finally:
        await engine.dispose()


async def _migrate(url: URL, direction: str, revision: str) -> MigrationResult:
    target: str | None = head_revision() if revision == "head" else revision
    if target == "base":
        target = None
    database_file = sqlite_file(url)
    if database_file is not None:
        await asyncio.to_thread(database_file.parent.mkdir, parents=True, exist_ok=True)
    engine = create_migration_engine(url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await _lock_for_migration(connection)
            before, has_tables = await connection.run_sync(_state_of)
            await connection.rollback()
            if before == target:
                return MigrationResult(before, before)

            backup = None
            if database_file is not None and has_tables:
                backup = await asyncio.to_thread(_copy_aside, database_file, before)

            await connection.run_sync(_run_alembic, direction, revision)
            await connection.commit()
            after = await connection.run_sync(revision_of)
            await connection.rollback()
            return MigrationResult(before, after, backup)
    except (OSError, SQLAlchemyError) as exc:
        raise _unreachable(url, exc) from exc
    finally:
        await engine.dispose()


async def _lock_for_migration(connection: AsyncConnection) -> None:
    # Session-level: held until the connection closes, across the migration's own commit.
    await connection.exec_driver_sql(f"SELECT pg_advisory_lock({_POSTGRES_MIGRATION_LOCK})")
    await connection.commit()


def revision_of(connection: Connection) -> str | None:
    """The revision a connected database is at (None when it has none)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.exec_driver_sql(
        "SELECT version_num FROM alembic_version"
    ).scalar()
    return revision


def _state_of(connection: Connection) -> tuple[str | None, bool]:
    """The current revision, and whether the database holds anything worth a copy."""
    revision = revision_of(connection)
    tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
    return revision, revision is not None or bool(tables)


def _run_alembic(connection: Connection, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


def _copy_aside(database: Path, revision: str | None) -> Path:
    """A consistent copy of the SQLite file (committed WAL content included)."""
    backup = database.with_name(f"{database.name}.before-{revision or 'base'}.bak")
    if backup.exists():  # an earlier attempt already copied this same revision
        return backup
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as source:
        source.execute("VACUUM INTO ?", (str(backup),))
    return backup


def _unreachable(url: URL, exc: BaseException) -> StorageError:
    reason = getattr(exc, "orig", None) or exc
    return StorageError(f"Cannot use the database at {describe(url)}: {reason}")
