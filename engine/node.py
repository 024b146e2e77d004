"""The node interface: what a step type declares and what it gets when it runs.

A node type is a class with a type name, a title, an icon, a category, one pydantic `Config`
model, its ports and an async `run`. The studio builds the config form from `Config`, the
engine validates with it; nothing about a node type is written down twice.

    class Greet(NodeType):
        type = "demo.greet"
        title = "Greet"
        icon = "waving_hand"
        category = "Demo"

        class Config(NodeConfig):
            greeting: str = "Hello"

        async def run(self, ctx: StepContext, config: Config) -> Any:
            return {"text": f"{config.greeting}, {ctx.input['name']}"}
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from engine.document import Node

EXPRESSION_FORMAT = "flowloom-expression"

#: A config field holding a bare expression (`input.score > 0.5`), evaluated by the node
#: with `ctx.evaluate`. The engine checks that it parses; the studio offers completion.
Expression = Annotated[str, Field(json_schema_extra={"format": EXPRESSION_FORMAT})]


class NodeConfig(BaseModel):
    """Base of every node type's config model. Unknown keys are refused (they are typos)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(slots=True)
class Routed:
    """A node's output sent on a named port (`true`, `false`, a switch case) instead of `out`."""

    port: str
    value: Any


@dataclass(slots=True, frozen=True)
class ToolFunction:
    """A node wired to an agent's `tools` port, as the model sees it."""

    node_id: str
    name: str
    description: str
    parameters: dict[str, Any]


class CredentialProvider(Protocol):
    """Where steps get secrets from (storage's encrypted credential store, in the app)."""

    async def get_credential(self, name: str) -> Mapping[str, str]:
        """The credential's fields, e.g. {"api_key": "…"}; raises KeyError if there is none."""
        ...


class ConversationMemory(Protocol):
    """Conversations kept across runs by key (a chat id), for agents with memory."""

    async def load_messages(self, key: str, window: int) -> list[dict[str, Any]]:
        """The last `window` messages stored under `key`, oldest first."""
        ...

    async def append_messages(self, key: str, messages: Sequence[dict[str, Any]]) -> None:
        """Add messages to the conversation under `key`."""
        ...


class StepContext(Protocol):
    """What a running step can see and do. The engine provides it; nodes only use it."""

    @property
    def node(self) -> Node: ...
    @property
    def run_id(self) -> str: ...
    @property
    def input(self) -> Any:
        """What arrived on the node's input (several inputs: a dict by upstream name)."""

    @property
    def inputs(self) -> Mapping[str, Any]:
        """Every delivered input by upstream node name, in arrival order."""

    @property
    def http(self) -> httpx.AsyncClient:
        """The engine's shared HTTP client (connection pooling across steps and runs)."""

    @property
    def tools(self) -> Sequence[ToolFunction]:
        """The nodes wired to this node's `tools` port."""

    def evaluate(self, expression: str) -> Any:
        """Evaluate a bare expression in this step's scope."""

    def render(self, value: Any, **extra_scope: Any) -> Any:
        """Render templates inside `value` in this step's scope plus `extra_scope`."""

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        """A log line, recorded with the step and streamed as an event."""

    def stream_token(self, text: str) -> None:
        """A streamed piece of model output, shown live."""

    def record_usage(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        model: str | None = None,
    ) -> None:
        """Add model usage and cost to this step's record."""

    def respond(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        """Set the answer a synchronous webhook caller receives."""

    async def run_body(self, items: Sequence[Any], concurrency: int) -> list[Any]:
        """Run this loop node's body once per item; results in item order."""

    async def run_subflow(self, flow: str | Mapping[str, Any], input: Any) -> Any:
        """Run another flow (by id or name through the engine's loader, or inline) to its output."""

    async def call_tool(self, name: str, args: Mapping[str, Any]) -> Any:
        """Run the tool node called `name` with `args` in its scope; returns its output."""

    async def credential(self, name: str) -> Mapping[str, str]:
        """A stored credential's fields; NodeError naming it when there is none."""

    @property
    def memory(self) -> ConversationMemory:
        """Conversation memory shared by every run of this engine."""

    def record_exchange(self, exchange: Mapping[str, Any]) -> None:
        """Keep one request/answer exchange with an outside service (a model call) on the step."""

    def replayed_exchange(self, index: int) -> Mapping[str, Any] | None:
        """In replay mode, this step's `index`-th recorded exchange from the earlier run."""


class NodeType:
    """Base class of step types. Subclasses set the class attributes and implement `run`."""

    type: ClassVar[str]
    title: ClassVar[str]
    icon: ClassVar[str] = "widgets"
    category: ClassVar[str] = "Other"
    description: ClassVar[str] = ""
    Config: ClassVar[builtins.type[NodeConfig]] = NodeConfig
    #: Triggers start runs; they have no input port.
    is_trigger: ClassVar[bool] = False
    #: Output ports a document may wire from; `output_ports` may add config-driven ones.
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    #: Config fields the engine hands over unrendered (e.g. an inline sub-flow document).
    raw_fields: ClassVar[frozenset[str]] = frozenset()
    #: Body nodes (`parent` = this node) run through `ctx.run_body`, not as part of the flow.
    has_body: ClassVar[bool] = False

    @property
    def inputs(self) -> tuple[str, ...]:
        return () if self.is_trigger else ("in",)

    def output_ports(self, config: BaseModel) -> tuple[str, ...]:
        """Every port this node may send on, given its config (`error` is added by the engine)."""
        return self.outputs

    def waits_for_all_inputs(self, config: BaseModel) -> bool:
        """False for nodes that run as soon as the first input arrives (merge in `first` mode)."""
        return True

    async def run(self, ctx: StepContext, config: Any) -> Any:
        """Do the step's work; return its output, or `Routed(port, value)` to pick a port."""
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The node type as plain data for the studio's palette and config form."""
        return {
            "type": cls.type,
            "title": cls.title,
            "icon": cls.icon,
            "category": cls.category,
            "description": cls.description,
            "is_trigger": cls.is_trigger,
            "outputs": list(cls.outputs),
            "config_schema": cls.Config.model_json_schema(),
        }
