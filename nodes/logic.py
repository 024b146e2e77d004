"""Logic: steps that choose a path, join paths, or repeat work for each item."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from engine.errors import NodeError
from engine.node import Expression, NodeConfig, NodeType, Routed, StepContext
from nodes.values import describe_value

RESERVED_PORTS = frozenset({"error"})


class Condition(NodeType):
    type = "logic.condition"
    title = "If / else"
    icon = "call_split"
    category = "Logic"
    description = "Sends the input down the 'true' or the 'false' path, depending on a condition."
    outputs = ("true", "false")

    class Config(NodeConfig):
        expression: Expression = Field(
            description="The condition to check, for example: input.score > 0.5",
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        port = "true" if ctx.evaluate(config.expression) else "false"
        return Routed(port, ctx.input)


def usable_port_name(port: str) -> str:
    """The port name, or ValueError in plain words when a path cannot be called that."""
    if not port.strip():
        raise ValueError("Every path needs a name; this one is empty.")
    if port in RESERVED_PORTS:
        raise ValueError(f"A path cannot be called '{port}': that name is kept for errors.")
    return port


class Case(NodeConfig):
    """One path of a switch: taken when its condition is the first one that holds."""

    port: str = Field(description="The name of this path; wire from it on the canvas.")
    expression: Expression = Field(
        description="When this path is taken, for example: input.status == 'open'",
    )

    @field_validator("port")
    @classmethod
    def _usable_port(cls, port: str) -> str:
        return usable_port_name(port)


class Switch(NodeType):
    type = "logic.switch"
    title = "Switch"
    icon = "alt_route"
    category = "Logic"
    description = "Sends the input down the first path whose condition holds, or a default path."
    outputs = ("default",)

    class Config(NodeConfig):
        cases: list[Case] = Field(
            min_length=1,
            description="The paths, checked in order; the first whose condition holds is taken.",
        )
        default: str = Field(
            default="default",
            description="The path taken when no condition holds.",
        )

        @field_validator("default")
        @classmethod
        def _usable_default(cls, port: str) -> str:
            return usable_port_name(port)

        @model_validator(mode="after")
        def _distinct_ports(self) -> Switch.Config:
            seen: set[str] = set()
            for port in [case.port for case in self.cases] + [self.default]:
                if port in seen:
                    raise ValueError(
                        f"Two paths are called '{port}'; give every path its own name "
                        "(the default path included)."
                    )
                seen.add(port)
            return self

    def output_ports(self, config: BaseModel) -> tuple[str, ...]:
        if not isinstance(config, Switch.Config):
            return self.outputs
        return (*(case.port for case in config.cases), config.default)

    async def run(self, ctx: StepContext, config: Config) -> Any:
        for case in config.cases:
            if ctx.evaluate(case.expression):
                return Routed(case.port, ctx.input)
        return Routed(config.default, ctx.input)


class Merge(NodeType):
    type = "logic.merge"
    title = "Merge"
    icon = "merge"
    category = "Logic"
    description = "Joins several paths into one, waiting for all of them or taking the first."

    class Config(NodeConfig):
        mode: Literal["all", "first"] = Field(
            default="all",
            description=(
                "all: wait for every path still running and hand on their outputs by step "
                "name; first: go on with whichever path arrives first."
            ),
        )

    def waits_for_all_inputs(self, config: BaseModel) -> bool:
        return not (isinstance(config, Merge.Config) and config.mode == "first")

    async def run(self, ctx: StepContext, config: Config) -> Any:
        if config.mode == "first":
            return next(iter(ctx.inputs.values()), ctx.input)
        return dict(ctx.inputs)


class Loop(NodeType):
    type = "logic.loop"
    title = "Loop over items"
    icon = "repeat"
    category = "Logic"
    description = "Runs the steps inside it once for every item of a list and collects the results."
    has_body = True

    class Config(NodeConfig):
        items: Any = Field(
            description="The list to go through, usually a template such as '{{ input.items }}'.",
        )
        concurrency: int = Field(
            default=4,
            ge=1,
            le=64,
            description="How many items are worked on at the same time (1 to 64).",
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        if not isinstance(config.items, list):
            raise NodeError(
                f"'items' must be a list to loop over, but it is {describe_value(config.items)}."
            )
        return {"items": await ctx.run_body(config.items, config.concurrency)}
