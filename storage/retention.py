"""Keeping the database small: capped step payloads, and pruning of old runs.

- A step's input or output larger than `max_payload_bytes` (as JSON) is stored as a marker
  instead: `{"_truncated": true, "size_bytes": N, "preview": "<first 1 KiB of the JSON>"}`.
- `prune` deletes finished runs (and their steps) older than N days, and beyond the newest M
  of each flow; a flow's own `retention` overrides N and M. Queued, running and waiting
  runs are never pruned. Expired webhook idempotency keys go too, and subscription
  delivery logs older than N days. SQLite then VACUUMs (when runs were deleted) and truncates its WAL,
  so the file shrinks; PostgreSQL VACUUMs the two tables so the space is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engines import DatabaseEngines, sqlite_file
from storage.jsontext import JSONText, dumps
from storage.models import Delivery, Flow, IdempotencyKey, Run, Step, utc_now

PREVIEW_BYTES = 1024
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


def capped_json(value: Any, max_bytes: int) -> JSONText | None:
    """`value` as JSON text, or the truncation marker's when that text is over `max_bytes`."""
    if value is None:
        return None
    text = dumps(value)
    if len(text) * 4 <= max_bytes:  # no character takes more than 4 bytes in UTF-8
        return JSONText(text)
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return JSONText(text)
    marker = {
        "_truncated": True,
        "size_bytes": len(encoded),
        "preview": encoded[:PREVIEW_BYTES].decode("utf-8", errors="ignore"),
    }
    return JSONText(dumps(marker))


async def prune(
    engines: DatabaseEngines, *, days: int, max_runs_per_flow: int, now: datetime | None = None
) -> dict[str, int]:
    """Delete the runs retention no longer keeps; see the module docstring.

    Returns {"runs_deleted", "steps_deleted", "bytes_before", "bytes_after"}.
    """
    if days < 1 or max_runs_per_flow < 1:
        raise ValueError("retention keeps at least 1 day and 1 run per flow")
    now = now or utc_now()
    bytes_before = await database_size(engines)
    runs_deleted = steps_deleted = 0
    async with engines.writer.begin() as connection:
        overrides = {
            flow_id: (flow_days, flow_max_runs)
            for flow_id, flow_days, flow_max_runs in await connection.execute(
                select(Flow.id, Flow.retention_days, Flow.retention_max_runs).where(
                    or_(Flow.retention_days.is_not(None), Flow.retention_max_runs.is_not(None))
                )
            )
        }
        flow_ids = (await connection.scalars(select(Run.flow_id).distinct())).all()
        for flow_id in flow_ids:
            flow_days, flow_max_runs = overrides.get(flow_id or "", (None, None))
            runs, steps = await _prune_flow(
                connection,
                flow_id,
                older_than=now - timedelta(days=flow_days or days),
                keep=flow_max_runs or max_runs_per_flow,
            )
            runs_deleted += runs
            steps_deleted += steps
        await connection.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
        await connection.execute(
            delete(Delivery).where(Delivery.created_at < now - timedelta(days=days))
        )
    if engines.dialect == "sqlite":
        await _compact_sqlite(engines, vacuum=runs_deleted > 0)
    elif runs_deleted:
        await _vacuum_postgres(engines)
    return {
        "runs_deleted": runs_deleted,
        "steps_deleted": steps_deleted,
        "bytes_before": bytes_before,
        "bytes_after": await database_size(engines),
    }


async def _prune_flow(
    connection: AsyncConnection, flow_id: str | None, *, older_than: datetime, keep: int
) -> tuple[int, int]:
    same_flow = Run.flow_id.is_(None) if flow_id is None else Run.flow_id == flow_id
    newest = (
        select(Run.id).where(same_flow).order_by(Run.created_at.desc(), Run.id.desc()).limit(keep)
    )
    expired = and_(
        same_flow,
        Run.status.in_(FINISHED),
        or_(Run.created_at < older_than, Run.id.not_in(newest)),
    )
    steps = await connection.execute(
        delete(Step).where(Step.run_id.in_(select(Run.id).where(expired)))
    )
    runs = await connection.execute(delete(Run).where(expired))
    return runs.rowcount, steps.rowcount


async def database_size(engines: DatabaseEngines) -> int:
    """Bytes the database takes: SQLite's file and its WAL, or PostgreSQL's database."""
    if engines.dialect == "postgresql":
        async with engines.reader.connect() as connection:
            size = await connection.scalar(select(func.pg_database_size(func.current_database())))
            return int(size or 0)
    database = sqlite_file(engines.url)
    assert database is not None, "SQLite databases are files"
    return await asyncio.to_thread(_file_sizes, database)


def _file_sizes(database: Path) -> int:
    total = 0
    for path in (database, database.with_name(database.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


async def _compact_sqlite(engines: DatabaseEngines, *, vacuum: bool) -> None:
    # Holding the writer connection makes this process's writes wait; VACUUM must run
    # outside a transaction, so it goes to the driver directly. VACUUM rewrites the whole
    # file (into the WAL first), which the checkpoint then folds back and truncates.
    statements = ["VACUUM"] if vacuum else []
    async with engines.writer.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        for statement in [*statements, "PRAGMA wal_checkpoint(TRUNCATE)"]:
            cursor = await driver.execute(statement)
            await cursor.close()


async def _vacuum_postgres(engines: DatabaseEngines) -> None:
    async with engines.writer.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM (ANALYZE) runs, steps")
