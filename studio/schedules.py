"""Schedule triggers: active flows' `trigger.schedule` steps fire through APScheduler.

Each listening schedule is one APScheduler job at its next fire time (a date trigger carrying
that time); when it fires it claims the firing in the database (`db.triggers.claim_firing`,
which moves `next_run_at` on and stores the firing's run, `queued`, in the same transaction),
starts that run with `{"fired_at": <that time>}` and plans the next one. Only one claim of
a firing wins, so even two FlowLoom processes on one database run it once; and a claimed
firing always has its run, so a process killed before starting it leaves a queued run that
the next start runs (`Runtime.recover`). A claim that fails (the database away) changes
nothing and is tried again `CLAIM_RETRY_S` later.

Across restarts: `next_run_at` is kept in the database. A firing that came due while
FlowLoom was stopped runs once at start when it is at most `schedule_grace_s` late (several
missed firings of a short interval count as one); an older one is skipped. Activating,
saving, deactivating or deleting a flow changes its jobs at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from engine import InvalidFlowError
from storage import FlowRecord, StorageError
from studio.triggers import next_after, schedule_trigger

if TYPE_CHECKING:
    from studio.runtime import PreparedRun, Runtime

log = structlog.get_logger("flowloom.schedules")

SCHEDULE_TYPE = "trigger.schedule"
#: How long after a failed claim of a firing it is tried again.
CLAIM_RETRY_S = 5.0


class ScheduleService:
    """The schedules of a `Runtime` (its `schedules`)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._grace = timedelta(seconds=runtime.settings.schedule_grace_s)
        self._scheduler: AsyncIOScheduler | None = None
        # (flow id, node id) -> (the flow it belongs to, its trigger, next fire time)
        self._plans: dict[tuple[str, str], tuple[FlowRecord, BaseTrigger, datetime]] = {}
        # The latest planning of each flow; each waits for the one before (one at a time).
        self._planning: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    async def start(self) -> None:
        """Start the scheduler on this event loop with every active flow's schedules."""
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self._runtime.db.flows.watch(self._flow_changed)
        for flow in await self._runtime.db.flows.active():
            await self._enqueue(flow.id, flow, starting=True)

    async def stop(self) -> None:
        tasks = list(self._planning.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        self._plans.clear()

    def next_runs(self, flow_id: str) -> list[dict[str, Any]]:
        """The flow's listening schedules: node_id, next_run_at (UTC) and their timing."""
        return [
            {"node_id": node_id, "next_run_at": due}
            for (owner, node_id), (_, _, due) in sorted(self._plans.items())
            if owner == flow_id
        ]

    async def refresh(self, flow: FlowRecord) -> list[dict[str, Any]]:
        """Wait until `flow`'s schedules follow its last change (activation and deactivation
        await this before they answer); its next runs."""
        pending = self._planning.get(flow.id)
        if pending is None:
            await self._enqueue(flow.id, flow, starting=False)
        else:
            await asyncio.gather(pending, return_exceptions=True)
        return self.next_runs(flow.id)

    # -- planning -----------------------------------------------------------------------------

    def _flow_changed(self, flow_id: str, flow: FlowRecord | None) -> None:
        """A deactivated or deleted flow's jobs go at once; a saved active flow is replanned."""
        self._drop(flow_id)
        if flow is not None and self.running:
            self._enqueue(flow_id, flow, starting=False)

    def _enqueue(self, flow_id: str, flow: FlowRecord, *, starting: bool) -> asyncio.Task[None]:
        """Plan (or, inactive, forget) the flow's schedules after its earlier plannings, so
        two plannings of one flow never interleave."""
        previous = self._planning.get(flow_id)

        async def plan() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            self._drop(flow_id)
            if flow.active:
                await self._plan_flow(flow, starting=starting)
            else:
                await self._runtime.db.triggers.clear(flow_id, webhooks=False)

        task = asyncio.get_running_loop().create_task(plan())
        self._planning[flow_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._planning.get(flow_id) is finished:
                del self._planning[flow_id]
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "could not plan a flow's schedules",
                    flow_id=flow_id,
                    error=str(finished.exception()),
                )

        task.add_done_callback(done)
        return task

    async def _plan_flow(self, flow: FlowRecord, *, starting: bool) -> None:
        stored = {s["node_id"]: s for s in await self._runtime.db.triggers.schedules(flow.id)}
        for node in flow.document.get("nodes", []):
            if not isinstance(node, dict) or node.get("type") != SCHEDULE_TYPE:
                continue
            try:
                await self._plan(flow, node, stored.get(node["id"]), starting=starting)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "a schedule cannot be planned",
                    flow_id=flow.id,
                    node_id=node.get("id"),
                    error=str(exc),
                )

    async def _plan(
        self,
        flow: FlowRecord,
        node: dict[str, Any],
        stored: dict[str, Any] | None,
        *,
        starting: bool,
    ) -> None:
        triggers = self._runtime.db.triggers
        config = node.get("config") or {}
        now = datetime.now(UTC)
        kept: datetime | None = stored["next_run_at"] if stored else None
        trigger = _trigger(config, flow.document, kept=kept, now=now)
        if kept is not None and kept <= now:  # came due while nobody was listening
            following = next_after(trigger, now)
            try:
                won = await self._claim(flow, node["id"], kept, following, now)
            except StorageError as exc:
                log.error(
                    "could not claim a missed schedule firing; trying again soon",
                    flow_id=flow.id,
                    node_id=node["id"],
                    error=str(exc),
                )
                self._add_job(flow, node["id"], trigger, kept, at=_retry_time(now))
                return
            if won:
                kept = following
            else:  # another process claimed it: use what it stored
                current = await triggers.schedules(flow.id)
                kept = next((s["next_run_at"] for s in current if s["node_id"] == node["id"]), None)
        elif kept is None or not starting or not _fits(trigger, kept):
            # A new schedule, or a changed one: the next time from now.
            kept = next_after(trigger, now)
            await triggers.save_schedule(flow.id, node["id"], next_run_at=kept)
        if kept is not None:
            self._add_job(flow, node["id"], trigger, kept)

    def _add_job(
        self,
        flow: FlowRecord,
        node_id: str,
        trigger: BaseTrigger,
        due: datetime,
        *,
        at: datetime | None = None,
    ) -> None:
        """Plan the firing due at `due`, to happen then (or at `at`, to try it again)."""
        if self._scheduler is None:
            return
        key = (flow.id, node_id)
        self._plans[key] = (flow, trigger, due)
        self._scheduler.add_job(
            self._fire,
            DateTrigger(run_date=at or due, timezone=UTC),
            args=(flow.id, node_id, due),
            id=_job_id(key),
            replace_existing=True,
            misfire_grace_time=None,  # a late job still runs; `_fire` decides about lateness
        )

    def _drop(self, flow_id: str) -> None:
        for key in [key for key in self._plans if key[0] == flow_id]:
            del self._plans[key]
            if self._scheduler is not None and self._scheduler.get_job(_job_id(key)):
                self._scheduler.remove_job(_job_id(key))

    # -- firing -------------------------------------------------------------------------------

    async def _fire(self, flow_id: str, node_id: str, due: datetime) -> None:
        key = (flow_id, node_id)
        plan = self._plans.get(key)
        if plan is None or plan[2] != due:  # deactivated or replanned meanwhile
            return
        flow, trigger, _ = plan
        now = datetime.now(UTC)
        following = next_after(trigger, max(now, due))
        try:
            won = await self._claim(flow, node_id, due, following, now)
        except StorageError as exc:
            log.error(
                "could not claim a schedule firing; trying again soon",
                flow_id=flow_id,
                node_id=node_id,
                error=str(exc),
            )
            if self._planned(key) == due:
                self._add_job(flow, node_id, trigger, due, at=_retry_time(now))
            return
        if self._planned(key) != due:
            return  # deactivated or replanned while claiming
        if not won:  # another process fired it (or replanned it): follow what the database holds
            stored = await self._runtime.db.triggers.schedules(flow_id)
            kept = next((s["next_run_at"] for s in stored if s["node_id"] == node_id), None)
            if kept is not None and kept > now:
                following = kept
        if following is not None and self._planned(key) == due:
            self._add_job(flow, node_id, trigger, following)

    def _planned(self, key: tuple[str, str]) -> datetime | None:
        """The firing the schedule `key` waits for now; None if it is not planned."""
        plan = self._plans.get(key)
        return plan[2] if plan is not None else None

    async def _claim(
        self,
        flow: FlowRecord,
        node_id: str,
        due: datetime,
        following: datetime | None,
        now: datetime,
    ) -> bool:
        """Claim the firing due at `due` (the schedule's next one becomes `following`) and
        start its run; True when this process won the firing.

        The run is stored with the claim (one transaction), so a won firing always runs, at
        the latest at the next start. A firing more than the grace period late, or of a flow
        that cannot run, is claimed without a run (skipped). StorageError when the claim
        could not be recorded: nothing changed, the firing is still due.
        """
        prepared: PreparedRun | None = None
        if now - due <= self._grace:
            try:
                prepared = self._runtime.prepare(
                    flow, {"fired_at": due.astimezone(UTC).isoformat()}, trigger=node_id
                )
            except InvalidFlowError as exc:
                log.error("a schedule could not start its run", flow_id=flow.id, error=str(exc))
        won = await self._runtime.db.triggers.claim_firing(
            flow.id,
            node_id,
            due_at=due,
            next_run_at=following,
            run=prepared.record if prepared is not None else None,
        )
        if not won:
            return False
        if prepared is not None:
            self._runtime.launch(prepared)
            self._runtime.metrics.schedule_fired(flow.id)
            log.info("schedule fired", flow_id=flow.id, node_id=node_id, run_id=prepared.record.id)
        elif now - due > self._grace:
            log.warning(
                "skipped a schedule firing that came too late",
                flow_id=flow.id,
                node_id=node_id,
                due_at=due.isoformat(),
            )
        return True


def _trigger(
    config: dict[str, Any], document: dict[str, Any], *, kept: datetime | None, now: datetime
) -> BaseTrigger:
    """The APScheduler trigger of a schedule. An interval counts from the stored next firing
    when that is at most one interval away (a restart or a save keeps its rhythm), else
    from now (a new or changed interval)."""
    if config.get("cron"):
        return schedule_trigger(config, document)
    every = timedelta(seconds=float(config["every_s"]))
    anchor = kept if kept is not None and kept <= now + every else now
    return IntervalTrigger(seconds=every.total_seconds(), start_date=anchor, timezone=UTC)


def _fits(trigger: BaseTrigger, moment: datetime) -> bool:
    """Whether `moment` is one of the trigger's fire times (a stored time still valid)."""
    if isinstance(trigger, IntervalTrigger):
        return True
    fire = trigger.get_next_fire_time(None, moment)
    return fire is not None and fire.astimezone(UTC) == moment


def _retry_time(now: datetime) -> datetime:
    return now + timedelta(seconds=CLAIM_RETRY_S)


def _job_id(key: tuple[str, str]) -> str:
    return f"{key[0]}:{key[1]}"
