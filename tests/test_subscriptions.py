"""Outgoing event webhooks: managed through the API, delivered to a receiver on loopback,
signed, retried with backoff on failure, and every attempt logged with its answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.documents import chain, manual, step
from tests.flowloom_inprocess import FlowLoomInProcess, create_flow, wait_for_run
from tests.servers import LoopbackServer, read_body


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver(LoopbackServer):
    """Records every POST; answers each path with the statuses queued for it, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        super().__init__(self._app, name="event receiver", interface="asgi3", http="h11")

    def seen(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            self.received.append(Received(scope["path"], headers, body))
            queued = self.statuses.get(scope["path"])
            status = queued.pop(0) if queued else 200
        answer = b"thanks" if status < 300 else b"broken"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowLoomInProcess]:
    process = FlowLoomInProcess(
        tmp_path_factory.mktemp("events") / "data", delivery_attempts=3, delivery_backoff_s=0.05
    ).start()
    yield process
    process.stop()


@pytest.fixture
def api(server: FlowLoomInProcess) -> Iterator[httpx.Client]:
    with server.api() as client:
        yield client


_names = iter(range(1_000_000))


def good_flow() -> dict[str, Any]:
    document = chain(manual(), step("greet", "data.template", {"template": "Hi {{ input.who }}"}))
    document["name"] = f"greeter {next(_names)}"
    return document


def bad_flow() -> dict[str, Any]:
    document = chain(manual(), step("boom", "data.set", {"values": {"x": "{{ 1 // 0 }}"}}))
    document["name"] = f"breaks {next(_names)}"
    return document


def subscribe(api: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = api.post("/subscriptions", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def run(api: httpx.Client, flow_id: str, payload: Any = None) -> str:
    run_id: str = api.post(f"/flows/{flow_id}/runs", json=payload or {"who": "Ada"}).json()[
        "run_id"
    ]
    wait_for_run(api, run_id)
    return run_id


def wait_until(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("never happened")
        time.sleep(0.02)


def test_a_succeeded_run_is_delivered_signed(api: httpx.Client, receiver: Receiver) -> None:
    created = create_flow(api, good_flow())
    subscription = subscribe(
        api,
        url=f"{receiver.url}/signed",
        events=["run.succeeded"],
        headers={"X-Team": "ops"},
        secret="shared-secret",
        flow_id=created["id"],
    )

    run_id = run(api, created["id"])
    [delivery] = wait_until(lambda: receiver.seen("/signed"))

    body = json.loads(delivery.body)
    assert body["event"] == "run.succeeded"
    assert body["run"]["id"] == run_id
    assert body["run"]["flow_id"] == created["id"]
    assert body["run"]["output"] == {"text": "Hi Ada"}
    expected = hmac.new(b"shared-secret", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-flowloom-signature"] == f"sha256={expected}"
    assert delivery.headers["x-flowloom-event"] == "run.succeeded"
    assert delivery.headers["x-flowloom-delivery"] == body["delivery_id"]
    assert delivery.headers["x-team"] == "ops"
    assert subscription["signed"] is True
    assert "shared-secret" not in json.dumps(api.get("/subscriptions").json())


def test_failed_runs_go_only_to_who_asked_for_them(api: httpx.Client, receiver: Receiver) -> None:
    broken = create_flow(api, bad_flow())
    subscribe(api, url=f"{receiver.url}/failures", events=["run.failed"], flow_id=broken["id"])
    subscribe(api, url=f"{receiver.url}/successes", events=["run.succeeded"], flow_id=broken["id"])

    run_id = run(api, broken["id"])
    [failure] = wait_until(lambda: receiver.seen("/failures"))
    time.sleep(0.2)

    body = json.loads(failure.body)
    assert (body["event"], body["run"]["id"]) == ("run.failed", run_id)
    assert "boom" in body["run"]["error"]["message"]
    assert "x-flowloom-signature" not in failure.headers  # no secret, no signature
    assert receiver.seen("/successes") == []


def test_a_500_is_retried_with_backoff_and_every_attempt_logged(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.statuses["/flaky"] = [500, 503, 200]
    created = create_flow(api, good_flow())
    subscription = subscribe(
        api, url=f"{receiver.url}/flaky", events=["run.succeeded"], flow_id=created["id"]
    )

    run_id = run(api, created["id"])
    attempts = wait_until(lambda: len(receiver.seen("/flaky")) >= 3 and receiver.seen("/flaky"))
    log = wait_until(
        lambda: (
            (items := api.get(f"/subscriptions/{subscription['id']}/deliveries").json()["items"])
            and len(items) == 3
            and items
        )
    )

    assert len({json.loads(a.body)["delivery_id"] for a in attempts}) == 1  # one delivery
    assert [(d["attempt"], d["status_code"]) for d in reversed(log)] == [
        (1, 500),
        (2, 503),
        (3, 200),
    ]
    assert log[-1]["error"] == "HTTP 500"
    assert log[0]["response"] == "thanks"
    assert {d["run_id"] for d in log} == {run_id}


def test_a_sub_flow_s_run_is_not_delivered_on_its_own(
    api: httpx.Client, receiver: Receiver
) -> None:
    inner = create_flow(api, good_flow())
    caller = chain(manual(), step("sub", "flow.subflow", {"flow": inner["id"]}))
    caller["name"] = f"caller {next(_names)}"
    outer = create_flow(api, caller)
    every_flow = subscribe(api, url=f"{receiver.url}/any-flow", events=["run.succeeded"])

    run_id = run(api, outer["id"])
    wait_until(lambda: receiver.seen("/any-flow"))
    time.sleep(0.2)

    delivered = [json.loads(seen.body)["run"] for seen in receiver.seen("/any-flow")]
    assert [(run["id"], run["flow_id"]) for run in delivered] == [(run_id, outer["id"])]
    assert api.delete(f"/subscriptions/{every_flow['id']}").status_code == 204


def test_an_unreachable_receiver_is_given_up_after_the_attempts(api: httpx.Client) -> None:
    created = create_flow(api, good_flow())
    subscription = subscribe(
        api, url="http://127.0.0.1:9/nobody", events=["run.succeeded"], flow_id=created["id"]
    )

    run(api, created["id"])
    log = wait_until(
        lambda: (
            (items := api.get(f"/subscriptions/{subscription['id']}/deliveries").json()["items"])
            and len(items) == 3
            and items
        )
    )

    assert all(d["status_code"] is None and d["error"] for d in log)


def test_subscriptions_are_listed_and_deleted(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, url=f"{receiver.url}/gone", events=["run.succeeded"])

    listed = api.get("/subscriptions").json()["items"]
    deleted = api.delete(f"/subscriptions/{created['id']}")
    flow = create_flow(api, good_flow())
    run(api, flow["id"])
    time.sleep(0.2)

    assert created["id"] in [s["id"] for s in listed]
    assert deleted.status_code == 204
    assert api.delete(f"/subscriptions/{created['id']}").status_code == 404
    assert api.get(f"/subscriptions/{created['id']}/deliveries").status_code == 404
    assert receiver.seen("/gone") == []


def test_bad_subscriptions_are_refused(api: httpx.Client) -> None:
    unknown_event = api.post(
        "/subscriptions", json={"url": "http://127.0.0.1/x", "events": ["run.exploded"]}
    )
    not_a_url = api.post("/subscriptions", json={"url": "nowhere", "events": ["run.failed"]})
    no_flow = api.post(
        "/subscriptions",
        json={"url": "http://127.0.0.1/x", "events": ["run.failed"], "flow_id": "nope"},
    )

    assert unknown_event.status_code == 422
    assert "run.exploded" in unknown_event.json()["error"]["message"]
    assert not_a_url.status_code == 422
    assert no_flow.status_code == 404


def test_a_slow_receiver_does_not_slow_runs(tmp_path: Path) -> None:
    class Slow(LoopbackServer):
        def __init__(self) -> None:
            super().__init__(self._app, name="slow receiver", interface="asgi3", http="h11")

        async def _app(self, scope: Any, receive: Any, send: Any) -> None:
            import asyncio

            if scope["type"] == "http":
                await asyncio.sleep(2)
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b""})

    slow = Slow().start()
    server = FlowLoomInProcess(tmp_path / "data").start()
    try:
        with server.api() as api:
            subscribe(api, url=f"{slow.url}/", events=["run.succeeded"])
            created = create_flow(api, good_flow())
            started = time.monotonic()
            answer = api.post(f"/flows/{created['id']}/runs?wait=5", json={"who": "x"})
            elapsed = time.monotonic() - started
    finally:
        server.stop()
        slow.stop()

    assert answer.json()["status"] == "succeeded"
    assert elapsed < 1.0
