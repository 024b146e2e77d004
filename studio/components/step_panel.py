"""The Step tab of the editor: one step's name, trigger details, config form and settings.

Everything about the step's type comes from its `describe()` (title, icon, description and
config schema); the node's settings come from `NodeSettings`' schema.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from nicegui import ui

from engine import NodeSettings
from studio.components.config_form import ConfigForm
from studio.components.layout import test_id
from studio.components.node_catalog import describe
from studio.components.trigger_panel import schedule_panel, webhook_panel
from studio.components.wording import as_json
from studio.runtime import PINS_KEY, Runtime

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: NodeSettings fields in words; they are the same for every node type.
SETTING_HELP = {
    "timeout_s": "Stop the step when it takes longer than this; empty: no limit.",
    "retries": "How many times to try the step again when it fails.",
    "retry_backoff_s": "Seconds to wait before the first retry; each later wait doubles.",
    "on_error": "What happens when the step fails after its retries.",
    "max_visits": "How often the step may run in one run (for flows that go round in a cycle).",
}
ON_ERROR_LABELS = {
    "stop": "Stop the run",
    "continue": "Go on, handing the error on as the output",
    "route": "Go on by the step's 'error' connection",
}


def reference(name: str) -> str:
    """How expressions refer to a step: `nodes.Name` or `nodes['a name']`."""
    return f"nodes.{name}" if _IDENTIFIER.match(name) else f"nodes[{name!r}]"


def value_names(
    document: dict[str, Any], node_id: str, last_outputs: dict[str, Any], last_input: Any
) -> list[str]:
    """The names a step's fields can use: its input's keys, earlier steps and their keys."""
    names = ["input"]
    if isinstance(last_input, dict):
        names += [f"input.{key}" for key in last_input if _IDENTIFIER.match(str(key))]
    nodes = {node["id"]: node for node in document.get("nodes", []) if "id" in node}
    for upstream in _upstream(document, node_id):
        node = nodes.get(upstream)
        if node is None:
            continue
        base = reference(node.get("name") or upstream)
        names.append(base)
        output = last_outputs.get(upstream)
        if isinstance(output, dict):
            names += [f"{base}.{key}" for key in output if _IDENTIFIER.match(str(key))]
    return [*names, "trigger", "vars", "run.id"]


def _upstream(document: dict[str, Any], node_id: str) -> list[str]:
    sources: dict[str, list[str]] = {}
    for edge in document.get("edges", []):
        sources.setdefault(edge.get("target"), []).append(edge.get("source"))
    parent = next(
        (n.get("parent") for n in document.get("nodes", []) if n.get("id") == node_id), None
    )
    seen: list[str] = []
    stack = list(sources.get(node_id, [])) + ([parent] if parent else [])
    while stack:
        current = stack.pop()
        if current in seen or current == node_id:
            continue
        seen.append(current)
        stack.extend(sources.get(current, []))
    return seen


class StepPanel:
    """Shows one node of `document` for editing; edits go through `on_change(node_id, patch)`."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        on_change: Callable[[str, dict[str, Any]], None],
        on_unpin: Callable[[str], None],
        on_add_credential: Callable[[], Any],
    ) -> None:
        self.runtime = runtime
        self.on_change = on_change
        self.on_unpin = on_unpin
        self.on_add_credential = on_add_credential
        self.node_id: str | None = None
        self.form: ConfigForm | None = None
        self.root = ui.column().classes("w-full gap-4")
        self.show_nothing()

    def show_nothing(self) -> None:
        self.node_id, self.form = None, None
        self.root.clear()
        with self.root, ui.column().classes("w-full items-center gap-2 py-10 text-center"):
            ui.icon("touch_app", size="2.5rem").classes("text-slate-300")
            ui.label("Select a step on the canvas to set it up.").classes("text-slate-500")
            ui.label("Drag new steps from the palette on the left of the canvas.").classes(
                "text-sm text-slate-400"
            )

    async def show(
        self,
        document: dict[str, Any],
        node_id: str,
        *,
        flow_id: str,
        active: bool,
        base_url: str,
        names: list[str],
    ) -> None:
        node = next((n for n in document.get("nodes", []) if n.get("id") == node_id), None)
        if node is None:
            self.show_nothing()
            return
        self.node_id = node_id
        described = describe(node.get("type", ""))
        credentials = [info.name for info in await self.runtime.db.credentials.list()]
        self.root.clear()
        with self.root:
            self._heading(node, described)
            name = test_id(
                ui.input("Step name", value=node.get("name") or "")
                .props("outlined dense")
                .classes("w-full"),
                "step-name",
            )
            name.on_value_change(lambda e: self.on_change(node_id, {"name": e.value or ""}))
            ui.label(
                f"Later steps use its output as {reference(node.get('name') or node_id)}."
            ).classes("text-xs text-slate-500 -mt-3")
            pins = document.get(PINS_KEY) or {}
            if node_id in pins:
                self._pinned(node_id, pins[node_id])
            if described is None:
                ui.label(
                    f"FlowLoom has no step type '{node.get('type')}'; install the package "
                    "that provides it, or delete this step."
                ).classes("text-negative")
                return
            if node.get("type") == "trigger.webhook":
                await webhook_panel(self.runtime, flow_id, node_id, base_url, active)
            config = copy.deepcopy(node.get("config") or {})
            if node.get("type") == "trigger.schedule":
                schedule_panel(config, document, active)
            self.form = ConfigForm(
                described["config_schema"],
                config,
                on_change=lambda value: self.on_change(node_id, {"config": copy.deepcopy(value)}),
                names=lambda: names,
                credentials=credentials,
                on_add_credential=self.on_add_credential,
            )
            self._advanced(node)

    def _heading(self, node: dict[str, Any], described: dict[str, Any] | None) -> None:
        with ui.row().classes("w-full items-start gap-3 no-wrap"):
            with ui.element("div").classes("rounded-lg bg-indigo-50 p-2"):
                ui.icon(described["icon"] if described else "help", size="1.5rem").classes(
                    "text-primary"
                )
            with ui.column().classes("gap-0"):
                ui.label(described["title"] if described else node.get("type", "")).classes(
                    "text-base font-semibold"
                )
                if described and described.get("description"):
                    ui.label(described["description"]).classes("text-sm text-slate-500")

    def _pinned(self, node_id: str, output: Any) -> None:
        with (
            ui.column()
            .classes("w-full gap-1 bg-purple-50 border border-purple-200 rounded p-3")
            .mark("pinned-output")
        ):
            with ui.row().classes("w-full items-center no-wrap"):
                ui.icon("push_pin", color="purple-6")
                ui.label("Output pinned").classes("font-medium flex-grow")
                ui.button("Unpin", on_click=lambda: self.on_unpin(node_id)).props("flat dense")
            ui.label(
                "Runs started here skip this step and hand on this output instead, so you can "
                "work on later steps without calling it again."
            ).classes("text-xs text-slate-600")
            ui.code(as_json(output), language="json").classes("w-full max-h-40 text-xs")

    def _advanced(self, node: dict[str, Any]) -> None:
        node_id = node["id"]
        settings = copy.deepcopy(node.get("settings") or {})
        with (
            ui.expansion("Advanced: timeout, retries, errors", icon="tune")
            .classes("w-full border border-slate-200 rounded")
            .mark("advanced")
        ):
            ConfigForm(
                NodeSettings.model_json_schema(),
                settings,
                on_change=lambda value: self.on_change(node_id, {"settings": copy.deepcopy(value)}),
                test_prefix="setting",
                descriptions=SETTING_HELP,
                option_labels={"on_error": ON_ERROR_LABELS},
            )

    def show_problems(self, problems: dict[str, str]) -> None:
        if self.form is not None:
            self.form.show_problems(problems)
