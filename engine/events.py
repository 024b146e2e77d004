"""Typed run events: the one stream the studio, storage and metrics all consume.

A listener is a plain callable that receives every event of a run, in order. Listeners are
called on the event loop and must not block: a consumer that does I/O puts the event on its
own queue (see `EventStream`). When a run has no listener, no event objects are built.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

StepStatus = Literal["running", "succeeded", "failed", "skipped", "cancelled"]
RunStatus = Literal[
    "queued", "running", "succeeded", "failed", "cancelled", "interrupted", "waiting"
]


@dataclass(slots=True)
class StepRecord:
    """One visit of one node: what went in, what came out, how long and what it cost."""

    node_id: str
    node_name: str
    node_type: str
    status: StepStatus = "running"
    visit: int = 1
    input: Any = None
    output: Any = None
    port: str | None = None
    error: str | None = None
    attempts: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    parent: str | None = None
    item_index: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    #: Log lines the step wrote (a tuple until the first one, to keep steps light).
    logs: Sequence[dict[str, Any]] = ()
    #: Exchanges with outside services (model calls), kept for inspection and replay.
    exchanges: Sequence[dict[str, Any]] = ()

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at) if self.finished_at else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        data = dataclasses.asdict(self)
        data["duration_s"] = self.duration_s
        return data


@dataclass(frozen=True, slots=True)
class RunStarted:
    kind: ClassVar[str] = "run.started"
    run_id: str
    flow_id: str | None
    flow_name: str
    input: Any
    at: float
    #: The run whose `flow.subflow` step started this one; None for a run of its own.
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunFinished:
    kind: ClassVar[str] = "run.finished"
    run_id: str
    status: RunStatus
    output: Any
    error: dict[str, Any] | None
    at: float
    duration_s: float
    flow_id: str | None = None
    #: Every step that ran in this run (already sent one by one as step events; left out of
    #: JSON). Steps restored from before a resume or a re-run from a step are not in it: they
    #: ran, and were counted, then.
    steps: Sequence[StepRecord] = field(default=(), repr=False, metadata={"json": False})
    #: The steps of `steps` that recorded model usage (tokens or cost), so a listener that sums
    #: usage need not look at every step (left out of JSON).
    usage_steps: Sequence[StepRecord] = field(default=(), repr=False, metadata={"json": False})
    #: The run whose `flow.subflow` step started this one; None for a run of its own.
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class StepStarted:
    kind: ClassVar[str] = "step.started"
    run_id: str
    step: StepRecord


@dataclass(frozen=True, slots=True)
class StepFinished:
    kind: ClassVar[str] = "step.finished"
    run_id: str
    step: StepRecord


@dataclass(frozen=True, slots=True)
class StepFailed:
    kind: ClassVar[str] = "step.failed"
    run_id: str
    step: StepRecord
    will_retry: bool = False


@dataclass(frozen=True, slots=True)
class StepCancelled:
    """A running step was stopped: the run was cancelled, or a sibling step failed."""

    kind: ClassVar[str] = "step.cancelled"
    run_id: str
    step: StepRecord


@dataclass(frozen=True, slots=True)
class StepSkipped:
    kind: ClassVar[str] = "step.skipped"
    run_id: str
    step: StepRecord


@dataclass(frozen=True, slots=True)
class LogLine:
    kind: ClassVar[str] = "log"
    run_id: str
    node_id: str | None
    level: str
    message: str
    fields: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class TokenStreamed:
    kind: ClassVar[str] = "token"
    run_id: str
    node_id: str
    text: str


Event = (
    RunStarted
    | RunFinished
    | StepStarted
    | StepFinished
    | StepFailed
    | StepCancelled
    | StepSkipped
    | LogLine
    | TokenStreamed
)
EventListener = Callable[[Event], None]
#: Every event class; a listener's `event_kinds` names the ones it wants (default: all).
KINDS: tuple[type, ...] = (
    RunStarted,
    RunFinished,
    StepStarted,
    StepFinished,
    StepFailed,
    StepCancelled,
    StepSkipped,
    LogLine,
    TokenStreamed,
)


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as plain JSON data: `{"event": kind, ...its fields}`."""
    data: dict[str, Any] = {"event": event.kind}
    for item in dataclasses.fields(event):
        if item.metadata.get("json") is False:
            continue
        value = getattr(event, item.name)
        data[item.name] = value.to_dict() if isinstance(value, StepRecord) else value
    return data


class EventStream:
    """An async iterator over events, fed by being registered as a listener.

    `async for event in stream` ends after the run's `RunFinished` when `until_finished`
    is set (the default), so a consumer can follow one run to its end.
    """

    def __init__(self, *, until_finished: bool = True, maxsize: int = 0) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._until_finished = until_finished

    def __call__(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            yield event
            if self._until_finished and isinstance(event, RunFinished):
                return
