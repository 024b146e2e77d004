"""Storage benchmark: runs per second with every step stored, database growth, size after prune.

    .venv/bin/python bench/storage_bench.py [--runs 10000] [--batch 200] [--only sqlite|postgresql]

It writes what the engine's recorder writes for a 5-node flow: each run is created on its own
(`db.runs.create`, committed, as a webhook's run is before it is answered; the runs of a batch
are created concurrently, as concurrent requests would), then the batch's final run states
and 5 step rows per run go in one `db.runs.record` call: one transaction, like a group commit.

SQLite is a file in a temporary directory. PostgreSQL is a throwaway cluster started from
Debian's binaries (tests/postgres.py) with its durable defaults (fsync, synchronous_commit on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Engine, compile_flow
from engine.recorder import RunRecorder
from storage import Database
from tests.postgres import PostgresCluster

NODES = ("start", "fetch", "classify", "shape", "reply")
TEXT = "The quick brown fox jumps over the lazy dog. " * 4  # ~180 bytes per payload


def run_batch(
    batch: int, size: int, started: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The final state of `size` runs of the 5-node flow, as the recorder hands it over."""
    runs, steps = [], []
    for i in range(size):
        run_id = f"run-{batch}-{i}"
        runs.append(
            {
                "id": run_id,
                "status": "succeeded",
                "output": {"reply": TEXT, "n": i},
                "started_at": started,
                "finished_at": started + 0.01,
            }
        )
        for seq, node in enumerate(NODES):
            steps.append(
                {
                    "run_id": run_id,
                    "seq": seq,
                    "node_id": node,
                    "node_name": node.title(),
                    "node_type": "data.set",
                    "status": "succeeded",
                    "visit": 1,
                    "parent": None,
                    "item_index": None,
                    "input": {"text": TEXT, "n": seq},
                    "output": {"text": TEXT, "n": seq + 1},
                    "port": "out",
                    "error": None,
                    "attempts": 1,
                    "started_at": started + seq * 0.001,
                    "finished_at": started + seq * 0.001 + 0.0005,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cost_usd": 0.0,
                    "model": None,
                    "logs": [],
                    "exchanges": [],
                }
            )
    return runs, steps


async def measure(url: str, *, runs: int, batch: int, size_of: Any) -> dict[str, float]:
    db = await Database.open(url)
    try:
        flow = await db.flows.create({"schema": "flowloom/1", "name": "Five steps"})
        size_before = await size_of(db)
        create_s = record_s = 0.0
        begin = time.perf_counter()
        for number in range(runs // batch):
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    db.runs.create(
                        run_id=f"run-{number}-{i}",
                        flow_id=flow.id,
                        flow_version=1,
                        trigger="webhook",
                        input={"text": TEXT},
                    )
                    for i in range(batch)
                )
            )
            t1 = time.perf_counter()
            finished, steps = run_batch(number, batch, time.time())
            await db.runs.record(finished, steps)
            record_s += time.perf_counter() - t1
            create_s += t1 - t0
        elapsed = time.perf_counter() - begin
        stored = (runs // batch) * batch
        size_after = await size_of(db)
        report = await db.prune(days=30, max_runs_per_flow=100)
        return {
            "runs": stored,
            "runs_per_s": stored / elapsed,
            "creates_per_s": stored / create_s,
            "steps_per_s": stored * len(NODES) / record_s,
            "bytes_per_run": (size_after - size_before) / stored,
            "size_mib": size_after / 2**20,
            "after_prune_mib": report["bytes_after"] / 2**20,
            "runs_deleted": report["runs_deleted"],
        }
    finally:
        await db.close()


def five_step_flow() -> dict[str, Any]:
    """trigger → 4 data.set steps, each templated, as the engine runs them."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual"}]
    edges = []
    for previous, node in itertools.pairwise(NODES):
        nodes.append(
            {
                "id": node,
                "type": "data.set",
                "config": {"values": {node: "{{ input.text | length }}"}},
            }
        )
        edges.append({"source": previous, "target": node})
    return {"schema": "flowloom/1", "name": "Five steps, engine", "nodes": nodes, "edges": edges}


async def measure_engine(url: str, *, runs: int, concurrency: int = 100) -> dict[str, float]:
    """The real path: each run created (committed), run by the engine, every step recorded
    by the RunRecorder's group commits; beside the same runs with nothing stored."""
    db = await Database.open(url)
    recorder = RunRecorder(db.runs)
    stored_engine = Engine(listeners=[recorder])
    bare_engine = Engine()
    try:
        document = five_step_flow()
        flow_record = await db.flows.create(document)
        compiled = compile_flow(document)
        await recorder.start()

        async def stored_run(n: int) -> None:
            run_id = f"engine-run-{n}"
            await db.runs.create(
                run_id=run_id,
                flow_id=flow_record.id,
                flow_version=1,
                trigger="start",
                input={"text": TEXT},
            )
            result = await stored_engine.run(compiled, {"text": TEXT}, run_id=run_id)
            assert result.status == "succeeded", result.error

        async def bare_run(_: int) -> None:
            await bare_engine.run(compiled, {"text": TEXT})

        figures = {}
        for label, one_run in (("bare", bare_run), ("stored", stored_run)):
            queue = iter(range(runs))

            async def worker(one_run: Any = one_run, queue: Any = queue) -> None:
                for n in queue:
                    await one_run(n)

            begin = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            if label == "stored":
                await recorder.flush()
            figures[label] = runs / (time.perf_counter() - begin)
        stored, total = await db.runs.list(flow_id=flow_record.id, status="succeeded", limit=1)
        assert total == runs, f"only {total} of {runs} runs were stored as succeeded"
        steps = len((await db.runs.get(stored[0].id)).steps)
        assert steps == len(NODES), steps
        return {"engine_runs_per_s": figures["stored"], "bare_runs_per_s": figures["bare"]}
    finally:
        await recorder.stop()
        await stored_engine.aclose()
        await bare_engine.aclose()
        await db.close()


@contextlib.contextmanager
def sqlite_database() -> Iterator[tuple[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="flowloom-bench-") as folder:
        path = Path(folder) / "flowloom.db"

        async def size_of(_db: Database) -> int:
            # Fold the WAL back in first, so the file size is what the rows take.
            def checkpoint() -> int:
                with contextlib.closing(sqlite3.connect(path)) as connection:
                    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return sum(p.stat().st_size for p in Path(folder).glob("flowloom.db*"))

            return await asyncio.to_thread(checkpoint)

        yield f"sqlite+aiosqlite:///{path}", size_of


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, Any]]:
    with PostgresCluster(durable=True) as cluster:
        url = cluster.create_database("flowloom_bench")

        async def size_of(db: Database) -> int:
            from sqlalchemy import text

            async with db._engines.reader.connect() as connection:
                await connection.execute(text("CHECKPOINT"))
                size = await connection.scalar(text("SELECT pg_database_size(current_database())"))
            return int(size or 0)

        yield url, size_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200, help="runs per record() transaction")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()

    print(
        f"{args.runs} runs of a {len(NODES)}-node flow, every step stored; "
        f"record() batches of {args.batch} runs ({args.batch * len(NODES)} steps)\n"
    )
    header = (
        f"{'database':<11} {'runs/s':>8} {'creates/s':>10} {'steps/s':>9} "
        f"{'bytes/run':>10} {'size':>9} {'after prune':>12}"
    )
    print(header)
    print("-" * len(header))
    backends = {"sqlite": sqlite_database, "postgresql": postgres_database}
    for name, backend in backends.items():
        if args.only and name != args.only:
            continue
        with backend() as (url, size_of):
            figures = asyncio.run(measure(url, runs=args.runs, batch=args.batch, size_of=size_of))
        print(
            f"{name:<11} {figures['runs_per_s']:>8,.0f} {figures['creates_per_s']:>10,.0f} "
            f"{figures['steps_per_s']:>9,.0f} {figures['bytes_per_run']:>10,.0f} "
            f"{figures['size_mib']:>7.1f} MiB {figures['after_prune_mib']:>8.1f} MiB"
        )
    print("\nThe real path: the engine runs each run, the recorder stores every step")
    print(f"{'database':<11} {'stored runs/s':>14} {'same runs, nothing stored':>27}")
    for name, backend in backends.items():
        if args.only and name != args.only:
            continue
        with backend() as (url, _):
            figures = asyncio.run(measure_engine(url, runs=min(args.runs, 10_000)))
        print(
            f"{name:<11} {figures['engine_runs_per_s']:>14,.0f} "
            f"{figures['bare_runs_per_s']:>27,.0f}"
        )
    print(
        "\nruns/s: the whole loop. creates/s: `create` alone, a batch's runs created concurrently "
        "(committed\ntogether, each caller returning once its run is stored). steps/s: `record` "
        "alone. after prune:\nthe size once prune kept the newest 100 runs (SQLite compacts; "
        "PostgreSQL keeps the freed\npages for reuse)."
    )


if __name__ == "__main__":
    main()
