"""Run metrics: counted from the engine's events, exposed in Prometheus text format.

`RunMetrics` is an event listener that only appends numbers to plain lists (about a tenth of
a microsecond per step), so counting never slows runs down: run and step durations are counted
into their buckets in bulk, when anyone reads the metrics or the lists grow long, and the
Prometheus families are built when `/metrics` is scraped. Counters add up exactly to what the
events reported, whenever they are read.

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
#: Buffered durations (of runs and steps) are counted into their buckets once there are this
#: many (or when the metrics are read), which keeps the buffers small (about 16 KiB).
FOLD_AT = 512


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

    def observe_all(self, values: list[float]) -> None:
        """`observe` each of `values`, in bulk: a few passes over the list instead of a
        bisection per value (most values share the lowest bucket; only the others are sorted)."""
        if not values:
            return
        bounds, counts = self.bounds, self.counts
        highest = _bisect(bounds, max(values))
        lowest = _bisect(bounds, min(values)) if highest else 0
        if lowest == highest:
            counts[highest] += len(values)
        else:
            cut = bounds[lowest]
            above = sorted([value for value in values if value > cut])
            counts[lowest] += len(values) - len(above)
            below = 0  # values of `above` up to the previous bound
            for index in range(lowest + 1, highest):
                upto = bisect.bisect_right(above, bounds[index])
                counts[index] += upto - below
                below = upto
            counts[highest] += len(above) - below
        self.total += sum(values)
        self.observations += len(values)

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


class _Durations:
    """Histograms by (name, status), fed through plain lists: a listener appends each duration
    to its list (`buffers`, or `succeeded` by name alone), and `fold` counts the lists into the
    histograms in bulk and empties them."""

    __slots__ = ("bounds", "buffers", "histograms", "succeeded")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.histograms: dict[tuple[str, str], Histogram] = {}
        self.buffers: dict[tuple[str, str], list[float]] = {}
        #: The buffers of status "succeeded" by name alone (the same lists, found without
        #: building a tuple: most steps succeed).
        self.succeeded: dict[str, list[float]] = {}

    def buffer(self, name: str, status: str) -> list[float]:
        """The list durations of (name, status) are appended to, made on first use."""
        key = (name, status)
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = self.buffers[key] = []
            self.histograms[key] = Histogram(self.bounds)
            if status == "succeeded":
                self.succeeded[name] = buffer
        return buffer

    def fold(self) -> None:
        """Count every buffered duration into its histogram and empty the buffers."""
        for key, buffer in self.buffers.items():
            if buffer:
                self.histograms[key].observe_all(buffer)
                buffer.clear()

    def counts(self) -> dict[tuple[str, str], int]:
        """Observations by (name, status), as of the last `fold`."""
        return {key: histogram.observations for key, histogram in self.histograms.items()}

    def by_name(self) -> dict[str, Histogram]:
        """One histogram per name, every status together, as of the last `fold`."""
        merged: dict[str, Histogram] = {}
        for (name, _), histogram in self.histograms.items():
            total = merged.setdefault(name, Histogram(self.bounds))
            total.counts = [a + b for a, b in zip(total.counts, histogram.counts, strict=True)]
            total.total += histogram.total
            total.observations += histogram.observations
        return merged


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
        #: Run durations by (flow, status); `runs` and `run_durations` derive from it.
        self._runs = _Durations(RUN_BUCKETS)
        #: Step durations by (node type, status); `steps` and `step_durations` derive from it.
        self._steps = _Durations(STEP_BUCKETS)
        #: Durations appended to the buffers since they were last folded.
        self._buffered = 0
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
        flow, status = event.flow_id or "unknown", event.status
        self._runs.buffer(flow, status).append(event.duration_s)
        # The hot loop: per step a dict lookup and an append; buckets are counted by `_fold`.
        steps = self._steps
        succeeded = steps.succeeded
        for step in event.steps:
            if step.status == "succeeded":
                try:
                    buffer = succeeded[step.node_type]
                except KeyError:
                    buffer = steps.buffer(step.node_type, "succeeded")
            elif step.status == "skipped":
                continue
            else:
                buffer = steps.buffer(step.node_type, step.status)
            buffer.append(step.finished_at - step.started_at)
        for step in event.usage_steps:
            if step.input_tokens or step.output_tokens or step.cost_usd:
                self._usage(step)
        self._buffered += len(event.steps) + 1
        if self._buffered >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        """Count every buffered duration into its histogram."""
        self._runs.fold()
        self._steps.fold()
        self._buffered = 0

    @property
    def active_runs(self) -> int:
        """Runs going on now."""
        if self._active_source is not None:
            return self._active_source()
        return self._active_counted

    @property
    def runs(self) -> dict[tuple[str, str], int]:
        """Runs that ended, by (flow, status)."""
        self._fold()
        return self._runs.counts()

    @property
    def run_durations(self) -> dict[str, Histogram]:
        """Run durations by flow, every status together."""
        self._fold()
        return self._runs.by_name()

    @property
    def steps(self) -> dict[tuple[str, str], int]:
        """Steps that ended, by (node type, status)."""
        self._fold()
        return self._steps.counts()

    @property
    def step_durations(self) -> dict[str, Histogram]:
        """Step durations by node type, every status together."""
        self._fold()
        return self._steps.by_name()

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
