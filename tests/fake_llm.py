"""A fake LLM vendor on loopback that speaks the real OpenAI and Anthropic wire formats.

The real SDKs are pointed at it (`base_url`), so tests exercise exactly what goes over the
wire. Each test scripts the answers it wants (a queue shared by both vendors, used in order)
and reads back every request the fake received:

    fake.script(text("Hello"), tool_call("lookup", {"id": 7}), failure(429, retry_after=1))
    ...
    fake.requests[0].body["messages"]

Endpoints:
- OpenAI `POST /v1/chat/completions`: a `chat.completion` object, or with `stream: true`
  `chat.completion.chunk` server-sent events (tool calls as `tool_calls` deltas, the usage
  in a last chunk when `stream_options.include_usage` is set) ending in `data: [DONE]`;
- Anthropic `POST /v1/messages`: a `message` object, or with `stream: true` the events
  `message_start`, `content_block_start`, `content_block_delta` (`text_delta`,
  `input_json_delta`), `content_block_stop`, `message_delta` (with usage), `message_stop`;
- both vendors' error bodies for any scripted failure status (401, 404, 429, 500, …),
  with `Retry-After` when scripted.

When the queue is empty the fake answers 500 "no scripted answer", so a test that asks more
than it scripted fails loudly; `always` sets an answer given whenever the queue is empty.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine import Engine
from nodes.ai import CIRCUITS, RESPONSE_CACHE
from tests.servers import LoopbackServer


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: text and/or tool calls, or an error status."""

    text: str = ""
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    status: int = 200
    error: str = ""
    retry_after: str | None = None
    delay_s: float = 0.0
    input_tokens: int = 11
    output_tokens: int = 7
    #: How the text is cut into streamed deltas (default: about three pieces).
    chunks: tuple[str, ...] | None = None
    #: The answer stopped at max_tokens (finish reason "length" / stop reason "max_tokens").
    cut_off: bool = False


def text(answer: str, **options: Any) -> Reply:
    """A plain text answer."""
    return Reply(text=answer, **options)


def tool_call(
    name: str, args: dict[str, Any], *more: tuple[str, dict[str, Any]], **options: Any
) -> Reply:
    """An answer asking for one tool call (or several at once: `more` as (name, args))."""
    return Reply(tool_calls=((name, args), *more), **options)


def failure(status: int, message: str = "", retry_after: str | float | None = None) -> Reply:
    """An error answer in the vendor's error format."""
    return Reply(
        status=status,
        error=message or f"scripted failure {status}",
        retry_after=None if retry_after is None else str(retry_after),
    )


@dataclass(frozen=True, slots=True)
class SeenCall:
    """A request the fake received."""

    vendor: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FakeLLM(LoopbackServer):
    """The fake vendor, served by uvicorn in a background thread on 127.0.0.1."""

    def __init__(self) -> None:
        self.requests: list[SeenCall] = []
        self._replies: deque[Reply] = deque()
        self._always: Reply | None = None
        self._lock = threading.Lock()
        self._counter = 0
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
            ]
        )
        # the fast parser and a deep backlog: bench/ai_bench.py sends 100 requests at once
        super().__init__(app, name="fake LLM server", http="httptools", backlog=2048)

    @property
    def openai_url(self) -> str:
        """The base URL the OpenAI SDK expects (with `/v1`)."""
        return f"{self.url}/v1"

    # -- lifecycle and scripting ----------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._replies.clear()
            self._always = None

    def script(self, *replies: Reply) -> None:
        """Queue answers, given in order to whichever vendor endpoint is called next."""
        with self._lock:
            self._replies.extend(replies)

    def always(self, reply: Reply | None) -> None:
        """The answer given whenever the queue is empty (None: fail loudly instead)."""
        self._always = reply

    @property
    def unused(self) -> int:
        """Scripted answers nobody asked for yet."""
        with self._lock:
            return len(self._replies)

    def bodies(self, vendor: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies received, oldest first (of one vendor: 'openai' or 'anthropic')."""
        with self._lock:
            return [r.body for r in self.requests if vendor is None or r.vendor == vendor]

    def _next(self, vendor: str, request: Request, body: dict[str, Any]) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(SeenCall(vendor, request.url.path, dict(request.headers), body))
            self._counter += 1
            if self._replies:
                return self._replies.popleft(), self._counter
            if self._always is not None:
                return self._always, self._counter
            return failure(
                500, "the fake LLM has no scripted answer for this request"
            ), self._counter

    # -- OpenAI ---------------------------------------------------------------------------------

    async def _openai(self, request: Request) -> Response:
        body = await request.json()
        reply, number = self._next("openai", request, body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200:
            return _openai_error(reply)
        model = body.get("model", "")
        calls = [
            {
                "id": f"call_{number}_{index}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for index, (name, args) in enumerate(reply.tool_calls)
        ]
        finish = "length" if reply.cut_off else "tool_calls" if calls else "stop"
        usage = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        head = {
            "id": f"chatcmpl-{number}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = calls
            return JSONResponse(
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                **head,
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
                ],
            }

        def events() -> Iterator[dict[str, Any]]:
            yield chunk({"role": "assistant", "content": ""})
            for piece in _pieces(reply):
                yield chunk({"content": piece})
            for index, call in enumerate(calls):
                arguments = call["function"]["arguments"]
                middle = len(arguments) // 2
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                for part in (arguments[:middle], arguments[middle:]):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            yield chunk({}, finish)
            if include_usage:
                yield {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}

        async def stream() -> AsyncIterator[bytes]:
            for event in events():
                yield f"data: {json.dumps(event)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    # -- Anthropic ------------------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        body = await request.json()
        reply, number = self._next("anthropic", request, body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200:
            return _anthropic_error(reply)
        model = body.get("model", "")
        blocks: list[dict[str, Any]] = []
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for index, (name, args) in enumerate(reply.tool_calls):
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{number}_{index}", "name": name, "input": args}
            )
        stop = "max_tokens" if reply.cut_off else "tool_use" if reply.tool_calls else "end_turn"
        message = {
            "id": f"msg_{number}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "stop_sequence": None,
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    **message,
                    "content": blocks,
                    "stop_reason": stop,
                    "usage": {
                        "input_tokens": reply.input_tokens,
                        "output_tokens": reply.output_tokens,
                    },
                }
            )

        def events() -> Iterator[tuple[str, dict[str, Any]]]:
            yield (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
                    },
                },
            )
            yield "ping", {"type": "ping"}
            for index, block in enumerate(blocks):
                if block["type"] == "text":
                    yield (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                    for piece in _pieces(reply):
                        yield (
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "text_delta", "text": piece},
                            },
                        )
                else:
                    yield (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {**block, "input": {}},
                        },
                    )
                    arguments = json.dumps(block["input"])
                    middle = len(arguments) // 2
                    for part in ("", arguments[:middle], arguments[middle:]):
                        yield (
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": part},
                            },
                        )
                yield "content_block_stop", {"type": "content_block_stop", "index": index}
            yield (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": reply.output_tokens},
                },
            )
            yield "message_stop", {"type": "message_stop"}

        async def stream() -> AsyncIterator[bytes]:
            for name, event in events():
                yield f"event: {name}\ndata: {json.dumps(event)}\n\n".encode()

        return StreamingResponse(stream(), media_type="text/event-stream")


def _pieces(reply: Reply) -> tuple[str, ...]:
    if reply.chunks is not None:
        return reply.chunks
    if not reply.text:
        return ()
    size = max(1, -(-len(reply.text) // 3))
    return tuple(reply.text[i : i + size] for i in range(0, len(reply.text), size))


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_headers(reply: Reply) -> dict[str, str]:
    return {"retry-after": reply.retry_after} if reply.retry_after is not None else {}


def _openai_error(reply: Reply) -> Response:
    kind, code = _OPENAI_ERRORS.get(reply.status, ("server_error", None))
    return JSONResponse(
        {"error": {"message": reply.error, "type": kind, "param": None, "code": code}},
        status_code=reply.status,
        headers=_error_headers(reply),
    )


def _anthropic_error(reply: Reply) -> Response:
    kind = _ANTHROPIC_ERRORS.get(reply.status, "api_error")
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": reply.error}},
        status_code=reply.status,
        headers={**_error_headers(reply), "request-id": "req_fake"},
    )


# -- pytest fixtures and helpers for the AI tests ------------------------------------------------
# A test module imports the fixtures to use them (pytest finds fixtures in a module's names):
#     from tests.fake_llm import ai_engine_fixture, fake_fixture, fake_llm_server_fixture

#: Step config pointing at the fake, per vendor, through the credentials of `ai_engine`.
OPENAI = {"provider": "openai", "model": "gpt-4o-mini", "credential": "openai-test"}
ANTHROPIC = {"provider": "anthropic", "model": "claude-haiku-4-5", "credential": "anthropic-test"}


class StaticCredentials:
    """A `CredentialProvider` over a dict, as storage's credential store would answer."""

    def __init__(self, credentials: dict[str, dict[str, str]]) -> None:
        self.credentials = credentials
        self.asked: list[str] = []

    async def get_credential(self, name: str) -> dict[str, str]:
        self.asked.append(name)
        return self.credentials[name]


@pytest.fixture(scope="session", name="fake_llm_server")
def fake_llm_server_fixture() -> Iterator[FakeLLM]:
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture(name="fake")
def fake_fixture(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The fake vendor, emptied, with the AI steps' process-wide state (circuits, cache) reset."""
    fake_llm_server.reset()
    CIRCUITS.reset()
    RESPONSE_CACHE.clear()
    yield fake_llm_server
    CIRCUITS.reset()
    RESPONSE_CACHE.clear()


@pytest.fixture(name="ai_engine")
async def ai_engine_fixture(fake: FakeLLM) -> AsyncIterator[Engine]:
    """An Engine whose credentials 'openai-test' and 'anthropic-test' lead to the fake."""
    engine = Engine(
        credentials=StaticCredentials(
            {
                "openai-test": {"api_key": "sk-test-openai", "base_url": fake.openai_url},
                "anthropic-test": {"api_key": "sk-ant-test", "base_url": fake.url},
            }
        )
    )
    yield engine
    await engine.aclose()
