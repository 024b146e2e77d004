"""Who may use the REST API: this machine without a token; anyone with FLOWLOOM_API_TOKEN
(then required from this machine too). Webhooks and health checks stay open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.settings import Settings
from studio.access import loopback_host
from studio.runtime import Runtime
from studio.server import api_app
from tests.documents import chain, manual

TOKEN = "s3cret-api-token-for-tests"
HERE = ("127.0.0.1", 50000)
ELSEWHERE = ("203.0.113.7", 50000)

Caller = Callable[[tuple[str, int]], AbstractAsyncContextManager[httpx.AsyncClient]]


async def serving(tmp_path: Path, token: str | None) -> AsyncIterator[Caller]:
    runtime = Runtime(Settings(data_dir=tmp_path / "data", api_token=token))
    await runtime.start()
    app = api_app(runtime)

    @asynccontextmanager
    async def caller(client: tuple[str, int]) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://flowloom") as http:
            yield http

    try:
        yield caller
    finally:
        await runtime.stop()


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[Caller]:
    async for caller in serving(tmp_path, None):
        yield caller


@pytest.fixture
async def token_api(tmp_path: Path) -> AsyncIterator[Caller]:
    async for caller in serving(tmp_path, TOKEN):
        yield caller


def error_code(answer: httpx.Response) -> Any:
    return answer.json()["error"]["code"]


async def test_without_a_token_only_this_machine_may_call_the_api(open_api: Caller) -> None:
    async with open_api(HERE) as here, open_api(ELSEWHERE) as elsewhere:
        local = await here.get("/api/v1/flows")
        remote = await elsewhere.get("/api/v1/flows")
        remote_create = await elsewhere.post("/api/v1/flows", json={"document": {}})
        remote_docs = await elsewhere.get("/openapi.json")
        remote_docs_page = await elsewhere.get("/docs")
        remote_metrics = await elsewhere.get("/metrics")
        remote_health = await elsewhere.get("/healthz")
        remote_hook = await elsewhere.post("/hooks/no-such-token", json={})

    assert local.status_code == 200
    assert (remote.status_code, error_code(remote)) == (403, "api_from_elsewhere")
    assert "FLOWLOOM_API_TOKEN" in remote.json()["error"]["message"]
    assert remote_create.status_code == 403
    # the API's description tells nothing secret, and says how to send a token
    assert remote_docs.status_code == remote_docs_page.status_code == 200
    assert remote_docs.json()["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    assert remote_metrics.status_code == 403
    assert remote_health.status_code == 200  # health checks tell nothing
    assert remote_hook.status_code == 404  # webhooks carry their own checks


async def test_with_a_token_every_call_needs_it(token_api: Caller) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    flow = chain(manual())
    async with token_api(HERE) as here, token_api(ELSEWHERE) as elsewhere:
        local_without = await here.get("/api/v1/flows")
        wrong = await elsewhere.get("/api/v1/flows", headers={"Authorization": "Bearer nope"})
        remote_with = await elsewhere.get("/api/v1/flows", headers=good)
        created = await elsewhere.post("/api/v1/flows", headers=good, json={"document": flow})
        metrics = await elsewhere.get("/metrics", headers=good)
        health = await elsewhere.get("/readyz")

    assert (local_without.status_code, error_code(local_without)) == (401, "unauthorized")
    assert local_without.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert remote_with.status_code == 200
    assert created.status_code == 201
    assert metrics.status_code == 200
    assert health.status_code == 200


def test_which_listening_addresses_keep_a_server_to_this_machine() -> None:
    kept = [loopback_host(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")]
    opened = [loopback_host(h) for h in ("0.0.0.0", "::", "192.168.1.20", "flowloom.example")]

    assert kept == [True, True, True, True]
    assert opened == [False, False, False, False]
