"""Runtimes sharing a database: each owns its runs, and resumes only those of gone ones."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.settings import Settings
from storage import Database, RunRecord
from studio.runtime import Runtime
from tests.documents import chain, manual, step


def running_run(run_id: str, flow_id: str, *, owner: str, input: Any = None) -> RunRecord:
    """A `running` run of version 1 of the flow, executed by runtime `owner`."""
    return RunRecord(
        id=run_id,
        flow_id=flow_id,
        flow_version=1,
        trigger=None,
        status="running",
        input=input,
        output=None,
        error=None,
        created_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
        owner=owner,
    )


async def a_run_owned_elsewhere(data_dir: Path) -> None:
    """A flow, and a run of it `running` on a runtime of another machine."""
    db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'flowloom.db'}", data_dir=data_dir)
    try:
        flow = await db.flows.create(
            chain(manual(), step("set", "data.set", {"values": {"done": True}}))
        )
        await db.runtimes.register("elsewhere", host="another-machine", pid=1)
        await db.runs.store(running_run("r1", flow.id, owner="elsewhere", input={"n": 1}))
    finally:
        await db.close()


async def test_a_run_of_a_runtime_elsewhere_is_resumed_only_once_that_one_falls_silent(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    await a_run_owned_elsewhere(data_dir)
    runtime = Runtime(Settings(data_dir=data_dir))
    await runtime.start()
    try:
        assert (await runtime.db.runs.get("r1")).status == "running"  # its owner is alive
        assert not runtime.is_running("r1")

        with sqlite3.connect(data_dir / "flowloom.db") as connection:  # silent since 2001
            connection.execute("UPDATE runtimes SET seen_at = '2001-01-01 00:00:00.000000'")
        report = await runtime.recover()
        assert report == {"resumed": 1, "interrupted": 0}
        for _ in range(500):  # a one-step run: it may be over before recover returns
            if not runtime.is_running("r1"):
                break
            await asyncio.sleep(0.01)
        await runtime.flushed()
        run = await runtime.db.runs.get("r1")
    finally:
        await runtime.stop()

    assert (run.status, run.owner, run.output) == (
        "succeeded",
        runtime.instance_id,
        {"n": 1, "done": True},
    )


async def test_only_one_of_two_runtimes_resumes_a_run_left_behind(tmp_path: Path) -> None:
    # Two runtimes start at once beside a run whose owner is gone: one claim wins.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    await a_run_owned_elsewhere(data_dir)
    with sqlite3.connect(data_dir / "flowloom.db") as connection:
        connection.execute("DELETE FROM runtimes")  # its owner is gone without a trace
    one = Runtime(Settings(data_dir=data_dir))
    other = Runtime(Settings(data_dir=data_dir))
    await one.start(recover=False)
    await other.start(recover=False)
    try:
        reports = await asyncio.gather(one.recover(), other.recover())
        owner = (await one.db.runs.get("r1")).owner
    finally:
        await one.stop()
        await other.stop()

    assert sorted(report["resumed"] for report in reports) == [0, 1]
    assert owner == (one.instance_id if reports[0]["resumed"] else other.instance_id)


async def test_a_stopped_runtime_leaves_no_trace_and_its_runs_are_anybodys(
    tmp_path: Path,
) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"))
    await runtime.start()
    registered = [r.id for r in await runtime.db.runtimes.list()]
    await runtime.stop()
    db = await Database.open(
        f"sqlite+aiosqlite:///{tmp_path / 'data' / 'flowloom.db'}", data_dir=tmp_path / "data"
    )
    try:
        left = await db.runtimes.list()
    finally:
        await db.close()

    assert registered == [runtime.instance_id]
    assert left == []


async def test_runtimes_register_beat_and_go_by_the_databases_clock(db: Database) -> None:
    await db.runtimes.register("a", host="machine-a", pid=123)
    [registered] = await db.runtimes.list()
    await asyncio.sleep(0.02)
    await db.runtimes.heartbeat("a")
    [beaten] = await db.runtimes.list()
    now = await db.runtimes.clock()
    await db.runtimes.unregister("a")

    assert (beaten.id, beaten.host, beaten.pid) == ("a", "machine-a", 123)
    assert registered.started_at == beaten.started_at == registered.seen_at
    assert registered.seen_at < beaten.seen_at <= now
    assert await db.runtimes.list() == []


async def test_a_cancel_request_is_handed_to_the_runs_owner_once(db: Database) -> None:
    flow = await db.flows.create(chain(manual(), step("set", "data.set", {"values": {}})))
    for run_id, owner in (("mine", "a"), ("theirs", "b")):
        await db.runs.store(running_run(run_id, flow.id, owner=owner))

    await db.runs.request_cancel("mine")
    await db.runs.request_cancel("mine")  # asked twice: still one request
    await db.runs.request_cancel("theirs")

    assert await db.runs.cancel_requests("a") == ["mine"]
    assert await db.runs.cancel_requests("a") == []  # taken
    assert await db.runs.cancel_requests("b") == ["theirs"]
    assert await db.runs.cancel_requests("nobody") == []
