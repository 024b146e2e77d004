"""Metrics add up exactly to what the runs did."""

from __future__ import annotations

import asyncio

import pytest

from engine import Engine
from engine.metrics import Histogram, RunMetrics, parse_exposition
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
