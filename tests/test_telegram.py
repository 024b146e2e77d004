"""Telegram: updates arrive on a FlowLoom webhook (secret token checked), `telegram.send`
talks to a fake Bot API on loopback, and the support-bot template answers with memory."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import Engine
from nodes.telegram import update_payload
from tests.documents import flow, step
from tests.fake_llm import (
    FakeLLM,
    StaticCredentials,
    fake_fixture,  # noqa: F401 (pytest fixture)
    fake_llm_server_fixture,  # noqa: F401 (pytest fixture)
    text,
)
from tests.flowloom_inprocess import FlowLoomInProcess, activate, create_flow, wait_for_run
from tests.servers import LoopbackServer

BOT_TOKEN = "123456:ABC-fake-bot-token"
SECRET_TOKEN = "tg-secret-token_1"
EXAMPLE = (
    Path(__file__).resolve().parent.parent / "assets" / "examples" / "telegram_support_bot.json"
)


class FakeBotApi(LoopbackServer):
    """The Bot API's `sendMessage`, answering as Telegram does (`{"ok", "result"}`)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._next_id = 100
        super().__init__(self._app, name="fake Bot API", interface="asgi3", http="h11")

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for _, body in self.sent]

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        body = json.loads(raw or b"{}")
        if path != f"/bot{BOT_TOKEN}/sendMessage":
            answer: dict[str, Any] = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            status = 401
        elif not str(body.get("text", "")).strip():
            answer = {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message text is empty",
            }
            status = 400
        else:
            with self._lock:
                self.sent.append((path, body))
                self._next_id += 1
                message_id = self._next_id
            answer = {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": body["chat_id"], "type": "private"},
                    "text": body["text"],
                },
            }
            status = 200
        encoded = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": encoded})


@pytest.fixture(scope="module")
def bot_api() -> Iterator[FakeBotApi]:
    server = FakeBotApi().start()
    yield server
    server.stop()


def update(update_id: int, chat_id: int, words: str) -> dict[str, Any]:
    """A Telegram update carrying a private text message, as the Bot API sends it."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id * 10,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada", "language_code": "en"},
            "chat": {"id": chat_id, "first_name": "Ada", "type": "private"},
            "date": int(time.time()),
            "text": words,
        },
    }


def test_an_update_gets_handy_fields() -> None:
    payload = update_payload(update(1, 42, "hello"))
    callback = update_payload(
        {
            "update_id": 2,
            "callback_query": {
                "id": "9",
                "from": {"id": 42},
                "data": "yes",
                "message": {"chat": {"id": 42}, "text": "Sure?"},
            },
        }
    )

    assert (payload["chat_id"], payload["text"], payload["from"]["first_name"]) == (
        42,
        "hello",
        "Ada",
    )
    assert payload["update_id"] == 1
    assert (callback["chat_id"], callback["text"], callback["from"]) == (42, "yes", {"id": 42})


async def test_send_posts_to_the_bot_api(bot_api: FakeBotApi) -> None:
    document = flow(
        [
            step("start", "trigger.manual"),
            step(
                "send",
                "telegram.send",
                {
                    "credential": "bot",
                    "chat_id": "{{ input.chat }}",
                    "text": "Order {{ input.order }} shipped",
                    "parse_mode": "HTML",
                    "base_url": bot_api.url,
                },
            ),
        ],
        [("start", "send")],
    )
    engine = Engine(credentials=StaticCredentials({"bot": {"token": BOT_TOKEN}}))
    try:
        result = await engine.run(document, {"chat": 777, "order": "A-1"})
        wrong = await engine.run(
            {**document, "nodes": [document["nodes"][0], _with(document["nodes"][1], text=" ")]},
            {"chat": 777},
        )
    finally:
        await engine.aclose()

    assert result.status == "succeeded", result.error
    assert result.output["chat_id"] == 777
    assert result.output["text"] == "Order A-1 shipped"
    assert bot_api.messages()[-1] == {
        "chat_id": 777,
        "text": "Order A-1 shipped",
        "parse_mode": "HTML",
    }
    assert wrong.status == "failed"
    assert "empty" in (wrong.error or {})["message"]


async def test_a_refused_send_fails_the_step_without_leaking_the_token(bot_api: FakeBotApi) -> None:
    document = flow(
        [
            step("start", "trigger.manual"),
            step(
                "send",
                "telegram.send",
                {"credential": "bot", "chat_id": "1", "text": "hi", "base_url": bot_api.url},
            ),
        ],
        [("start", "send")],
    )
    engine = Engine(credentials=StaticCredentials({"bot": {"token": "999:WRONG"}}))
    try:
        result = await engine.run(document)
    finally:
        await engine.aclose()

    assert result.status == "failed"
    message = (result.error or {})["message"]
    assert "Telegram refused the message (HTTP 401): Unauthorized" in message
    assert "999:WRONG" not in message


def test_the_support_bot_answers_each_chat_with_memory(
    tmp_path: Path, fake: FakeLLM, bot_api: FakeBotApi
) -> None:
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    _node(document, "reply")["config"]["base_url"] = bot_api.url
    fake.script(text("Hi Ada! How can I help?"), text("Your order A-17 ships tomorrow, Ada."))
    server = FlowLoomInProcess(tmp_path / "data").start()
    try:
        with server.api() as api:
            api.post(
                "/credentials",
                json={
                    "name": "telegram-bot",
                    "data": {"token": BOT_TOKEN, "secret_token": SECRET_TOKEN},
                },
            )
            api.post(
                "/credentials",
                json={"name": "openai", "data": {"api_key": "sk-x", "base_url": fake.openai_url}},
            )
            created = create_flow(api, document)
            [hook] = activate(api, created["id"])["webhooks"]
            assert hook["node_id"] == "incoming"
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET_TOKEN}

            first = httpx.post(hook["url"], json=update(501, 42, "Hello, I'm Ada"), headers=headers)
            wait_for_run(api, first.json()["run_id"])
            second = httpx.post(
                hook["url"], json=update(502, 42, "Where is order A-17?"), headers=headers
            )
            run = wait_for_run(api, second.json()["run_id"])
            repeated = httpx.post(  # Telegram re-sends an update it got no 200 for
                hook["url"], json=update(502, 42, "Where is order A-17?"), headers=headers
            )
            forged = httpx.post(hook["url"], json=update(503, 42, "hi"), headers={})
            wrong = httpx.post(
                hook["url"],
                json=update(504, 42, "hi"),
                headers={"X-Telegram-Bot-Api-Secret-Token": "guess"},
            )
    finally:
        server.stop()

    assert first.status_code == 200
    assert first.json()["ok"] is True
    assert run["status"] == "succeeded", run["error"]
    assert run["input"]["chat_id"] == 42
    assert bot_api.messages()[-2:] == [
        {"chat_id": 42, "text": "Hi Ada! How can I help?"},
        {"chat_id": 42, "text": "Your order A-17 ships tomorrow, Ada."},
    ]
    history = [m["content"] for m in fake.bodies("openai")[-1]["messages"] if m["role"] != "system"]
    assert history == [
        "Hello, I'm Ada",
        "Hi Ada! How can I help?",
        "Where is order A-17?",
    ]
    assert repeated.json()["run_id"] == second.json()["run_id"]  # no second answer
    assert forged.status_code == 401
    assert wrong.status_code == 401


async def test_the_template_runs_in_memory_too(fake: FakeLLM, bot_api: FakeBotApi) -> None:
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    _node(document, "reply")["config"]["base_url"] = bot_api.url
    fake.script(text("Hello!"))

    result = await _run_with_credentials(document, fake)

    assert result.status == "succeeded", result.error
    assert bot_api.messages()[-1] == {"chat_id": 7, "text": "Hello!"}


async def _run_with_credentials(document: dict[str, Any], fake: FakeLLM) -> Any:
    engine = Engine(
        credentials=StaticCredentials(
            {
                "telegram-bot": {"token": BOT_TOKEN},
                "openai": {"api_key": "sk-x", "base_url": fake.openai_url},
            }
        )
    )
    try:
        return await engine.run(document, update_payload(update(1, 7, "hi")))
    finally:
        await engine.aclose()


def _node(document: dict[str, Any], node_id: str) -> dict[str, Any]:
    node: dict[str, Any] = next(n for n in document["nodes"] if n["id"] == node_id)
    return node


def _with(node: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {**node, "config": {**node["config"], **config}}
