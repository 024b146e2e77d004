"""An agent's tools: the steps wired to its `tools` port, offered to the model as functions.

Vendors accept tool names matching `^[a-zA-Z0-9_-]{1,64}$`, while step names are free text
("Look up order", "Wetter-Abfrage ☀"), so each tool gets a safe name and calls are mapped
back to the step. The calls of one answer run at the same time; each result goes back to the
model as JSON text, and a failing tool goes back as an error text the model can react to.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from engine.errors import NodeError
from engine.node import StepContext, ToolFunction
from nodes.ai.session import ModelSession
from nodes.ai.vendors import ModelAnswer, ModelRequest, Tool, ToolCall

MAX_NAME = 64
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def safe_tool_name(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A vendor-safe version of `name`, different from every name in `taken`."""
    base = _UNSAFE.sub("_", name).strip("_")[:MAX_NAME] or "tool"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        suffix = f"_{number}"
        candidate = base[: MAX_NAME - len(suffix)] + suffix
    return candidate


class ToolBox:
    """The wired tools under their safe names, and how to run the calls the model asks for."""

    def __init__(self, functions: Sequence[ToolFunction]) -> None:
        self.tools: list[Tool] = []
        self._steps: dict[str, str] = {}  # safe name → step name
        for function in functions:
            name = safe_tool_name(function.name, set(self._steps))
            self._steps[name] = function.name
            self.tools.append(Tool(name, function.description, function.parameters))

    async def converse(
        self, ctx: StepContext, session: ModelSession, request: ModelRequest, max_rounds: int
    ) -> ModelAnswer:
        """Ask; while the model asks for tools, run them and ask again with their results.
        Returns the answer without tool calls; NodeError after `max_rounds` rounds of tools."""
        answer = await session.ask(request)
        rounds = 0
        while answer.tool_calls:
            if rounds == max_rounds:
                raise NodeError(
                    f"the model still asked for tools after {rounds} round(s) of tool calls, "
                    "the step's 'max_tool_rounds'. Raise it if the task needs more."
                )
            rounds += 1
            request.messages.append(
                {
                    "role": "assistant",
                    "content": answer.text,
                    "tool_calls": [call.to_dict() for call in answer.tool_calls],
                }
            )
            request.messages.extend(await self.run(ctx, answer.tool_calls))
            answer = await session.ask(request)
        return answer

    async def run(self, ctx: StepContext, calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
        """Run the calls concurrently; their results as `tool` messages, in call order."""
        if len(calls) == 1:
            return [await self._run_one(ctx, calls[0])]
        return list(await asyncio.gather(*(self._run_one(ctx, call) for call in calls)))

    async def _run_one(self, ctx: StepContext, call: ToolCall) -> dict[str, Any]:
        step = self._steps.get(call.name)
        if step is None:
            known = ", ".join(self._steps) or "none"
            return _result(call, f"there is no tool named '{call.name}' (tools: {known})", True)
        if not isinstance(call.arguments, dict):
            return _result(
                call,
                f"the arguments must be a JSON object, not {str(call.arguments)[:200]!r}",
                True,
            )
        ctx.log(f"calling tool '{step}'", tool=step)
        try:
            output = await ctx.call_tool(step, call.arguments)
        except Exception as exc:  # the model hears about a failing tool and may try otherwise
            ctx.log(f"tool '{step}' failed: {exc}", level="warning", tool=step)
            return _result(call, str(exc) or type(exc).__name__, True)
        return _result(call, json.dumps(output, ensure_ascii=False, default=str), False)


def _result(call: ToolCall, content: str, is_error: bool) -> dict[str, Any]:
    if is_error:
        content = json.dumps({"error": content}, ensure_ascii=False)
    return {
        "role": "tool",
        "tool_call_id": call.id,
        "name": call.name,
        "content": content,
        "is_error": is_error,
    }
