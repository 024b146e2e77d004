"""AI: steps that ask a language model — an agent that answers (using tools, memory and JSON
output), and a router that lets the model choose the path.

Providers: `openai` and `anthropic` through their official SDKs, and `openai_compatible` for
any server speaking OpenAI's API (Ollama, vLLM, LM Studio, llama.cpp) at a `base_url`. How a
call is made (replay, cache, retries, circuit breaker, fallback, usage and cost) is in
`session.py`; the vendors' wire formats in `vendors.py`.

Process-wide settings a host application may change:
- `register_prices({...})`: model prices in USD per million tokens (see `prices.json`);
- `use_agent_library(library)`: where `{"agent": "<name>"}` is looked up (`register_agent`
  fills the in-memory one used until then);
- `CIRCUITS`, `RETRY_POLICY`, `RESPONSE_CACHE`: the circuit breakers, retry waits and cache.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.errors import NodeError
from engine.node import NodeConfig, NodeType, Routed, StepContext
from nodes.ai.cache import RESPONSE_CACHE, ResponseCache
from nodes.ai.library import (
    AgentDefinition,
    AgentLibrary,
    InMemoryAgentLibrary,
    agent_library,
    register_agent,
    use_agent_library,
)
from nodes.ai.prices import PRICES, register_prices
from nodes.ai.resilience import CIRCUITS, RETRY_POLICY
from nodes.ai.session import CallOptions, ModelCallFailed, ModelSession, Target
from nodes.ai.structured import json_instruction, parse_json_answer, quote
from nodes.ai.tools import ToolBox
from nodes.ai.vendors import ModelAnswer, ModelRequest, Provider, Tool
from nodes.logic import usable_port_name
from nodes.values import as_text

__all__ = [
    "CIRCUITS",
    "PRICES",
    "RESPONSE_CACHE",
    "RETRY_POLICY",
    "Agent",
    "AgentDefinition",
    "AgentLibrary",
    "InMemoryAgentLibrary",
    "ModelCallFailed",
    "ResponseCache",
    "Router",
    "agent_library",
    "pick_route",
    "register_agent",
    "register_prices",
    "use_agent_library",
]

#: A text field that also takes a number or an object from a template (shown as JSON).
Text = Annotated[str, BeforeValidator(as_text)]


class FallbackModel(NodeConfig):
    """The model that answers when the step's own model fails or is paused."""

    provider: Provider = Field(description="Who runs the fallback model.")
    model: str = Field(min_length=1, description="The fallback model's name.")
    credential: str | None = Field(
        default=None, description="The credential holding its API key (else the usual variable)."
    )
    base_url: str | None = Field(
        default=None, description="Its server's address, if not the usual one."
    )


class MemorySettings(NodeConfig):
    """Which conversation the step continues, across runs."""

    key: Text = Field(
        description=(
            "Which conversation to continue, usually a template such as "
            "'{{ trigger.body.chat_id }}'; runs with the same key share it."
        ),
    )
    window: int = Field(
        default=20, ge=1, le=1000, description="How many earlier messages the model sees."
    )


class ModelSettings(NodeConfig):
    """What every AI step needs to reach a model."""

    provider: Provider | None = Field(
        default=None,
        description=(
            "Who runs the model: openai, anthropic, or openai_compatible (Ollama, vLLM, "
            "LM Studio, llama.cpp and other servers that speak OpenAI's API)."
        ),
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="The model's name, for example gpt-4o-mini or claude-sonnet-4-5.",
    )
    credential: str | None = Field(
        default=None,
        description=(
            "The stored credential with the API key (and, if needed, a base_url). Without "
            "one, the OPENAI_API_KEY or ANTHROPIC_API_KEY environment variable is used."
        ),
    )
    base_url: str | None = Field(
        default=None,
        description=(
            "The server's address, for an OpenAI-compatible server or a proxy, for example "
            "http://localhost:11434/v1 for Ollama."
        ),
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=2,
        description="How varied the answers are: 0 for steady answers, higher for more variety.",
    )
    max_tokens: int = Field(
        default=1024, ge=1, le=1_000_000, description="The longest answer, in tokens."
    )
    timeout_s: float = Field(
        default=120, gt=0, le=3600, description="How many seconds to wait for each answer."
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description=(
            "How many times a call is tried again after a rate limit, a vendor error or a "
            "timeout (honouring the vendor's Retry-After)."
        ),
    )
    cache_ttl_s: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Answer identical requests from a cache for this many seconds instead of asking "
            "the model again; empty: no cache."
        ),
    )
    fallback: FallbackModel | None = Field(
        default=None,
        description=(
            "Another model that answers when this one keeps failing or its calls are paused."
        ),
    )

    def targets(self) -> list[Target]:
        """The model, then the fallback (when set), to ask in that order."""
        assert self.provider is not None and self.model is not None
        targets = [Target(self.provider, self.model, self.credential, self.base_url)]
        if self.fallback is not None:
            fallback = self.fallback
            targets.append(
                Target(fallback.provider, fallback.model, fallback.credential, fallback.base_url)
            )
        return targets

    def call_options(self, stream: bool) -> CallOptions:
        return CallOptions(stream, self.retries, self.timeout_s, self.cache_ttl_s)


def _needs_a_model(config: ModelSettings) -> None:
    if config.provider is None or config.model is None:
        raise PydanticCustomError(
            "model_missing",
            "choose a provider and a model (or, for an agent, an agent from the library)",
        )


# -- the agent ---------------------------------------------------------------------------------

#: Stop reasons meaning the answer hit `max_tokens` (OpenAI's and Anthropic's words).
CUT_OFF = frozenset({"length", "max_tokens"})


class Agent(NodeType):
    type = "ai.agent"
    title = "AI agent"
    icon = "smart_toy"
    category = "AI"
    description = (
        "Asks a language model and hands on its answer; it may use the steps wired to its "
        "tools port, remember conversations and answer in JSON."
    )
    outputs = ("out", "tools")

    class Config(ModelSettings):
        agent: str | None = Field(
            default=None,
            description=(
                "An agent from the library whose settings this step uses; fields set here "
                "win over the library's."
            ),
        )
        system: Text = Field(
            default="",
            description="Instructions for the model: its role, tone and rules.",
        )
        prompt: Text = Field(
            default="",
            description=(
                "What to ask, usually with templates such as '{{ input.text }}'; empty: the "
                "step's input."
            ),
        )
        memory: MemorySettings | None = Field(
            default=None,
            description="Keep the conversation across runs, by key (for chats).",
        )
        output: Literal["text", "json"] = Field(
            default="text",
            description="text: the answer as written; json: the model must answer in JSON.",
        )
        json_schema: dict[str, Any] | None = Field(
            default=None,
            description="For JSON answers: the JSON schema the answer must fit.",
        )
        stream: bool = Field(
            default=True, description="Show the answer live, word by word, while it is written."
        )
        max_tool_rounds: int = Field(
            default=8,
            ge=0,
            le=100,
            description="How many rounds of tool calls the model may make before it must answer.",
        )

        @model_validator(mode="after")
        def _model_or_agent(self) -> Agent.Config:
            if self.agent is None:
                _needs_a_model(self)
            return self

    async def run(self, ctx: StepContext, config: Config) -> Any:
        if config.agent is not None:
            config = await _with_library_defaults(config)
            if config.provider is None or config.model is None:
                raise NodeError(
                    f"the library agent '{config.agent}' names no provider and model; "
                    "set them here or in the library."
                )
        prompt = config.prompt or as_text(ctx.input)
        if not prompt.strip():
            raise NodeError(
                "there is nothing to ask the model: the prompt is empty and so is the step's input."
            )
        memory_key, history = await _conversation(ctx, config.memory)
        toolbox = ToolBox(ctx.tools)
        json_answer = config.output == "json"
        schema = config.json_schema if json_answer else None
        system = config.system
        if json_answer:
            system = f"{system}\n\n{json_instruction(schema)}".strip()
        messages: list[dict[str, Any]] = [*history, {"role": "user", "content": prompt}]
        request = ModelRequest(
            system,
            messages,
            toolbox.tools,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            json_answer=json_answer,
            json_schema=schema,
        )
        session = ModelSession(ctx, config.targets(), config.call_options(config.stream))
        answer = await toolbox.converse(ctx, session, request, config.max_tool_rounds)
        _check_length(ctx, answer, config.max_tokens)
        parsed = parse_json_answer(answer.text, schema) if json_answer else None
        if memory_key is not None:
            await ctx.memory.append_messages(
                memory_key,
                [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": answer.text},
                ],
            )
        return _output(answer.text, parsed, session)


def _check_length(ctx: StepContext, answer: ModelAnswer, max_tokens: int) -> None:
    """Fail on an answer that `max_tokens` cut off before it began; warn when cut short."""
    if answer.stop_reason not in CUT_OFF:
        return
    if not answer.text.strip():
        raise NodeError(
            f"the model used up 'max_tokens' ({max_tokens}) before it wrote an answer "
            "(reasoning models think in tokens too). Raise 'max_tokens'."
        )
    ctx.log(
        f"the answer was cut off at 'max_tokens' ({max_tokens}); raise it for longer answers",
        level="warning",
    )


async def _with_library_defaults(config: Agent.Config) -> Agent.Config:
    """The step's config on top of its library agent's defaults."""
    name = config.agent or ""
    try:
        definition = await agent_library().get_agent(name)
    except KeyError:
        raise NodeError(
            f"there is no agent named '{name}' in the agent library. Pick one of the library's "
            "agents, or set a provider and a model instead."
        ) from None
    values = definition.defaults()
    values.update(config.model_dump(include=set(config.model_fields_set)))
    try:
        return Agent.Config.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in e['loc'])}' {e['msg']}" for e in exc.errors()
        )
        raise NodeError(
            f"the library agent '{name}' has settings that do not fit: {problems}"
        ) from None


async def _conversation(
    ctx: StepContext, memory: MemorySettings | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """The memory key and the earlier messages of the conversation (none without memory)."""
    if memory is None:
        return None, []
    key = memory.key.strip()
    if not key:
        raise NodeError(
            "the memory 'key' is empty, so it is unknown which conversation to continue. "
            "Check its template, for example '{{ trigger.body.chat_id }}'."
        )
    stored = await ctx.memory.load_messages(key, memory.window)
    history = [
        {"role": m["role"], "content": m["content"]}
        for m in stored
        if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
    ]
    return key, history


def _output(text: str, parsed: Any, session: ModelSession) -> dict[str, Any]:
    return {
        "text": text,
        "json": parsed,
        "usage": {"input_tokens": session.input_tokens, "output_tokens": session.output_tokens},
        "cost_usd": round(session.cost_usd, 10),
        "model": session.model,
    }


# -- the router --------------------------------------------------------------------------------

ROUTE_TOOL = "choose_route"


class Route(NodeConfig):
    """One path the model may choose."""

    port: str = Field(description="The name of this path; wire from it on the canvas.")
    description: str = Field(
        default="", description="When this path is right, in words the model reads."
    )

    @field_validator("port")
    @classmethod
    def _usable_port(cls, port: str) -> str:
        return usable_port_name(port)


class Router(NodeType):
    type = "ai.router"
    title = "AI router"
    icon = "hub"
    category = "AI"
    description = "Lets a language model choose which path the input takes, from described routes."
    outputs = ()

    class Config(ModelSettings):
        system: Text = Field(
            default="",
            description="Extra instructions for choosing, added to the list of routes.",
        )
        prompt: Text = Field(
            default="",
            description=(
                "What the model decides about, usually a template such as "
                "'{{ input.body.text }}'; empty: the step's input."
            ),
        )
        routes: list[Route] = Field(
            min_length=1,
            description="The paths to choose from, each with a description for the model.",
        )
        default: str | None = Field(
            default=None,
            description=(
                "The path taken when the model's answer names no route; empty: such an "
                "answer fails the step."
            ),
        )

        @field_validator("default")
        @classmethod
        def _usable_default(cls, port: str | None) -> str | None:
            return None if port is None else usable_port_name(port)

        @model_validator(mode="after")
        def _distinct_routes(self) -> Router.Config:
            _needs_a_model(self)
            seen: set[str] = set()
            for route in self.routes:
                if route.port in seen:
                    raise PydanticCustomError(
                        "route_twice",
                        "two routes are called '{port}'; give every route its own name",
                        {"port": route.port},
                    )
                seen.add(route.port)
            return self

    def output_ports(self, config: BaseModel) -> tuple[str, ...]:
        if not isinstance(config, Router.Config):
            return self.outputs
        ports = [route.port for route in config.routes]
        if config.default is not None and config.default not in ports:
            ports.append(config.default)
        return tuple(ports)

    async def run(self, ctx: StepContext, config: Config) -> Any:
        ports = [route.port for route in config.routes]
        targets = config.targets()
        # servers behind openai_compatible may not do tools: they answer in JSON or words
        use_tool = all(target.provider != "openai_compatible" for target in targets)
        tools = [_route_tool(ports)] if use_tool else []
        request = ModelRequest(
            _router_system(config, use_tool),
            [{"role": "user", "content": config.prompt or as_text(ctx.input)}],
            tools,
            force_tool=ROUTE_TOOL if use_tool else None,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
        session = ModelSession(ctx, targets, config.call_options(stream=False))
        answer = await session.ask(request)
        route = pick_route(answer, ports)
        if route is None:
            said = _what_was_said(answer)
            if config.default is None:
                raise NodeError(
                    f"the model chose none of the routes ({', '.join(ports)}); it answered "
                    f"{said}. Set a 'default' route to catch such answers."
                )
            ctx.log(
                f"the model chose none of the routes; it answered {said}. Taking the default "
                f"route '{config.default}'.",
                level="warning",
            )
            route = config.default
        value = ctx.input
        if isinstance(value, dict):
            value = {**value, "route": route}
        else:
            value = {"input": value, "route": route}
        return Routed(route, value)


def _route_tool(ports: Sequence[str]) -> Tool:
    return Tool(
        ROUTE_TOOL,
        "Choose the route the request takes.",
        {
            "type": "object",
            "properties": {"route": {"type": "string", "enum": list(ports)}},
            "required": ["route"],
        },
    )


def _router_system(config: Router.Config, use_tool: bool) -> str:
    lines = [
        "You route requests. Choose the one route below that fits the request best.",
        "",
        "Routes:",
        *(
            f"- {route.port}: {route.description}" if route.description else f"- {route.port}"
            for route in config.routes
        ),
    ]
    if config.system:
        lines += ["", config.system]
    how = f"Call {ROUTE_TOOL} with the route's name" if use_tool else "Answer"
    lines += ["", f'{how}; answer only with JSON such as {{"route": "<route name>"}}.']
    return "\n".join(lines)


def pick_route(answer: ModelAnswer, ports: Sequence[str]) -> str | None:
    """The route a model's answer names: a tool call's or a JSON object's `route`, or a
    plain-text reply naming exactly one route; None when it names none."""
    for call in answer.tool_calls:
        if isinstance(call.arguments, dict):
            found = _match(call.arguments.get("route"), ports)
            if found is not None:
                return found
    text = answer.text.strip()
    if not text:
        return None
    try:
        value = parse_json_answer(text)
    except NodeError:
        value = None
    if isinstance(value, dict):
        return _match(value.get("route"), ports)
    found = _match(value if isinstance(value, str) else text.strip(" \t\n'\"`*.!:"), ports)
    if found is not None:
        return found
    mentioned = {
        port
        for port in ports
        if re.search(rf"(?<![\w-]){re.escape(port)}(?![\w-])", text, re.IGNORECASE)
    }
    return mentioned.pop() if len(mentioned) == 1 else None


def _match(value: Any, ports: Sequence[str]) -> str | None:
    if not isinstance(value, str):
        return None
    if value in ports:
        return value
    wanted = value.strip().lower()
    return next((port for port in ports if port.lower() == wanted), None)


def _what_was_said(answer: ModelAnswer) -> str:
    if answer.text.strip():
        return quote(answer.text)
    if answer.tool_calls:
        return quote(f"{answer.tool_calls[0].name}({as_text(answer.tool_calls[0].arguments)})")
    return "nothing"
