"""The run recorder: engine events stored in group commits, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine import Engine
from engine.recorder import RunRecorder
from storage import Database
from tests.documents import chain, manual, step


def five_steps() -> dict[str, Any]:
    return chain(
        manual(),
        *[
            step(f"s{i}", "data.set", {"values": {f"v{i}": "{{ input.n + " + str(i) + " }}"}})
            for i in range(4)
        ],
    )


async def test_every_run_and_step_is_stored_in_order(db: Database) -> None:
    recorder = RunRecorder(db.runs, interval_s=0.01)
    engine = Engine(listeners=[recorder])
    await recorder.start()
    flow = await db.flows.create(five_steps())
    ids = [f"run-{n}" for n in range(50)]
    for run_id in ids:
        await db.runs.create(
            run_id=run_id, flow_id=flow.id, flow_version=1, trigger="start", input={"n": 1}
        )

    results = await asyncio.gather(*(engine.run(flow.document, {"n": 1}, run_id=r) for r in ids))
    await recorder.stop()
    await engine.aclose()

    assert {r.status for r in results} == {"succeeded"}
    for run_id in ids:
        run = await db.runs.get(run_id)
        assert run.status == "succeeded"
        assert run.output == {"n": 1, "v0": 1, "v1": 2, "v2": 3, "v3": 4}
        assert [(s.seq, s.node_id, s.status) for s in run.steps] == [
            (0, "start", "succeeded"),
            (1, "s0", "succeeded"),
            (2, "s1", "succeeded"),
            (3, "s2", "succeeded"),
            (4, "s3", "succeeded"),
        ]
        assert run.started_at is not None and run.finished_at is not None


async def test_a_long_step_is_stored_as_running_before_it_ends(db: Database) -> None:
    recorder = RunRecorder(db.runs, interval_s=0.01)
    engine = Engine(listeners=[recorder])
    await recorder.start()
    document = chain(manual(), step("wait", "flow.delay", {"seconds": 0.5}))
    flow = await db.flows.create(document)
    await db.runs.create(run_id="slow", flow_id=flow.id, flow_version=1, trigger=None, input=None)

    handle = engine.start(document, run_id="slow")
    await asyncio.sleep(0.2)
    during = await db.runs.get("slow")
    await handle
    await recorder.stop()
    await engine.aclose()
    after = await db.runs.get("slow")

    assert during.status == "running"
    assert [(s.node_id, s.status) for s in during.steps] == [
        ("start", "succeeded"),
        ("wait", "running"),
    ]
    assert [(s.node_id, s.status) for s in after.steps] == [
        ("start", "succeeded"),
        ("wait", "succeeded"),
    ]


class FailsOnce:
    """The real run store, made to fail its first write (the database going away)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.failures = 0

    async def record(
        self, runs: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]]
    ) -> None:
        if self.failures == 0:
            self.failures += 1
            raise ConnectionError("database unreachable")
        await self.store.record(runs, steps)


async def test_rows_a_failed_write_held_are_written_at_the_next_flush(db: Database) -> None:
    store = FailsOnce(db.runs)
    recorder = RunRecorder(store)
    engine = Engine(listeners=[recorder])
    flow = await db.flows.create(five_steps())
    await db.runs.create(run_id="r", flow_id=flow.id, flow_version=1, trigger=None, input={"n": 2})

    await engine.run(flow.document, {"n": 2}, run_id="r")
    with contextlib.suppress(ConnectionError):
        await recorder.flush()
    await recorder.flush()
    await engine.aclose()

    run = await db.runs.get("r")
    assert store.failures == 1
    assert run.status == "succeeded"
    assert len(run.steps) == 5


class FailsAtWrite:
    """The real run store, made to fail one write of a flush (the database going away)."""

    def __init__(self, store: Any, failing: int) -> None:
        self.store = store
        self.failing = failing
        self.writes: list[int] = []

    async def record(
        self, runs: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]]
    ) -> None:
        self.writes.append(len({run["id"] for run in runs}))
        if len(self.writes) == self.failing:
            raise ConnectionError("database unreachable")
        await self.store.record(runs, steps)


async def test_a_flush_writes_a_few_runs_at_a_time_and_a_failed_write_loses_nothing(
    db: Database, monkeypatch: Any
) -> None:
    # A flush writes its runs a few at a time (so other work goes between the writes);
    # when one of those writes fails, its rows and the later ones are written next time.
    import engine.recorder

    monkeypatch.setattr(engine.recorder, "GROUP_RUNS", 2)
    store = FailsAtWrite(db.runs, failing=2)
    recorder = RunRecorder(store)
    engine_ = Engine(listeners=[recorder])
    flow = await db.flows.create(five_steps())
    for n in range(5):
        await db.runs.create(
            run_id=f"r{n}", flow_id=flow.id, flow_version=1, trigger=None, input={"n": n}
        )
        await engine_.run(flow.document, {"n": n}, run_id=f"r{n}")

    with contextlib.suppress(ConnectionError):
        await recorder.flush()
    assert store.writes == [2, 2]  # the first write went through, the second failed
    assert [(await db.runs.get(f"r{n}")).status for n in range(5)] == ["succeeded"] * 2 + [
        "queued"
    ] * 3
    await recorder.flush()
    await engine_.aclose()

    assert store.writes == [2, 2, 2, 1]  # the failed write and the rest, not the first
    for n in range(5):
        run = await db.runs.get(f"r{n}")
        assert run.status == "succeeded"
        assert [step.output[f"v{i}"] for i, step in enumerate(run.steps[1:])] == [
            n + i for i in range(4)
        ]


async def test_values_json_cannot_hold_are_stored_readably(db: Database) -> None:
    recorder = RunRecorder(db.runs)
    engine = Engine(listeners=[recorder])
    document = chain(manual())
    flow = await db.flows.create(document)
    await db.runs.create(run_id="odd", flow_id=flow.id, flow_version=1, trigger=None, input=None)
    odd = {"when": datetime(2026, 1, 2, tzinfo=UTC), "raw": b"bytes", "nan": math.nan, 3: "int key"}

    await engine.run(document, odd, run_id="odd")
    await recorder.flush()
    await engine.aclose()

    stored = (await db.runs.get("odd")).output
    assert stored == {
        "when": "2026-01-02T00:00:00+00:00",
        "raw": "bytes",
        "nan": "nan",
        "3": "int key",
    }


async def test_runs_seen_starting_get_the_recorders_owner(db: Database) -> None:
    # A sub-flow's run is stored first by the recorder: it names its runtime as the owner,
    # so another FlowLoom process on the database knows the run is somebody's.
    recorder = RunRecorder(db.runs, owner="runtime-1")
    engine = Engine(listeners=[recorder])

    await engine.run(chain(manual()), {"n": 1}, run_id="seen-starting")
    await recorder.flush()
    await engine.aclose()

    run = await db.runs.get("seen-starting")
    assert (run.status, run.owner) == ("succeeded", "runtime-1")
