"""Webhook `auth` presets with real signatures, computed the way each sender computes them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.documents import flow, step
from tests.flowloom_inprocess import FlowLoomInProcess, hook_url, runs_of, wait_for_run

SECRET = "whsec_5up3r-s3cr3t"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowLoomInProcess]:
    process = FlowLoomInProcess(tmp_path_factory.mktemp("auth") / "data").start()
    with process.api() as api:
        api.post("/credentials", json={"name": "signing", "data": {"secret": SECRET}})
    yield process
    process.stop()


@pytest.fixture
def api(server: FlowLoomInProcess) -> Iterator[httpx.Client]:
    with server.api() as client:
        yield client


def signed_flow(preset: str) -> dict[str, Any]:
    auth = {"type": "hmac", "preset": preset, "credential": "signing"}
    document = flow(
        [
            step("hook", "trigger.webhook", {"response": "async", "auth": auth}),
            step("done", "data.set", {"values": {"ok": True}}),
        ],
        [("hook", "done")],
    )
    document["name"] = f"signed by {preset}"
    return document


def hex_hmac(message: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers={"content-type": "application/json", **headers})


def test_github_signature(api: httpx.Client) -> None:
    url = hook_url(api, signed_flow("github"))
    body = json.dumps({"action": "opened", "number": 7}).encode()

    good = post(url, body, {"X-Hub-Signature-256": f"sha256={hex_hmac(body)}"})
    tampered = post(url, body + b" ", {"X-Hub-Signature-256": f"sha256={hex_hmac(body)}"})
    other_key = post(url, body, {"X-Hub-Signature-256": f"sha256={hex_hmac(body, 'nope')}"})
    unsigned = post(url, body, {})

    assert good.status_code == 202
    assert wait_for_run(api, good.json()["run_id"])["input"]["body"]["number"] == 7
    assert [r.status_code for r in (tampered, other_key, unsigned)] == [401, 401, 401]
    assert "does not match" in tampered.json()["error"]["message"]
    assert "X-Hub-Signature-256 header is missing" in unsigned.json()["error"]["message"]


def test_stripe_signature_and_staleness(api: httpx.Client) -> None:
    url = hook_url(api, signed_flow("stripe"))
    body = json.dumps({"id": "evt_1NG8Du", "object": "event", "type": "charge.succeeded"}).encode()

    def stripe_header(at: int, secret: str = SECRET) -> str:
        # Stripe signs "<timestamp>.<payload>"; v0 is a legacy scheme it still sends.
        signature = hex_hmac(f"{at}.".encode() + body, secret)
        return f"t={at},v1={signature},v0=6ffbb59b2300aae63f2720"

    now = int(time.time())
    good = post(url, body, {"Stripe-Signature": stripe_header(now)})
    stale = post(url, body, {"Stripe-Signature": stripe_header(now - 600)})
    wrong = post(url, body, {"Stripe-Signature": stripe_header(now, "whsec_other")})
    rolled = post(  # two v1 signatures while a secret is being rolled: one matching is enough
        url,
        body,
        {"Stripe-Signature": f"t={now},v1={'0' * 64},v1={hex_hmac(f'{now}.'.encode() + body)}"},
    )

    assert good.status_code == 202
    assert stale.status_code == 401
    assert "stale" in stale.json()["error"]["message"]
    assert wrong.status_code == 401
    # The same Stripe event delivered again is recognised by its id: no second run.
    assert rolled.status_code == 202
    assert rolled.json() == {"run_id": good.json()["run_id"], "duplicate": True}


def test_slack_signature_and_staleness(api: httpx.Client) -> None:
    url = hook_url(api, signed_flow("slack"))
    body = b"token=xyz&team_id=T1&command=%2Fweather&text=94070"

    def slack_headers(at: int) -> dict[str, str]:
        base = f"v0:{at}:".encode() + body
        return {
            "X-Slack-Request-Timestamp": str(at),
            "X-Slack-Signature": f"v0={hex_hmac(base)}",
            "content-type": "application/x-www-form-urlencoded",
        }

    now = int(time.time())
    good = httpx.post(url, content=body, headers=slack_headers(now))
    stale = httpx.post(url, content=body, headers=slack_headers(now - 400))
    moved = slack_headers(now)
    moved["X-Slack-Request-Timestamp"] = str(now - 1)  # signature made for another time
    replayed_elsewhere = httpx.post(url, content=body, headers=moved)

    assert good.status_code == 202
    run = wait_for_run(api, good.json()["run_id"])
    assert run["input"]["body"]["command"] == "/weather"
    assert stale.status_code == 401
    assert "stale" in stale.json()["error"]["message"]
    assert replayed_elsewhere.status_code == 401


def test_slack_checking_the_url_gets_its_challenge_and_starts_no_run(api: httpx.Client) -> None:
    # Slack's Events API setup: a signed url_verification the URL must answer with the
    # challenge, else Slack refuses the URL.
    document = signed_flow("slack")
    document["name"] = "slack events"
    created = api.post("/flows", json={"document": document}).json()
    url = api.post(f"/flows/{created['id']}/activate").json()["webhooks"][0]["url"]
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification"}
    ).encode()
    now = int(time.time())
    signed = {
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": f"v0={hex_hmac(f'v0:{now}:'.encode() + body)}",
    }

    answer = post(url, body, signed)
    forged = post(url, body, {**signed, "X-Slack-Signature": "v0=" + "0" * 64})

    assert answer.status_code == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV"}
    assert forged.status_code == 401  # only Slack itself gets the challenge back
    assert runs_of(api, created["id"]) == []


def test_generic_signature_with_and_without_timestamp(api: httpx.Client) -> None:
    url = hook_url(api, signed_flow("generic"))
    body = b'{"order": 1}'
    now = int(time.time())

    plain = post(url, body, {"X-Signature": f"sha256={hex_hmac(body)}"})
    timed = post(
        url,
        body,
        {"X-Timestamp": str(now), "X-Signature": f"sha256={hex_hmac(f'{now}.'.encode() + body)}"},
    )
    old = now - 3600
    stale = post(
        url,
        body,
        {"X-Timestamp": str(old), "X-Signature": f"sha256={hex_hmac(f'{old}.'.encode() + body)}"},
    )
    body_only_signature_with_timestamp = post(
        url, body, {"X-Timestamp": str(now), "X-Signature": f"sha256={hex_hmac(body)}"}
    )

    assert plain.status_code == 202
    assert timed.status_code == 202
    assert stale.status_code == 401
    assert body_only_signature_with_timestamp.status_code == 401


def test_missing_credential_refuses_every_call(api: httpx.Client) -> None:
    document = signed_flow("github")
    document["nodes"][0]["config"]["auth"]["credential"] = "never-saved"
    document["name"] = "no credential"
    url = hook_url(api, document)
    body = b"{}"

    answer = post(url, body, {"X-Hub-Signature-256": f"sha256={hex_hmac(body)}"})

    assert answer.status_code == 401
    assert "credential is missing" in answer.json()["error"]["message"]


def test_a_refused_call_starts_no_run(api: httpx.Client) -> None:
    document = signed_flow("generic")
    document["name"] = "refuses"
    created = api.post("/flows", json={"document": document}).json()
    url = api.post(f"/flows/{created['id']}/activate").json()["webhooks"][0]["url"]

    post(url, b"{}", {"X-Signature": "sha256=" + "0" * 64})

    assert runs_of(api, created["id"]) == []
