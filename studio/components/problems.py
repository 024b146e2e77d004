"""The problems of a flow, in plain words, each naming its step; a click opens that step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nicegui import ui

from engine import Problem


def problems_by_field(problems: Sequence[Problem], node_id: str) -> dict[str, str]:
    """One node's problems keyed by field path, worded for showing under the field."""
    found: dict[str, str] = {}
    for problem in problems:
        if problem.node_id == node_id and problem.field:
            message = problem.message
            marker = f"field '{problem.field}': "
            if marker in message:
                message = message.split(marker, 1)[1]
            found.setdefault(problem.field, message[:1].upper() + message[1:])
    return found


def problem_list(problems: Sequence[Problem], on_open: Callable[[str], Any]) -> None:
    """Errors first, then warnings; a problem with a step opens it when clicked."""
    if not problems:
        with ui.row().classes("items-center gap-2 text-positive").mark("no-problems"):
            ui.icon("check_circle")
            ui.label("No problems: the flow can run.")
        return
    ordered = sorted(problems, key=lambda problem: problem.level != "error")
    for problem in ordered:
        error = problem.level == "error"
        row = ui.row().classes(
            "w-full no-wrap gap-2 items-start rounded p-2 "
            + ("bg-red-50 hover:bg-red-100" if error else "bg-amber-50 hover:bg-amber-100")
        )
        if problem.node_id:
            row.classes("cursor-pointer").on(
                "click", lambda node_id=problem.node_id: on_open(node_id)
            )
        with row.mark("problem"):
            ui.icon("error" if error else "warning", color="negative" if error else "warning")
            ui.label(problem.message).classes("text-sm")
