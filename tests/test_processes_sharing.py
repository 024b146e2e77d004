"""Processes sharing a database follow each other: a flow activated, saved, deactivated or
deleted through one runtime changes the webhooks and schedules of the other within `sync_s`
(a schedule both follow still fires once per firing), and a run one of them executes can be
cancelled through the other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing

from engine.settings import Settings
from studio import runtime as runtime_module
from studio.runtime import Runtime
from studio.server import api_app
from studio.webhooks import HookRoutes
from tests.documents import chain, flow, manual, step
from tests.servers import LoopbackServer, read_body

SYNC_S = 0.05


def hook_and_schedule(every_s: float = 3600.0) -> dict[str, Any]:
    document = flow(
        [
            step("hook", "trigger.webhook", {"response": "sync"}),
            step("tick", "trigger.schedule", {"every_s": every_s}),
            step("mark", "data.set", {"values": {"seen": True}}),
        ],
        [("hook", "mark"), ("tick", "mark")],
    )
    document["name"] = "Shared"
    return document


@pytest.fixture
async def pair(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two runtimes on one database (of each kind), as the studio and `flowloom serve`
    would be (or two servers on PostgreSQL)."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, sync_s=SYNC_S)
    here, there = Runtime(settings), Runtime(settings)
    await here.start()
    await there.start(recover=False)
    yield here, there
    await there.stop()
    await here.stop()


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait until `check()` holds; fail naming `what` if it never does."""
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def call(runtime: Runtime, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=HookRoutes(_no_app, runtime.webhooks))
    async with httpx.AsyncClient(transport=transport, base_url="http://flowloom") as client:
        return await client.post(f"/hooks/{token}", json={"n": 1})


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("only /hooks/ is called here")


def listens(runtime: Runtime, flow_id: str) -> list[int]:
    """The versions of `flow_id` the runtime's webhooks answer with."""
    return [t.flow.version for t in runtime.webhooks.targets() if t.flow.id == flow_id]


async def test_a_flow_activated_in_one_process_listens_in_the_other(
    pair: tuple[Runtime, Runtime],
) -> None:
    here, there = pair
    created = await here.db.flows.create(hook_and_schedule())
    token = (await here.webhooks.tokens(created))["hook"]
    assert (await call(there, token)).status_code == 404

    active = await here.db.flows.set_active(created.id, True)
    await here.webhooks.refresh(active)
    await until(lambda: listens(there, created.id) == [1], "the other process listens")
    await until(lambda: bool(there.schedules.next_runs(created.id)), "the other plans it")

    answer = await call(there, token)
    assert answer.status_code == 200
    assert answer.json()["seen"] is True


async def test_saves_deactivation_and_deletion_follow_too(pair: tuple[Runtime, Runtime]) -> None:
    here, there = pair
    created = await here.db.flows.create(hook_and_schedule())
    token = (await here.webhooks.tokens(created))["hook"]
    await here.db.flows.set_active(created.id, True)
    await until(lambda: listens(there, created.id) == [1], "the other process listens")

    document = hook_and_schedule()
    document["nodes"][2]["config"] = {"values": {"seen": "again"}}
    await here.db.flows.update(created.id, document)
    await until(lambda: listens(there, created.id) == [2], "the other runs the new version")
    assert (await call(there, token)).json()["seen"] == "again"

    await here.db.flows.set_active(created.id, False)
    await until(lambda: listens(there, created.id) == [], "the other stops listening")
    assert (await call(there, token)).status_code == 404
    assert there.schedules.next_runs(created.id) == []

    await here.db.flows.set_active(created.id, True)
    await until(lambda: listens(there, created.id) == [2], "the other listens again")
    await here.db.flows.delete(created.id)
    await until(lambda: listens(there, created.id) == [], "the other forgets the flow")
    assert there.schedules.next_runs(created.id) == []


async def test_a_schedule_both_processes_follow_fires_once_each_time(
    pair: tuple[Runtime, Runtime],
) -> None:
    here, there = pair
    created = await here.db.flows.create(hook_and_schedule(every_s=0.2))
    active = await here.db.flows.set_active(created.id, True)
    await here.schedules.refresh(active)
    await until(lambda: bool(there.schedules.next_runs(created.id)), "the other plans it")
    await asyncio.sleep(1.0)
    await here.db.flows.set_active(created.id, False)
    await here.flushed()
    await there.flushed()

    runs, _ = await here.db.runs.list(flow_id=created.id, limit=1000)
    fired = [run.input["fired_at"] for run in runs]
    owners = {run.owner for run in runs}
    assert len(fired) >= 3
    assert len(set(fired)) == len(fired)  # each firing ran once
    assert owners <= {here.instance_id, there.instance_id}


async def test_flows_that_never_were_active_tell_nobody(pair: tuple[Runtime, Runtime]) -> None:
    here, there = pair
    told: list[str] = []
    there.db.flows.watch(lambda flow_id, _: told.append(flow_id))
    created = await here.db.flows.create(hook_and_schedule())
    await here.db.flows.update(created.id, hook_and_schedule())
    assert await there.db.flows.follow() == 0
    await here.db.flows.set_active(created.id, True)
    assert await there.db.flows.follow() == 1
    assert told[-1] == created.id


async def test_a_run_is_cancelled_through_a_process_that_does_not_run_it(
    pair: tuple[Runtime, Runtime],
) -> None:
    here, there = pair
    document = chain(manual(), step("wait", "flow.delay", {"seconds": 30}))
    created = await here.db.flows.create(document)
    record = await here.submit(created, {})
    await until(lambda: here.is_running(record.id), "the run starts")

    assert await there.cancel(record.id) is True
    await until(lambda: not here.is_running(record.id), "its own process stops it")
    await here.flushed()
    run = await there.db.runs.get(record.id)

    assert run.status == "cancelled"
    assert run.owner == here.instance_id
    assert run.steps[-1].status == "cancelled"  # the owner stopped the step itself
    assert await there.cancel(record.id) is False  # over now


async def test_a_run_whose_process_is_gone_is_marked_cancelled(
    pair: tuple[Runtime, Runtime],
) -> None:
    here, there = pair
    created = await here.db.flows.create(chain(manual(), step("set", "data.set", {"values": {}})))
    prepared = here.prepare(created, {})
    gone = replace(prepared.record, owner="gone-runtime", status="running")
    await here.db.runs.store(gone)  # a run left behind by a process nobody knows any more

    assert await there.cancel(gone.id) is True
    run = await here.db.runs.get(gone.id)

    assert (run.status, run.owner) == ("cancelled", there.instance_id)
    assert "no FlowLoom process was running it" in (run.error or {})["message"]


async def test_a_subscription_added_in_one_process_gets_the_others_runs(
    pair: tuple[Runtime, Runtime],
) -> None:
    here, there = pair
    delivered: list[dict[str, Any]] = []

    async def receiver_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        delivered.append(json.loads(await read_body(receive)))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    receiver = LoopbackServer(receiver_app, name="event receiver").start()
    try:
        await here.db.subscriptions.create(url=f"{receiver.url}/events", events=["run.succeeded"])
        await here.subscriptions.reload()  # as the API does after adding one
        created = await there.db.flows.create(
            chain(manual(), step("set", "data.set", {"values": {"done": True}}))
        )
        started: list[str] = []
        for _ in range(100):  # runs until the other process knows the subscription
            started.append((await there.submit(created, {})).id)
            await asyncio.sleep(0.1)
            if delivered:
                break
        await there.subscriptions.idle()
    finally:
        receiver.stop()

    assert delivered, "the other process never delivered its runs' events"
    assert {d["event"] for d in delivered} == {"run.succeeded"}
    assert {d["run"]["id"] for d in delivered} <= set(started)


async def test_the_api_answers_202_while_the_process_running_the_run_has_not_stopped_it(
    pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process on another machine runs the run and is alive, but has not acted on the
    # request within the wait (it is busy, or its next look is still to come).
    here, _ = pair
    monkeypatch.setattr(runtime_module, "CANCEL_WAIT_S", 0.2)
    created = await here.db.flows.create(chain(manual(), step("set", "data.set", {"values": {}})))
    await here.db.runtimes.register("far-away", host="another-machine", pid=1)
    run = replace(here.prepare(created, {}).record, owner="far-away", status="running")
    await here.db.runs.store(run)

    transport = httpx.ASGITransport(app=api_app(here))
    async with httpx.AsyncClient(transport=transport, base_url="http://flowloom") as api:
        asked = await api.post(f"/api/v1/runs/{run.id}/cancel")
        asked_again = await api.post(f"/api/v1/runs/{run.id}/cancel")
    requests = await here.db.runs.cancel_requests("far-away")

    assert asked.status_code == 202
    assert asked.json()["status"] == "running"
    assert "asked to stop" in asked.json()["message"]
    assert asked_again.status_code == 202
    assert requests == [run.id]  # one request, however often asked


async def test_a_database_away_for_a_while_is_logged_once_not_every_look(
    pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, _ = pair
    looks: list[int] = []
    follow = here.db.flows.follow

    async def away_five_times() -> int:
        looks.append(1)
        if len(looks) <= 5:
            raise ConnectionError("the database is away")
        return await follow()

    monkeypatch.setattr(here.db.flows, "follow", away_five_times)
    with structlog.testing.capture_logs() as logged:
        await until(lambda: len(looks) >= 8, "eight looks")

    said = [entry["event"] for entry in logged]
    assert said.count("could not look for changes made by other processes") == 1
    assert said.count("looking for changes made by other processes again") == 1
