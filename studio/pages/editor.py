"""`/flows/{id}`: the editor. The canvas in the middle; on the right the chosen step's form,
the run followed live, the flow's problems and its own settings.

Data flows one way: canvas and forms change `Editor.document`; every change is validated
(debounced) and the problems drawn on the canvas and listed; Save stores a new version;
Run saves, starts a run through the runtime and follows its events.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui
from starlette.requests import Request

from engine import DocumentError, InvalidFlowError, Problem, validate
from engine.document import FlowSettings
from storage import DuplicateName, FlowRecord, NotFound, VersionConflict
from studio import api
from studio.components.canvas import FlowCanvas
from studio.components.config_form import ConfigForm
from studio.components.credentials import add_credential_dialog
from studio.components.flow_files import export_filename, unique_name
from studio.components.layout import answer_of, empty_state, test_id
from studio.components.node_catalog import node_types
from studio.components.problems import problem_list, problems_by_field
from studio.components.run_panel import RunPanel
from studio.components.step_panel import StepPanel, value_names
from studio.components.steps import StepView
from studio.components.wording import ago, as_json
from studio.runtime import PINS_KEY, Runtime, pinned_steps

VALIDATE_AFTER_S = 0.3
CANVAS_SETTLE_S = 0.3


async def editor_page(runtime: Runtime, flow_id: str) -> None:
    try:
        flow = await runtime.db.flows.get(flow_id)
    except NotFound:
        with ui.column().classes("w-full max-w-6xl mx-auto p-8"):
            empty_state("search_off", "No such flow", "It may have been deleted.")
            ui.link("Back to all flows", "/")
        return
    editor = Editor(runtime, flow)
    await editor.build()


class Editor:
    """One open flow: its document as edited, the saved version it started from, the UI."""

    def __init__(self, runtime: Runtime, flow: FlowRecord) -> None:
        self.runtime = runtime
        self.flow = flow
        self.document: dict[str, Any] = copy.deepcopy(flow.document)
        self.version = flow.version
        self.dirty = False
        self.problems: list[Problem] = []
        self.selected: str | None = None
        self._wanted: str | None = None
        self._warned_on_leave = False
        self._unechoed: dict[str, dict[str, Any]] = {}
        self._validate_at: float | None = time.monotonic()
        client = ui.context.client
        self.request: Request | None = (
            client.request if isinstance(client.request, Request) else None
        )
        self.base_url = str(self.request.base_url) if self.request else "http://127.0.0.1:8080/"

    # -- layout -------------------------------------------------------------------------------

    def _in_page(
        self, handler: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        """Run a canvas handler inside this page: the canvas awaits it in a task of its own."""

        async def in_page(value: Any) -> None:
            with self.home:
                await handler(value)

        return in_page

    async def build(self) -> None:
        self.home = ui.context.slot.parent
        self._toolbar()
        with ui.row().classes("w-full flex-grow no-wrap gap-0 min-h-0"):
            with ui.column().classes("flex-grow h-full min-w-0 p-0"):
                self.canvas = FlowCanvas(self.document, node_types()).classes("w-full h-full")
            with ui.column().classes(
                "w-[27rem] h-full bg-white border-l border-slate-200 shrink-0 gap-0"
            ):
                self._side_panel()
        self.canvas.on_change(self._in_page(self._canvas_changed))
        self.canvas.on_select(self._in_page(self._canvas_selected))
        self.canvas.on_open(self._in_page(self._open_step))
        ui.timer(0.1, self._validate_when_due)

    def _toolbar(self) -> None:
        with ui.row().classes(
            "w-full items-center gap-3 px-4 py-2 bg-white border-b border-slate-200 no-wrap shrink-0"
        ):
            ui.button(icon="arrow_back", on_click=lambda: ui.navigate.to("/")).props(
                "flat round dense"
            ).tooltip("All flows")
            with ui.column().classes("gap-0 min-w-0"):
                self.title = ui.label(self.flow.name).classes("text-lg font-semibold truncate")
                self.saved_note = ui.label().classes("text-xs text-slate-500").mark("save-state")
            self.problem_chip = ui.chip(
                "", icon="error", color="red-1", text_color="red-9", on_click=self._open_problems
            ).props("dense clickable")
            ui.space()
            self.active_switch = test_id(
                ui.switch("Active", value=self.flow.active, on_change=self._toggle_active),
                "active-toggle",
            ).tooltip("An active flow's webhooks and schedules start runs by themselves.")
            test_id(
                ui.button(icon="history", on_click=self._show_versions).props("flat round"),
                "versions",
            ).tooltip("Version history")
            test_id(
                ui.button(icon="download", on_click=self._export).props("flat round"),
                "export-flow",
            ).tooltip("Export the flow as a file")
            test_id(
                ui.button("Save", icon="save", on_click=self.save).props("outline"), "save-flow"
            )
            test_id(ui.button("Run", icon="play_arrow", on_click=self._ask_and_run), "run-flow")
        self._show_save_state()

    def _side_panel(self) -> None:
        with (
            ui.tabs()
            .props("dense no-caps inline-label align=justify")
            .classes("w-full border-b border-slate-200") as tabs
        ):
            self.step_tab = ui.tab("Step", icon="tune")
            self.run_tab = ui.tab("Run", icon="play_circle")
            self.problems_tab = ui.tab("Problems", icon="report")
            self.flow_tab = ui.tab("Flow", icon="settings")
        self.tabs = tabs
        with (
            ui.tab_panels(tabs, value=self.step_tab)
            .classes("w-full flex-grow overflow-auto")
            .props("keep-alive")
        ):
            with ui.tab_panel(self.step_tab):
                self.step_panel = StepPanel(
                    self.runtime,
                    on_change=self._step_changed,
                    on_unpin=self._unpin,
                    on_add_credential=self._add_credential,
                )
            with ui.tab_panel(self.run_tab):
                self.run_panel = RunPanel(
                    self.runtime,
                    self.canvas,
                    on_rerun=self._rerun_from,
                    on_pin=self._pin,
                    on_jump=self._open_step,
                )
            with ui.tab_panel(self.problems_tab):
                self.problem_box = ui.column().classes("w-full gap-2")
            with ui.tab_panel(self.flow_tab):
                self.flow_box = ui.column().classes("w-full gap-4")
        self._fill_flow_tab()

    # -- edits --------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.dirty = True
        self._validate_at = time.monotonic() + VALIDATE_AFTER_S
        self._show_save_state()

    async def _canvas_changed(self, document: dict[str, Any]) -> None:
        kept = {key: value for key, value in self.document.items() if key not in document}
        before = self.document
        self.document = {**kept, **copy.deepcopy(document)}
        self._keep_unechoed_edits()
        ids = {node.get("id") for node in self.document.get("nodes", [])}
        pins = self.document.get(PINS_KEY)
        if isinstance(pins, dict):
            self.document[PINS_KEY] = {k: v for k, v in pins.items() if k in ids}
        if self.selected is not None and self.selected not in ids:
            self.selected = None
            self.step_panel.show_nothing()
        if self.document != before:  # not just the echo of an edit made here
            self._changed()
            self._fill_outline()
        if self._wanted is not None and self._wanted in ids:  # selected before it was sent
            await self._open_step(self._wanted)

    def _keep_unechoed_edits(self) -> None:
        """Form edits the canvas has not sent back yet win over its older document (the canvas
        sends documents 150 ms after its last edit, so one may predate the latest form edit)."""
        for node_id, patch in list(self._unechoed.items()):
            node = self._node(node_id)
            if node is None or all(node.get(key) == value for key, value in patch.items()):
                del self._unechoed[node_id]
            else:
                node.update(copy.deepcopy(patch))

    def _step_changed(self, node_id: str, patch: dict[str, Any]) -> None:
        node = self._node(node_id)
        if node is None:
            return
        node.update(copy.deepcopy(patch))
        self._unechoed.setdefault(node_id, {}).update(copy.deepcopy(patch))
        self.canvas.update_node(node_id, patch)
        self._changed()

    def _node(self, node_id: str) -> dict[str, Any] | None:
        return next((n for n in self.document.get("nodes", []) if n.get("id") == node_id), None)

    async def _canvas_selected(self, node_ids: list[str]) -> None:
        if len(node_ids) == 1:
            await self._open_step(node_ids[0])
        elif not node_ids:
            self.selected = self._wanted = None
            self.step_panel.show_nothing()

    async def _open_step(self, node_id: str) -> None:
        """Show a step's form in the Step tab (from the canvas, a problem, or a failed run)."""
        if self._node(node_id) is None:
            self._wanted = node_id  # a step just dropped: its document is on its way
            return
        self._wanted = None
        self.selected = node_id
        self.tabs.set_value(self.step_tab)
        await self._show_selected()
        if self.run_panel.has_step(node_id):
            self.run_panel.inspect(node_id)

    async def _show_selected(self) -> None:
        node_id = self.selected
        if node_id is None:
            return
        outputs = {
            step_id: visits[-1].output
            for step_id, visits in self.run_panel._visits.items()
            if visits
        }
        own = self.run_panel._visits.get(node_id)
        names = value_names(self.document, node_id, outputs, own[-1].input if own else None)
        await self.step_panel.show(
            self.document,
            node_id,
            flow_id=self.flow.id,
            active=self.flow.active,
            base_url=self.base_url,
            names=names,
        )
        self.step_panel.show_problems(problems_by_field(self.problems, node_id))

    async def _add_credential(self) -> str | None:
        info = await add_credential_dialog(self.runtime)
        return info.name if info else None

    async def _pin(self, step: StepView) -> None:
        pins = self.document.setdefault(PINS_KEY, {})
        pins[step.node_id] = copy.deepcopy(step.output)
        self._changed()
        ui.notify(
            f"Pinned the output of “{step.node_name}”: runs from here skip it and use this "
            "output. Unpin it in the step's settings.",
            type="positive",
        )
        if self.selected == step.node_id:
            await self._show_selected()

    def _unpin(self, node_id: str) -> None:
        pins = self.document.get(PINS_KEY) or {}
        pins.pop(node_id, None)
        if not pins:
            self.document.pop(PINS_KEY, None)
        self._changed()
        ui.timer(0, self._show_selected, once=True)

    # -- validation ---------------------------------------------------------------------------

    def _validate_when_due(self) -> None:
        if self._validate_at is None or time.monotonic() < self._validate_at:
            return
        self._validate_at = None
        try:
            self.problems = validate(self.document)
        except DocumentError as exc:
            self.problems = [Problem("error", "document", str(exc))]
        self.canvas.set_problems([problem.to_dict() for problem in self.problems])
        errors = sum(1 for problem in self.problems if problem.level == "error")
        self.problem_chip.text = f"{errors} problem{'' if errors == 1 else 's'}"
        self.problem_chip.set_visibility(errors > 0)
        self.problem_box.clear()
        with self.problem_box:
            ui.label("Fix these before the flow can run; click one to open its step.").classes(
                "text-sm text-slate-500"
            ).set_visibility(errors > 0)
            problem_list(self.problems, self._open_step)
        if self.selected:
            self.step_panel.show_problems(problems_by_field(self.problems, self.selected))

    def _errors(self) -> list[Problem]:
        self._validate_at = time.monotonic()
        self._validate_when_due()
        return [problem for problem in self.problems if problem.level == "error"]

    def _open_problems(self) -> None:
        self.tabs.set_value(self.problems_tab)

    # -- saving -------------------------------------------------------------------------------

    def _show_save_state(self) -> None:
        if self.dirty != self._warned_on_leave:  # the browser asks before unsaved work is lost
            self._warned_on_leave = self.dirty
            ui.run_javascript(
                "window.onbeforeunload = "
                + (
                    "(event) => { event.preventDefault(); event.returnValue = ''; }"
                    if self.dirty
                    else "null"
                )
            )
        if self.dirty:
            self.saved_note.text = "Unsaved changes"
            self.saved_note.classes(replace="text-xs text-orange-700")
        else:
            self.saved_note.text = f"Saved · version {self.version} · {ago(self.flow.updated_at)}"
            self.saved_note.classes(replace="text-xs text-slate-500")

    async def _settle(self) -> None:
        """Let the canvas's last edit arrive: it sends the document 150 ms after an edit, so a
        connection made just before Save could otherwise come after it."""
        await asyncio.sleep(CANVAS_SETTLE_S)

    async def save(self) -> bool:
        """Store the document as a new version; on a conflict, ask what to do. True if saved."""
        await self._settle()
        return await self._save_now()

    async def _save_now(self) -> bool:
        if not self.dirty:
            ui.notify("Nothing to save: no changes since the last save.")
            return True
        try:
            flow = await self.runtime.db.flows.update(
                self.flow.id, self.document, base_version=self.version
            )
        except VersionConflict:
            await self._resolve_conflict()
            return False
        except DuplicateName as exc:
            ui.notify(str(exc), type="warning")
            self.tabs.set_value(self.flow_tab)
            return False
        self._saved(flow)
        errors = self._errors()
        if errors:
            ui.notify(
                f"Saved. {len(errors)} problem{'' if len(errors) == 1 else 's'} left to fix "
                "before it can run.",
                type="warning",
            )
        else:
            ui.notify("Saved.", type="positive")
        return True

    def _saved(self, flow: FlowRecord) -> None:
        self.flow, self.version, self.dirty = flow, flow.version, False
        self.title.text = flow.name
        self._show_save_state()

    async def _resolve_conflict(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-[30rem]").mark("conflict-dialog"):
            with ui.row().classes("items-center gap-2 no-wrap"):
                ui.icon("sync_problem", color="warning", size="1.6rem")
                ui.label("This flow was changed in another tab").classes("text-lg font-semibold")
            ui.label(
                "Someone (perhaps you, in another tab) saved a newer version while you were "
                "editing. Reload it to continue from that version — your changes here are "
                "dropped — or save your changes as a copy, a new flow of its own."
            ).classes("text-slate-600")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
                test_id(
                    ui.button("Reload", on_click=lambda: dialog.submit("reload")).props("outline"),
                    "conflict-reload",
                )
                test_id(
                    ui.button("Save as a copy", on_click=lambda: dialog.submit("copy")),
                    "conflict-copy",
                )
        choice = await answer_of(dialog)
        if choice == "reload":
            await self._reload(await self.runtime.db.flows.get(self.flow.id))
        elif choice == "copy":
            flows, _ = await self.runtime.db.flows.list(limit=1000)
            name = unique_name(
                f"{self.document.get('name') or self.flow.name} (copy)", [f.name for f in flows]
            )
            copied = await self.runtime.db.flows.create(
                {**self.document, "name": name}, message=f"Copy of {self.flow.name}"
            )
            self.dirty = False
            self._show_save_state()
            ui.navigate.to(f"/flows/{copied.id}")

    async def _reload(self, flow: FlowRecord) -> None:
        self.document = copy.deepcopy(flow.document)
        self._unechoed.clear()
        self._saved(flow)
        self.canvas.set_document(self.document)
        self.selected = None
        self.step_panel.show_nothing()
        self._fill_flow_tab()
        self._validate_at = time.monotonic()
        ui.notify(f"Loaded version {flow.version}.")

    # -- running ------------------------------------------------------------------------------

    async def _ask_and_run(self) -> None:
        if self._errors():
            ui.notify("The flow has problems to fix before it can run.", type="warning")
            self._open_problems()
            return
        triggers = [
            node
            for node in self.document.get("nodes", [])
            if node.get("type", "").startswith("trigger.")
        ]
        last, _ = await self.runtime.db.runs.list(flow_id=self.flow.id, limit=1)
        first_type = triggers[0].get("type") if triggers else None
        prefill: Any = last[0].input if last else _example_input(first_type)
        with ui.dialog() as dialog, ui.card().classes("w-[34rem] gap-3").mark("run-dialog"):
            ui.label("Run the flow").classes("text-lg font-semibold")
            ui.label(
                "What the flow starts with, as JSON (the input of the first step). Later steps "
                "read it as input and trigger."
            ).classes("text-sm text-slate-500")
            trigger = None
            if len(triggers) > 1:
                trigger = (
                    ui.select(
                        {node["id"]: node.get("name") or node["id"] for node in triggers},
                        value=triggers[0]["id"],
                        label="Start from",
                    )
                    .props("outlined dense")
                    .classes("w-full")
                )
            text = test_id(
                ui.codemirror(as_json(prefill), language="JSON", line_wrapping=True)
                .classes("w-full border border-slate-300 rounded")
                .style("height: 14rem"),
                "run-input",
            )
            problem = ui.label().classes("text-sm text-negative").mark("run-input-problem")
            pins = self.document.get(PINS_KEY) or {}
            if pins:
                ui.label(
                    f"{len(pins)} pinned step{'' if len(pins) == 1 else 's'} will not run; "
                    "their pinned outputs are used."
                ).classes("text-sm text-purple-800")

            def start() -> None:
                source = text.value or ""
                if not source.strip():
                    dialog.submit((None, trigger.value if trigger else None))
                    return
                try:
                    value = json.loads(source)
                except json.JSONDecodeError as exc:
                    problem.text = (
                        f"This is not valid JSON: {exc.msg.lower()} at line {exc.lineno}, "
                        f"column {exc.colno}. Check quotes, commas and brackets."
                    )
                    return
                dialog.submit((value, trigger.value if trigger else None))

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
                test_id(ui.button("Start run", icon="play_arrow", on_click=start), "start-run")
        chosen = await answer_of(dialog)
        if chosen is not None:
            await self.run(chosen[0], trigger=chosen[1])

    async def run(self, value: Any, *, trigger: str | None = None) -> None:
        """Save if needed, then start a run with `value` and follow it in the Run tab."""
        await self._settle()
        if self.dirty and not await self._save_now():
            return
        try:
            record = await self.runtime.submit(
                self.flow, value, trigger=trigger, resume=pinned_steps(self.document) or None
            )
        except InvalidFlowError as exc:
            ui.notify(f"The flow cannot run: {exc}", type="negative", multi_line=True)
            return
        self.run_panel.follow(record)
        self.tabs.set_value(self.run_tab)

    async def _rerun_from(self, step: StepView) -> None:
        if self.run_panel.run_id is None:
            return
        if self.dirty and not await self.save():
            return
        try:
            record = await self.runtime.rerun_from(self.run_panel.run_id, step.node_id)
        except (NotFound, InvalidFlowError) as exc:
            ui.notify(f"Could not run again: {exc}", type="negative", multi_line=True)
            return
        self.run_panel.follow(record)
        ui.notify(f"Running again from “{step.node_name}”; earlier steps keep their results.")

    # -- activation, export, versions, flow settings ------------------------------------------

    async def _toggle_active(self) -> None:
        wanted = bool(self.active_switch.value)
        if wanted == self.flow.active:
            return
        if wanted and self.dirty and not await self.save():
            self.active_switch.value = False
            return
        try:
            if self.request is None:
                raise RuntimeError("no request")
            if wanted:
                await api.activate_flow(self.request, self.flow.id)
            else:
                await api.deactivate_flow(self.request, self.flow.id)
        except InvalidFlowError:
            ui.notify("Fix the flow's problems before making it active.", type="warning")
            self.active_switch.value = False
            self._open_problems()
            return
        self.flow = await self.runtime.db.flows.get(self.flow.id)
        ui.notify(
            "Active: its webhooks and schedules now start runs."
            if self.flow.active
            else "Inactive: its webhooks and schedules are off."
        )
        if self.selected:
            await self._open_step(self.selected)

    def _export(self) -> None:
        document = {k: v for k, v in self.document.items() if k != PINS_KEY}
        ui.download.content(
            json.dumps(document, indent=2, ensure_ascii=False),
            export_filename(str(document.get("name") or self.flow.name)),
            "application/json",
        )

    async def _show_versions(self) -> None:
        versions = await self.runtime.db.flows.versions(self.flow.id)
        with (
            ui.dialog().props("position=right full-height") as dialog,
            ui.card().classes("w-96 h-full gap-2 rounded-none").mark("versions-drawer"),
        ):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label("Version history").classes("text-lg font-semibold")
                ui.button(icon="close", on_click=dialog.close).props("flat round dense")
            ui.label(
                "Every save is a version. Restoring one saves it again as the newest."
            ).classes("text-sm text-slate-500")
            for version in versions:
                with ui.row().classes("w-full items-center border-t border-slate-100 pt-2 no-wrap"):
                    with ui.column().classes("gap-0 flex-grow"):
                        ui.label(f"Version {version.version}").classes("font-medium")
                        ui.label(
                            f"{ago(version.created_at)} · "
                            f"{len(version.document.get('nodes', []))} steps"
                            + (f" · {version.message}" if version.message else "")
                        ).classes("text-xs text-slate-500")
                    if version.version == self.version:
                        ui.badge("Current", color="grey-6")
                    else:
                        test_id(
                            ui.button(
                                "Restore", on_click=lambda v=version.version: dialog.submit(v)
                            ).props("flat dense"),
                            f"restore-{version.version}",
                        )
        chosen = await answer_of(dialog)
        if chosen is None:
            return
        if self.dirty:
            ui.notify("Your unsaved changes were replaced by the restored version.")
        flow = await self.runtime.db.flows.restore(self.flow.id, chosen)
        await self._reload(flow)
        ui.notify(f"Restored version {chosen} as version {flow.version}.", type="positive")

    def _fill_flow_tab(self) -> None:
        self.flow_box.clear()
        with self.flow_box:
            name = test_id(
                ui.input("Flow name", value=str(self.document.get("name") or ""))
                .props("outlined dense")
                .classes("w-full"),
                "flow-name",
            )
            name.on_value_change(lambda e: self._set_document("name", e.value or ""))
            ui.textarea(
                "Description",
                value=str(self.document.get("description") or ""),
                on_change=lambda e: self._set_document("description", e.value or ""),
            ).props("outlined dense autogrow").classes("w-full")
            ui.label("Run settings").classes("font-semibold")
            ConfigForm(
                FlowSettings.model_json_schema(),
                self.document.setdefault("settings", {}),
                on_change=lambda value: self._set_document("settings", value),
                test_prefix="flow-setting",
                descriptions={
                    "timezone": "The time zone schedules are read in, e.g. Europe/Paris.",
                    "timeout_s": "Stop a run that takes longer than this; empty: no limit.",
                },
            )
            self._retention()
            ui.label("Steps").classes("font-semibold")
            self.outline = ui.column().classes("w-full gap-0")
        self._fill_outline()

    def _fill_outline(self) -> None:
        """Every step by name; a click opens it (the canvas's selection, by keyboard)."""
        self.outline.clear()
        with self.outline:
            for node in self.document.get("nodes", []):
                node_id = str(node.get("id"))
                ui.button(
                    node.get("name") or node_id,
                    on_click=lambda node_id=node_id: self._open_step(node_id),
                ).props("flat dense no-caps align=left").classes("w-full").mark(
                    f"outline-{node_id}"
                )

    def _set_document(self, key: str, value: Any) -> None:
        self.document[key] = copy.deepcopy(value)
        self._changed()

    def _retention(self) -> None:
        settings = self.runtime.settings
        kept = self.flow.retention or {}
        ui.label("Run history").classes("font-semibold")
        with ui.row().classes("w-full no-wrap gap-2"):
            days = ui.number("Keep days", value=kept.get("days"), min=1, precision=0).props(
                f'outlined dense placeholder="{settings.retention_days} (default)"'
            )
            runs = ui.number("Keep runs", value=kept.get("max_runs"), min=1, precision=0).props(
                f'outlined dense placeholder="{settings.retention_max_runs} (default)"'
            )

        async def store() -> None:
            self.flow = await self.runtime.db.flows.set_retention(
                self.flow.id,
                days=int(days.value) if days.value else None,
                max_runs=int(runs.value) if runs.value else None,
            )
            ui.notify("Saved how long this flow's runs are kept.")

        ui.label(
            "How long this flow's runs are kept; empty uses the defaults in Settings."
        ).classes("text-xs text-slate-500 -mt-3")
        ui.button("Save run history settings", on_click=store).props("flat dense no-caps")


def _example_input(trigger_type: str | None) -> Any:
    """What a first run starts with when the flow never ran: the shape its trigger hands on."""
    if trigger_type == "trigger.webhook":
        return {"body": {"text": "Hello"}, "headers": {}, "query": {}, "method": "POST"}
    if trigger_type == "trigger.schedule":
        return {"fired_at": "2026-01-01T09:00:00+00:00"}
    return {}
