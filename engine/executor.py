"""The async executor: runs a compiled flow, step by step, and reports every step as events.

Semantics (see the README): a step runs when every live incoming edge has delivered a value
or been skipped by a branch not taken; a step whose every input was skipped is skipped too.
Independent branches run concurrently. Back edges (cycles) re-run their target, up to its
`max_visits`. Per step: timeout, retries with exponential backoff and jitter, and `on_error`
(stop the run, continue with the error as output, or follow the `error` port).

The hot path is lean on purpose: a chain of steps runs inline in one coroutine (no task per
step), configs without templates are validated once per flow, and no event object is built
when nobody listens.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypedDict, Unpack

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from engine.document import Node
from engine.errors import (
    ExpressionError,
    FlowLoomError,
    NodeError,
    StepTimeout,
    VisitLimitExceeded,
)
from engine.events import KINDS as EVENT_KINDS
from engine.events import (
    Event,
    EventListener,
    LogLine,
    RunFinished,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRecord,
    StepSkipped,
    StepStarted,
    TokenStreamed,
)
from engine.expressions import Scope, compile_expression, render_value
from engine.graph import CompiledEdge, CompiledFlow, CompiledNode, Region, compile_flow
from engine.ids import new_run_id
from engine.memory import InMemoryConversations
from engine.node import ConversationMemory, CredentialProvider, Routed, ToolFunction
from engine.registry import NodeRegistry
from engine.validate import ERROR_PORT, TOOLS_PORT

log = structlog.get_logger("flowloom.engine")

FinalStatus = Literal["succeeded", "failed", "cancelled"]
MAX_SUBFLOW_DEPTH = 8
_INLINE_CACHE_SIZE = 128
_BACKOFF_CAP_S = 300.0


class FlowLoader(Protocol):
    """Finds a flow by id or name for `flow.subflow` (storage provides one)."""

    async def load_flow(self, ref: str) -> Mapping[str, Any] | CompiledFlow: ...


@dataclass(slots=True)
class RunResult:
    """The outcome of one run: status, final output, every step, and the error if it failed."""

    run_id: str
    flow_name: str
    status: FinalStatus
    output: Any
    steps: list[StepRecord]
    error: dict[str, Any] | None
    response: dict[str, Any] | None
    started_at: float
    finished_at: float

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at

    def step(self, node_id: str) -> StepRecord:
        """The last record of a node (raises KeyError if it never ran or was skipped)."""
        for record in reversed(self.steps):
            if record.node_id == node_id:
                return record
        raise KeyError(node_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow_name": self.flow_name,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "response": self.response,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "steps": [record.to_dict() for record in self.steps],
        }


class _StopRun(Exception):
    """A step failed with `on_error: stop`; carries the run's error."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


class _NodeOutputs(Mapping[str, Any]):
    """`nodes` in expressions: earlier steps' outputs by name or id (loop bodies see both levels)."""

    __slots__ = ("_by_name", "_outputs", "_parent")

    def __init__(
        self,
        outputs: dict[str, Any],
        by_name: Mapping[str, str],
        parent: _NodeOutputs | None = None,
    ) -> None:
        self._outputs = outputs
        self._by_name = by_name
        self._parent = parent

    def __getitem__(self, key: str) -> Any:
        node_id = self._by_name.get(key, key)
        if node_id in self._outputs:
            return self._outputs[node_id]
        if self._parent is not None:
            return self._parent[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        names = {v: k for k, v in self._by_name.items()}
        seen = {names.get(node_id, node_id) for node_id in self._outputs}
        if self._parent is not None:
            seen |= set(self._parent)
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Run:
    """One run of a flow: shared by its regions (the flow and each loop item)."""

    __slots__ = (
        "cancel_requested",
        "depth",
        "engine",
        "flow",
        "flow_id",
        "input",
        "listener",
        "names",
        "outputs",
        "parent_run_id",
        "replay",
        "response",
        "restored",
        "run_id",
        "started_at",
        "steps",
        "usage_steps",
    )

    def __init__(
        self,
        engine: Engine,
        flow: CompiledFlow,
        input: Any,
        run_id: str,
        flow_id: str | None,
        listener: EventListener | None,
        depth: int,
        variables: Mapping[str, Any],
    ) -> None:
        self.engine = engine
        self.flow = flow
        self.input = input
        self.run_id = run_id
        self.flow_id = flow_id
        self.listener = listener
        self.depth = depth
        #: The run whose flow.subflow step started this one (None for a run of its own).
        self.parent_run_id: str | None = None
        self.steps: list[StepRecord] = []
        #: The steps that recorded model usage (made on the first one).
        self.usage_steps: list[StepRecord] | None = None
        self.outputs: dict[str, Any] = {}
        self.response: dict[str, Any] | None = None
        self.cancel_requested = False
        self.replay: dict[tuple[str, int, int | None], Sequence[dict[str, Any]]] | None = None
        self.restored: dict[tuple[str, int, int | None], StepRecord] | None = None
        self.started_at = time.time()
        self.names = {
            "nodes": _NodeOutputs(self.outputs, flow.by_name),
            "trigger": input,
            "vars": {**flow.document.vars, **variables},
            "run": _RunInfo(run_id, self.started_at),
        }

    def emit(self, event: Event) -> None:
        if self.listener is not None:
            self.listener(event)

    def note_usage(self, record: StepRecord) -> None:
        """Note a step that recorded model usage (once per step)."""
        if self.usage_steps is None:
            self.usage_steps = [record]
        elif all(used is not record for used in self.usage_steps):
            self.usage_steps.append(record)


Ready = list[tuple[CompiledNode, Any, dict[str, Any]]]


class _RunInfo(Mapping[str, Any]):
    """`run` in expressions: `run.id` and `run.started_at` (ISO 8601, made only when read)."""

    __slots__ = ("_id", "_started_at")

    def __init__(self, run_id: str, started_at: float) -> None:
        self._id = run_id
        self._started_at = started_at

    def __getitem__(self, key: str) -> Any:
        if key == "id":
            return self._id
        if key == "started_at":
            return datetime.fromtimestamp(self._started_at, UTC).isoformat()
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("id", "started_at"))

    def __len__(self) -> int:
        return 2


class _RegionRun:
    """Walks one region (the flow, or one loop item's body) to the end."""

    def __init__(
        self,
        run: _Run,
        region: Region,
        pending: Mapping[str, int],
        active: frozenset[str] | None,
        extra_names: Mapping[str, Any],
        item_index: int | None = None,
    ) -> None:
        self.run = run
        self.region = region
        self.counts = pending
        self.pending = dict(pending)
        self.active = active
        self.item_index = item_index
        self.delivered: dict[str, dict[str, Any]] = {}
        self.fired: set[str] = set()
        self.visits: dict[str, int] = {}
        self.sink_outputs: dict[str, Any] = {}
        self.cycle_active: dict[int, int] = {}
        self.deferred_skips: dict[int, list[CompiledEdge]] = {}
        self.cycle_delivered: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.outstanding = 0
        self.done: asyncio.Future[None] | None = None
        self.failure: BaseException | None = None
        self.main_task: asyncio.Task[Any] | None = None
        self.inline = False
        self.interrupted_inline = False
        if region.owner is None:
            self.outputs = run.outputs
            nodes = run.names["nodes"]
        else:
            self.outputs = {}
            nodes = _NodeOutputs(self.outputs, run.flow.by_name, run.names["nodes"])
        self.names = {**run.names, "nodes": nodes, **extra_names}

    # -- driving ------------------------------------------------------------------------------

    async def execute(self, starts: Ready) -> Any:
        """Run from the start steps until nothing is left; returns the region's output.

        The first start runs inline in the caller's task, later ready steps continue inline
        one at a time, and only extra parallel branches get tasks of their own.
        """
        self.main_task = asyncio.current_task()
        try:
            for node, _, _ in starts:
                self._scheduled(node)
            self.outstanding = len(starts)
            for start in starts[1:]:
                self._spawn(start)
            self.inline = True
            try:
                await self._worker(starts[0])
            finally:
                self.inline = False
            if self.interrupted_inline and self.main_task is not None:
                self.main_task.uncancel()
            if self.failure is None and self.outstanding:
                self.done = asyncio.get_running_loop().create_future()
                await self.done
            if self.failure is not None:
                raise self.failure
        finally:
            if self.tasks:
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
        if len(self.sink_outputs) == 1:
            return next(iter(self.sink_outputs.values()))
        return self.sink_outputs or None

    def _spawn(self, item: tuple[CompiledNode, Any, dict[str, Any]]) -> None:
        task = asyncio.get_running_loop().create_task(self._worker(item))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _worker(self, item: tuple[CompiledNode, Any, dict[str, Any]]) -> None:
        try:
            node, value, inputs = item
            while True:
                output, port = await self.run_node(node, value, inputs)
                ready = self._propagate(node, output, port)
                if not ready:
                    break
                if len(ready) > 1:
                    for extra in ready[1:]:
                        self.outstanding += 1
                        self._spawn(extra)
                node, value, inputs = ready[0]
        except asyncio.CancelledError:
            # stopped because another branch failed: end quietly, execute() reports it
            ours = (
                self.interrupted_inline
                if asyncio.current_task() is self.main_task
                else self.failure is not None
            )
            if not ours:
                raise
            return
        except BaseException as exc:
            self._fail(exc)
            return
        self.outstanding -= 1
        if self.outstanding == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        """Stop the region: remember the first failure and cancel every other branch."""
        if self.failure is None:
            self.failure = exc
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        if (
            self.inline
            and current is not self.main_task
            and self.main_task is not None
            and not self.interrupted_inline
        ):
            self.interrupted_inline = True
            self.main_task.cancel()
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    # -- one step -----------------------------------------------------------------------------

    def _propagate(self, node: CompiledNode, output: Any, port: str) -> Ready:
        """Hand a finished step's output on; returns the steps that became ready."""
        self.outputs[node.id] = output
        if node.is_sink:
            self.sink_outputs[node.name] = output
        ready: Ready = []
        for edge in node.out_edges:
            if edge.port == port:
                if edge.sole_input:
                    ready.append((edge.target_node, output, {node.name: output}))  # type: ignore[arg-type]
                else:
                    self._deliver(edge, node, output, ready)
            elif edge.port != TOOLS_PORT:
                self._skip(edge, ready)
        if node.cycle is not None:
            self._cycle_step_done(node.cycle, ready)
        return ready

    async def run_node(
        self,
        node: CompiledNode,
        value: Any,
        inputs: dict[str, Any],
        extra_names: Mapping[str, Any] | None = None,
    ) -> tuple[Any, str]:
        """One visit of a node, recorded: (output, port), or _StopRun when the run must stop.

        `extra_names` (a tool's `args`) join the scope; such calls do not count as visits.
        """
        run = self.run
        visits = self.visits.get(node.id, 0) + 1
        if extra_names is None:
            self.visits[node.id] = visits
            if visits > node.settings.max_visits:
                raise _StopRun(
                    _error(
                        node,
                        VisitLimitExceeded(
                            f"Step {node.spec.describe()} ran {node.settings.max_visits} times, its visit "
                            "limit; the flow seems to go round in a cycle. Raise 'max_visits' in the "
                            "step's settings if more rounds are meant."
                        ),
                    )
                )
            if run.restored is not None:
                done = run.restored.get((node.id, visits, self.item_index))
                if done is not None:
                    return self._restore(done)
        record = StepRecord(
            node.id,
            node.name,
            node.type_name,
            "running",
            visits,
            value,
            None,
            None,
            None,
            1,
            time.time(),
            0.0,
            self.region.owner,
            self.item_index,
        )
        run.steps.append(record)
        if run.listener is not None:
            run.emit(StepStarted(run.run_id, record))
        ctx = _StepContext(self, node, record, value, inputs, extra_names)
        try:
            if node.plain:  # no retries, no timeout: the common case, one attempt inline
                try:
                    result = await node.node_type.run(
                        ctx, node.static_config or self._config(node, ctx.scope)
                    )
                except Exception as exc:  # a failing step never takes the process down
                    record.error = _message(exc)
                    ok = False
                else:
                    ok = True
            else:
                ok, result = await self._attempts(node, ctx, record)
        except asyncio.CancelledError:
            record.status = "cancelled"
            record.finished_at = time.time()
            if run.listener is not None:
                run.emit(StepCancelled(run.run_id, record))
            raise
        record.finished_at = time.time()
        if ok:
            record.status = "succeeded"
            if type(result) is Routed:
                output, port = result.value, result.port
            else:
                output, port = result, "out"
            record.output, record.port = output, port
            if run.listener is not None:
                run.emit(StepFinished(run.run_id, record))
            return output, port
        record.status = "failed"
        if run.listener is not None:
            run.emit(StepFailed(run.run_id, record))
        error = _error(node, record.error or "failed")
        mode = node.settings.on_error
        if mode == "stop":
            raise _StopRun(error)
        output = {"error": error, "input": value}
        port = ERROR_PORT if mode == "route" else "out"
        record.output, record.port = output, port
        return output, port

    def _restore(self, done: StepRecord) -> tuple[Any, str]:
        """A step finished before the run was interrupted: hand on its recorded output again."""
        run = self.run
        run.steps.append(done)  # its model usage was counted when it ran, not again here
        if run.listener is not None:
            run.emit(StepStarted(run.run_id, done))
            run.emit(StepFinished(run.run_id, done))
        return done.output, done.port or "out"

    async def _attempts(
        self, node: CompiledNode, ctx: _StepContext, record: StepRecord
    ) -> tuple[bool, Any]:
        """Run a node with its timeout and retries: (True, result), or (False, None)."""
        settings = node.settings
        attempts = settings.retries + 1
        run = self.run
        for attempt in range(1, attempts + 1):
            record.attempts = attempt
            try:
                config = node.static_config or self._config(node, ctx.scope)
                work = node.node_type.run(ctx, config)
                if settings.timeout_s is None:
                    return True, await work
                return True, await _with_timeout(work, settings.timeout_s)
            except Exception as exc:  # a failing step never takes the process down
                record.error = _message(exc)
                retryable = not isinstance(exc, ExpressionError | ValidationError)
                if attempt == attempts or not retryable:
                    return False, None
                if run.listener is not None:
                    run.emit(StepFailed(run.run_id, record, will_retry=True))
                await asyncio.sleep(_backoff(settings.retry_backoff_s, attempt))
        return False, None

    def _config(self, node: CompiledNode, scope: Scope) -> BaseModel:
        rendered = node.template.render(scope) if node.template is not None else {}
        if node.filler is not None:
            return node.filler.fill(rendered)
        if node.raw_fields:
            rendered = {**rendered, **node.raw_fields}
        try:
            return node.node_type.Config.model_validate(rendered)
        except ValidationError as exc:
            problems = "; ".join(
                f"'{'.'.join(str(p) for p in e['loc'])}' {e['msg'].lower()}" for e in exc.errors()
            )
            raise NodeError(
                f"after filling in its templates, the config is invalid: {problems}"
            ) from exc

    # -- routing values and skips -------------------------------------------------------------

    def _scheduled(self, node: CompiledNode) -> None:
        if node.cycle is not None:
            self.cycle_active[node.cycle] = self.cycle_active.get(node.cycle, 0) + 1

    def _deliver(self, edge: CompiledEdge, source: CompiledNode, value: Any, ready: Ready) -> None:
        target = self.run.flow.nodes[edge.target]
        if target.spec.parent == source.id:
            return  # a loop's own body: run by the loop, not by the flow
        if edge.back:
            self._scheduled(target)
            ready.append((target, value, {source.name: value}))
            return
        if edge.exits_cycle is not None:
            self.cycle_delivered.add(id(edge))
        slot = self.delivered.get(edge.target)
        if slot is None:
            slot = self.delivered[edge.target] = {}
        slot[source.name] = value
        remaining = self.pending[edge.target] - 1
        if remaining <= 0:
            self.pending[edge.target] = self.counts[edge.target]
            del self.delivered[edge.target]
            if edge.target in self.fired:
                self.fired.discard(edge.target)
                return
            self._scheduled(target)
            ready.append((target, value if len(slot) == 1 else slot, slot))
            return
        self.pending[edge.target] = remaining
        if not target.waits_for_all and edge.target not in self.fired:
            self.fired.add(edge.target)
            self._scheduled(target)
            ready.append((target, value, {source.name: value}))

    def _skip(self, first: CompiledEdge, ready: Ready) -> None:
        """Resolve an edge as not taken; steps left with no live input are skipped in turn."""
        nodes = self.run.flow.nodes
        stack = [first]
        while stack:
            edge = stack.pop()
            if edge.back:
                continue
            target = nodes[edge.target]
            if target.spec.parent == edge.source:
                continue
            cycle = edge.exits_cycle
            if cycle is not None and self.cycle_active.get(cycle):
                self.deferred_skips.setdefault(cycle, []).append(edge)
                continue
            remaining = self.pending[edge.target] - 1
            if remaining > 0:
                self.pending[edge.target] = remaining
                continue
            self.pending[edge.target] = self.counts[edge.target]
            slot = self.delivered.pop(edge.target, None)
            if edge.target in self.fired:
                self.fired.discard(edge.target)
            elif slot:
                self._scheduled(target)
                value = next(iter(slot.values())) if len(slot) == 1 else slot
                ready.append((target, value, slot))
            else:
                self._record_skip(target)
                stack.extend(e for e in target.out_edges if e.port != TOOLS_PORT)

    def _record_skip(self, node: CompiledNode) -> None:
        now = time.time()
        record = StepRecord(
            node.id,
            node.name,
            node.type_name,
            "skipped",
            0,
            started_at=now,
            finished_at=now,
            parent=self.region.owner,
            item_index=self.item_index,
        )
        self.run.steps.append(record)
        if self.run.listener is not None:
            self.run.emit(StepSkipped(self.run.run_id, record))

    def _cycle_step_done(self, cycle: int, ready: Ready) -> None:
        left = self.cycle_active[cycle] - 1
        self.cycle_active[cycle] = left
        if left > 0:
            return
        deferred = self.deferred_skips.pop(cycle, [])
        delivered, self.cycle_delivered = self.cycle_delivered, set()
        for edge in deferred:
            if id(edge) not in delivered:
                self._skip(edge, ready)


async def _with_timeout(work: Awaitable[Any], seconds: float) -> Any:
    try:
        async with asyncio.timeout(seconds) as scope:
            return await work
    except TimeoutError as exc:
        if scope.expired():
            raise StepTimeout(
                f"it took longer than {seconds:g} s, its timeout. Raise 'timeout_s' in the "
                "step's settings if it needs more time."
            ) from exc
        raise


def _backoff(base_s: float, attempt: int) -> float:
    """Exponential backoff with jitter: base · 2^(attempt-1), scaled by 0.5–1.5."""
    return min(_BACKOFF_CAP_S, base_s * 2 ** (attempt - 1)) * (0.5 + random.random())


def _message(exc: BaseException) -> str:
    if isinstance(exc, FlowLoomError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return f"invalid value: {exc.errors()[0]['msg']}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _error(node: CompiledNode, exc: BaseException | str) -> dict[str, Any]:
    reason = exc if isinstance(exc, str) else _message(exc)
    if isinstance(exc, VisitLimitExceeded):
        message = reason
    else:
        message = f"Step {node.spec.describe()} failed: {reason}"
    return {
        "message": message,
        "node_id": node.id,
        "node_name": node.name,
        "type": type(exc).__name__ if not isinstance(exc, str) else "StepError",
    }


class _StepContext:
    """The engine's implementation of `engine.node.StepContext`."""

    __slots__ = ("_extra", "_inputs", "_record", "_region", "_scope", "compiled", "input")

    def __init__(
        self,
        region: _RegionRun,
        node: CompiledNode,
        record: StepRecord,
        value: Any,
        inputs: dict[str, Any],
        extra_names: Mapping[str, Any] | None = None,
    ) -> None:
        self._region = region
        self.compiled = node
        self._record = record
        self.input = value
        self._inputs = inputs
        self._extra = extra_names
        self._scope: Scope | None = None

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            own = {"input": self.input}
            if self._extra:
                own.update(self._extra)
            self._scope = Scope(self._region.names, own)
        return self._scope

    @property
    def node(self) -> Node:
        return self.compiled.spec

    @property
    def run_id(self) -> str:
        return self._region.run.run_id

    @property
    def inputs(self) -> Mapping[str, Any]:
        return self._inputs

    @property
    def http(self) -> httpx.AsyncClient:
        return self._region.run.engine.http

    @property
    def tools(self) -> Sequence[ToolFunction]:
        return self.compiled.tools

    def evaluate(self, expression: str) -> Any:
        expressions = self._region.run.flow.expressions
        template = expressions.get(expression)
        if template is None:
            template = expressions[expression] = compile_expression(expression)
        return template.render(self.scope)

    def render(self, value: Any, **extra_scope: Any) -> Any:
        scope = self.scope.extended(**extra_scope) if extra_scope else self.scope
        return render_value(value, scope)

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        run = self._region.run
        entry = {"level": level, "message": message, "at": time.time(), **fields}
        self._record.logs = [*self._record.logs, entry]
        log.log(
            _LEVELS.get(level, 20),
            message,
            run_id=run.run_id,
            flow_id=run.flow_id,
            node_id=self.compiled.id,
            **fields,
        )
        if run.listener is not None:
            run.emit(LogLine(run.run_id, self.compiled.id, level, message, fields, entry["at"]))

    def stream_token(self, text: str) -> None:
        run = self._region.run
        if run.listener is not None:
            run.emit(TokenStreamed(run.run_id, self.compiled.id, text))

    def record_usage(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        model: str | None = None,
    ) -> None:
        record = self._record
        record.input_tokens += input_tokens
        record.output_tokens += output_tokens
        record.cost_usd += cost_usd
        if model is not None:
            record.model = model
        self._region.run.note_usage(record)

    def respond(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        self._region.run.response = {"status": status, "body": body, "headers": dict(headers)}

    async def run_body(self, items: Sequence[Any], concurrency: int) -> list[Any]:
        region = self._region
        body = region.run.flow.regions.get(self.compiled.id)
        if body is None:
            return list(items)
        results: list[Any] = [None] * len(items)
        positions = iter(range(len(items)))

        async def item_worker() -> None:
            for index in positions:
                item = items[index]
                names = {
                    "loop": {
                        "index": index + 1,
                        "index0": index,
                        "first": index == 0,
                        "last": index == len(items) - 1,
                        "length": len(items),
                        "item": item,
                    }
                }
                item_run = _RegionRun(region.run, body, body.counts, None, names, index)
                starts: Ready = [(region.run.flow.nodes[n], item, {}) for n in body.entries]
                try:
                    results[index] = await item_run.execute(starts)
                except _StopRun as exc:
                    raise NodeError(f"item {index} failed: {exc.error['message']}") from exc

        workers = max(1, min(concurrency, len(items)))
        if workers == 1:
            await item_worker()
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(item_worker())
            except* NodeError as failures:
                raise failures.exceptions[0] from None
        return results

    async def run_subflow(self, flow: str | Mapping[str, Any], input: Any) -> Any:
        run = self._region.run
        if run.depth >= MAX_SUBFLOW_DEPTH:
            raise NodeError(
                f"sub-flows are nested more than {MAX_SUBFLOW_DEPTH} deep; does a flow call itself?"
            )
        engine = run.engine
        if isinstance(flow, str):
            if engine.loader is None:
                raise NodeError(
                    f"cannot find flow '{flow}': this engine has no flow library. "
                    "Paste the sub-flow inline or run FlowLoom with storage."
                )
            loaded = await engine.loader.load_flow(flow)
            compiled = engine.compile(loaded)
        else:
            compiled = engine._inline_flow(flow)
        sub_run = engine._new_run(
            compiled, input, None, compiled.flow_id, None, run.depth + 1, None
        )
        sub_run.parent_run_id = run.run_id
        result = await engine._execute(sub_run, None)
        if result.status != "succeeded":
            reason = result.error["message"] if result.error else result.status
            raise NodeError(f"the sub-flow '{compiled.name}' {result.status}: {reason}")
        return result.output

    async def call_tool(self, name: str, args: Mapping[str, Any]) -> Any:
        region = self._region
        flow = region.run.flow
        for tool in self.compiled.tools:
            if tool.name == name:
                node = flow.nodes[tool.node_id]
                break
        else:
            raise NodeError(
                f"the model asked for a tool named '{name}', which is not wired to this step."
            )
        try:
            output, _ = await region.run_node(node, dict(args), {}, {"args": dict(args)})
        except _StopRun as exc:
            raise NodeError(f"the tool '{name}' failed: {exc.error['message']}") from exc
        return output

    async def credential(self, name: str) -> Mapping[str, str]:
        provider = self._region.run.engine.credentials
        if provider is None:
            raise NodeError(
                f"the credential '{name}' cannot be found: this engine has no credential store."
            )
        try:
            return await provider.get_credential(name)
        except KeyError:
            raise NodeError(
                f"there is no credential named '{name}'. Add it under Settings → Credentials."
            ) from None

    @property
    def memory(self) -> ConversationMemory:
        return self._region.run.engine.memory

    def record_exchange(self, exchange: Mapping[str, Any]) -> None:
        self._record.exchanges = [*self._record.exchanges, dict(exchange)]

    def replayed_exchange(self, index: int) -> Mapping[str, Any] | None:
        replay = self._region.run.replay
        if replay is None:
            return None
        record = self._record
        recorded = replay.get((record.node_id, record.visit, record.item_index), ())
        return recorded[index] if index < len(recorded) else None


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class RunOptions(TypedDict, total=False):
    """Options of `Engine.run` and `Engine.start`."""

    #: The trigger step to start from (default: the manual one, else the first).
    trigger: str | None
    #: Kept on events, log lines and the result (default: a random id).
    run_id: str | None
    #: Kept on events and log lines.
    flow_id: str | None
    #: Called with every event of this run.
    on_event: EventListener | None
    #: Added to the flow's `vars`.
    variables: Mapping[str, Any] | None
    #: An earlier run's steps: outside calls (model calls) are answered from their recordings.
    replay: Sequence[StepRecord] | None
    #: The steps an interrupted run had finished: the run goes on without running them again.
    resume: Sequence[StepRecord] | None


class RunHandle:
    """A run started in the background: `await handle` for its result, `cancel()` to stop it."""

    def __init__(self, run: _Run, task: asyncio.Task[RunResult]) -> None:
        self._run = run
        self.task = task

    @property
    def run_id(self) -> str:
        return self._run.run_id

    def cancel(self) -> None:
        """Stop every running step promptly; the result's status becomes `cancelled`."""
        self._run.cancel_requested = True
        self.task.cancel()

    def __await__(self) -> Any:
        return self.task.__await__()


class Engine:
    """Runs flows. Owns what runs share: the node registry, the HTTP client, the flow loader,
    the credential store and conversation memory.

    Make one per application (or use `run_flow`, which keeps one per event loop) and
    `await engine.aclose()` on shutdown.
    """

    def __init__(
        self,
        registry: NodeRegistry | None = None,
        loader: FlowLoader | None = None,
        listeners: Sequence[EventListener] = (),
        *,
        credentials: CredentialProvider | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.credentials = credentials
        self.memory: ConversationMemory = memory or InMemoryConversations()
        self.listeners: list[EventListener] = list(listeners)
        #: Runs (not sub-flows) going on now.
        self.runs_in_flight = 0
        self._dispatch: _Dispatch | None = None
        self._dispatch_key: tuple[EventListener, ...] = ()
        self._http: httpx.AsyncClient | None = None
        self._inline: OrderedDict[str, CompiledFlow] = OrderedDict()

    @property
    def http(self) -> httpx.AsyncClient:
        """One pooled HTTP client for every step of every run."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                follow_redirects=True,
                headers={"User-Agent": "FlowLoom"},
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def compile(self, document: Any) -> CompiledFlow:
        """Validate and compile a document (raises InvalidFlowError)."""
        return compile_flow(document, self.registry)

    def _inline_flow(self, document: Mapping[str, Any]) -> CompiledFlow:
        """Compile a sub-flow pasted into a step, once per distinct content (bounded cache)."""
        key = json.dumps(document, sort_keys=True, default=str)
        compiled = self._inline.get(key)
        if compiled is None:
            compiled = self._inline[key] = self.compile(dict(document))
            if len(self._inline) > _INLINE_CACHE_SIZE:
                self._inline.popitem(last=False)
        else:
            self._inline.move_to_end(key)
        return compiled

    async def run(self, flow: Any, input: Any = None, **options: Unpack[RunOptions]) -> RunResult:
        """Run a flow (document or CompiledFlow) to its end and return the result."""
        run, trigger = self._prepare(flow, input, options)
        return await self._execute(run, trigger)

    def start(self, flow: Any, input: Any = None, **options: Unpack[RunOptions]) -> RunHandle:
        """Start a run in the background (same options as `run`); await or cancel the handle."""
        run, trigger = self._prepare(flow, input, options)
        return RunHandle(run, asyncio.get_running_loop().create_task(self._execute(run, trigger)))

    def _prepare(self, flow: Any, input: Any, options: RunOptions) -> tuple[_Run, str | None]:
        run = self._new_run(
            self.compile(flow),
            input,
            options.get("run_id"),
            options.get("flow_id"),
            options.get("on_event"),
            0,
            options.get("variables"),
        )
        run.replay = _replay_index(options.get("replay"))
        run.restored = _finished_index(options.get("resume"))
        return run, options.get("trigger")

    def _new_run(
        self,
        flow: CompiledFlow,
        input: Any,
        run_id: str | None,
        flow_id: str | None,
        on_event: EventListener | None,
        depth: int,
        variables: Mapping[str, Any] | None,
    ) -> _Run:
        if on_event is not None:
            listener = _Dispatch.of([*self.listeners, on_event])
        else:
            key = tuple(self.listeners)
            if key != self._dispatch_key:
                self._dispatch, self._dispatch_key = _Dispatch.of(key), key
            listener = self._dispatch
        return _Run(
            self,
            flow,
            input,
            run_id or new_run_id(),
            flow_id,
            listener,
            depth,
            variables or {},
        )

    async def _execute(self, run: _Run, trigger: str | None) -> RunResult:
        flow = run.flow
        trigger_id = trigger or flow.default_trigger()
        if trigger_id not in flow.triggers:
            raise ValueError(f"'{trigger_id}' is not a trigger of flow '{flow.name}'.")
        if run.listener is not None:
            run.emit(
                RunStarted(
                    run.run_id,
                    run.flow_id,
                    flow.name,
                    run.input,
                    run.started_at,
                    run.parent_run_id,
                )
            )
        active, counts = flow.activation(trigger_id)
        region = _RegionRun(run, flow.regions[None], counts, active, {})
        status: FinalStatus = "succeeded"
        error: dict[str, Any] | None = None
        output: Any = None
        timeout_s = flow.document.settings.timeout_s
        self.runs_in_flight += 1
        try:
            if timeout_s is None:
                output = await region.execute([(flow.nodes[trigger_id], run.input, {})])
            else:
                async with asyncio.timeout(timeout_s):
                    output = await region.execute([(flow.nodes[trigger_id], run.input, {})])
        except _StopRun as stop:
            status, error = "failed", stop.error
        except TimeoutError:
            status = "failed"
            error = {
                "message": f"The run took longer than {timeout_s:g} s, the flow's timeout; "
                "it was stopped.",
                "node_id": None,
                "node_name": None,
                "type": "RunTimeout",
            }
        except Exception as exc:  # an engine fault still ends the run, never the process
            log.exception("run failed inside the engine", run_id=run.run_id, flow_id=run.flow_id)
            status = "failed"
            error = {
                "message": f"FlowLoom failed while running the flow: {_message(exc)}",
                "node_id": None,
                "node_name": None,
                "type": "InternalError",
            }
        except asyncio.CancelledError:
            if not run.cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            status = "cancelled"
            error = {
                "message": "The run was cancelled.",
                "node_id": None,
                "node_name": None,
                "type": "Cancelled",
            }
        finally:
            self.runs_in_flight -= 1
        finished = time.time()
        if status != "succeeded":
            output = None
            log.info(
                "run ended",
                run_id=run.run_id,
                flow_id=run.flow_id,
                flow=flow.name,
                status=status,
                node_id=error["node_id"] if error else None,
                error=error["message"] if error else None,
            )
        result = RunResult(
            run.run_id,
            flow.name,
            status,
            output,
            run.steps,
            error,
            run.response,
            run.started_at,
            finished,
        )
        if run.listener is not None:
            run.emit(
                RunFinished(
                    run.run_id,
                    status,
                    output,
                    error,
                    finished,
                    finished - run.started_at,
                    run.flow_id,
                    _ran_now(run),
                    run.usage_steps or (),
                    run.parent_run_id,
                )
            )
        return result


def _ran_now(run: _Run) -> list[StepRecord]:
    """The run's steps but those restored from before a resume or re-run (they ran then)."""
    if not run.restored:
        return run.steps
    earlier = {id(record) for record in run.restored.values()}
    return [record for record in run.steps if id(record) not in earlier]


def _replay_index(
    steps: Sequence[StepRecord] | None,
) -> dict[tuple[str, int, int | None], Sequence[dict[str, Any]]] | None:
    if steps is None:
        return None
    return {(s.node_id, s.visit, s.item_index): s.exchanges for s in steps if s.exchanges}


def _finished_index(
    steps: Sequence[StepRecord] | None,
) -> dict[tuple[str, int, int | None], StepRecord] | None:
    """Steps that need not run again: succeeded, or failed with the error handed on."""
    if steps is None:
        return None
    return {
        (s.node_id, s.visit, s.item_index): s
        for s in steps
        if s.status == "succeeded" or (s.status == "failed" and s.port is not None)
    }


class _Dispatch:
    """Hands each event to the listeners that want its kind.

    A listener may say which kinds it wants with an `event_kinds` attribute (a tuple of event
    classes); it is then not called for the others, which keeps the hot path short (the
    metrics listener wants only finished runs). A listener that raises is logged
    and skipped: it never breaks a run.
    """

    __slots__ = ("_by_kind",)

    def __init__(self, by_kind: dict[type, tuple[EventListener, ...]]) -> None:
        self._by_kind = by_kind

    @classmethod
    def of(cls, listeners: Sequence[EventListener]) -> _Dispatch | None:
        if not listeners:
            return None
        by_kind = {
            kind: tuple(
                listener
                for listener in listeners
                if kind in getattr(listener, "event_kinds", EVENT_KINDS)
            )
            for kind in EVENT_KINDS
        }
        return cls(by_kind)

    def __call__(self, event: Event) -> None:
        for listener in self._by_kind[type(event)]:
            try:
                listener(event)
            except Exception as exc:  # a broken listener must not break the run
                log.error("event listener failed", error=repr(exc), kind=event.kind)


_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine] = weakref.WeakKeyDictionary()


def default_engine() -> Engine:
    """The engine `run_flow` uses: one per event loop, with every installed node type."""
    loop = asyncio.get_running_loop()
    engine = _engines.get(loop)
    if engine is None:
        engine = _engines[loop] = Engine()
    return engine


async def run_flow(
    document: Any,
    input: Any = None,
    *,
    on_event: EventListener | None = None,
    trigger: str | None = None,
    engine: Engine | None = None,
    loader: FlowLoader | None = None,
    variables: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run a flow document (dict, FlowDocument or CompiledFlow) in memory, without a database.

    Returns a RunResult with `status` ("succeeded", "failed" or "cancelled"), `output`, `steps`
    and `error`. Raises InvalidFlowError (with every problem) when the document cannot run.
    Compile once with `compile_flow` to run the same flow many times without re-validating.
    """
    if engine is None and loader is not None:
        engine = Engine(loader=loader)
        try:
            return await engine.run(
                document, input, trigger=trigger, on_event=on_event, variables=variables
            )
        finally:
            await engine.aclose()
    return await (engine or default_engine()).run(
        document, input, trigger=trigger, on_event=on_event, variables=variables
    )
