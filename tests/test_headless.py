"""`flowloom serve`'s app (studio/headless.py): webhooks from the first moment, the REST API
built beside them, and a start-up failure reported in plain words."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.settings import Settings
from studio.headless import HeadlessApp
from tests.documents import chain, step
from tests.servers import LoopbackServer


def webhook_flow() -> dict[str, Any]:
    document = chain(
        {
            "id": "hook",
            "type": "trigger.webhook",
            "name": "Incoming",
            "config": {"response": "async"},
        },
        step("mark", "data.set", {"values": {"seen": "{{ input.body.n }}"}}),
    )
    document["name"] = "headless hook"
    return document


def test_webhooks_and_the_api_are_served_by_one_runtime(tmp_path: Path) -> None:
    app = HeadlessApp(Settings(data_dir=tmp_path / "data"))
    server = LoopbackServer(app, name="flowloom serve", lifespan="on", interface="asgi3").start()
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            # a webhook nobody listens on is answered by the runtime, API or not
            assert client.post("/hooks/nothing-here", json={}).status_code == 404
            for _ in range(500):  # the API is built soon after start, without a request
                if app._api is not None:
                    break
                time.sleep(0.01)
            assert app._api is not None
            assert client.get("/readyz").status_code == 200

            created = client.post("/api/v1/flows", json={"document": webhook_flow()}).json()
            activation = client.post(f"/api/v1/flows/{created['id']}/activate").json()
            hook = activation["webhooks"][0]["url"][len(server.url) :]
            answer = client.post(hook, json={"n": 7})
            assert answer.status_code == 202, answer.text
            run_id = answer.json()["run_id"]
            for _ in range(500):
                run = client.get(f"/api/v1/runs/{run_id}").json()
                if run["status"] == "succeeded":
                    break
                time.sleep(0.01)
            assert run["status"] == "succeeded"
            assert run["steps"][-1]["output"]["seen"] == 7
    finally:
        server.stop()


async def test_a_runtime_that_cannot_start_says_why(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", database_url="postgresql://nobody@127.0.0.1:1/flowloom"
    )
    app = HeadlessApp(settings)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)

    [failed] = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert "Cannot use the database at postgresql+asyncpg://nobody@127.0.0.1:1" in failed["message"]


@pytest.mark.parametrize("path", ["/docs", "/metrics", "/healthz"])
def test_the_api_s_other_pages_are_there(tmp_path: Path, path: str) -> None:
    app = HeadlessApp(Settings(data_dir=tmp_path / "data"))
    server = LoopbackServer(app, name="flowloom serve", lifespan="on", interface="asgi3").start()
    try:
        assert httpx.get(f"{server.url}{path}", timeout=15).status_code == 200
    finally:
        server.stop()
