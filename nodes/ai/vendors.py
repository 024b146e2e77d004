"""The model vendors' wire formats: a vendor-neutral request in, a `ModelAnswer` out.

Steps talk to models in one neutral shape (`ModelRequest` with messages such as
`{"role": "user", "content": "…"}`, `{"role": "assistant", "content": "…", "tool_calls": […]}`
and `{"role": "tool", "tool_call_id": …, "content": "…"}`); a `Vendor` turns it into the
request its official SDK sends, and the SDK's answer (whole, or streamed and assembled delta by
delta) back into a `ModelAnswer`. Conversations can move between vendors mid-way (a fallback
model), because nothing vendor-specific is kept between calls.

SDK clients are made once per (vendor, base URL, API key) and event loop, so connection pools
are reused; their own retries are off (`max_retries=0`): `session.py` retries visibly.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import inspect
import json
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import anthropic
    import openai

# The SDKs take about two seconds to import: they load on the first model call, so every
# other command (validate, run without agents, the CLI) starts fast.

Provider = Literal["openai", "anthropic", "openai_compatible"]
TokenSink = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call, under a name the vendor accepts."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(slots=True)
class ToolCall:
    """A call the model asked for; `arguments` is the parsed object, or the raw text when it
    was not JSON."""

    id: str
    name: str
    arguments: Any

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class ModelRequest:
    """What to ask a model, in no vendor's format."""

    system: str
    messages: list[dict[str, Any]]
    tools: Sequence[Tool] = ()
    #: Make the model call this tool (a router's `choose_route`).
    force_tool: str | None = None
    temperature: float | None = None
    max_tokens: int = 1024
    #: Ask for a JSON answer (`json_schema` describes it, when given).
    json_answer: bool = False
    json_schema: Mapping[str, Any] | None = None


@dataclass(slots=True)
class ModelAnswer:
    """One answer of a model: its text, the tool calls it asked for, and what it used."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    stop_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as kept in a step's recorded exchanges."""
        return {
            "text": self.text,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "model": self.model,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelAnswer:
        usage = data.get("usage") or {}
        return cls(
            text=data.get("text") or "",
            tool_calls=[
                ToolCall(c["id"], c["name"], c.get("arguments")) for c in data.get("tool_calls", ())
            ],
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            model=data.get("model") or "",
            stop_reason=data.get("stop_reason"),
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a call failed, sorted into what FlowLoom does about it."""

    kind: Literal[
        "auth",
        "forbidden",
        "not_found",
        "bad_request",
        "rate_limit",
        "server",
        "timeout",
        "connection",
    ]
    status: int | None
    detail: str
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        """Vendor trouble that may pass: worth another try, and counted by the circuit breaker."""
        return self.kind in ("rate_limit", "server", "timeout", "connection")


class Vendor:
    """One vendor's wire format and SDK. Subclasses implement the request and the answer."""

    provider: Provider
    #: The environment variables the vendor's SDK reads by default.
    key_env: str
    url_env: str

    def title(self, base_url: str | None) -> str:
        raise NotImplementedError

    def make_client(self, api_key: str, base_url: str | None) -> Any:
        raise NotImplementedError

    def wire_request(self, model: str, request: ModelRequest, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    async def send(
        self, client: Any, wire: Mapping[str, Any], timeout_s: float, on_token: TokenSink | None
    ) -> ModelAnswer:
        raise NotImplementedError

    def client(self, api_key: str, base_url: str | None) -> Any:
        """The SDK client for this key and address, made once per event loop."""
        loop = asyncio.get_running_loop()
        clients = _clients.get(loop)
        if clients is None:
            clients = _clients[loop] = {}
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        key = (self.provider, base_url or "", digest)
        made = clients.get(key)
        if made is None:
            made = clients[key] = self.make_client(api_key, base_url)
        return made


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str], Any]] = (
    weakref.WeakKeyDictionary()
)


# -- OpenAI chat completions (OpenAI itself and compatible servers) ----------------------------


class OpenAIChat(Vendor):
    """`POST /v1/chat/completions` through `openai.AsyncOpenAI`."""

    key_env = "OPENAI_API_KEY"
    url_env = "OPENAI_BASE_URL"

    def __init__(self, provider: Provider = "openai") -> None:
        self.provider = provider
        # OpenAI's own newer models take `max_completion_tokens`; local servers know `max_tokens`
        self._max_tokens_field = "max_completion_tokens" if provider == "openai" else "max_tokens"

    def title(self, base_url: str | None) -> str:
        if self.provider == "openai":
            return "OpenAI"
        return f"the OpenAI-compatible server at {base_url}"

    def make_client(self, api_key: str, base_url: str | None) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

    def wire_request(self, model: str, request: ModelRequest, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for message in request.messages:
            role = message["role"]
            if role == "tool":
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": message["tool_call_id"],
                        "content": message["content"],
                    }
                )
            elif role == "assistant" and message.get("tool_calls"):
                messages.append(
                    {
                        "role": "assistant",
                        "content": message.get("content") or None,
                        "tool_calls": [
                            {
                                "id": call["id"],
                                "type": "function",
                                "function": {
                                    "name": call["name"],
                                    "arguments": _arguments_text(call["arguments"]),
                                },
                            }
                            for call in message["tool_calls"]
                        ],
                    }
                )
            else:
                messages.append({"role": role, "content": message["content"]})
        wire: dict[str, Any] = {"model": model, "messages": messages}
        wire[self._max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            wire["temperature"] = request.temperature
        if request.tools:
            wire["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in request.tools
            ]
            if request.force_tool:
                wire["tool_choice"] = {"type": "function", "function": {"name": request.force_tool}}
        if request.json_schema is not None:
            wire["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": dict(request.json_schema)},
            }
        elif request.json_answer:
            wire["response_format"] = {"type": "json_object"}
        if stream:
            wire["stream"] = True
            wire["stream_options"] = {"include_usage": True}
        return wire

    async def send(
        self, client: Any, wire: Mapping[str, Any], timeout_s: float, on_token: TokenSink | None
    ) -> ModelAnswer:
        arguments = _sdk_arguments(wire, _sdks().openai_arguments)
        if not wire.get("stream"):
            completion = await client.chat.completions.create(**arguments, timeout=timeout_s)
            answer = ModelAnswer("", model=completion.model or wire["model"])
            if completion.choices:
                choice = completion.choices[0]
                answer.text = choice.message.content or ""
                answer.stop_reason = choice.finish_reason
                for call in choice.message.tool_calls or ():
                    function = getattr(call, "function", None)
                    if function is not None:
                        answer.tool_calls.append(
                            ToolCall(call.id, function.name, _parse_arguments(function.arguments))
                        )
            if completion.usage is not None:
                answer.input_tokens = completion.usage.prompt_tokens or 0
                answer.output_tokens = completion.usage.completion_tokens or 0
            return answer

        answer = ModelAnswer("", model=wire["model"])
        pieces: list[str] = []
        calls: dict[int, list[Any]] = {}  # index → [id, name, argument pieces]
        stream = await client.chat.completions.create(**arguments, timeout=timeout_s)
        async with stream:
            async for chunk in stream:
                if chunk.model:
                    answer.model = chunk.model
                if chunk.usage is not None:
                    answer.input_tokens = chunk.usage.prompt_tokens or 0
                    answer.output_tokens = chunk.usage.completion_tokens or 0
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        pieces.append(delta.content)
                        if on_token is not None:
                            on_token(delta.content)
                    for part in delta.tool_calls or ():
                        slot = calls.get(part.index)
                        if slot is None:
                            slot = calls[part.index] = ["", "", []]
                        if part.id:
                            slot[0] = part.id
                        if part.function is not None:
                            if part.function.name:
                                slot[1] += part.function.name
                            if part.function.arguments:
                                slot[2].append(part.function.arguments)
                    if choice.finish_reason:
                        answer.stop_reason = choice.finish_reason
        answer.text = "".join(pieces)
        answer.tool_calls = [
            ToolCall(call_id or f"call_{index}", name, _parse_arguments("".join(arguments)))
            for index, (call_id, name, arguments) in sorted(calls.items())
        ]
        return answer


# -- Anthropic messages ------------------------------------------------------------------------


class AnthropicMessages(Vendor):
    """`POST /v1/messages` through `anthropic.AsyncAnthropic`."""

    provider: Provider = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    url_env = "ANTHROPIC_BASE_URL"

    def title(self, base_url: str | None) -> str:
        return "Anthropic"

    def make_client(self, api_key: str, base_url: str | None) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)

    def wire_request(self, model: str, request: ModelRequest, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        results: list[dict[str, Any]] | None = None
        for message in request.messages:
            role = message["role"]
            if role == "tool":
                if results is None:
                    # the tool results of one round go back together, in one user turn
                    results = []
                    messages.append({"role": "user", "content": results})
                result = {
                    "type": "tool_result",
                    "tool_use_id": message["tool_call_id"],
                    "content": message["content"],
                }
                if message.get("is_error"):
                    result["is_error"] = True
                results.append(result)
                continue
            results = None
            if role == "assistant" and message.get("tool_calls"):
                blocks: list[dict[str, Any]] = []
                if message.get("content"):
                    blocks.append({"type": "text", "text": message["content"]})
                for call in message["tool_calls"]:
                    arguments = call["arguments"]
                    blocks.append(
                        {
                            "type": "tool_use",
                            "id": call["id"],
                            "name": call["name"],
                            "input": arguments if isinstance(arguments, dict) else {},
                        }
                    )
                messages.append({"role": "assistant", "content": blocks})
            else:
                messages.append({"role": role, "content": message["content"]})
        system = request.system
        wire: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens}
        if system:
            wire["system"] = system
        wire["messages"] = messages
        if request.temperature is not None:
            wire["temperature"] = request.temperature
        if request.tools:
            wire["tools"] = [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": dict(tool.parameters),
                }
                for tool in request.tools
            ]
            if request.force_tool:
                wire["tool_choice"] = {"type": "tool", "name": request.force_tool}
        if stream:
            wire["stream"] = True
        return wire

    async def send(
        self, client: Any, wire: Mapping[str, Any], timeout_s: float, on_token: TokenSink | None
    ) -> ModelAnswer:
        arguments = _sdk_arguments(wire, _sdks().anthropic_arguments)
        if not wire.get("stream"):
            message = await client.messages.create(**arguments, timeout=timeout_s)
            answer = ModelAnswer(
                "", model=message.model or wire["model"], stop_reason=message.stop_reason
            )
            texts: list[str] = []
            for block in message.content:
                if block.type == "text":
                    texts.append(block.text)
                elif block.type == "tool_use":
                    answer.tool_calls.append(ToolCall(block.id, block.name, block.input))
            answer.text = "".join(texts)
            answer.input_tokens = _anthropic_input_tokens(message.usage)
            answer.output_tokens = message.usage.output_tokens or 0
            return answer

        answer = ModelAnswer("", model=wire["model"])
        pieces: list[str] = []
        calls: dict[int, list[Any]] = {}  # block index → [id, name, json pieces]
        stream = await client.messages.create(**arguments, timeout=timeout_s)
        async with stream:
            async for event in stream:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        pieces.append(delta.text)
                        if on_token is not None:
                            on_token(delta.text)
                    elif delta.type == "input_json_delta":
                        slot = calls.get(event.index)
                        if slot is not None:
                            slot[2].append(delta.partial_json)
                elif kind == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        calls[event.index] = [block.id, block.name, []]
                    elif block.type == "text" and block.text:
                        pieces.append(block.text)
                        if on_token is not None:
                            on_token(block.text)
                elif kind == "message_start":
                    answer.model = event.message.model or answer.model
                    answer.input_tokens = _anthropic_input_tokens(event.message.usage)
                    answer.output_tokens = event.message.usage.output_tokens or 0
                elif kind == "message_delta":
                    answer.stop_reason = event.delta.stop_reason or answer.stop_reason
                    if event.usage is not None:
                        answer.output_tokens = event.usage.output_tokens or answer.output_tokens
                        if event.usage.input_tokens:
                            answer.input_tokens = _anthropic_input_tokens(event.usage)
        answer.text = "".join(pieces)
        answer.tool_calls = [
            ToolCall(call_id, name, _parse_arguments("".join(parts)))
            for _, (call_id, name, parts) in sorted(calls.items())
        ]
        return answer


def _anthropic_input_tokens(usage: Any) -> int:
    """Input tokens including those written to and read from the prompt cache."""
    return (
        (usage.input_tokens or 0)
        + (getattr(usage, "cache_creation_input_tokens", None) or 0)
        + (getattr(usage, "cache_read_input_tokens", None) or 0)
    )


VENDORS: dict[str, Vendor] = {
    "openai": OpenAIChat("openai"),
    "openai_compatible": OpenAIChat("openai_compatible"),
    "anthropic": AnthropicMessages(),
}


# -- arguments and failures --------------------------------------------------------------------


# what the SDK methods take as keyword arguments; other request fields (say, `temperature` for
# an SDK that dropped it) still reach the vendor, through `extra_body`
@dataclass(frozen=True, slots=True)
class _SdkFacts:
    openai_arguments: frozenset[str]
    anthropic_arguments: frozenset[str]
    status_errors: tuple[type[openai.APIStatusError], type[anthropic.APIStatusError]]
    timeouts: tuple[type[Exception], ...]
    connection_errors: tuple[type[Exception], ...]


@functools.cache
def _sdks() -> _SdkFacts:
    """What FlowLoom needs to know of the installed SDKs, read once, on first use."""
    import anthropic
    import openai
    from anthropic.resources.messages import AsyncMessages
    from openai.resources.chat.completions import AsyncCompletions

    return _SdkFacts(
        openai_arguments=frozenset(inspect.signature(AsyncCompletions.create).parameters),
        anthropic_arguments=frozenset(inspect.signature(AsyncMessages.create).parameters),
        status_errors=(openai.APIStatusError, anthropic.APIStatusError),
        timeouts=(openai.APITimeoutError, anthropic.APITimeoutError),
        connection_errors=(openai.APIConnectionError, anthropic.APIConnectionError),
    )


def _sdk_arguments(wire: Mapping[str, Any], accepted: frozenset[str]) -> Mapping[str, Any]:
    extra = {k: v for k, v in wire.items() if k not in accepted}
    if not extra:
        return wire
    return {**{k: v for k, v in wire.items() if k in accepted}, "extra_body": extra}


def _parse_arguments(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text  # the model wrote broken JSON: the tool runner tells it so


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def classify(exc: BaseException) -> Failure | None:
    """What an SDK exception means, or None when it is not a failed call."""
    sdks = _sdks()
    if isinstance(exc, sdks.status_errors):
        status = exc.status_code
        detail = _vendor_message(exc.body) or exc.message
        retry_after = _retry_after_s(exc.response.headers)
        if status == 401:
            return Failure("auth", status, detail)
        if status == 403:
            return Failure("forbidden", status, detail)
        if status == 404:
            return Failure("not_found", status, detail)
        if status == 429:
            return Failure("rate_limit", status, detail, retry_after)
        # an error event inside a streamed answer arrives with the stream's own status (200)
        if status >= 500 or status in (408, 409) or status < 400:
            return Failure("server", status, detail, retry_after)
        return Failure("bad_request", status, detail)
    if isinstance(exc, sdks.timeouts):
        return Failure("timeout", None, "no answer in time")
    if isinstance(exc, sdks.connection_errors):
        cause = exc.__cause__ or exc.__context__
        return Failure("connection", None, str(cause) if cause else str(exc))
    return None


def _vendor_message(body: Any) -> str:
    """The human part of a vendor's error body (both vendors nest it under 'error')."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return ""


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """How long the vendor asks to wait: `retry-after-ms`, else `retry-after` (seconds or a date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
