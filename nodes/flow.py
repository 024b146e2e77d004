"""Flow: steps that shape the run itself — wait, answer a webhook caller, run another flow."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field, field_validator

from engine.errors import NodeError
from engine.node import NodeConfig, NodeType, StepContext
from nodes.values import ScalarText, describe_value

ONE_DAY_S = 86_400


class Delay(NodeType):
    type = "flow.delay"
    title = "Wait"
    icon = "hourglass_empty"
    category = "Flow"
    description = "Waits a while, then passes its input on unchanged."

    class Config(NodeConfig):
        seconds: float = Field(
            ge=0,
            le=ONE_DAY_S,
            description="How many seconds to wait (up to one day, 86400).",
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        await asyncio.sleep(config.seconds)
        return ctx.input


class Respond(NodeType):
    type = "flow.respond"
    title = "Respond to webhook"
    icon = "reply"
    category = "Flow"
    description = "Sets the answer the webhook's caller receives, then passes its input on."

    class Config(NodeConfig):
        status: int = Field(
            default=200,
            ge=200,
            le=599,
            description=(
                "The HTTP status code of the answer, for example 200 or 404 (204 and 304 "
                "answer without content)."
            ),
        )
        body: Any = Field(
            default=None,
            description="What the answer contains; the step's input when left out.",
        )
        headers: dict[str, ScalarText] = Field(
            default_factory=dict,
            description="Extra HTTP headers of the answer, by name.",
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        body = config.body if "body" in config.model_fields_set else ctx.input
        ctx.respond(config.status, body, config.headers)
        return ctx.input


class Subflow(NodeType):
    type = "flow.subflow"
    title = "Run another flow"
    icon = "account_tree"
    category = "Flow"
    description = "Runs another flow with an input and hands on that flow's output."
    # An inline flow's own templates belong to the sub-flow's scope, not this step's.
    raw_fields = frozenset({"flow"})

    class Config(NodeConfig):
        flow: str | dict[str, Any] = Field(
            description="The flow to run, by its id or name (or a whole flow document).",
        )
        input: Any = Field(
            default=None,
            description="What the other flow starts with; this step's input when left out.",
        )

        @field_validator("flow", mode="before")
        @classmethod
        def _names_a_flow(cls, flow: Any) -> Any:
            if isinstance(flow, dict) or (isinstance(flow, str) and flow.strip()):
                return flow
            raise ValueError(f"Name the flow to run (its id or name), not {describe_value(flow)}.")

    async def run(self, ctx: StepContext, config: Config) -> Any:
        flow = ctx.render(config.flow) if isinstance(config.flow, str) else config.flow
        if not (isinstance(flow, dict) or (isinstance(flow, str) and flow.strip())):
            raise NodeError(f"Name the flow to run (its id or name), not {describe_value(flow)}.")
        start_with = config.input if "input" in config.model_fields_set else ctx.input
        return await ctx.run_subflow(flow, start_with)
