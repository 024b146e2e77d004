"""Run metrics: counted from the engine's events, exposed in Prometheus text format.

`RunMetrics` is an event listener that only adds numbers to plain dicts (well under a
microsecond per event), so counting never slows runs down; the Prometheus families are built
when `/metrics` is scraped. Counters add up exactly to what the events reported.

    metrics = RunMetrics()
    engine = Engine(listeners=[metrics])
    metrics.webhook_request(202)            # counted by the webhook route
    metrics.schedule_fired(flow_id)         # counted by the scheduler
    text = metrics.exposition()             # for GET /metrics
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engine.events import (
    Event,
    RunFinished,
    RunStarted,
    StepRecord,
)

_bisect = bisect.bisect_left
STEP_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative), the sum and the number of observations."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    observations: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[_bisect(self.bounds, value)] += 1
        self.total += value
        self.observations += 1

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            buckets.append((repr(float(bound)), float(running)))
        buckets.append(("+Inf", float(self.observations)))
        return buckets

    def quantile(self, q: float) -> float | None:
        """An estimate, interpolated inside the bucket that holds the q-th observation (as
        Prometheus' histogram_quantile does)."""
        if not self.observations:
            return None
        target, running, lower = q * self.observations, 0, 0.0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            if count and running + count >= target:
                return lower + (float(bound) - lower) * (target - running) / count
            running += count
            lower = float(bound)
        return float(self.bounds[-1])


class RunMetrics(Collector):
    """Counts runs, steps, model tokens and cost, webhook answers and schedule fires."""

    def __init__(self, active_runs: Callable[[], int] | None = None) -> None:
        """`active_runs` tells how many runs go on now (e.g. `lambda: engine.runs_in_flight`);
        without it they are counted from run events."""
        #: The engine calls this listener only for these kinds (see engine.executor._Dispatch):
        #: steps are counted from the finished run's records, in one pass, to keep runs fast.
        self.event_kinds: tuple[type, ...] = (
            (RunFinished,) if active_runs is not None else (RunStarted, RunFinished)
        )
        self._active_source = active_runs
        self.started_at = time.time()
        self.runs: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.run_durations: dict[str, Histogram] = {}
        #: Step durations by (node type, status); `steps` and `step_durations` derive from it.
        self._step_kinds: dict[tuple[str, str], Histogram] = {}
        self.tokens: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.cost: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.webhooks: defaultdict[str, int] = defaultdict(int)
        self.schedule_fires: defaultdict[str, int] = defaultdict(int)
        self._active_counted = 0

    # -- the listener -------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if type(event) is RunStarted:
            self._active_counted += 1
            return
        if type(event) is not RunFinished:
            return
        self._active_counted -= 1
        flow = event.flow_id or "unknown"
        self.runs[(flow, event.status)] += 1
        histogram = self.run_durations.get(flow)
        if histogram is None:
            histogram = self.run_durations[flow] = Histogram(RUN_BUCKETS)
        histogram.observe(event.duration_s)
        # the hot loop: one dict lookup per step, the histogram update inlined
        by_kind, bounds, find = self._step_kinds, STEP_BUCKETS, _bisect
        for step in event.steps:
            status = step.status
            if status == "skipped":
                continue
            key = (step.node_type, status)
            histogram = by_kind.get(key)
            if histogram is None:
                histogram = by_kind[key] = Histogram(STEP_BUCKETS)
            took = step.finished_at - step.started_at
            histogram.counts[find(bounds, took)] += 1
            histogram.total += took
            if step.input_tokens or step.output_tokens or step.cost_usd:
                self._usage(step)

    @property
    def active_runs(self) -> int:
        """Runs going on now."""
        if self._active_source is not None:
            return self._active_source()
        return self._active_counted

    @property
    def steps(self) -> dict[tuple[str, str], int]:
        """Steps that ended, by (node type, status)."""
        return {key: sum(h.counts) for key, h in self._step_kinds.items()}

    @property
    def step_durations(self) -> dict[str, Histogram]:
        """Step durations by node type, every status together."""
        by_type: dict[str, Histogram] = {}
        for (node_type, _), histogram in self._step_kinds.items():
            total = by_type.setdefault(node_type, Histogram(STEP_BUCKETS))
            total.counts = [a + b for a, b in zip(total.counts, histogram.counts, strict=True)]
            total.total += histogram.total
        for histogram in by_type.values():
            histogram.observations = sum(histogram.counts)
        return by_type

    def _usage(self, step: StepRecord) -> None:
        model = step.model or "unknown"
        provider = _provider(step)
        self.tokens[(provider, model, "input")] += step.input_tokens
        self.tokens[(provider, model, "output")] += step.output_tokens
        self.cost[(provider, model)] += step.cost_usd

    def webhook_request(self, status_code: int) -> None:
        self.webhooks[str(status_code)] += 1

    def schedule_fired(self, flow_id: str) -> None:
        self.schedule_fires[flow_id] += 1

    # -- exposition ---------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "flowloom_runs", "Runs that ended, by flow and status.", labels=["flow", "status"]
        )
        for (flow, status), count in sorted(self.runs.items()):
            runs.add_metric([flow, status], count)
        yield runs
        active = GaugeMetricFamily("flowloom_active_runs", "Runs going on now.")
        active.add_metric([], self.active_runs)
        yield active
        yield _histogram(
            "flowloom_run_duration_seconds",
            "How long runs took, by flow.",
            "flow",
            self.run_durations.items(),
        )
        yield _histogram(
            "flowloom_step_duration_seconds",
            "How long steps took, by node type.",
            "node_type",
            self.step_durations.items(),
        )
        steps = CounterMetricFamily(
            "flowloom_steps",
            "Steps that ended, by node type and status.",
            labels=["node_type", "status"],
        )
        for (node_type, status), count in sorted(self.steps.items()):
            steps.add_metric([node_type, status], count)
        yield steps
        tokens = CounterMetricFamily(
            "flowloom_llm_tokens",
            "Model tokens, by provider, model and direction (input or output).",
            labels=["provider", "model", "direction"],
        )
        for token_labels, count in sorted(self.tokens.items()):
            tokens.add_metric(list(token_labels), count)
        yield tokens
        cost = CounterMetricFamily(
            "flowloom_llm_cost_usd", "Model cost in US dollars.", labels=["provider", "model"]
        )
        for cost_labels, usd in sorted(self.cost.items()):
            cost.add_metric(list(cost_labels), usd)
        yield cost
        hooks = CounterMetricFamily(
            "flowloom_webhook_requests", "Webhook calls, by answer status.", labels=["code"]
        )
        for code, count in sorted(self.webhooks.items()):
            hooks.add_metric([code], count)
        yield hooks
        fires = CounterMetricFamily(
            "flowloom_schedule_fires", "Schedule triggers fired, by flow.", labels=["flow"]
        )
        for flow, count in sorted(self.schedule_fires.items()):
            fires.add_metric([flow], count)
        yield fires

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry)


def _histogram(
    name: str, documentation: str, label: str, items: Iterable[tuple[str, Histogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in sorted(items):
        family.add_metric([value], histogram.cumulative(), histogram.total)
    return family


def _provider(step: StepRecord) -> str:
    for exchange in reversed(step.exchanges):
        provider = exchange.get("provider")
        if isinstance(provider, str):
            return provider
    return "unknown"


def parse_exposition(text: str) -> dict[str, Any]:
    """Metric samples by `name{labels}` (for tests and the dashboard's own numbers)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples
