"""Runs and steps: what the recorder writes and the run pages read, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from storage import Database, NotFound, StorageError
from storage.bulk import encode_time_for_sqlite
from storage.models import UTCDateTime


def step(run_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "run_id": run_id,
        "seq": seq,
        "node_id": f"n{seq}",
        "node_name": f"Step {seq}",
        "node_type": "data.set",
        "status": "succeeded",
        "visit": 1,
        "input": {"n": seq},
        "output": {"n": seq + 1},
        "started_at": now,
        "finished_at": now + 0.01,
        **fields,
    }


async def new_run(db: Database, run_id: str, flow_id: str | None = None, **fields: Any) -> None:
    await db.runs.create(
        run_id=run_id,
        flow_id=flow_id,
        flow_version=1 if flow_id else None,
        trigger=fields.pop("trigger", "manual"),
        input=fields.pop("input", {"run": run_id}),
        **fields,
    )


async def test_a_created_run_is_visible_to_another_process_at_once(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    flow = await db.flows.create({"name": "Flow"})

    created = await db.runs.create(
        run_id="run-1", flow_id=flow.id, flow_version=1, trigger="webhook", input={"a": 1}
    )

    other = await Database.open(database_url, data_dir=tmp_path / "data")
    try:
        seen = await other.runs.get("run-1")
    finally:
        await other.close()
    assert seen == created
    assert (seen.status, seen.flow_id, seen.trigger, seen.input) == (
        "queued",
        flow.id,
        "webhook",
        {"a": 1},
    )
    assert seen.steps == []


async def test_record_changes_only_the_given_run_fields(db: Database) -> None:
    await new_run(db, "run-1")
    started = time.time()

    await db.runs.record([{"id": "run-1", "status": "running", "started_at": started}], [])
    await db.runs.record(
        [
            {
                "id": "run-1",
                "status": "succeeded",
                "output": {"done": True},
                "finished_at": started + 2,
            }
        ],
        [],
    )

    run = await db.runs.get("run-1")
    assert run.status == "succeeded"
    assert run.output == {"done": True}
    assert run.input == {"run": "run-1"}
    assert run.error is None
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at.timestamp() == pytest.approx(started, abs=1e-3)
    assert (run.finished_at - run.started_at).total_seconds() == pytest.approx(2, abs=1e-3)


async def test_steps_are_upserted_by_run_and_sequence_number(db: Database) -> None:
    await new_run(db, "run-1")

    await db.runs.record(
        [{"id": "run-1", "status": "running"}],
        [step("run-1", 0), step("run-1", 1, status="running", output=None, finished_at=None)],
    )
    await db.runs.record(
        [],
        [
            step(
                "run-1",
                1,
                attempts=2,
                input_tokens=10,
                output_tokens=5,
                cost_usd=0.25,
                model="gpt-4o-mini",
                logs=[{"level": "info", "message": "hi"}],
                exchanges=[{"request": {"a": 1}, "response": {"b": 2}}],
                port="true",
            ),
            step("run-1", 2, status="failed", error="boom", output=None),
        ],
    )

    run = await db.runs.get("run-1")
    assert [(s.seq, s.status) for s in run.steps] == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "failed"),
    ]
    second = run.steps[1]
    assert second.output == {"n": 2}
    assert (second.attempts, second.input_tokens, second.output_tokens) == (2, 10, 5)
    assert (second.cost_usd, second.model, second.port) == (0.25, "gpt-4o-mini", "true")
    assert second.logs == [{"level": "info", "message": "hi"}]
    assert second.exchanges == [{"request": {"a": 1}, "response": {"b": 2}}]
    assert second.started_at is not None and second.started_at.tzinfo is not None
    assert run.steps[2].error == "boom"


async def test_a_payload_over_the_limit_is_stored_as_a_truncation_marker(
    database_url: str, tmp_path: Path
) -> None:
    db = await Database.open(database_url, data_dir=tmp_path, max_payload_bytes=2048)
    try:
        await new_run(db, "run-1")
        big = {"text": "é" * 5000}
        await db.runs.record([], [step("run-1", 0, input=big, output={"small": True})])

        stored = (await db.runs.get("run-1")).steps[0]
    finally:
        await db.close()

    full = json.dumps(big, ensure_ascii=False, separators=(",", ":")).encode()
    assert stored.input == {
        "_truncated": True,
        "size_bytes": len(full),
        "preview": full[:1024].decode("utf-8", errors="ignore"),
    }
    assert stored.output == {"small": True}


async def test_a_batch_of_many_runs_is_one_call(db: Database) -> None:
    for i in range(50):
        await new_run(db, f"run-{i}")

    await db.runs.record(
        [{"id": f"run-{i}", "status": "succeeded", "output": i} for i in range(50)],
        [step(f"run-{i}", seq) for i in range(50) for seq in range(5)],
    )

    runs, total = await db.runs.list(status="succeeded", limit=100)
    assert total == 50
    assert sorted(run.output for run in runs) == list(range(50))
    assert len((await db.runs.get("run-7")).steps) == 5


async def test_recording_a_run_not_created_yet_creates_it(db: Database) -> None:
    await db.runs.record([], [step("sub-run", 0)])
    await db.runs.record([{"id": "other-run", "status": "succeeded"}], [])

    orphan = await db.runs.get("sub-run")
    assert orphan.status == "running"
    assert [s.seq for s in orphan.steps] == [0]
    assert (await db.runs.get("other-run")).status == "succeeded"


async def test_list_filters_by_flow_and_status_newest_first(db: Database) -> None:
    first = await db.flows.create({"name": "First"})
    second = await db.flows.create({"name": "Second"})
    for i in range(3):
        await new_run(db, f"a{i}", first.id)
    await new_run(db, "b0", second.id, status="running")
    await db.runs.record([{"id": "a1", "status": "failed", "error": {"message": "x"}}], [])

    everything, total = await db.runs.list()
    of_first, first_total = await db.runs.list(flow_id=first.id)
    failed, failed_total = await db.runs.list(flow_id=first.id, status="failed")
    page, _ = await db.runs.list(limit=2, offset=1)

    assert total == 4
    assert [run.id for run in everything] == ["b0", "a2", "a1", "a0"]
    assert first_total == 3 and {run.id for run in of_first} == {"a0", "a1", "a2"}
    assert failed_total == 1 and failed[0].error == {"message": "x"}
    assert [run.id for run in page] == ["a2", "a1"]
    assert all(run.steps == [] for run in everything)


async def test_unfinished_runs_come_with_their_steps(db: Database) -> None:
    await new_run(db, "queued")
    await new_run(db, "running", status="running")
    await new_run(db, "done")
    await db.runs.record(
        [{"id": "done", "status": "succeeded"}],
        [step("running", 0), step("running", 1, status="running"), step("done", 0)],
    )

    unfinished = await db.runs.unfinished()

    assert [run.id for run in unfinished] == ["queued", "running"]
    assert [s.seq for s in unfinished[1].steps] == [0, 1]
    assert unfinished[0].steps == []


async def test_set_status_and_dropping_steps_to_resume(db: Database) -> None:
    await new_run(db, "run-1", status="running")
    await db.runs.record([], [step("run-1", seq) for seq in range(4)])

    await db.runs.delete_steps_after("run-1", 1)
    await db.runs.set_status(
        "run-1", "interrupted", error={"message": "cut off"}, finished_at=time.time()
    )

    run = await db.runs.get("run-1")
    assert [s.seq for s in run.steps] == [0, 1]
    assert run.status == "interrupted"
    assert run.error == {"message": "cut off"}
    assert run.finished_at is not None


async def test_runs_refuse_unknown_ids_statuses_and_flows(db: Database) -> None:
    await new_run(db, "run-1")

    with pytest.raises(NotFound):
        await db.runs.get("nope")
    with pytest.raises(NotFound):
        await db.runs.set_status("nope", "failed")
    with pytest.raises(ValueError, match="not a run status"):
        await db.runs.set_status("run-1", "exploded")
    with pytest.raises(ValueError, match="not a run status"):
        await db.runs.record([{"id": "run-1", "status": "exploded"}], [])
    with pytest.raises(ValueError, match="cannot change"):
        await db.runs.record([{"id": "run-1", "input": 1}], [])
    with pytest.raises(StorageError, match="exists already"):
        await new_run(db, "run-1")
    with pytest.raises(NotFound, match="no flow"):
        await new_run(db, "run-2", "no-such-flow")


async def test_values_json_cannot_hold_are_stored_as_text(db: Database) -> None:
    await new_run(db, "run-1", input={"when": time.gmtime(0)[:3], "lone": "\ud800"})

    run = await db.runs.get("run-1")

    assert run.input == {"when": [1970, 1, 1], "lone": "\ud800"}


async def test_concurrent_creates_share_commits_and_a_bad_one_fails_alone(db: Database) -> None:
    flow = await db.flows.create({"name": "Flow"})
    await new_run(db, "taken")

    results = await asyncio.gather(
        *(new_run(db, f"run-{i}", flow.id) for i in range(20)),
        new_run(db, "taken"),
        new_run(db, "orphan", "no-such-flow"),
        return_exceptions=True,
    )

    assert results[:20] == [None] * 20
    assert isinstance(results[20], StorageError) and "exists already" in str(results[20])
    assert isinstance(results[21], NotFound)
    _, total = await db.runs.list()
    assert total == 21


def test_bulk_writes_store_times_exactly_as_sqlalchemy_does() -> None:
    processor = UTCDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    assert processor is not None
    for moment in (
        datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2030, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    ):
        assert encode_time_for_sqlite(moment) == processor(
            UTCDateTime().process_bind_param(moment, sqlite.dialect())
        )
        assert encode_time_for_sqlite(moment.timestamp()) == encode_time_for_sqlite(moment)


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_epoch_seconds_are_stored_as_the_datetime_they_name(epoch: float) -> None:
    # the engine reports times as epoch seconds; the fast path must round as datetime does
    assert encode_time_for_sqlite(epoch) == encode_time_for_sqlite(
        datetime.fromtimestamp(epoch, UTC)
    )


async def test_other_writers_get_their_turn_while_runs_are_created_back_to_back(
    tmp_path: Path,
) -> None:
    # On SQLite, run creation keeps the one writer connection between its commits; a flow
    # save must still get through while creations go on, and the connection goes back after.
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'flowloom.db'}", data_dir=tmp_path)
    created: list[str] = []
    saved_after: list[int] = []

    async def create_runs() -> None:
        for n in range(3000):
            if saved_after and len(created) > saved_after[0] + 20:
                return  # creations went on after the save: nobody waited for the other
            await new_run(db, f"run-{n}")
            created.append(f"run-{n}")

    async def save_a_flow() -> None:
        while len(created) < 20:
            await asyncio.sleep(0)
        await db.flows.create({"schema": "flowloom/1", "name": "saved meanwhile", "nodes": []})
        saved_after.append(len(created))

    await asyncio.gather(create_runs(), save_a_flow())

    assert saved_after and saved_after[0] < len(created) < 3000
    assert (await db.flows.list())[0][0].name == "saved meanwhile"
    pool = db._engines.writer.pool
    for _ in range(200):  # given back once the writes stopped
        if pool.checkedout() == 0:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    await db.close()


async def test_the_wal_is_folded_into_the_database_file_in_the_background(
    tmp_path: Path,
) -> None:
    # A commit that crosses SQLite's checkpoint threshold would copy the WAL itself while
    # every other write waits; a connection of its own does it instead, while writes go on.
    database = tmp_path / "flowloom.db"
    db = await Database.open(f"sqlite+aiosqlite:///{database}", data_dir=tmp_path)
    try:
        size_before = database.stat().st_size
        # one group commit: a few dozen pages of WAL
        await asyncio.gather(
            *(new_run(db, f"run-{n}", input={"text": "x" * 1000, "n": n}) for n in range(200))
        )
        wal_pages = (database.with_name("flowloom.db-wal").stat().st_size - 32) // (4096 + 24)
        assert wal_pages < 1000  # below the threshold where a commit would do it itself
        for _ in range(300):
            if database.stat().st_size > size_before + 100 * 1024:
                break
            await asyncio.sleep(0.01)
        assert database.stat().st_size > size_before + 100 * 1024  # the runs are in the file
    finally:
        await db.close()


async def test_a_write_somebody_waits_for_goes_before_the_others() -> None:
    from storage.engines import _Turns

    turns = _Turns()
    order: list[str] = []

    async def write(name: str, *, urgent: bool) -> None:
        async with turns.take(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0)

    async with turns.take():  # a recorder batch is being written
        waiting = [
            asyncio.create_task(write("batch 2", urgent=False)),
            asyncio.create_task(write("batch 3", urgent=False)),
            asyncio.create_task(write("run created", urgent=True)),
        ]
        await asyncio.sleep(0)
    await asyncio.gather(*waiting)
    assert order == ["run created", "batch 2", "batch 3"]
    assert not turns.locked()


async def test_a_cancelled_wait_for_the_writer_hands_its_turn_on() -> None:
    from storage.engines import _Turns

    turns = _Turns()
    done: list[str] = []

    async def write(name: str) -> None:
        async with turns.take(urgent=True):
            done.append(name)

    async with turns.take():
        given_up = asyncio.create_task(write("given up"))
        later = asyncio.create_task(write("later"))
        await asyncio.sleep(0)
    given_up.cancel()  # its turn came, but it is cancelled before it could take it
    await asyncio.gather(given_up, later, return_exceptions=True)
    assert done == ["later"] and given_up.cancelled()
    assert not turns.locked()
    async with turns.take():  # and the writer is free again
        pass


@pytest.mark.parametrize("count", [0, 1, 2, 3, 10, 64, 65, 130])
def test_rows_inserted_in_groups_land_as_executemany_would(count: int) -> None:
    import sqlite3

    from storage.bulk import execute_rows_sqlite

    sql = "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    # the same key twice: the later row wins, as it does row by row
    rows = [(n % max(1, count - 1), f"value {n}") for n in range(count)]
    results = []
    for insert in (
        lambda c: c.executemany(sql, rows),
        lambda c: execute_rows_sqlite(c, sql, rows),
    ):
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        insert(connection)
        results.append(connection.execute("SELECT k, v FROM t ORDER BY k").fetchall())
        connection.close()
    assert results[0] == results[1]
    assert len(results[0]) == len({k for k, _ in rows})


async def test_closing_the_database_never_overlaps_a_wal_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkpoints' connection was closed by a cancelled task while a worker thread was
    # still checkpointing with it: a segfault, now and then, when a database closed. Open,
    # write and close many times with checkpoints as often as they can go.
    import storage.engines

    monkeypatch.setattr(storage.engines, "CHECKPOINT_EVERY_S", 0.001)
    url = f"sqlite+aiosqlite:///{tmp_path / 'flowloom.db'}"
    for round_ in range(60):
        db = await Database.open(url, data_dir=tmp_path)
        await asyncio.gather(
            *(new_run(db, f"run-{round_}-{n}", input={"text": "x" * 2000}) for n in range(20))
        )
        await asyncio.sleep(0.001 * (round_ % 4))
        await db.close()
    db = await Database.open(url, data_dir=tmp_path)
    assert (await db.runs.list(limit=1))[1] == 60 * 20
    await db.close()


async def test_a_run_created_while_another_process_writes_waits_without_holding_the_loop(
    tmp_path: Path,
) -> None:
    # Run creations are written on the event loop's own thread; while another connection
    # (another process: `flowloom db prune`, say) holds the write lock, they must wait for it
    # elsewhere, or every webhook and page of the process would stop for as long.
    database = tmp_path / "flowloom.db"
    db = await Database.open(f"sqlite+aiosqlite:///{database}", data_dir=tmp_path)
    other = sqlite3.connect(database, isolation_level=None)
    try:
        await new_run(db, "before")
        other.execute("BEGIN IMMEDIATE")  # holds the write lock until COMMIT
        creating = asyncio.create_task(new_run(db, "while-locked"))
        loop = asyncio.get_running_loop()
        longest_pause, last = 0.0, loop.time()
        for _ in range(20):  # the loop goes on turning meanwhile
            await asyncio.sleep(0.01)
            longest_pause, last = max(longest_pause, loop.time() - last), loop.time()
        assert not creating.done()  # neither stored nor failed: it waits for the lock
        # (held up, the loop would have stood still for the whole 10 s busy timeout)
        assert longest_pause < 5.0
        other.execute("COMMIT")
        await asyncio.wait_for(creating, 10)
        assert (await db.runs.get("while-locked")).status == "queued"
        await new_run(db, "after")  # and the writer is back to normal
        assert (await db.runs.list(limit=10))[1] == 3
    finally:
        other.close()
        await db.close()


async def test_small_hot_writes_run_on_the_loop_thread_and_big_ones_elsewhere(
    tmp_path: Path,
) -> None:
    from storage.engines import INLINE_MAX_BYTES

    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'flowloom.db'}", data_dir=tmp_path)

    def where(connection: sqlite3.Connection) -> int:
        connection.execute("SELECT 1").fetchone()
        return threading.get_ident()

    try:
        small = await db._engines.write_sqlite(where, size=1000)
        big = await db._engines.write_sqlite(where, size=INLINE_MAX_BYTES + 1)
    finally:
        await db.close()
    assert small == threading.get_ident()
    assert big != threading.get_ident()
