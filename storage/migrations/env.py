"""Alembic's entry point: runs migrations on the connection FlowLoom hands over.

FlowLoom migrates from `storage.migrations.upgrade` (at every `Database.open` and in
`flowloom db upgrade`), which passes its connection in `config.attributes["connection"]`.
Developers writing a new revision run alembic itself against a scratch database:

    .venv/bin/alembic -x url=sqlite+aiosqlite:///scratch.db upgrade head
    .venv/bin/alembic -x url=sqlite+aiosqlite:///scratch.db revision --autogenerate -m "…"

then read and edit what it wrote: migrations are reviewed like any other code.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storage.engines import create_migration_engine, database_url
from storage.models import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot alter most of a table in place; alembic rebuilds it instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_on_url(url: str) -> None:
    engine = create_migration_engine(database_url(url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


shared_connection = context.config.attributes.get("connection")
if shared_connection is not None:
    run_migrations(shared_connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("Pass the database to migrate: alembic -x url=sqlite+aiosqlite:///… …")
    asyncio.run(run_migrations_on_url(url))
