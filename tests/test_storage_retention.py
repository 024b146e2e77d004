"""Retention: old runs and runs beyond a flow's limit are pruned; the SQLite file shrinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from storage import Database, NotFound
from storage.models import Run

NOW = datetime(2030, 6, 1, tzinfo=UTC)


async def add_run(
    db: Database, run_id: str, flow_id: str | None, *, age_days: float, status: str = "succeeded"
) -> None:
    await db.runs.create(
        run_id=run_id, flow_id=flow_id, flow_version=1, trigger="manual", input=None
    )
    await db.runs.record(
        [{"id": run_id, "status": status}],
        [
            {"run_id": run_id, "seq": seq, "node_id": "n", "node_name": "N", "node_type": "t"}
            for seq in range(2)
        ],
    )
    # Runs are stamped with the time they are created; move this one into the past.
    async with db._engines.writer.begin() as connection:
        await connection.execute(
            update(Run).where(Run.id == run_id).values(created_at=NOW - timedelta(days=age_days))
        )


async def remaining(db: Database) -> set[str]:
    runs, _ = await db.runs.list(limit=1000)
    return {run.id for run in runs}


async def test_runs_older_than_the_retention_days_are_pruned(db: Database) -> None:
    flow = await db.flows.create({"name": "Flow"})
    await add_run(db, "old", flow.id, age_days=31)
    await add_run(db, "recent", flow.id, age_days=29)
    await add_run(db, "old-without-flow", None, age_days=40)

    report = await db.prune(days=30, now=NOW)

    assert await remaining(db) == {"recent"}
    assert report["runs_deleted"] == 2
    assert report["steps_deleted"] == 4
    assert report["bytes_before"] > 0 and report["bytes_after"] > 0
    with pytest.raises(NotFound):
        await db.runs.get("old")


async def test_only_the_newest_runs_of_each_flow_are_kept(db: Database) -> None:
    first = await db.flows.create({"name": "First"})
    second = await db.flows.create({"name": "Second"})
    for i in range(5):
        await add_run(db, f"first-{i}", first.id, age_days=5 - i)  # first-4 is the newest
    await add_run(db, "second-0", second.id, age_days=3)

    report = await db.prune(days=30, max_runs_per_flow=2, now=NOW)

    assert await remaining(db) == {"first-3", "first-4", "second-0"}
    assert report["runs_deleted"] == 3


async def test_a_flows_own_retention_overrides_the_defaults(db: Database) -> None:
    strict = await db.flows.create({"name": "Strict"})
    lenient = await db.flows.create({"name": "Lenient"})
    await db.flows.set_retention(strict.id, days=1, max_runs=None)
    await db.flows.set_retention(lenient.id, days=None, max_runs=10)
    await add_run(db, "strict-2-days", strict.id, age_days=2)
    await add_run(db, "strict-today", strict.id, age_days=0.1)
    for i in range(4):
        await add_run(db, f"lenient-{i}", lenient.id, age_days=10 + i)

    await db.prune(days=30, max_runs_per_flow=2, now=NOW)

    assert await remaining(db) == {"strict-today"} | {f"lenient-{i}" for i in range(4)}


async def test_unfinished_and_waiting_runs_are_never_pruned(db: Database) -> None:
    flow = await db.flows.create({"name": "Flow"})
    for status in ("queued", "running", "waiting"):
        await add_run(db, status, flow.id, age_days=400, status=status)
    await add_run(db, "failed", flow.id, age_days=400, status="failed")

    await db.prune(days=1, max_runs_per_flow=1, now=NOW)

    assert await remaining(db) == {"queued", "running", "waiting"}


async def test_pruning_many_big_runs_shrinks_the_sqlite_file(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'flowloom.db'}")
    flow = await db.flows.create({"name": "Flow"})
    payload = {"text": "x" * 20_000}
    for batch in range(4):
        ids = [f"run-{batch}-{i}" for i in range(50)]
        for run_id in ids:
            await db.runs.create(
                run_id=run_id, flow_id=flow.id, flow_version=1, trigger=None, input=None
            )
        await db.runs.record(
            [{"id": run_id, "status": "succeeded"} for run_id in ids],
            [
                {"run_id": run_id, "seq": 0, "node_id": "n", "node_name": "N", "node_type": "t",
                 "input": payload, "output": payload}
                for run_id in ids
            ],
        )  # fmt: skip

    report = await db.prune(days=30, max_runs_per_flow=10)
    await db.close()

    assert report["runs_deleted"] == 190
    assert report["bytes_before"] > 8_000_000
    assert report["bytes_after"] < report["bytes_before"] / 5
    files = sum(path.stat().st_size for path in tmp_path.glob("flowloom.db*"))
    assert files <= report["bytes_after"] + 100_000  # the WAL was folded back in
