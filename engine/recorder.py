"""The run recorder: turns a run's events into stored rows, many runs per transaction.

The engine knows nothing of SQL. It talks to storage through `RunStore`, one method taking
the steps' own values, and the recorder batches what it hands over (group commit): a flush
writes every run and step that changed since the last one in a single transaction, so
recording every step costs little per step. A step that starts and finishes within one flush
interval is written once, in its final state.

What is lost if the process dies between two flushes is at most one interval of progress; the
run stays `running` in the database and is resumed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from engine.events import (
    Event,
    RunFinished,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRecord,
    StepSkipped,
    StepStarted,
)

log = structlog.get_logger("flowloom.recorder")

#: Rows kept for a retry while the database is away; beyond that the oldest are dropped.
MAX_BACKLOG = 200_000
#: Runs per write of a flush, and how many turns of the event loop go between two writes:
#: a webhook call takes a few turns to be answered, and should not wait for a write at each.
GROUP_RUNS = 16
YIELDS_BETWEEN_WRITES = 4
_STEP_EVENTS = (StepStarted, StepFinished, StepFailed, StepCancelled, StepSkipped)


class RunStore(Protocol):
    """What the recorder needs from storage (storage's `RunRepository` provides it)."""

    async def record(
        self, runs: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]]
    ) -> None:
        """Apply run updates and step upserts (by run_id and seq) in one transaction.

        Inputs, outputs, errors, logs and exchanges come as the steps produced them; the
        store turns them into JSON and must not fail on values JSON cannot hold (storage's
        `RunRepository` writes those as readable text)."""
        ...


class RunRecorder:
    """An event listener that writes runs and steps to a `RunStore` in batches.

    Register it with `Engine(listeners=[recorder])`, `await recorder.start()` once the event
    loop runs, and `await recorder.stop()` (which flushes) on shutdown.
    """

    def __init__(
        self, store: RunStore, *, interval_s: float = 0.05, owner: str | None = None
    ) -> None:
        self._store = store
        #: Stored as the `owner` of every run it sees start (its runtime's id), sub-flows'
        #: runs included.
        self._started: dict[str, Any] = {"status": "running"}
        if owner is not None:
            self._started["owner"] = owner
        self._interval_s = interval_s
        self._runs: dict[str, dict[str, Any]] = {}
        self._steps: dict[int, tuple[str, int, StepRecord]] = {}
        self._sequence: dict[str, dict[int, int]] = {}
        self._finished: list[str] = []
        self._backlog_runs: list[dict[str, Any]] = []
        self._backlog_steps: list[dict[str, Any]] = []
        self._wakeup = asyncio.Event()
        #: The engine calls this listener only for these kinds (log lines and tokens are kept
        #: on the step itself, and written with it).
        self.event_kinds: tuple[type, ...] = (*_STEP_EVENTS, RunStarted, RunFinished)
        self._flushed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._generation = 0

    # -- the listener -------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, _STEP_EVENTS):
            self._step(event.run_id, event.step)
        elif isinstance(event, RunStarted):
            self._run(event.run_id, started_at=event.at, **self._started)
        elif isinstance(event, RunFinished):
            self._run(
                event.run_id,
                status=event.status,
                output=event.output,
                error=event.error,
                finished_at=event.at,
            )
            self._finished.append(event.run_id)
        else:
            return
        self._wakeup.set()

    def _run(self, run_id: str, **fields: Any) -> None:
        self._runs.setdefault(run_id, {"id": run_id}).update(fields)

    def _step(self, run_id: str, step: StepRecord) -> None:
        numbers = self._sequence.setdefault(run_id, {})
        seq = numbers.get(id(step))
        if seq is None:
            seq = numbers[id(step)] = len(numbers)
        self._steps[id(step)] = (run_id, seq, step)

    # -- flushing -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def running(self) -> bool:
        """Whether the background writer is alive."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Write what is pending and stop the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write everything recorded so far, `GROUP_RUNS` runs per write, letting other work
        of the event loop go on between two writes (a write may run on the loop's thread).

        If a write fails (the database is away), its rows and those not written yet are
        kept and written, in order, before newer ones at the next flush: no update is lost.
        """
        groups = self._take_groups()
        for number, (runs, pending) in enumerate(groups):
            if number:
                for _ in range(YIELDS_BETWEEN_WRITES):
                    await asyncio.sleep(0)
            steps = [step if isinstance(step, dict) else step_row(*step) for step in pending]
            try:
                await self._store.record(runs, steps)
            except BaseException:
                self._keep_for_retry(runs, steps, groups[number + 1 :])
                raise
        async with self._flushed:
            self._generation += 1
            self._flushed.notify_all()

    def _take_groups(self) -> list[tuple[list[dict[str, Any]], list[Any]]]:
        """What is pending (the backlog first), in groups of at most `GROUP_RUNS` runs, a
        run's rows together. Steps are row dicts (backlog) or (run_id, seq, record)."""
        by_run: dict[str, tuple[list[dict[str, Any]], list[Any]]] = {}
        for run in [*self._backlog_runs, *self._runs.values()]:
            by_run.setdefault(run["id"], ([], []))[0].append(run)
        for row in self._backlog_steps:
            by_run.setdefault(row["run_id"], ([], []))[1].append(row)
        for item in self._steps.values():
            by_run.setdefault(item[0], ([], []))[1].append(item)
        for run_id in self._finished:
            self._sequence.pop(run_id, None)
        self._runs, self._steps, self._finished = {}, {}, []
        self._backlog_runs, self._backlog_steps = [], []
        groups = list(by_run.values())
        return [
            (
                [run for runs, _ in groups[start : start + GROUP_RUNS] for run in runs],
                [step for _, steps in groups[start : start + GROUP_RUNS] for step in steps],
            )
            for start in range(0, len(groups), GROUP_RUNS)
        ]

    def _keep_for_retry(
        self,
        runs: list[dict[str, Any]],
        steps: list[dict[str, Any]],
        later: list[tuple[list[dict[str, Any]], list[Any]]],
    ) -> None:
        runs, steps = list(runs), list(steps)
        for more_runs, pending in later:
            runs.extend(more_runs)
            steps.extend(s if isinstance(s, dict) else step_row(*s) for s in pending)
        # Newer updates recorded meanwhile stay pending, and are written after these.
        self._backlog_runs = runs[-MAX_BACKLOG:]
        self._backlog_steps = steps[-MAX_BACKLOG:]
        if len(steps) > MAX_BACKLOG:
            log.error(
                "dropped step records the database could not take",
                dropped=len(steps) - MAX_BACKLOG,
            )

    async def wait_flushed(self) -> None:
        """Wait until what was recorded before this call is written."""
        async with self._flushed:
            target = self._generation + 1
            self._wakeup.set()
            await self._flushed.wait_for(lambda: self._generation >= target)

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self._interval_s)
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:  # the database is away: keep going, the next flush retries
                log.exception("could not record runs; will retry")
                await asyncio.sleep(1.0)


def step_row(run_id: str, seq: int, step: StepRecord) -> dict[str, Any]:
    """A step record as plain data for storage."""
    return {
        "run_id": run_id,
        "seq": seq,
        "node_id": step.node_id,
        "node_name": step.node_name,
        "node_type": step.node_type,
        "status": step.status,
        "visit": step.visit,
        "parent": step.parent,
        "item_index": step.item_index,
        "input": step.input,
        "output": step.output,
        "port": step.port,
        "error": step.error,
        "attempts": step.attempts,
        "started_at": step.started_at or None,
        "finished_at": step.finished_at or None,
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "cost_usd": step.cost_usd,
        "model": step.model,
        "logs": list(step.logs),
        "exchanges": list(step.exchanges),
    }
