"""The FlowLoom processes (runtimes) running flows on this database, and their heartbeats.

Each runtime registers itself when it starts, says it is alive every few seconds, and goes
away when it stops. A runtime starting beside others leaves their runs to them: see
`studio.runtime.Runtime.recover`, which decides from these rows who is still alive.

Heartbeats are stamped with the database's clock (`clock`), so runtimes on machines whose
clocks disagree still judge each other's silence right (SQLite is only ever one machine's).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, select, update

from storage.engines import DatabaseEngines
from storage.models import Runtime, utc_now
from storage.records import RuntimeRecord


class RuntimeRepository:
    """The `runtimes` table: register, heartbeat, unregister, list (`Database.runtimes`)."""

    def __init__(self, engines: DatabaseEngines) -> None:
        self._engines = engines

    def _now(self) -> ColumnElement[datetime] | datetime:
        return func.now() if self._engines.dialect == "postgresql" else utc_now()

    async def clock(self) -> datetime:
        """The time now by the clock that stamps heartbeats."""
        if self._engines.dialect != "postgresql":
            return utc_now()
        async with self._engines.reading() as session:
            now: datetime = (await session.execute(select(func.now()))).scalar_one()
            return now

    async def register(self, runtime_id: str, *, host: str, pid: int) -> None:
        now = self._now()
        async with self._engines.writing() as session:
            await session.execute(
                insert(Runtime).values(
                    id=runtime_id, host=host, pid=pid, started_at=now, seen_at=now
                )
            )

    async def heartbeat(self, runtime_id: str) -> None:
        async with self._engines.writing() as session:
            await session.execute(
                update(Runtime).where(Runtime.id == runtime_id).values(seen_at=self._now())
            )

    async def unregister(self, runtime_id: str) -> None:
        async with self._engines.writing() as session:
            await session.execute(delete(Runtime).where(Runtime.id == runtime_id))

    async def list(self) -> list[RuntimeRecord]:
        async with self._engines.reading() as session:
            rows = (await session.execute(select(Runtime).order_by(Runtime.started_at))).scalars()
            return [
                RuntimeRecord(row.id, row.host, row.pid, row.started_at, row.seen_at)
                for row in rows
            ]
