"""The agent library: reusable agent definitions a step refers to by name (`{"agent": "…"}`).

A definition holds an agent's defaults (provider, model, system prompt, …); a step's own
config fields win over them. The library in use is process-wide: an in-memory one to start
with (`register_agent` fills it), which the application replaces with its stored library
through `use_agent_library` when it starts — nodes cannot reach storage themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class AgentDefinition(BaseModel):
    """A reusable agent: a name people pick and the defaults of every step that uses it."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, description="The agent's name, unique in the library.")
    description: str = Field(default="", description="What the agent is good at.")
    provider: Literal["openai", "anthropic", "openai_compatible"] | None = None
    model: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    credential: str | None = None
    base_url: str | None = None
    output: Literal["text", "json"] | None = None
    json_schema: dict[str, Any] | None = None
    max_tool_rounds: int | None = None
    fallback: dict[str, Any] | None = None

    def defaults(self) -> dict[str, Any]:
        """The step config fields this definition supplies."""
        return self.model_dump(exclude_none=True, exclude={"name", "description"})


class AgentLibrary(Protocol):
    """Where agent definitions come from (storage's agent registry, in the app)."""

    async def get_agent(self, name: str) -> AgentDefinition:
        """The definition called `name`; raises KeyError when there is none."""
        ...


class InMemoryAgentLibrary:
    """An `AgentLibrary` kept in this process."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentDefinition] = {}

    def register(self, definition: AgentDefinition | Mapping[str, Any]) -> AgentDefinition:
        """Add or replace a definition."""
        if not isinstance(definition, AgentDefinition):
            definition = AgentDefinition.model_validate(definition)
        self._agents[definition.name] = definition
        return definition

    def remove(self, name: str) -> None:
        self._agents.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._agents)

    async def get_agent(self, name: str) -> AgentDefinition:
        return self._agents[name]


_default_library = InMemoryAgentLibrary()
_library: AgentLibrary = _default_library


def agent_library() -> AgentLibrary:
    """The library AI steps look agents up in."""
    return _library


def use_agent_library(library: AgentLibrary | None) -> None:
    """Make AI steps look agents up in `library` (None: back to the in-memory one)."""
    global _library
    _library = library if library is not None else _default_library


def register_agent(definition: AgentDefinition | Mapping[str, Any]) -> AgentDefinition:
    """Add a definition to the in-memory library (the one in use until the app sets another)."""
    return _default_library.register(definition)
