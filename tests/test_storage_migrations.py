"""Migrations: every revision goes up and down on both databases, the models match them, and
an SQLite file is copied aside before (and only before) a migration changes it."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage import Database, StorageError, migrations
from storage.engines import database_url
from storage.models import Base
from tests.postgres import PostgresCluster, free_port


async def schema_of(url: str) -> tuple[set[str], list[Any]]:
    """The tables in the database, and how its schema differs from the models."""

    def inspect_schema(connection: Connection) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        tables = set(inspect(connection).get_table_names())
        return tables, compare_metadata(context, Base.metadata)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(inspect_schema)
    finally:
        await engine.dispose()


async def test_a_new_database_gets_the_current_schema(database_url: str) -> None:
    db = await Database.open(database_url)
    await db.close()

    assert (db.migration.before, db.migration.after) == (None, migrations.head_revision())
    assert db.migration.backup is None
    tables, differences = await schema_of(database_url)
    assert differences == []
    assert tables == {table for table in Base.metadata.tables} | {"alembic_version"}


async def test_every_revision_goes_up_and_down_and_up_again(database_url: str) -> None:
    chain: list[str | None] = [None, *migrations.revisions()]
    assert chain[-1] == migrations.head_revision()

    for revision in chain[1:]:  # one step at a time to the head
        await migrations.upgrade(database_url, revision or "base")
        assert await migrations.current_revision(database_url) == revision
    for revision in reversed(chain[:-1]):  # one step at a time down to nothing
        await migrations.downgrade(database_url, revision or "base")
        assert await migrations.current_revision(database_url) == revision
    tables, _ = await schema_of(database_url)
    assert tables <= {"alembic_version"}

    for start in chain[:-1]:  # from every earlier revision straight to the head
        if start is not None:
            await migrations.upgrade(database_url, start)
        result = await migrations.upgrade(database_url)
        assert (result.before, result.after) == (start, chain[-1])
        assert (await schema_of(database_url))[1] == []
        db = await Database.open(database_url)
        await db.flows.create({"name": f"works after upgrading from {start}"})
        await db.close()
        await migrations.downgrade(database_url, "base")


@pytest.fixture
def migrations_with_a_newer_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A copy of storage/migrations with one more revision, which adds a column."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrations.SCRIPT_LOCATION, scripts)
    head = migrations.head_revision()
    (scripts / "versions" / "9999_test_column.py").write_text(
        f'''"""Add a column, for the test."""

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flows") as batch:
        batch.add_column(sa.Column("test_column", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flows") as batch:
        batch.drop_column("test_column")
''',
        encoding="utf-8",
    )
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", scripts)
    migrations._scripts.cache_clear()
    yield head
    migrations._scripts.cache_clear()


async def test_an_sqlite_file_is_copied_aside_only_when_a_migration_runs(
    tmp_path: Path, migrations_with_a_newer_revision: str
) -> None:
    old_head = migrations_with_a_newer_revision
    database = tmp_path / "flowloom.db"
    url = f"sqlite+aiosqlite:///{database}"
    await migrations.upgrade(url, old_head)  # as an older FlowLoom left it
    backups = lambda: sorted(path.name for path in tmp_path.glob("*.bak"))  # noqa: E731
    assert backups() == []
    with sqlite3.connect(database) as connection:  # a committed row, still in the WAL
        connection.execute(
            "INSERT INTO flows (id, name, document, version, active, created_at, updated_at)"
            " VALUES ('f1', 'Kept', '{}', 1, 0, '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
        )

    db = await Database.open(url, data_dir=tmp_path)
    await db.close()
    again = await Database.open(url, data_dir=tmp_path)
    await again.close()

    assert (db.migration.before, db.migration.after) == (old_head, "9999")
    assert db.migration.backup == tmp_path / f"flowloom.db.before-{old_head}.bak"
    assert again.migration.backup is None
    assert backups() == [f"flowloom.db.before-{old_head}.bak"]
    with sqlite3.connect(db.migration.backup) as copy:
        assert copy.execute("SELECT name FROM flows").fetchall() == [("Kept",)]
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(old_head,)]
        columns = [row[1] for row in copy.execute("PRAGMA table_info(flows)")]
        assert "test_column" not in columns


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = tmp_path / "flowloom.db"
    db = await Database.open(f"sqlite+aiosqlite:///{database}")
    await db.flows.create({"name": "x"})

    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    await db.close()
    assert db.dialect == "sqlite"


async def test_an_unreachable_database_is_a_storage_error() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/flowloom"

    with pytest.raises(StorageError, match="Cannot use the database at postgresql"):
        await Database.open(url)


async def test_a_database_that_goes_away_fails_its_ping(postgres_cluster: PostgresCluster) -> None:
    name = postgres_cluster.borrow_database()
    db = await Database.open(postgres_cluster.url(name))
    await db.ping()
    assert db.dialect == "postgresql"

    admin = await asyncpg.connect(
        host="127.0.0.1", port=postgres_cluster.port, user="postgres", database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()

    with pytest.raises(StorageError, match="does not answer"):
        await db.ping()
    await db.close()


def test_plain_urls_get_the_async_drivers_and_others_are_refused() -> None:
    assert database_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert database_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(StorageError, match="SQLite or PostgreSQL"):
        database_url("mysql://localhost/flowloom")
    with pytest.raises(StorageError, match="in-memory"):
        database_url("sqlite+aiosqlite://")
