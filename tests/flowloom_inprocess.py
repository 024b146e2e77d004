"""FlowLoom's headless app (`HeadlessApp`, what `flowloom serve` runs) served by uvicorn in a thread on loopback, with
helpers for the trigger tests: creating and activating flows, waiting for runs.

Faster to start than a `flowloom serve` process (tests/flowloom_process.py), so the tests
that do not kill or restart the server use it; the requests still go over real HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from engine.settings import Settings
from studio.headless import HeadlessApp
from studio.runtime import Runtime
from tests.servers import LoopbackServer

T = TypeVar("T")


class FlowLoomInProcess(LoopbackServer):
    """`HeadlessApp(settings)` on 127.0.0.1 and a free port; `runtime` is its Runtime."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.settings = Settings(data_dir=data_dir, **settings)
        self.app = HeadlessApp(self.settings)
        self.loop: asyncio.AbstractEventLoop | None = None
        super().__init__(self._serve, name="FlowLoom", lifespan="on", interface="asgi3")

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def call(self, work: Coroutine[Any, Any, T], timeout_s: float = 15.0) -> T:
        """Run `work` on the server's event loop (where its runtime lives); its result."""
        return self.submit(work).result(timeout_s)

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `work` on the server's event loop; a future of its result."""
        assert self.loop is not None, "the server has not started"
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    def start(self) -> Self:
        super().start()
        return self

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=15)


def create_flow(api: httpx.Client, document: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("/flows", json={"document": document})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def activate(api: httpx.Client, flow_id: str) -> dict[str, Any]:
    answer = api.post(f"/flows/{flow_id}/activate")
    assert answer.status_code == 200, answer.text
    activation: dict[str, Any] = answer.json()
    return activation


def hook_url(api: httpx.Client, document: dict[str, Any], node_id: str = "hook") -> str:
    """Save and activate `document`; the URL of its webhook trigger `node_id`."""
    created = create_flow(api, document)
    activation = activate(api, created["id"])
    return next(hook["url"] for hook in activation["webhooks"] if hook["node_id"] == node_id)


def wait_for_run(
    api: httpx.Client, run_id: str, until: Any = None, timeout_s: float = 15.0
) -> dict[str, Any]:
    """GET /runs/{id} until `until(run)` holds (default: the run ended); returns the run."""
    until = until or (lambda run: run["status"] not in ("queued", "running"))
    deadline = time.monotonic() + timeout_s
    while True:
        answer = api.get(f"/runs/{run_id}")
        if answer.status_code == 200 and until(answer.json()):
            run: dict[str, Any] = answer.json()
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} never got there: {answer.text}")
        time.sleep(0.02)


def runs_of(api: httpx.Client, flow_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/runs", params={"flow_id": flow_id}).json()["items"]
    return items
