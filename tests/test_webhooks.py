"""`POST /hooks/{token}` over real HTTP: every answer a caller can get, parsing, the editor's
test URL, idempotency and the rate limit."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.documents import flow, step
from tests.flowloom_inprocess import (
    FlowLoomInProcess,
    activate,
    create_flow,
    hook_url,
    runs_of,
    wait_for_run,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowLoomInProcess]:
    process = FlowLoomInProcess(tmp_path_factory.mktemp("hooks") / "data").start()
    yield process
    process.stop()


@pytest.fixture
def api(server: FlowLoomInProcess) -> Iterator[httpx.Client]:
    with server.api() as client:
        yield client


_names = iter(range(1_000_000))


def hook_flow(
    config: dict[str, Any] | None = None, *rest: dict[str, Any], name: str | None = None
) -> dict[str, Any]:
    """A webhook trigger `hook` (async unless `config` says) and the given steps, in a chain."""
    nodes = [step("hook", "trigger.webhook", config or {"response": "async"}), *rest]
    if not rest:
        nodes.append(step("echo", "data.set", {"values": {"seen": True}}))
    edges = [(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)]
    document = flow(nodes, edges)
    document["name"] = name or f"hook flow {next(_names)}"
    return document


def test_sync_call_gets_the_final_output(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow({"response": "sync"}))

    answer = httpx.post(f"{url}?lang=en&tag=a&tag=b", json={"name": "Ada"})

    assert answer.status_code == 200
    output = answer.json()
    assert output["seen"] is True
    assert output["body"] == {"name": "Ada"}
    assert output["query"] == {"lang": "en", "tag": ["a", "b"]}
    assert output["method"] == "POST"
    assert output["headers"]["content-type"] == "application/json"


def test_sync_call_gets_what_flow_respond_set(api: httpx.Client) -> None:
    respond = step(
        "answer",
        "flow.respond",
        {
            "status": 201,
            "body": {"greeting": "Hello {{ input.body.name }}"},
            "headers": {"X-Made-By": "FlowLoom"},
        },
    )
    url = hook_url(api, hook_flow({"response": "sync"}, respond))

    answer = httpx.post(url, json={"name": "Bo"})

    assert answer.status_code == 201
    assert answer.json() == {"greeting": "Hello Bo"}
    assert answer.headers["x-made-by"] == "FlowLoom"
    assert answer.headers["content-type"] == "application/json"


def test_respond_with_text_answers_text(api: httpx.Client) -> None:
    respond = step("answer", "flow.respond", {"status": 200, "body": "plain {{ input.body }}"})
    url = hook_url(api, hook_flow({"response": "sync"}, respond))

    answer = httpx.post(url, content=b"words", headers={"content-type": "text/plain"})

    assert (answer.status_code, answer.text) == (200, "plain words")
    assert answer.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("status", [204, 304])
def test_an_answer_without_content_keeps_the_connection_sound(
    api: httpx.Client, status: int
) -> None:
    # HTTP forbids content in a 204 or 304; sent anyway, it garbled the next answer.
    respond = step("answer", "flow.respond", {"status": status, "body": "ignored"})
    url = hook_url(api, hook_flow({"response": "sync"}, respond))

    with httpx.Client(timeout=10) as client:  # one keep-alive connection
        first = client.post(url, json={})
        second = client.post(url, json={})

    assert (first.status_code, first.content, second.status_code) == (status, b"", status)
    assert "content-length" not in first.headers


def test_compressed_bodies_are_unpacked_within_the_limit(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow({"response": "sync", "max_body_bytes": 10_000}))
    document = json.dumps({"order": 42, "note": "x" * 2000}).encode()

    def post(body: bytes, encoding: str) -> httpx.Response:
        headers = {"content-type": "application/json", "content-encoding": encoding}
        return httpx.post(url, content=body, headers=headers)

    gzipped = post(gzip.compress(document), "gzip")
    deflated = post(zlib.compress(document), "deflate")
    bomb = post(gzip.compress(b"0" * 1_000_000), "gzip")  # 1 KB that unpacks to 1 MB
    broken = post(b"not gzip at all", "gzip")
    brotli = post(document, "br")

    assert gzipped.status_code == deflated.status_code == 200
    assert gzipped.json()["body"]["order"] == deflated.json()["body"]["order"] == 42
    assert len(gzip.compress(b"0" * 1_000_000)) < 10_000
    assert (bomb.status_code, bomb.json()["error"]["code"]) == (413, "body_too_large")
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "malformed_body")
    assert (brotli.status_code, brotli.json()["error"]["code"]) == (415, "unsupported_encoding")


def test_async_call_gets_202_with_a_run_that_is_already_stored(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow({"response": "async"}))

    answer = httpx.post(url, json={"n": 1})

    assert answer.status_code == 202
    run_id = answer.json()["run_id"]
    assert api.get(f"/runs/{run_id}").status_code == 200  # stored before the answer
    run = wait_for_run(api, run_id)
    assert run["status"] == "succeeded"
    assert run["trigger"] == "hook"
    assert run["input"]["body"] == {"n": 1}


def test_sync_call_outlasting_its_timeout_gets_202_and_the_run_goes_on(api: httpx.Client) -> None:
    slow = step("wait", "flow.delay", {"seconds": 0.6})
    url = hook_url(api, hook_flow({"response": "sync", "timeout_s": 0.1}, slow))

    started = time.monotonic()
    answer = httpx.post(url, json={})

    assert answer.status_code == 202
    assert time.monotonic() - started < 0.5
    run = wait_for_run(api, answer.json()["run_id"])
    assert run["status"] == "succeeded"


def test_sync_call_whose_run_fails_gets_500_naming_the_step(api: httpx.Client) -> None:
    boom = step("boom", "data.set", {"values": {"x": "{{ 1 // input.body.zero }}"}})
    url = hook_url(api, hook_flow({"response": "sync"}, boom))

    answer = httpx.post(url, json={"zero": 0})

    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "run_failed"
    assert "boom" in error["message"]
    assert error["details"]["node_id"] == "boom"


def test_malformed_json_gets_400_saying_where(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow())

    answer = httpx.post(url, content=b'{"a": 1,,}', headers={"content-type": "application/json"})

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "malformed_json"
    assert "line 1, column 9" in error["message"]


def test_json_bodies_arrive_exactly_even_where_json_is_unusual(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow({"response": "sync"}))
    body = b'{"id": 123456789012345678901234567890, "ratio": NaN, "half": "\\ud800", "ok": null}'

    answer = httpx.post(url, content=body, headers={"content-type": "application/json"})

    assert answer.status_code == 200
    # the huge integer stays exact; what JSON answers cannot hold comes back readable
    assert answer.json()["body"] == {
        "id": 123456789012345678901234567890,
        "ratio": "nan",
        "half": "\ud800",
        "ok": None,
    }


def test_form_and_text_bodies_are_parsed(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow({"response": "sync"}))

    form = httpx.post(url, data={"name": "Ada", "tags": ["x", "y"]}).json()
    text = httpx.post(url, content=b"just words", headers={"content-type": "text/plain"}).json()
    multipart = httpx.post(url, data={"note": "hi"}, files={"doc": ("a.txt", b"12345")}).json()
    get = httpx.get(url, params={"q": "1"}).json()

    assert form["body"] == {"name": "Ada", "tags": ["x", "y"]}
    assert text["body"] == "just words"
    assert multipart["body"]["note"] == "hi"
    assert multipart["body"]["doc"] == {
        "filename": "a.txt",
        "content_type": "text/plain",
        "size": 5,
    }
    assert (get["method"], get["body"], get["query"]) == ("GET", None, {"q": "1"})


def test_unknown_token_gets_404(server: FlowLoomInProcess) -> None:
    answer = httpx.post(f"{server.url}/hooks/not-a-token", json={})

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_deactivated_flow_gets_404_at_once_and_listens_again_when_activated(
    api: httpx.Client,
) -> None:
    created = create_flow(api, hook_flow())
    url = activate(api, created["id"])["webhooks"][0]["url"]
    assert httpx.post(url, json={}).status_code == 202

    api.post(f"/flows/{created['id']}/deactivate")

    assert httpx.post(url, json={}).status_code == 404
    assert activate(api, created["id"])["webhooks"][0]["url"] == url
    assert httpx.post(url, json={}).status_code == 202


def test_saving_an_active_flow_runs_the_new_version_at_once(api: httpx.Client) -> None:
    document = hook_flow({"response": "sync"})
    created = create_flow(api, document)
    url = activate(api, created["id"])["webhooks"][0]["url"]
    document["nodes"][1]["config"] = {"values": {"version": 2}, "keep_input": False}

    api.put(f"/flows/{created['id']}", json={"document": document})

    assert httpx.post(url, json={}).json() == {"version": 2}


def test_body_over_the_limit_gets_413(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow({"response": "async", "max_body_bytes": 1000}))

    declared = httpx.post(url, content=b"x" * 1001)

    def chunks() -> Iterator[bytes]:  # no content-length: counted while reading
        for _ in range(50):
            yield b"y" * 100

    streamed = httpx.post(url, content=chunks())
    at_limit = httpx.post(url, content=b"z" * 1000)

    assert declared.status_code == 413
    assert "1,000 bytes" in declared.json()["error"]["message"]
    assert streamed.status_code == 413
    assert at_limit.status_code == 202


def test_header_auth_needs_the_credential_value(api: httpx.Client) -> None:
    api.post("/credentials", json={"name": "hook-token", "data": {"value": "s3cret-value"}})
    auth = {"type": "header", "name": "X-Token", "credential": "hook-token"}
    url = hook_url(api, hook_flow({"response": "async", "auth": auth}))

    missing = httpx.post(url, json={})
    wrong = httpx.post(url, json={}, headers={"X-Token": "guess"})
    right = httpx.post(url, json={"ok": 1}, headers={"X-Token": "s3cret-value"})

    assert missing.status_code == 401
    assert "X-Token header is missing" in missing.json()["error"]["message"]
    assert wrong.status_code == 401
    assert right.status_code == 202
    run = wait_for_run(api, right.json()["run_id"])
    assert run["input"]["headers"]["x-token"] == "***"  # the secret is not stored with the run
    assert "s3cret-value" not in str(run)


def test_idempotency_key_starts_one_run(api: httpx.Client) -> None:
    created = create_flow(api, hook_flow())
    url = activate(api, created["id"])["webhooks"][0]["url"]

    first = httpx.post(url, json={"n": 1}, headers={"Idempotency-Key": "order-42"})
    again = httpx.post(url, json={"n": 1}, headers={"Idempotency-Key": "order-42"})
    other = httpx.post(url, json={"n": 2}, headers={"Idempotency-Key": "order-43"})
    github = [
        httpx.post(url, json={"zen": "x"}, headers={"X-GitHub-Delivery": "72d3162e-cc78"})
        for _ in range(2)
    ]

    assert first.status_code == 202
    assert again.status_code == 202
    assert again.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["run_id"] != first.json()["run_id"]
    assert github[1].json()["run_id"] == github[0].json()["run_id"]
    assert len(runs_of(api, created["id"])) == 3


def test_concurrent_deliveries_with_one_key_start_one_run(api: httpx.Client) -> None:
    created = create_flow(api, hook_flow())
    url = activate(api, created["id"])["webhooks"][0]["url"]

    async def deliver_many() -> set[str]:
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(client.post(url, json={}, headers={"Idempotency-Key": "same"}) for _ in range(8))
            )
        return {answer.json()["run_id"] for answer in answers}

    assert len(asyncio.run(deliver_many())) == 1
    assert len(runs_of(api, created["id"])) == 1


def test_test_url_runs_the_current_document_of_an_inactive_flow(
    server: FlowLoomInProcess, api: httpx.Client
) -> None:
    created = create_flow(api, hook_flow({"response": "sync"}))
    webhooks = server.runtime.webhooks
    path = server.call(webhooks.test_path(created["id"], "hook"))
    assert httpx.post(f"{server.url}{path}", json={}).status_code == 404  # nobody listens yet

    listening = server.submit(webhooks.listen_for_test(created["id"], "hook", 10))
    time.sleep(0.1)
    answer = httpx.post(f"{server.url}{path}", json={"try": "me"})
    call = listening.result(10)

    assert answer.status_code == 200
    assert answer.json()["body"] == {"try": "me"}
    assert call is not None
    assert call.payload["body"] == {"try": "me"}
    assert call.status == 200
    assert api.get(f"/runs/{call.run_id}").json()["flow_id"] == created["id"]
    assert httpx.post(f"{server.url}/hooks/{path.rsplit('/', 1)[1]}", json={}).status_code == 404


def test_listening_for_a_test_call_times_out_with_none(server: FlowLoomInProcess) -> None:
    assert server.call(server.runtime.webhooks.listen_for_test("nope", "hook", 0.05)) is None


def test_activation_lists_webhook_urls_and_their_flow_lists_them_too(api: httpx.Client) -> None:
    created = create_flow(api, hook_flow())
    activation = activate(api, created["id"])

    listed = api.get(f"/flows/{created['id']}/webhooks").json()

    assert listed["items"] == [{**activation["webhooks"][0], "active": True}]


def test_methods_other_than_the_usual_get_405(api: httpx.Client) -> None:
    url = hook_url(api, hook_flow())

    answer = httpx.request("TRACE", url)

    assert answer.status_code == 405
    assert "POST" in answer.headers["allow"]


def test_a_web_page_may_call_a_webhook_from_a_browser(api: httpx.Client) -> None:
    # CORS: a form on a site posts JSON; its browser asks first (a preflight), then calls.
    url = hook_url(api, hook_flow({"response": "sync"}))
    page = {"Origin": "https://shop.example"}

    preflight = httpx.request(
        "OPTIONS",
        url,
        headers={
            **page,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, idempotency-key",
        },
    )
    call = httpx.post(url, json={"email": "a@b.example"}, headers=page)
    malformed = httpx.post(url, content=b"{", headers={**page, "content-type": "application/json"})
    from_a_service = httpx.post(url, json={})

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type, idempotency-key"
    assert call.status_code == 200
    assert call.json()["body"] == {"email": "a@b.example"}
    assert call.headers["access-control-allow-origin"] == "*"
    assert malformed.status_code == 400  # the page can read why, too
    assert malformed.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in from_a_service.headers


def test_allowed_origins_let_in_only_the_pages_listed(api: httpx.Client) -> None:
    config = {"response": "async", "allowed_origins": "https://shop.example, https://b.example/"}
    url = hook_url(api, hook_flow(config))
    none_url = hook_url(api, hook_flow({"response": "async", "allowed_origins": ""}))

    def ask(target: str, origin: str) -> httpx.Response:
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        return httpx.request("OPTIONS", target, headers=headers)

    listed, other, trailing = (
        ask(url, "https://shop.example"),
        ask(url, "https://evil.example"),
        ask(url, "https://b.example"),
    )
    call = httpx.post(url, json={}, headers={"Origin": "https://shop.example"})
    stranger_call = httpx.post(url, json={}, headers={"Origin": "https://evil.example"})
    closed = ask(none_url, "https://shop.example")

    assert listed.status_code == trailing.status_code == 204
    assert listed.headers["access-control-allow-origin"] == "https://shop.example"
    assert listed.headers["vary"] == "origin"
    assert (other.status_code, other.json()["error"]["code"]) == (403, "origin_not_allowed")
    assert "https://evil.example" in other.json()["error"]["message"]
    assert call.headers["access-control-allow-origin"] == "https://shop.example"
    # a page not listed still reaches the webhook (CORS only keeps its browser from reading)
    assert stranger_call.status_code == 202
    assert "access-control-allow-origin" not in stranger_call.headers
    assert closed.status_code == 403


def test_over_the_rate_a_caller_gets_429_with_retry_after(tmp_path: Path) -> None:
    limited = FlowLoomInProcess(tmp_path / "data", webhook_rate_per_s=1.0, webhook_burst=3).start()
    try:
        with limited.api() as api:
            url = hook_url(api, hook_flow())
            answers = [httpx.post(url, json={}) for _ in range(5)]
            other = hook_url(api, hook_flow())
            other_answer = httpx.post(other, json={})
    finally:
        limited.stop()

    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert answers[3].headers["retry-after"] == "1"
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert other_answer.status_code == 202  # the limit is per URL


def test_hooks_are_answered_before_any_middleware_of_the_app(tmp_path: Path) -> None:
    """As in the studio, whose UI adds middleware after `mount`: webhook calls skip it."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse

    from engine.settings import Settings
    from studio.runtime import Runtime
    from studio.server import mount
    from tests.servers import LoopbackServer

    runtime = Runtime(Settings(data_dir=tmp_path / "data"))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        await runtime.start()
        yield
        await runtime.stop()

    async def refuse(request: Any, call_next: Any) -> Any:
        return PlainTextResponse("the UI's middleware", status_code=418)

    app = FastAPI(lifespan=lifespan)
    mount(app, runtime)
    app.add_middleware(BaseHTTPMiddleware, dispatch=refuse)
    server = LoopbackServer(app, name="studio-like app", lifespan="on").start()
    try:
        hook = httpx.post(f"{server.url}/hooks/no-such-token", json={})
        page = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()

    assert hook.status_code == 404
    assert hook.json()["error"]["code"] == "not_found"
    assert page.status_code == 418


def test_webhook_answers_are_counted_in_the_metrics(server: FlowLoomInProcess) -> None:
    before = server.runtime.metrics.webhooks["404"]

    httpx.post(f"{server.url}/hooks/unknown-token-for-metrics", json={})

    assert server.runtime.metrics.webhooks["404"] == before + 1
    assert 'flowloom_webhook_requests_total{code="404"}' in httpx.get(f"{server.url}/metrics").text
