"""Node types that exist only for tests: they record what the engine did to them.

`probe_engine()` gives an Engine whose registry holds every installed node type plus these.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from pydantic import Field

from engine import Engine, NodeConfig, NodeError, NodeRegistry, NodeType, StepContext


class Journal:
    """What probe nodes saw, in order: ("start" | "end", run id, node id)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str]] = []
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.running = 0
        self.max_running = 0

    def order(self, run_id: str) -> list[tuple[str, str]]:
        return [(kind, node) for kind, run, node in self.entries if run == run_id]


JOURNAL = Journal()


class Record(NodeType):
    """Records its start and end; waits `seconds`; outputs its input plus its own id."""

    type = "probe.record"
    title = "Record"
    category = "Probe"

    class Config(NodeConfig):
        seconds: float = 0.0

    async def run(self, ctx: StepContext, config: Config) -> Any:
        JOURNAL.entries.append(("start", ctx.run_id, ctx.node.id))
        JOURNAL.running += 1
        JOURNAL.max_running = max(JOURNAL.max_running, JOURNAL.running)
        try:
            if config.seconds:
                await asyncio.sleep(config.seconds)
        finally:
            JOURNAL.running -= 1
        JOURNAL.entries.append(("end", ctx.run_id, ctx.node.id))
        return {"from": ctx.node.id, "input": ctx.input}


class Flaky(NodeType):
    """Fails its first `failures` calls (counted per `key`), then answers."""

    type = "probe.flaky"
    title = "Flaky"
    category = "Probe"

    class Config(NodeConfig):
        key: str
        failures: int = 1

    async def run(self, ctx: StepContext, config: Config) -> Any:
        JOURNAL.calls[config.key] += 1
        if JOURNAL.calls[config.key] <= config.failures:
            raise NodeError(f"planned failure {JOURNAL.calls[config.key]}")
        return {"calls": JOURNAL.calls[config.key]}


class Crash(NodeType):
    """Raises an unexpected Python error, as a buggy plugin would."""

    type = "probe.crash"
    title = "Crash"
    category = "Probe"

    async def run(self, ctx: StepContext, config: NodeConfig) -> Any:
        return 1 / 0


class Chatty(NodeType):
    """Streams tokens, logs a line and records usage, as a model step would (once per model
    call: `calls` times)."""

    type = "probe.chatty"
    title = "Chatty"
    category = "Probe"

    class Config(NodeConfig):
        calls: int = 1

    async def run(self, ctx: StepContext, config: Config) -> Any:
        ctx.log("thinking", detail=1)
        for token in ("Hel", "lo"):
            ctx.stream_token(token)
        for _ in range(config.calls):
            ctx.record_usage(input_tokens=3, output_tokens=2, cost_usd=0.5, model="probe-1")
        return {"text": "Hello"}


class ToolUser(NodeType):
    """Calls each wired tool with `args`, as an agent does; outputs the answers by tool name."""

    type = "probe.tool_user"
    title = "Tool user"
    category = "Probe"
    outputs = ("out", "tools")

    class Config(NodeConfig):
        args: dict[str, Any] = Field(default_factory=dict)

    async def run(self, ctx: StepContext, config: Config) -> Any:
        return {tool.name: await ctx.call_tool(tool.name, config.args) for tool in ctx.tools}


PROBES = (Record, Flaky, Crash, Chatty, ToolUser)


def probe_registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.load_entry_points()
    for probe in PROBES:
        registry.register(probe)
    return registry


def probe_engine() -> Engine:
    return Engine(registry=probe_registry())
