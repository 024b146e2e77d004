"""A real `flowloom serve` killed with -9 right after answering webhook calls: every
acknowledged call's run is there after the restart, and idempotency keys still hold."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.documents import flow, step
from tests.flowloom_inprocess import activate, create_flow, runs_of, wait_for_run
from tests.flowloom_process import FlowLoomProcess


def slow_hook_flow() -> dict[str, Any]:
    document = flow(
        [
            step("hook", "trigger.webhook", {"response": "async"}),
            step("wait", "flow.delay", {"seconds": 0.5}),
            step("done", "data.set", {"values": {"done": True}}),
        ],
        [("hook", "wait"), ("wait", "done")],
    )
    document["name"] = "Durable hook"
    return document


@dataclass
class AfterTheKill:
    server: FlowLoomProcess  # the restarted one
    flow_id: str
    token: str
    accepted: list[str]  # run ids answered 202 just before the kill
    keyed: dict[str, Any]  # the answer to the call with an Idempotency-Key


@pytest.fixture(scope="module")
def after_the_kill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AfterTheKill]:
    data_dir = tmp_path_factory.mktemp("durable") / "data"
    server = FlowLoomProcess(data_dir).start()
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=15) as api:
            created = create_flow(api, slow_hook_flow())
            url = activate(api, created["id"])["webhooks"][0]["url"]
        keyed = httpx.post(url, json={}, headers={"Idempotency-Key": "delivery-1"}).json()

        async def burst() -> list[str]:
            async with httpx.AsyncClient(timeout=15) as caller:
                answers = await asyncio.gather(
                    *(caller.post(url, json={"n": n}) for n in range(20))
                )
            return [a.json()["run_id"] for a in answers if a.status_code == 202]

        accepted = asyncio.run(burst())
    finally:
        server.kill()  # at once: the runs are mid-flight, most not even started

    restarted = FlowLoomProcess(data_dir).start()
    yield AfterTheKill(restarted, created["id"], url.rsplit("/", 1)[1], accepted, keyed)
    restarted.stop()


def test_every_202_survives_a_kill_9_right_after_it(after_the_kill: AfterTheKill) -> None:
    assert len(after_the_kill.accepted) == 20
    with httpx.Client(base_url=f"{after_the_kill.server.url}/api/v1", timeout=15) as api:
        for run_id in after_the_kill.accepted:
            run = wait_for_run(api, run_id)
            assert run["status"] == "succeeded", run
            assert run["output"]["done"] is True


def test_an_idempotency_key_holds_across_a_restart(after_the_kill: AfterTheKill) -> None:
    server = after_the_kill.server

    again = httpx.post(
        f"{server.url}/hooks/{after_the_kill.token}",
        json={},
        headers={"Idempotency-Key": "delivery-1"},
    )

    assert again.status_code == 202
    assert again.json() == {"run_id": after_the_kill.keyed["run_id"], "duplicate": True}
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=15) as api:
        stored = {run["id"] for run in runs_of(api, after_the_kill.flow_id)}
    assert after_the_kill.keyed["run_id"] in stored
    assert len(stored) == 21  # the keyed call and the burst, nothing twice
