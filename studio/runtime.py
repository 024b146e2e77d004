"""The running FlowLoom: database, engine and recorder, and the runs going on right now.

`flowloom serve` and `flowloom studio` both build one `Runtime`; the REST API, webhooks and
schedules submit runs through it. A submitted run is committed to the database before
`submit` returns, so whatever acknowledges it (an API answer, a webhook's 202) never
acknowledges a run that could be lost. At start, runs a killed process left `queued` or
`running` are resumed from their last finished step, or marked `interrupted` with the reason.

Several FlowLoom processes may share one database (the studio and `flowloom serve`, say).
Each registers itself in the `runtimes` table, owns the runs it starts (`runs.owner`) and
says every `heartbeat_s` that it is alive. A process resumes only the runs of processes that
are gone (killed, or not heard of for `STALE_AFTER_BEATS` heartbeats), and one claim decides
who does. Every `sync_s` each process also picks up the flows the others saved,
(de)activated or deleted, so a flow activated in the studio listens in `flowloom serve` too,
the event subscriptions they added or deleted, and the requests to cancel its runs made
through another process (`cancel`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from engine import (
    CompiledFlow,
    Engine,
    Event,
    EventListener,
    InvalidFlowError,
    RunHandle,
    RunResult,
    StepRecord,
)
from engine.ids import new_run_id
from engine.metrics import RunMetrics
from engine.recorder import RunRecorder
from engine.settings import Settings
from storage import (
    UNFINISHED,
    Database,
    FlowRecord,
    NotFound,
    RunRecord,
    RuntimeRecord,
    StepRow,
)
from studio.schedules import ScheduleService
from studio.subscriptions import SubscriptionService
from studio.webhooks import WebhookService

log = structlog.get_logger("flowloom.runtime")

_COMPILED_CACHE_SIZE = 256
PRUNE_EVERY_S = 3600.0
#: A runtime not heard of for this many heartbeats (`Settings.heartbeat_s`) counts as gone.
STALE_AFTER_BEATS = 6
#: How long `cancel` waits for another process to stop a run it was asked to cancel.
CANCEL_WAIT_S = 10.0
#: The runtimes started in this process and not stopped (a test may start several).
_HERE: set[str] = set()
#: The flow document key holding pinned step outputs, `{node_id: output}` (see `pinned_steps`).
PINS_KEY = "x_pins"


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """A run ready to go: its flow compiled and its `queued` record, not stored yet.

    Whoever stores `record` (in its own transaction, e.g. with a schedule's claim) then
    starts it with `Runtime.launch`.
    """

    compiled: CompiledFlow
    record: RunRecord


class Runtime:
    """Owns the database, the engine and every run in flight."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._db: Database | None = None
        self._engine: Engine | None = None
        self._recorder: RunRecorder | None = None
        #: Counted from every run's events; kept across restarts of the runtime in one process.
        self.metrics = RunMetrics(active_runs=lambda: len(self._running))
        self._running: dict[str, RunHandle] = {}
        self._compiled: OrderedDict[tuple[str, int], CompiledFlow] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()
        self._watchers: dict[str, list[EventListener]] = {}
        #: This runtime's id in the `runtimes` table and in the `owner` of its runs.
        self.instance_id = secrets.token_hex(8)
        #: Triggers and outgoing event webhooks, started with the runtime.
        self.webhooks = WebhookService(self)
        self.schedules = ScheduleService(self)
        self.subscriptions = SubscriptionService(self)

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("FlowLoom has not started yet.")
        return self._db

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("FlowLoom has not started yet.")
        return self._engine

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> None:
        """Open (and migrate) the database, start recording, resume interrupted runs."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        self._db = await Database.open(
            settings.effective_database_url,
            data_dir=settings.data_dir,
            secret_key=secret,
            max_payload_bytes=settings.max_payload_bytes,
        )
        self._recorder = RunRecorder(self._db.runs, owner=self.instance_id)
        self._engine = Engine(
            loader=self,
            listeners=[
                self._recorder,
                self.metrics,
                self._notify_watchers,
                self.subscriptions,
            ],
            credentials=self._db.credentials,
            memory=self._db.memory,
        )
        await self._recorder.start()
        await self._db.runtimes.register(
            self.instance_id, host=socket.gethostname(), pid=os.getpid()
        )
        _HERE.add(self.instance_id)
        if recover:
            await self.recover()
        self._in_background(self._beat())
        await self.db.flows.follow()  # from here on, other processes' changes are followed
        await self.subscriptions.start()
        await self.webhooks.start()
        await self.schedules.start()
        self._in_background(self._prune_periodically())
        self._in_background(self._follow_others())

    async def stop(self) -> None:
        """Stop without losing runs: those still going stay `running` and resume next start."""
        await self.schedules.stop()
        await self.webhooks.stop()
        for task in list(self._background):
            task.cancel()
        running = [handle.task for handle in self._running.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, *self._background, return_exceptions=True)
        if self._recorder is not None:
            await self._recorder.stop()
        _HERE.discard(self.instance_id)
        if self._db is not None:
            try:  # its runs still going are anybody's to resume now
                await self._db.runtimes.unregister(self.instance_id)
            except Exception:  # the database is away: the row goes stale instead
                log.exception("could not unregister this runtime")
        await self.subscriptions.stop()
        if self._engine is not None:
            await self._engine.aclose()
        if self._db is not None:
            await self._db.close()
        self._db = self._engine = self._recorder = None

    def _in_background(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- flows --------------------------------------------------------------------------------

    async def load_flow(self, ref: str) -> CompiledFlow:
        """The engine's FlowLoader: a flow by id or name, for `flow.subflow`."""
        record = await self.db.flows.find(ref)
        if record is None:
            raise KeyError(ref)
        return self.compile(record)

    def compile(self, flow: FlowRecord) -> CompiledFlow:
        """A flow's current version, compiled once and kept while it is in use."""
        return self._compile_version(flow.id, flow.version, flow.document)

    def _compile_version(
        self, flow_id: str, version: int, document: dict[str, Any]
    ) -> CompiledFlow:
        key = (flow_id, version)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self.engine.compile(document)
            compiled.flow_id = flow_id
            if len(self._compiled) > _COMPILED_CACHE_SIZE:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled

    # -- runs ---------------------------------------------------------------------------------

    async def submit(
        self,
        flow: FlowRecord,
        input: Any,
        *,
        trigger: str | None = None,
        resume: Sequence[StepRecord] | None = None,
    ) -> RunRecord:
        """Store a new run (committed before this returns), then start it in the background.

        `resume` holds finished step records the run hands on instead of running those steps
        again (pinned outputs, or a re-run from a step). Raises InvalidFlowError when the flow
        cannot run; nothing is stored then.
        """
        prepared = self.prepare(flow, input, trigger=trigger)
        await self.db.runs.store(prepared.record)
        self.launch(prepared, resume=resume)
        return prepared.record

    def prepare(self, flow: FlowRecord, input: Any, *, trigger: str | None = None) -> PreparedRun:
        """A new run of the flow's current version, compiled, with its `queued` record (a new
        id; the flow's default trigger unless `trigger` is given). Nothing is stored.

        Raises InvalidFlowError when the flow cannot run.
        """
        compiled = self.compile(flow)
        trigger_id = trigger or (compiled.default_trigger() if compiled.triggers else None)
        record = RunRecord(
            id=new_run_id(),
            flow_id=flow.id,
            flow_version=flow.version,
            trigger=trigger_id,
            status="queued",
            input=input,
            output=None,
            error=None,
            created_at=datetime.now(UTC),
            started_at=None,
            finished_at=None,
            owner=self.instance_id,
        )
        return PreparedRun(compiled, record)

    def launch(self, prepared: PreparedRun, *, resume: Sequence[StepRecord] | None = None) -> None:
        """Start a prepared run in the background; its record must be stored already.

        `resume` as for `submit` (and for a run resumed after a restart, its finished steps).
        """
        record = prepared.record
        handle = self.engine.start(
            prepared.compiled,
            record.input,
            run_id=record.id,
            flow_id=record.flow_id,
            trigger=record.trigger,
            resume=list(resume) if resume is not None else None,
        )
        self._running[record.id] = handle
        handle.task.add_done_callback(lambda _: self._running.pop(record.id, None))

    async def rerun_from(self, run_id: str, node_id: str) -> RunRecord:
        """Run a past run's flow again from step `node_id`: same input and trigger, the flow's
        current version, and the recorded outputs of the steps that finished before that step
        started (so only it and what follows run again).

        NotFound when the run, its flow or the step is gone; InvalidFlowError as `submit`.
        """
        run = await self.db.runs.get(run_id)
        if run.flow_id is None:
            raise NotFound("The flow of this run has been deleted, so it cannot run again.")
        flow = await self.db.flows.get(run.flow_id)
        start = next((row.seq for row in run.steps if row.node_id == node_id), None)
        if start is None:
            raise NotFound(f"Step {node_id} did not run in run {run_id}.")
        earlier = [
            step_record(row)
            for row in run.steps
            if row.seq < start and _reusable(row) and not _truncated(row.output)
        ]
        trigger = run.trigger if run.trigger in self.compile(flow).triggers else None
        return await self.submit(flow, run.input, trigger=trigger, resume=earlier)

    # -- watching runs live -------------------------------------------------------------------

    def watch(self, run_id: str, listener: EventListener) -> Callable[[], None]:
        """Call `listener` with every later event of run `run_id`; returns the call that stops.

        Listeners run on the event loop and must not block (the studio queues the events and
        draws them on a timer). Call the returned function when the watcher goes away.
        """
        self._watchers.setdefault(run_id, []).append(listener)

        def stop() -> None:
            listeners = self._watchers.get(run_id, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._watchers.pop(run_id, None)

        return stop

    def _notify_watchers(self, event: Event) -> None:
        listeners = self._watchers.get(event.run_id)
        if listeners is None:  # most runs have nobody watching
            return
        for listener in list(listeners):
            try:
                listener(event)
            except Exception:  # a broken watcher must not break the run or the others
                log.exception("run watcher failed", run_id=event.run_id)

    async def submit_once(
        self, flow: FlowRecord, input: Any, *, trigger: str, key: str, ttl_s: float
    ) -> tuple[str, bool]:
        """Like `submit`, unless trigger `trigger` already started a run for `key` (an
        idempotency key) within `ttl_s`: (that run's id, False), else (the new run's id, True)."""
        prepared = self.prepare(flow, input, trigger=trigger)
        run_id, created = await self.db.runs.create_once(
            key=key,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
            run_id=prepared.record.id,
            flow_id=flow.id,
            node_id=trigger,
            flow_version=flow.version,
            input=input,
            owner=self.instance_id,
        )
        if created:
            self.launch(prepared)
        return run_id, created

    def readiness(self) -> dict[str, str]:
        """Checks of the runtime's own parts for `/readyz`: name → "ok" or what is wrong."""
        return {
            "recorder": "ok"
            if self._recorder is not None and self._recorder.running
            else "not running",
            "scheduler": "ok" if self.schedules.running else "not running",
        }

    def is_running(self, run_id: str) -> bool:
        return run_id in self._running

    async def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run; False when there is no such run (or it is over).

        A run of this runtime stops at once. One that another live FlowLoom process sharing
        the database executes is stopped by that process, which looks for such requests every
        `sync_s`: this waits up to `CANCEL_WAIT_S` for it. A run whose process is gone is
        claimed (so nobody resumes it meanwhile) and marked `cancelled` (see `cancel_stored`).
        """
        handle = self._running.get(run_id)
        if handle is not None:
            handle.cancel()
            await asyncio.gather(handle.task, return_exceptions=True)
            await self.flushed()
            return True
        status = await cancel_stored(
            self.db, run_id, by=self.instance_id, heartbeat_s=self.settings.heartbeat_s
        )
        return status is not None

    async def wait(
        self, run_id: str, timeout_s: float, *, recorded: bool = True
    ) -> RunResult | None:
        """The run's result if it ends within `timeout_s`, else None. With `recorded` (the
        default) this also waits until the result is written to the database."""
        handle = self._running.get(run_id)
        if handle is None:
            return None
        if not await _ended_within(handle.task, timeout_s):
            return None
        if recorded:
            await self.flushed()
        return handle.task.result()

    async def flushed(self) -> None:
        """Wait until every event so far is written to the database."""
        if self._recorder is not None:
            await self._recorder.wait_flushed()

    # -- crash recovery -----------------------------------------------------------------------

    async def recover(self) -> dict[str, int]:
        """Resume every run a stopped process left unfinished, or mark it `interrupted`.

        Runs of FlowLoom processes still alive are theirs; runs with no owner (stored before
        runs had owners) are resumed only when no other process is alive. The processes that
        are gone are forgotten afterwards.
        """
        resumed = interrupted = 0
        alive, gone = await self._liveness()
        others_alive = bool(alive - {self.instance_id})
        for run in await self.db.runs.unfinished():
            if run.id in self._running or run.owner in alive:
                continue
            if run.owner is None and others_alive:
                continue
            if not await self.db.runs.claim(run.id, owner=self.instance_id, previous=run.owner):
                continue  # another process claimed it first
            reason = await self._resume(run)
            if reason is None:
                resumed += 1
                continue
            interrupted += 1
            await self.db.runs.set_status(
                run.id,
                "interrupted",
                error={
                    "message": reason,
                    "node_id": None,
                    "node_name": None,
                    "type": "Interrupted",
                },
                finished_at=datetime.now(UTC).timestamp(),
            )
        for runtime_id in gone:  # their runs are resumed (or another process's to resume)
            await self.db.runtimes.unregister(runtime_id)
        if resumed or interrupted:
            log.info("recovered unfinished runs", resumed=resumed, interrupted=interrupted)
        return {"resumed": resumed, "interrupted": interrupted}

    async def _resume(self, run: RunRecord) -> str | None:
        """Start an unfinished run again from its finished steps; the reason if it can't be."""
        if run.flow_id is None or run.flow_version is None:
            return "FlowLoom stopped during this run, and its flow no longer exists."
        try:
            versions = await self.db.flows.versions(run.flow_id)
        except NotFound:
            return "FlowLoom stopped during this run, and its flow has since been deleted."
        document = next((v.document for v in versions if v.version == run.flow_version), None)
        if document is None:
            return "FlowLoom stopped during this run, and that version of its flow is gone."
        finished = [step_record(row) for row in run.steps if _reusable(row)]
        if any(_truncated(step.output) for step in finished):
            return (
                "FlowLoom stopped during this run, and a finished step's output was too large "
                "to keep, so the run cannot continue where it stopped."
            )
        try:
            compiled = self._compile_version(run.flow_id, run.flow_version, document)
        except InvalidFlowError as exc:
            return f"FlowLoom stopped during this run, and its flow can no longer run: {exc}"
        await self.db.runs.delete_steps_after(run.id, -1)
        self.launch(PreparedRun(compiled, run), resume=finished)
        return None

    async def _beat(self) -> None:
        """Say this runtime is alive; take over the runs of runtimes that are gone."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self.db.runtimes.heartbeat(self.instance_id)
                _, gone = await self._liveness()
                if gone:
                    await self.recover()
            except Exception:  # the database may be away for a while: try again next beat
                log.exception("could not update this runtime's heartbeat")

    async def _liveness(self) -> tuple[set[str], set[str]]:
        """The ids of the registered runtimes that are alive, and of those that are gone."""
        return await liveness(self.db, self.settings.heartbeat_s)

    async def _follow_others(self) -> None:
        """Follow what other processes sharing the database change: flows (triggers follow
        them, see `FlowRepository.follow`), event subscriptions, and requests to cancel this
        runtime's runs."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.sync_s)
            try:
                await self.db.flows.follow()
                await self.subscriptions.follow()
                for run_id in await self.db.runs.cancel_requests(self.instance_id):
                    handle = self._running.get(run_id)
                    if handle is not None:
                        log.info("cancelling a run as another process asked", run_id=run_id)
                        handle.cancel()
            except Exception:  # the database may be away for a while: try again soon
                if not failing:  # once, not every second while it is away
                    log.exception("could not look for changes made by other processes")
                failing = True
            else:
                if failing:
                    log.info("looking for changes made by other processes again")
                failing = False

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            try:
                report = await self.db.prune(
                    days=self.settings.retention_days,
                    max_runs_per_flow=self.settings.retention_max_runs,
                )
            except Exception:  # the database may be away for a while: try again next hour
                log.exception("could not prune the run history")
            else:
                log.info("pruned run history", **report)


async def liveness(db: Database, heartbeat_s: float) -> tuple[set[str], set[str]]:
    """The ids of the runtimes registered in `db` that are alive, and of those that are gone
    (`heartbeat_s`: how often they say they are alive)."""
    now = await db.runtimes.clock()
    alive: set[str] = set()
    gone: set[str] = set()
    for runtime in await db.runtimes.list():
        (alive if _alive(runtime, now, heartbeat_s) else gone).add(runtime.id)
    return alive, gone


def _alive(runtime: RuntimeRecord, now: datetime, heartbeat_s: float) -> bool:
    """Whether a registered runtime still runs: one of this process, a process of this
    machine that exists, or one elsewhere heard of lately (by the database's clock)."""
    if runtime.id in _HERE:
        return True
    silent_s = (now - runtime.seen_at).total_seconds()
    if silent_s > STALE_AFTER_BEATS * heartbeat_s:
        return False
    if runtime.host != socket.gethostname() or os.name != "posix":
        return True
    if runtime.pid == os.getpid():  # this process's id, but not one of its runtimes
        return False
    try:
        os.kill(runtime.pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


async def cancel_stored(db: Database, run_id: str, *, by: str, heartbeat_s: float) -> str | None:
    """Cancel a queued or running run that this process does not execute; the run's status
    afterwards, None when there is no such run or it is over.

    When another live FlowLoom process executes it, that process is asked to (it looks
    every `Settings.sync_s`) and this waits up to `CANCEL_WAIT_S` for it to, so the status
    may still be `running` when it did not. A run whose process is gone (or that never started) is claimed
    for `by` (so nobody resumes it meanwhile) and marked `cancelled`. `heartbeat_s` is how
    often the processes say they are alive (`Settings.heartbeat_s`).
    """
    try:
        run = await db.runs.get(run_id)
    except NotFound:
        return None
    if run.status not in UNFINISHED:
        return None
    alive, _ = await liveness(db, heartbeat_s)
    if run.owner is not None and run.owner != by and run.owner in alive:
        await db.runs.request_cancel(run_id)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while (status := (await db.runs.get(run_id)).status) in UNFINISHED:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        return status
    if not await db.runs.claim(run_id, owner=by, previous=run.owner):
        return (await db.runs.get(run_id)).status  # another process took it over just now
    await db.runs.set_status(
        run_id,
        "cancelled",
        error={
            "message": "The run was cancelled while no FlowLoom process was running it.",
            "node_id": None,
            "node_name": None,
            "type": "Cancelled",
        },
        finished_at=datetime.now(UTC).timestamp(),
    )
    return "cancelled"


def pinned_steps(document: Mapping[str, Any]) -> list[StepRecord]:
    """Finished step records for the outputs pinned in a flow document (`x_pins`).

    Passed as `resume` to `submit`, they make a run hand on each pinned output instead of
    running that step (steps inside a loop cannot be pinned).
    """
    pins = document.get(PINS_KEY)
    if not isinstance(pins, Mapping):
        return []
    records = []
    now = time.time()
    for node in document.get("nodes", []):
        if not isinstance(node, Mapping) or node.get("id") not in pins or node.get("parent"):
            continue
        records.append(
            StepRecord(
                node_id=node["id"],
                node_name=node.get("name") or node["id"],
                node_type=node.get("type", ""),
                status="succeeded",
                output=pins[node["id"]],
                port="out",
                started_at=now,
                finished_at=now,
                logs=[
                    {"level": "info", "message": "Pinned output: the step did not run.", "at": now}
                ],
            )
        )
    return records


async def _ended_within(task: asyncio.Task[Any], timeout_s: float) -> bool:
    """Whether `task` ends within `timeout_s` (it goes on either way). What `asyncio.wait`
    does for one task, without its sets and checks: a sync webhook call waits like this."""
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def wake(_: object = None) -> None:
        if not ended.done():
            ended.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout_s, wake)
    try:
        await ended
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _reusable(row: StepRow) -> bool:
    return row.status == "succeeded" or (row.status == "failed" and row.port is not None)


def _truncated(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("_truncated") is True


def step_record(row: StepRow) -> StepRecord:
    """A stored step as the engine's record (for resuming, re-running and showing it)."""
    return StepRecord(
        node_id=row.node_id,
        node_name=row.node_name,
        node_type=row.node_type,
        status=row.status,  # type: ignore[arg-type]  # a stored status is a step status
        visit=row.visit,
        input=row.input,
        output=row.output,
        port=row.port,
        error=row.error,
        attempts=row.attempts,
        started_at=row.started_at.timestamp() if row.started_at else 0.0,
        finished_at=row.finished_at.timestamp() if row.finished_at else 0.0,
        parent=row.parent,
        item_index=row.item_index,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cost_usd=row.cost_usd,
        model=row.model,
        logs=list(row.logs),
        exchanges=list(row.exchanges),
    )
