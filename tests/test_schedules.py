"""Schedule triggers: they fire with `fired_at`, stop at once when deactivated, survive a
restart, and run a missed firing once (never twice, even with two schedulers) or skip it.
A claimed firing is never lost: its run is stored with the claim, and runs at the latest at
the next start."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.settings import Settings
from storage import Database, FlowRecord, NotFound, RunRecord, StorageError
from storage.triggers import TriggerRepository
from studio import schedules
from studio.runtime import PreparedRun, Runtime
from tests.documents import flow, step
from tests.flowloom_inprocess import FlowLoomInProcess, activate, create_flow


def schedule_flow(timing: dict[str, Any], name: str = "Ticker") -> dict[str, Any]:
    document = flow(
        [
            step("tick", "trigger.schedule", timing),
            step("mark", "data.set", {"values": {"ticked": True}}),
        ],
        [("tick", "mark")],
    )
    document["name"] = name
    return document


def settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", **changes)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    running = Runtime(settings(tmp_path))
    await running.start()
    yield running
    await running.stop()


async def activate_in(runtime: Runtime, document: dict[str, Any]) -> FlowRecord:
    created = await runtime.db.flows.create(document)
    active = await runtime.db.flows.set_active(created.id, True)
    await runtime.schedules.refresh(active)
    return active


async def fired(runtime: Runtime, flow_id: str) -> list[str]:
    """`fired_at` of the flow's runs, oldest first."""
    runs, _ = await runtime.db.runs.list(flow_id=flow_id, limit=1000)
    return sorted(run.input["fired_at"] for run in runs)


async def test_an_interval_schedule_fires_with_its_fire_time(runtime: Runtime) -> None:
    active = await activate_in(runtime, schedule_flow({"every_s": 0.25}))

    await asyncio.sleep(0.9)

    times = [datetime.fromisoformat(at) for at in await fired(runtime, active.id)]
    assert 2 <= len(times) <= 4
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(abs(gap - 0.25) < 0.01 for gap in gaps)  # the planned times, not "now"
    assert runtime.metrics.schedule_fires[active.id] >= len(times)
    runs, _ = await runtime.db.runs.list(flow_id=active.id)
    await runtime.flushed()
    finished = await runtime.db.runs.get(runs[-1].id)
    assert finished.trigger == "tick"


async def test_deactivating_stops_the_schedule_at_once(runtime: Runtime) -> None:
    active = await activate_in(runtime, schedule_flow({"every_s": 0.2}))
    await asyncio.sleep(0.5)

    await runtime.db.flows.set_active(active.id, False)
    count = len(await fired(runtime, active.id))
    await asyncio.sleep(0.6)

    assert count >= 1
    assert len(await fired(runtime, active.id)) == count
    assert runtime.schedules.next_runs(active.id) == []


async def test_quick_changes_leave_one_schedule_that_fires(runtime: Runtime) -> None:
    active = await activate_in(runtime, schedule_flow({"every_s": 0.2}))
    document = dict(active.document)

    await runtime.db.flows.set_active(active.id, False)
    await runtime.db.flows.set_active(active.id, True)
    await runtime.db.flows.update(active.id, document)
    await runtime.db.flows.set_active(active.id, True)
    planned = await runtime.schedules.refresh(await runtime.db.flows.get(active.id))
    before = len(await fired(runtime, active.id))
    await asyncio.sleep(0.9)

    assert len(planned) == 1
    assert len(await fired(runtime, active.id)) - before >= 2
    for _ in range(20):  # the database and the plan agree (but for a firing just then)
        [stored] = await runtime.db.triggers.schedules(active.id)
        if stored["next_run_at"] == runtime.schedules.next_runs(active.id)[0]["next_run_at"]:
            break
        await asyncio.sleep(0.03)
    else:
        raise AssertionError("the stored next firing and the planned one differ")


async def test_a_saved_active_flow_follows_its_new_schedule(runtime: Runtime) -> None:
    document = schedule_flow({"cron": "0 0 1 1 *"})
    active = await activate_in(runtime, document)
    [yearly] = runtime.schedules.next_runs(active.id)

    document["nodes"][0]["config"] = {"every_s": 0.2}
    await runtime.db.flows.update(active.id, document)
    await asyncio.sleep(0.7)

    assert yearly["next_run_at"].month == 1
    assert len(await fired(runtime, active.id)) >= 2


async def fired_at_least(runtime: Runtime, flow_id: str, count: int) -> list[str]:
    """`fired` once it holds `count` firings (a loaded machine may take a while; 10 s at most)."""
    for _ in range(200):
        times = await fired(runtime, flow_id)
        if len(times) >= count:
            return times
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} firings within 10 s: {times}")


async def test_a_schedule_fires_again_after_a_restart(tmp_path: Path) -> None:
    first = Runtime(settings(tmp_path))
    await first.start()
    active = await activate_in(first, schedule_flow({"every_s": 0.3}))
    before = len(await fired_at_least(first, active.id, 1))
    await first.stop()

    second = Runtime(settings(tmp_path))
    await second.start()
    try:
        after = await fired_at_least(second, active.id, before + 2)
    finally:
        await second.stop()

    assert len(set(after)) == len(after)  # no firing twice


async def missed_firing(tmp_path: Path, late: timedelta) -> tuple[str, datetime]:
    """An active yearly schedule whose stored next firing came due `late` ago while no
    FlowLoom ran; (flow id, that firing's time)."""
    database = await Database.open(
        f"sqlite+aiosqlite:///{tmp_path / 'data' / 'flowloom.db'}", data_dir=tmp_path / "data"
    )
    try:
        created = await database.flows.create(schedule_flow({"cron": "0 0 1 1 *"}))
        await database.flows.set_active(created.id, True)
        due = (datetime.now(UTC) - late).replace(microsecond=0)
        await database.triggers.save_schedule(created.id, "tick", next_run_at=due)
    finally:
        await database.close()
    return created.id, due


async def test_a_missed_firing_within_grace_runs_once_even_with_two_schedulers(
    tmp_path: Path,
) -> None:
    flow_id, due = await missed_firing(tmp_path, timedelta(seconds=20))
    one = Runtime(settings(tmp_path, schedule_grace_s=60))
    other = Runtime(settings(tmp_path, schedule_grace_s=60))

    await asyncio.gather(one.start(), other.start(recover=False))  # as two processes would
    try:
        await asyncio.sleep(0.3)
        runs = await fired(one, flow_id)
        [schedule] = await one.db.triggers.schedules(flow_id)
    finally:
        await asyncio.gather(one.stop(), other.stop())
    again = Runtime(settings(tmp_path, schedule_grace_s=60))
    await again.start()
    try:
        await asyncio.sleep(0.2)
        after_restart = await fired(again, flow_id)
    finally:
        await again.stop()

    assert runs == [due.isoformat()]
    assert schedule["last_fired_at"] == due
    assert schedule["next_run_at"] > datetime.now(UTC)  # the next new year
    assert after_restart == runs  # never twice


async def test_a_firing_missed_beyond_grace_is_skipped(tmp_path: Path) -> None:
    flow_id, _ = await missed_firing(tmp_path, timedelta(minutes=10))
    runtime = Runtime(settings(tmp_path, schedule_grace_s=60))

    await runtime.start()
    try:
        await asyncio.sleep(0.3)
        runs = await fired(runtime, flow_id)
        [planned] = runtime.schedules.next_runs(flow_id)
    finally:
        await runtime.stop()

    assert runs == []
    assert planned["next_run_at"] > datetime.now(UTC)


def queued_run(flow_id: str, fired_at: datetime) -> RunRecord:
    """The record of a schedule firing's run as the runtime prepares it (not stored)."""
    return RunRecord(
        id=f"run-{fired_at.timestamp():.0f}-{flow_id[:8]}",
        flow_id=flow_id,
        flow_version=1,
        trigger="tick",
        status="queued",
        input={"fired_at": fired_at.isoformat()},
        output=None,
        error=None,
        created_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
    )


T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def test_the_winning_claim_stores_the_firing_run_with_it(db: Database) -> None:
    created = await db.flows.create(schedule_flow({"cron": "0 12 * * *"}))
    await db.flows.set_active(created.id, True)
    await db.triggers.save_schedule(created.id, "tick", next_run_at=T0)
    run = queued_run(created.id, T0)
    rival = queued_run(created.id, T0 + timedelta(seconds=1))

    won = await db.triggers.claim_firing(
        created.id, "tick", due_at=T0, next_run_at=T0 + timedelta(days=1), run=run
    )
    lost = await db.triggers.claim_firing(
        created.id, "tick", due_at=T0, next_run_at=T0 + timedelta(days=1), run=rival
    )

    assert (won, lost) == (True, False)
    stored = await db.runs.get(run.id)
    assert (stored.status, stored.trigger, stored.flow_version) == ("queued", "tick", 1)
    assert stored.input == {"fired_at": T0.isoformat()}
    with pytest.raises(NotFound):
        await db.runs.get(rival.id)  # the losing claim stored nothing


async def test_a_firing_whose_run_cannot_be_stored_stays_due(db: Database) -> None:
    created = await db.flows.create(schedule_flow({"cron": "0 12 * * *"}))
    await db.flows.set_active(created.id, True)
    await db.triggers.save_schedule(created.id, "tick", next_run_at=T0)
    run = queued_run(created.id, T0)
    await db.runs.create(
        run_id=run.id, flow_id=created.id, flow_version=1, trigger="tick", input=None
    )  # the id is taken, so inserting the firing's run fails

    with pytest.raises(StorageError, match="still due"):
        await db.triggers.claim_firing(
            created.id, "tick", due_at=T0, next_run_at=T0 + timedelta(days=1), run=run
        )

    [schedule] = await db.triggers.schedules(created.id)
    assert (schedule["next_run_at"], schedule["last_fired_at"]) == (T0, None)  # rolled back
    other = queued_run(created.id, T0 + timedelta(seconds=1))
    assert await db.triggers.claim_firing(
        created.id, "tick", due_at=T0, next_run_at=T0 + timedelta(days=1), run=other
    )
    assert (await db.runs.get(other.id)).status == "queued"


async def test_a_firing_claimed_by_a_process_killed_before_its_run_started_runs_at_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id, due = await missed_firing(tmp_path, timedelta(seconds=20))
    dying = Runtime(settings(tmp_path, schedule_grace_s=60))
    # As if killed right after the claim committed: its run is never launched here.
    never_launched: list[PreparedRun] = []
    monkeypatch.setattr(dying, "launch", lambda prepared, **_: never_launched.append(prepared))
    await dying.start()
    try:
        left, _ = await dying.db.runs.list(flow_id=flow_id)
        [schedule] = await dying.db.triggers.schedules(flow_id)
    finally:
        await dying.stop()

    again = Runtime(settings(tmp_path, schedule_grace_s=60))
    await again.start()
    try:
        [run] = left
        await again.wait(run.id, timeout_s=30)
        await again.flushed()
        finished = await again.db.runs.get(run.id)
        runs = await fired(again, flow_id)
    finally:
        await again.stop()

    assert [prepared.record.id for prepared in never_launched] == [run.id]
    assert (run.status, run.input) == ("queued", {"fired_at": due.isoformat()})
    assert schedule["last_fired_at"] == due  # claimed in the same commit
    assert finished.status == "succeeded"
    assert [step.node_id for step in finished.steps] == ["tick", "mark"]
    assert runs == [due.isoformat()]  # once: the restart did not fire it again


async def test_a_claim_that_fails_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id, due = await missed_firing(tmp_path, timedelta(seconds=20))
    claim = TriggerRepository.claim_firing
    failures: list[datetime] = []

    async def flaky(repository: TriggerRepository, *args: Any, **kwargs: Any) -> bool:
        if not failures:  # the database is away for the first claim
            failures.append(kwargs["due_at"])
            raise StorageError("The database is away.")
        return await claim(repository, *args, **kwargs)

    monkeypatch.setattr(TriggerRepository, "claim_firing", flaky)
    monkeypatch.setattr(schedules, "CLAIM_RETRY_S", 0.05)
    runtime = Runtime(settings(tmp_path, schedule_grace_s=60))
    await runtime.start()
    try:
        for _ in range(200):  # until the retry has run it (bounded, not timed)
            runs = await fired(runtime, flow_id)
            if runs:
                break
            await asyncio.sleep(0.05)
        [schedule] = await runtime.db.triggers.schedules(flow_id)
    finally:
        await runtime.stop()

    assert failures == [due]
    assert runs == [due.isoformat()]
    assert schedule["last_fired_at"] == due
    assert schedule["next_run_at"] > datetime.now(UTC)


def test_next_fire_times_come_through_the_api(tmp_path: Path) -> None:
    server = FlowLoomInProcess(tmp_path / "data").start()
    try:
        with server.api() as api:
            document = schedule_flow(
                {"cron": "30 9 * * *", "timezone": "Europe/Paris"}, name="Morning"
            )
            created = create_flow(api, document)
            answer = activate(api, created["id"])
            listed = api.get(f"/flows/{created['id']}/schedules").json()
            api.post(f"/flows/{created['id']}/deactivate")
            after = api.get(f"/flows/{created['id']}/schedules").json()
            ready = httpx.get(f"{server.url}/readyz").json()
    finally:
        server.stop()

    [planned] = answer["schedules"]
    fire = datetime.fromisoformat(planned["next_run_at"])
    assert fire.astimezone(_paris()).strftime("%H:%M") == "09:30"
    assert fire > datetime.now(UTC)
    assert listed["items"] == answer["schedules"]
    assert after["items"] == []
    assert ready["checks"]["scheduler"] == "ok"


def _paris() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")
