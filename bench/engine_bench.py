"""Engine benchmark: per-step overhead, fan-out and runs per second, beside bare asyncio.

    .venv/bin/python bench/engine_bench.py [--runs 100000] [--quick]

Every figure is measured in this one process, next to a bare-asyncio baseline doing the same
work without FlowLoom, so the ratios hold on a noisy machine. Timings are the best of several
repeats; the metrics cost is the median of interleaved rounds. Targets (2-core machine):
<= 10 us per step, >= 10,000 runs/s, <= 5 % fewer runs/s with metrics on, flat memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import CompiledFlow, Engine, compile_flow
from engine.metrics import RunMetrics

SCHEMA = "flowloom/1"


def chain_document(length: int) -> dict[str, Any]:
    """trigger → `length` data.set steps, each adding 1 to `counter` with a template."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual"}]
    edges = []
    previous = "start"
    for i in range(length):
        nodes.append(
            {
                "id": f"s{i}",
                "type": "data.set",
                "config": {"values": {"counter": "{{ input.counter + 1 }}"}},
            }
        )
        edges.append({"source": previous, "target": f"s{i}"})
        previous = f"s{i}"
    return {"schema": SCHEMA, "name": f"chain of {length}", "nodes": nodes, "edges": edges}


def fan_out_document(width: int) -> dict[str, Any]:
    """trigger → `width` parallel data.set steps → one merge (mode all)."""
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "trigger.manual"},
        {"id": "merge", "type": "logic.merge", "config": {"mode": "all"}},
    ]
    edges = []
    for i in range(width):
        nodes.append(
            {
                "id": f"b{i}",
                "type": "data.set",
                "config": {"values": {"counter": "{{ input.counter + 1 }}"}},
            }
        )
        edges += [{"source": "start", "target": f"b{i}"}, {"source": f"b{i}", "target": "merge"}]
    return {"schema": SCHEMA, "name": f"fan-out of {width}", "nodes": nodes, "edges": edges}


# -- the bare-asyncio baseline: the same work, no engine --------------------------------------


async def bare_step(value: dict[str, Any]) -> dict[str, Any]:
    return {**value, "counter": value["counter"] + 1}


async def bare_chain(length: int) -> dict[str, Any]:
    value = {"counter": 0}
    for _ in range(length):
        value = await bare_step(value)
    return value


async def bare_fan_out(width: int) -> dict[str, Any]:
    results = await asyncio.gather(*(bare_step({"counter": 0}) for _ in range(width)))
    return {f"b{i}": r for i, r in enumerate(results)}


# -- measuring --------------------------------------------------------------------------------


async def best_of(repeats: int, work: Callable[[], Awaitable[Any]]) -> float:
    """The shortest wall time of `repeats` runs of `work`, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return min(times)


async def runs_per_second(
    total: int, concurrency: int, one_run: Callable[[], Awaitable[Any]]
) -> float:
    """Runs/s with `concurrency` runs in flight at all times."""
    remaining = total

    async def runner() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_run()

    started = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


def one_run_of(engine: Engine, flow: CompiledFlow) -> Callable[[], Awaitable[Any]]:
    return lambda: engine.run(flow, {"counter": 0})


@dataclass
class MetricsCost:
    """Each round's runs/s without (off) and with (on) RunMetrics, by wall clock and per CPU
    second of this process."""

    wall_off: list[float] = field(default_factory=list)
    wall_on: list[float] = field(default_factory=list)
    cpu_off: list[float] = field(default_factory=list)
    cpu_on: list[float] = field(default_factory=list)

    @staticmethod
    def fewer(on: list[float], off: list[float]) -> tuple[float, float, float]:
        """How many fewer runs/s with metrics on, in %: the median round and the middle half
        of the rounds (from, to)."""
        fewer = sorted((1 - a / b) * 100 for a, b in zip(on, off, strict=True))
        quarter = len(fewer) // 4
        return statistics.median(fewer), fewer[quarter], fewer[-1 - quarter]


async def metrics_cost(flow: CompiledFlow, runs: int, rounds: int) -> MetricsCost:
    """Runs/s of `flow` without and with RunMetrics, `rounds` times `runs` runs each.

    In the server every run already has an event listener (the recorder), so both engines
    have one and the metered one adds RunMetrics. Each round measures both sides back to back,
    the first side alternating, so drift hits both alike, and the median round is the figure.
    Runs/s are counted per CPU second of this process too: the work is the same, but a
    neighbour's time slices on a shared machine (which swing wall-clock rounds by tens of %)
    do not count.
    """
    consumer = Engine(listeners=[lambda event: None])
    metered = Engine(listeners=[lambda event: None])
    metrics = RunMetrics(active_runs=lambda: metered.runs_in_flight)
    metered.listeners.append(metrics)
    cost = MetricsCost()
    for round_ in range(rounds):
        for engine in (consumer, metered) if round_ % 2 == 0 else (metered, consumer):
            cpu_started = time.process_time()
            wall = await runs_per_second(runs, 100, one_run_of(engine, flow))
            cpu = runs / (time.process_time() - cpu_started)
            if engine is metered:
                cost.wall_on.append(wall)
                cost.cpu_on.append(cpu)
            else:
                cost.wall_off.append(wall)
                cost.cpu_off.append(cpu)
    counted = sum(metrics.steps.values())
    assert counted == rounds * runs * len(flow.nodes), counted  # every step was counted
    return cost


def rss_mib() -> float:
    """Resident memory of this process, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000, help="runs for the memory check")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    engine = Engine()

    chain_1000: CompiledFlow = compile_flow(chain_document(1000))
    fan_100 = compile_flow(fan_out_document(100))
    chain_10 = compile_flow(chain_document(10))
    # Everything built so far lives as long as the process, as in a server after start-up.
    gc.collect()
    gc.freeze()

    result = await engine.run(chain_1000, {"counter": 0})
    assert result.status == "succeeded" and result.output == {"counter": 1000}, result.error
    result = await engine.run(fan_100, {"counter": 0})
    assert result.status == "succeeded" and len(result.output) == 100, result.error

    print(
        f"FlowLoom engine benchmark — Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, best of {repeats}"
    )
    print()

    engine_chain = await best_of(repeats, lambda: engine.run(chain_1000, {"counter": 0}))
    bare_chain_s = await best_of(repeats, lambda: bare_chain(1000))
    per_node = engine_chain / 1000 * 1e6
    bare_node = bare_chain_s / 1000 * 1e6
    print("1000-step chain of data.set (+1 by template)")
    print(f"  FlowLoom     {engine_chain * 1e3:8.2f} ms   {per_node:6.2f} us per step")
    print(f"  bare asyncio {bare_chain_s * 1e3:8.2f} ms   {bare_node:6.2f} us per step")
    print(f"  engine overhead per step: {per_node - bare_node:.2f} us   (target <= 10 us)")
    print()

    engine_fan = await best_of(repeats, lambda: engine.run(fan_100, {"counter": 0}))
    bare_fan = await best_of(repeats, lambda: bare_fan_out(100))
    print("100-wide fan-out into a merge")
    print(f"  FlowLoom     {engine_fan * 1e3:8.2f} ms   {engine_fan / 102 * 1e6:6.2f} us per step")
    print(f"  bare asyncio {bare_fan * 1e3:8.2f} ms")
    print()

    total = 5_000 if args.quick else 50_000
    engine_rps = await runs_per_second(total, 100, lambda: engine.run(chain_10, {"counter": 0}))
    bare_rps = await runs_per_second(total, 100, lambda: bare_chain(10))
    print("10-step chain, 100 runs in flight")
    print(f"  FlowLoom     {engine_rps:10,.0f} runs/s   (target >= 10,000)")
    print(f"  bare asyncio {bare_rps:10,.0f} runs/s")
    print()

    rounds = 3 if args.quick else 15
    cost = await metrics_cost(chain_10, total // 10, rounds)
    print(
        "Metrics: 10-step chain, 100 runs in flight, with an event listener "
        f"(median of {rounds} rounds)"
    )
    print("                 wall clock        per CPU second")
    for label, wall, cpu in (
        ("metrics off", cost.wall_off, cost.cpu_off),
        ("metrics on ", cost.wall_on, cost.cpu_on),
    ):
        print(
            f"  {label}  {statistics.median(wall):8,.0f} runs/s   "
            f"{statistics.median(cpu):8,.0f} runs/s"
        )
    for label, on, off in (
        ("wall clock", cost.wall_on, cost.wall_off),
        ("CPU      ", cost.cpu_on, cost.cpu_off),
    ):
        median, low, high = MetricsCost.fewer(on, off)
        print(
            f"  {label}   {median:+.1f} % fewer (middle half of the rounds "
            f"{low:+.1f} .. {high:+.1f} %; target <= 5 %)"
        )
    print()

    checkpoints = 10
    per_checkpoint = max(1, args.runs // checkpoints)
    samples = []
    for _ in range(checkpoints):
        await runs_per_second(per_checkpoint, 100, lambda: engine.run(chain_10, {"counter": 0}))
        samples.append(rss_mib())
    growth = samples[-1] - samples[1]
    print(f"Memory across {per_checkpoint * checkpoints:,} runs of the 10-step chain (RSS, MiB)")
    print("  " + " ".join(f"{s:.1f}" for s in samples))
    print(
        f"  growth after the first checkpoint: {growth:+.1f} MiB "
        f"(median {statistics.median(samples):.1f} MiB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
