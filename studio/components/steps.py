"""Steps of a run as a person inspects them: what went in, what came out, what went wrong.

`StepView` is one step visit, made from a stored row (a past run) or a live record (a run
going on now); `step_inspector` shows one, `run_outcome` says how a whole run ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from engine import StepRecord
from storage import StepRow
from studio.components.layout import test_id
from studio.components.status import status_chip
from studio.components.wording import as_json, cost, duration
from studio.runtime import step_record


@dataclass(slots=True)
class StepView:
    node_id: str
    node_name: str
    node_type: str
    status: str
    visit: int = 1
    item_index: int | None = None
    input: Any = None
    output: Any = None
    port: str | None = None
    error: str | None = None
    attempts: int = 0
    duration_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    pinned: bool = False

    @classmethod
    def from_row(cls, row: StepRow) -> StepView:
        return cls.from_record(step_record(row))

    @classmethod
    def from_record(cls, record: StepRecord) -> StepView:
        return cls(
            record.node_id,
            record.node_name,
            record.node_type,
            record.status,
            record.visit,
            record.item_index,
            record.input,
            record.output,
            record.port,
            record.error,
            record.attempts,
            record.duration_s if record.finished_at else None,
            record.input_tokens,
            record.output_tokens,
            record.cost_usd,
            record.model,
            list(record.logs),
            pinned=_was_pinned(record.logs),
        )

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def shown_status(self) -> str:
        return "pinned" if self.pinned else self.status


def _was_pinned(logs: Sequence[dict[str, Any]]) -> bool:
    return any(str(entry.get("message", "")).startswith("Pinned output") for entry in logs)


def latest_by_node(steps: Sequence[StepView]) -> dict[str, StepView]:
    """The last visit of each node at the flow's top level (what its canvas node shows)."""
    latest: dict[str, StepView] = {}
    for step in steps:
        if step.item_index is None:
            latest[step.node_id] = step
    return latest


def step_inspector(
    visits: Sequence[StepView],
    *,
    on_rerun: Callable[[StepView], Any] | None = None,
    on_pin: Callable[[StepView], Any] | None = None,
) -> None:
    """Everything about one step of a run; with several visits (a loop, a cycle), a chooser."""
    if not visits:
        ui.label("This step did not run.").classes("text-slate-500")
        return

    def show(index: int) -> None:
        holder.clear()
        with holder:
            _one_visit(visits[index], on_rerun=on_rerun, on_pin=on_pin)

    if len(visits) > 1:
        options = {i: _visit_label(step) for i, step in enumerate(visits)}
        ui.select(
            options, value=len(visits) - 1, on_change=lambda e: show(e.value), label="Which time"
        ).props("outlined dense").classes("w-full")
    holder = ui.column().classes("w-full gap-3")
    show(len(visits) - 1)


def _visit_label(step: StepView) -> str:
    if step.item_index is not None:
        return f"Item {step.item_index + 1} — {step.status}"
    return f"Time {step.visit} — {step.status}"


def _one_visit(
    step: StepView,
    *,
    on_rerun: Callable[[StepView], Any] | None,
    on_pin: Callable[[StepView], Any] | None,
) -> None:
    with ui.row().classes("w-full items-center gap-2 no-wrap"):
        ui.label(step.node_name).classes("text-lg font-semibold truncate")
        status_chip(step.shown_status)
    facts = [f"took {duration(step.duration_s)}"]
    if step.attempts > 1:
        facts.append(f"{step.attempts} attempts")
    if step.port and step.port not in ("out",):
        facts.append(f"went on by '{step.port}'")
    ui.label(" · ".join(facts)).classes("text-sm text-slate-500 -mt-2")
    if step.pinned:
        ui.label("This output is pinned: the step did not run, its pinned output was used.")
    if step.error:
        with (
            ui.row()
            .classes("w-full bg-red-50 border border-red-200 rounded p-3 no-wrap gap-2")
            .mark("step-error")
        ):
            ui.icon("error", color="negative")
            ui.label(step.error).classes("text-red-900 text-sm whitespace-pre-wrap break-words")
    if step.tokens or step.model:
        ui.label(
            f"Model {step.model or '—'} · {step.input_tokens} tokens in, "
            f"{step.output_tokens} out · cost {cost(step.cost_usd)}"
        ).classes("text-sm text-slate-600").mark("step-usage")
    with ui.row().classes("gap-2"):
        if on_rerun is not None:
            test_id(
                ui.button(
                    "Run again from here", icon="replay", on_click=lambda: on_rerun(step)
                ).props("outline dense"),
                "rerun-from-step",
            ).tooltip("Earlier steps keep their results; this step and the ones after it run.")
        if on_pin is not None and step.status == "succeeded" and step.item_index is None:
            test_id(
                ui.button("Pin this output", icon="push_pin", on_click=lambda: on_pin(step)).props(
                    "outline dense"
                ),
                "pin-output",
            ).tooltip("While designing, later runs use this output instead of running the step.")
    with ui.tabs().props("dense align=left no-caps").classes("w-full") as tabs:
        output_tab = ui.tab("Output")
        input_tab = ui.tab("Input")
        logs_tab = ui.tab(f"Logs ({len(step.logs)})")
    with ui.tab_panels(tabs, value=output_tab).classes("w-full bg-transparent"):
        with ui.tab_panel(output_tab).classes("p-0"):
            _value_view(step.output, "No output.").mark("step-output")
        with ui.tab_panel(input_tab).classes("p-0"):
            _value_view(step.input, "No input.")
        with ui.tab_panel(logs_tab).classes("p-0 gap-1"):
            if not step.logs:
                ui.label("The step wrote no log lines.").classes("text-sm text-slate-500")
            for entry in step.logs:
                level = str(entry.get("level", "info"))
                colour = "text-red-800" if level in ("error", "warning") else "text-slate-700"
                ui.label(f"{level}: {entry.get('message', '')}").classes(f"text-sm {colour}")


def _value_view(value: Any, empty: str) -> ui.element:
    if value is None:
        return ui.label(empty).classes("text-sm text-slate-500")
    with ui.column().classes("w-full gap-1") as box:
        if isinstance(value, dict) and value.get("_truncated") is True:
            ui.label("This value was too large to keep whole; here is its start:").classes(
                "text-sm text-slate-500"
            )
        ui.code(as_json(value), language="json").classes("w-full max-h-96 overflow-auto text-xs")
    return box


def run_outcome(
    status: str,
    output: Any,
    error: dict[str, Any] | None,
    took_s: float | None,
    *,
    on_jump: Callable[[str], Any] | None = None,
) -> None:
    """How a finished run ended, in plain words: its result, or which step failed and why."""
    if status == "succeeded":
        with (
            ui.column()
            .classes("w-full gap-2 bg-green-50 border border-green-200 rounded p-3")
            .mark("run-result")
        ):
            with ui.row().classes("items-center gap-2"):
                ui.icon("check_circle", color="positive")
                ui.label(f"The run succeeded in {duration(took_s)}.").classes("font-medium")
            ui.label("Its result:").classes("text-sm text-slate-600")
            _value_view(output, "The run gave no result.")
        return
    if status in ("queued", "running", "waiting"):
        return
    error = error or {}
    node_id, node_name = error.get("node_id"), error.get("node_name")
    headline = {
        "failed": f"The run failed at step “{node_name}”." if node_name else "The run failed.",
        "cancelled": "The run was cancelled.",
        "interrupted": "The run was interrupted.",
    }.get(status, f"The run ended: {status}.")
    # a cancelled run was stopped on purpose: told calmly, not as an error
    calm = status == "cancelled"
    box, icon, text = (
        ("bg-slate-50 border-slate-200", "stop_circle", "text-slate-800")
        if calm
        else ("bg-red-50 border-red-200", "error", "text-red-900")
    )
    with ui.column().classes(f"w-full gap-2 border rounded p-3 {box}").mark("run-error"):
        with ui.row().classes("items-center gap-2 no-wrap"):
            ui.icon(icon, color="grey-7" if calm else "negative")
            ui.label(headline).classes(f"font-medium {text}")
        message = str(error.get("message") or "")
        if message and message != headline:
            ui.label(message).classes(f"text-sm whitespace-pre-wrap {text}")
        if node_id and on_jump is not None:
            test_id(
                ui.button(
                    f"Show step “{node_name or node_id}”",
                    icon="my_location",
                    on_click=lambda: on_jump(node_id),
                ).props("outline dense color=negative"),
                "jump-to-failed-step",
            )
