"""Metrics add up exactly to what the runs did."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from engine import Engine
from engine.events import RunFinished, RunStatus, StepRecord, StepStatus
from engine.metrics import (
    FOLD_AT,
    RUN_BUCKETS,
    STEP_BUCKETS,
    Histogram,
    RunMetrics,
    parse_exposition,
)
from tests.documents import chain, manual, step
from tests.probe_nodes import probe_registry


@pytest.fixture
def counted() -> tuple[Engine, RunMetrics]:
    metrics = RunMetrics()
    return Engine(registry=probe_registry(), listeners=[metrics]), metrics


async def test_runs_steps_and_durations_add_up_exactly(counted: tuple[Engine, RunMetrics]) -> None:
    engine, metrics = counted
    good = chain(
        manual(),
        step("a", "data.set", {"values": {"x": 1}}),
        step("b", "flow.delay", {"seconds": 0.01}),
    )
    bad = chain(manual(), step("boom", "probe.crash"))

    for _ in range(7):
        await engine.run(good, flow_id="good")
    for _ in range(3):
        await engine.run(bad, flow_id="bad")
    samples = parse_exposition(metrics.exposition().decode())

    assert samples['flowloom_runs_total{flow="good",status="succeeded"}'] == 7
    assert samples['flowloom_runs_total{flow="bad",status="failed"}'] == 3
    assert 'flowloom_runs_total{flow="good",status="failed"}' not in samples
    assert samples["flowloom_active_runs{}"] == 0
    assert samples['flowloom_run_duration_seconds_count{flow="good"}'] == 7
    assert samples['flowloom_step_duration_seconds_count{node_type="flow.delay"}'] == 7
    assert samples['flowloom_step_duration_seconds_bucket{le="0.005",node_type="flow.delay"}'] == 0
    assert samples['flowloom_step_duration_seconds_bucket{le="+Inf",node_type="flow.delay"}'] == 7
    assert samples['flowloom_step_duration_seconds_sum{node_type="flow.delay"}'] >= 0.07
    assert samples['flowloom_steps_total{node_type="probe.crash",status="failed"}'] == 3
    assert samples['flowloom_steps_total{node_type="trigger.manual",status="succeeded"}'] == 10


async def test_retried_attempts_are_not_counted_as_ended_steps(
    counted: tuple[Engine, RunMetrics],
) -> None:
    engine, metrics = counted
    document = chain(
        manual(),
        step(
            "f",
            "probe.flaky",
            {"key": "metrics-retry", "failures": 2},
            settings={"retries": 2, "retry_backoff_s": 0.001},
        ),
    )

    await engine.run(document)
    samples = parse_exposition(metrics.exposition().decode())

    assert samples['flowloom_steps_total{node_type="probe.flaky",status="succeeded"}'] == 1
    assert 'flowloom_steps_total{node_type="probe.flaky",status="failed"}' not in samples


async def test_model_tokens_and_cost_are_summed_by_model(
    counted: tuple[Engine, RunMetrics],
) -> None:
    engine, metrics = counted
    document = chain(manual(), step("talk", "probe.chatty"))

    await asyncio.gather(*(engine.run(document) for _ in range(4)))
    samples = parse_exposition(metrics.exposition().decode())

    assert (
        samples['flowloom_llm_tokens_total{direction="input",model="probe-1",provider="unknown"}']
        == 12
    )
    assert (
        samples['flowloom_llm_tokens_total{direction="output",model="probe-1",provider="unknown"}']
        == 8
    )
    assert samples['flowloom_llm_cost_usd_total{model="probe-1",provider="unknown"}'] == 2.0


async def test_active_runs_counts_runs_in_flight(counted: tuple[Engine, RunMetrics]) -> None:
    engine, metrics = counted
    handles = [
        engine.start(chain(manual(), step("w", "flow.delay", {"seconds": 0.3}))) for _ in range(3)
    ]
    await asyncio.sleep(0.1)

    during = parse_exposition(metrics.exposition().decode())["flowloom_active_runs{}"]
    for handle in handles:
        await handle

    assert during == 3
    assert parse_exposition(metrics.exposition().decode())["flowloom_active_runs{}"] == 0


def test_webhook_answers_and_schedule_fires_are_counted() -> None:
    metrics = RunMetrics()
    for code in (202, 202, 401):
        metrics.webhook_request(code)
    metrics.schedule_fired("nightly")

    samples = parse_exposition(metrics.exposition().decode())

    assert samples['flowloom_webhook_requests_total{code="202"}'] == 2
    assert samples['flowloom_webhook_requests_total{code="401"}'] == 1
    assert samples['flowloom_schedule_fires_total{flow="nightly"}'] == 1


def test_quantiles_interpolate_inside_the_bucket() -> None:
    histogram = Histogram((0.1, 0.2, 0.4))
    for value in (0.05, 0.15, 0.15, 0.3):
        histogram.observe(value)

    assert histogram.quantile(0.5) == pytest.approx(0.15)  # 2nd of 4 is halfway into (0.1, 0.2]
    assert histogram.quantile(1.0) == pytest.approx(0.4)
    assert Histogram((1.0,)).quantile(0.5) is None


async def test_active_runs_can_come_from_the_engine_itself() -> None:
    engine = Engine(registry=probe_registry())
    metrics = RunMetrics(active_runs=lambda: engine.runs_in_flight)
    engine.listeners.append(metrics)
    handles = [
        engine.start(chain(manual(), step("w", "flow.delay", {"seconds": 0.3}))) for _ in range(2)
    ]
    await asyncio.sleep(0.1)

    during = parse_exposition(metrics.exposition().decode())["flowloom_active_runs{}"]
    for handle in handles:
        await handle

    assert during == 2
    assert metrics.active_runs == 0
    assert (
        parse_exposition(metrics.exposition().decode())[
            'flowloom_runs_total{flow="unknown",status="succeeded"}'
        ]
        == 2
    )


# -- buffered step and run durations ----------------------------------------------------------

NODE_TYPES = ("data.set", "http.request", "ai.agent")
STEP_STATUSES: tuple[StepStatus, ...] = ("succeeded",) * 3 + ("failed", "cancelled", "skipped")
RUN_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed")


def any_duration(rng: random.Random) -> float:
    """Mostly fast steps, some slow ones, values right on a bucket bound, past the last bound,
    and now and then a negative one (the wall clock stepped back)."""
    kind = rng.random()
    if kind < 0.7:
        return rng.uniform(1e-6, 4e-4)
    if kind < 0.8:
        return float(rng.choice(STEP_BUCKETS))
    if kind < 0.97:
        return rng.uniform(0.0, 70.0) ** 2 / 70.0
    return -rng.uniform(0.0, 1.0) if kind < 0.98 else 1e4


def finished_run(rng: random.Random, flow_id: str) -> RunFinished:
    steps = []
    for index in range(rng.randint(1, 12)):
        started = 1_700_000_000.0 + rng.uniform(0, 100)
        steps.append(
            StepRecord(
                f"n{index}",
                f"n{index}",
                rng.choice(NODE_TYPES),
                rng.choice(STEP_STATUSES),
                started_at=started,
                finished_at=started + any_duration(rng),
            )
        )
    status = rng.choice(RUN_STATUSES)
    return RunFinished("run", status, None, None, 0.0, any_duration(rng) * 10, flow_id, steps)


class OneByOne:
    """What the metrics must show: every duration observed one at a time, as it came."""

    def __init__(self) -> None:
        self.steps: dict[tuple[str, str], Histogram] = {}
        self.runs: dict[tuple[str, str], Histogram] = {}

    def __call__(self, event: RunFinished) -> None:
        key = (event.flow_id or "unknown", event.status)
        self.runs.setdefault(key, Histogram(RUN_BUCKETS)).observe(event.duration_s)
        for record in event.steps:
            if record.status != "skipped":
                histogram = self.steps.setdefault(
                    (record.node_type, record.status), Histogram(STEP_BUCKETS)
                )
                histogram.observe(record.finished_at - record.started_at)


def merged_by_name(histograms: dict[tuple[str, str], Histogram]) -> dict[str, Histogram]:
    merged: dict[str, Histogram] = {}
    for (name, _), histogram in histograms.items():
        for_name = merged.setdefault(name, Histogram(histogram.bounds))
        for_name.counts = [a + b for a, b in zip(for_name.counts, histogram.counts, strict=True)]
        for_name.total += histogram.total
        for_name.observations += histogram.observations
    return merged


def assert_same_histograms(shown: dict[str, Histogram], expected: dict[str, Histogram]) -> None:
    assert shown.keys() == expected.keys()
    for name, histogram in expected.items():
        assert shown[name].counts == histogram.counts, name
        assert shown[name].observations == histogram.observations, name
        assert shown[name].total == pytest.approx(histogram.total, rel=1e-12, abs=1e-12), name
        for q in (0.5, 0.9, 0.95, 0.99):
            assert shown[name].quantile(q) == histogram.quantile(q), (name, q)


def test_buffered_durations_add_up_exactly_whenever_read_across_the_fold_bound() -> None:
    rng = random.Random(20240611)
    metrics, expected = RunMetrics(active_runs=lambda: 0), OneByOne()
    steps_seen = 0

    for run in range(1, FOLD_AT):
        event = finished_run(rng, rng.choice(("nightly", "hourly")))
        metrics(event)
        expected(event)
        steps_seen += len(event.steps)
        if run % 101 == 0:  # read now and then, more than FOLD_AT steps apart on average
            assert metrics.steps == {k: h.observations for k, h in expected.steps.items()}
            assert metrics.runs == {k: h.observations for k, h in expected.runs.items()}
        # unread, the buffers are folded as they reach the bound
        assert sum(map(len, metrics._steps.buffers.values())) < FOLD_AT

    assert steps_seen > 5 * FOLD_AT
    assert metrics.steps == {k: h.observations for k, h in expected.steps.items()}
    assert_same_histograms(metrics.step_durations, merged_by_name(expected.steps))
    assert_same_histograms(metrics.run_durations, merged_by_name(expected.runs))
    samples = parse_exposition(metrics.exposition().decode())
    data_set = merged_by_name(expected.steps)["data.set"]
    count = samples['flowloom_step_duration_seconds_count{node_type="data.set"}']
    fastest = samples['flowloom_step_duration_seconds_bucket{le="0.0005",node_type="data.set"}']
    assert (count, fastest) == (data_set.observations, data_set.counts[0])


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.00001, 0.0002, 0.0004],  # one bucket, the first
        [0.3, 0.4, 0.45],  # one bucket, not the first
        [0.1, 0.2, 0.4, 0.0, 0.1],  # right on the bounds
        [0.05, 0.15, 0.15, 0.3, 7.0, -1.0],  # every bucket, +Inf and a negative value
        [0.4000001, 0.39999, 0.4],
    ],
)
def test_observing_in_bulk_counts_like_observing_one_by_one(values: list[float]) -> None:
    bulk, one_by_one = Histogram((0.1, 0.2, 0.4)), Histogram((0.1, 0.2, 0.4))
    for value in values:
        one_by_one.observe(value)

    bulk.observe_all(list(values))

    assert bulk.counts == one_by_one.counts
    assert bulk.observations == one_by_one.observations == len(values)
    assert bulk.total == pytest.approx(one_by_one.total)
    assert bulk.quantile(0.5) == one_by_one.quantile(0.5)


async def test_a_step_with_several_model_calls_counts_each_call_once(
    counted: tuple[Engine, RunMetrics],
) -> None:
    engine, metrics = counted
    document = chain(
        manual(),
        step("talk", "probe.chatty", {"calls": 3}),
        step("quiet", "data.set", {"values": {"x": 1}}),
    )

    await engine.run(document)
    samples = parse_exposition(metrics.exposition().decode())

    assert (
        samples['flowloom_llm_tokens_total{direction="input",model="probe-1",provider="unknown"}']
        == 9
    )
    assert samples['flowloom_llm_cost_usd_total{model="probe-1",provider="unknown"}'] == 1.5


async def test_a_stored_sub_flow_s_runs_are_counted_under_its_own_flow(tmp_path: Path) -> None:
    from engine.settings import Settings
    from studio.runtime import Runtime

    runtime = Runtime(Settings(data_dir=tmp_path / "data"))
    await runtime.start()
    try:
        inner = await runtime.db.flows.create(
            {
                **chain(manual(), step("hello", "data.set", {"values": {"hi": True}})),
                "name": "Greeter",
            }
        )
        outer = await runtime.db.flows.create(
            {**chain(manual(), step("sub", "flow.subflow", {"flow": "Greeter"})), "name": "Caller"}
        )
        record = await runtime.submit(outer, {})
        result = await runtime.wait(record.id, 10)
        assert result is not None and result.status == "succeeded", result

        runs = runtime.metrics.runs
        assert runs.get((outer.id, "succeeded")) == 1
        assert runs.get((inner.id, "succeeded")) == 1  # not "unknown"
        assert not any(flow == "unknown" for flow, _ in runs)
    finally:
        await runtime.stop()


async def test_steps_restored_on_resume_are_not_counted_again(
    counted: tuple[Engine, RunMetrics],
) -> None:
    engine, metrics = counted
    document = chain(manual(), step("talk", "probe.chatty"), step("crash", "probe.crash"))
    first = await engine.run(document, flow_id="f")
    assert first.status == "failed"
    finished = [record for record in first.steps if record.status == "succeeded"]

    again = await engine.run(document, flow_id="f", resume=finished)  # talk is restored
    assert again.status == "failed"
    samples = parse_exposition(metrics.exposition().decode())

    assert samples['flowloom_runs_total{flow="f",status="failed"}'] == 2
    assert samples['flowloom_steps_total{node_type="probe.chatty",status="succeeded"}'] == 1
    assert samples['flowloom_steps_total{node_type="probe.crash",status="failed"}'] == 2
    assert (
        samples['flowloom_llm_tokens_total{direction="input",model="probe-1",provider="unknown"}']
        == 3
    )
    assert samples['flowloom_llm_cost_usd_total{model="probe-1",provider="unknown"}'] == 0.5
