"""`/`: every flow with its state, a new flow, a template gallery, import and delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import events, ui

from storage import DuplicateName, FlowRecord
from studio.components.flow_files import (
    UNTITLED,
    ImportRefused,
    Template,
    load_templates,
    new_document,
    read_flow_file,
    unique_name,
)
from studio.components.layout import answer_of, empty_state, page_title, test_id
from studio.components.status import status_chip
from studio.components.wording import ago
from studio.runtime import Runtime

MAX_FLOWS_LISTED = 1000


async def flows_page(runtime: Runtime) -> None:
    """The start page: the flow list first, then the templates to start from."""
    with ui.row().classes("w-full items-end justify-between"):
        page_title("Flows", "Each flow is a set of steps that runs when its trigger fires.")
        with ui.row().classes("gap-2"):
            _import_button(runtime)
            test_id(
                ui.button("New flow", icon="add", on_click=lambda: _ask_new_flow(runtime)),
                "new-flow",
            )

    @ui.refreshable
    async def listing() -> None:
        await flows_list(runtime, on_deleted=listing.refresh)

    await listing()
    ui.label("Start from a template").classes("text-lg font-semibold mt-4")
    ui.label("Ready-made flows to copy and adapt; your copy is yours to change.").classes(
        "text-slate-500 -mt-4"
    )
    with ui.grid().classes("w-full grid-cols-1 md:grid-cols-3 gap-4"):
        for template in load_templates():
            _template_card(runtime, template)


async def flows_list(runtime: Runtime, *, on_deleted: Callable[[], Awaitable[None]]) -> None:
    """Every flow, most recently changed first: name, when, active badge, last run."""
    flows, _ = await runtime.db.flows.list(limit=MAX_FLOWS_LISTED)
    if not flows:
        empty_state(
            "account_tree",
            "No flows yet",
            "Create a new flow, or start from one of the templates below.",
        )
        return
    with ui.card().classes("w-full p-0 gap-0 shadow-none border border-slate-200"):
        with ui.row().classes(
            "w-full px-4 py-2 text-xs uppercase tracking-wide text-slate-500 border-b "
            "border-slate-200 no-wrap"
        ):
            ui.label("Name").classes("flex-grow")
            ui.label("Last changed").classes("w-36 shrink-0")
            ui.label("Last run").classes("w-36 shrink-0")
            ui.label("").classes("w-10 shrink-0")
        for flow in flows:
            await _flow_row(runtime, flow, on_deleted)


async def _flow_row(
    runtime: Runtime, flow: FlowRecord, on_deleted: Callable[[], Awaitable[None]]
) -> None:
    runs, _ = await runtime.db.runs.list(flow_id=flow.id, limit=1)
    with ui.row().classes(
        "w-full px-4 py-3 items-center border-b border-slate-100 last:border-b-0 "
        "hover:bg-slate-50 no-wrap"
    ):
        with ui.column().classes("flex-grow gap-0 min-w-0"):
            with ui.row().classes("items-center gap-2 no-wrap max-w-full"):
                ui.link(flow.name, f"/flows/{flow.id}").classes(
                    "font-medium text-slate-800 no-underline hover:text-primary truncate"
                )
                if flow.active:
                    ui.badge("Active", color="green-7").props("rounded").tooltip(
                        "Its webhooks and schedules are listening."
                    )
            steps = len(flow.document.get("nodes", []))
            about = str(flow.document.get("description") or "")
            summary = ui.label(
                f"{steps} step{'' if steps == 1 else 's'}" + (f" · {about}" if about else "")
            ).classes("text-xs text-slate-500 truncate max-w-full")
            if about:
                summary.tooltip(about)  # the whole description, where the row cuts it short
        ui.label(ago(flow.updated_at)).classes("w-36 shrink-0 text-sm text-slate-500")
        with ui.row().classes("w-36 shrink-0"):
            if runs:
                status_chip(runs[0].status).on(
                    "click", lambda run_id=runs[0].id: ui.navigate.to(f"/runs/{run_id}")
                ).classes("cursor-pointer")
            else:
                ui.label("Never run").classes("text-sm text-slate-400")
        ui.button(icon="delete", on_click=lambda: _confirm_delete(runtime, flow, on_deleted)).props(
            "flat round dense color=grey-7"
        ).classes("w-10 shrink-0").tooltip(f"Delete {flow.name}")


async def _taken_names(runtime: Runtime) -> list[str]:
    flows, _ = await runtime.db.flows.list(limit=MAX_FLOWS_LISTED)
    return [flow.name for flow in flows]


async def _ask_new_flow(runtime: Runtime) -> None:
    suggestion = unique_name(UNTITLED, await _taken_names(runtime))
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label("New flow").classes("text-lg font-semibold")
        name = test_id(
            ui.input("Name", value=suggestion).props("autofocus outlined").classes("w-full"),
            "new-flow-name",
        )
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            test_id(ui.button("Create", on_click=lambda: dialog.submit(name.value)), "create-flow")
        name.on("keydown.enter", lambda: dialog.submit(name.value))
    wanted = await answer_of(dialog)
    if wanted is None:
        return
    await _create_and_open(runtime, new_document(str(wanted).strip() or suggestion))


async def _create_and_open(runtime: Runtime, document: dict[str, Any]) -> None:
    try:
        flow = await runtime.db.flows.create(document, message="Created")
    except DuplicateName as exc:
        ui.notify(str(exc), type="warning")
        return
    ui.navigate.to(f"/flows/{flow.id}")


def _template_card(runtime: Runtime, template: Template) -> None:
    async def use() -> None:
        name = unique_name(template.title, await _taken_names(runtime))
        await _create_and_open(runtime, {**template.document, "name": name})

    with ui.card().classes("shadow-none border border-slate-200 gap-2 justify-between"):
        with ui.column().classes("gap-1"):
            ui.label(template.title).classes("font-semibold")
            ui.label(template.description).classes("text-sm text-slate-600")
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(f"{template.step_count} steps").classes("text-xs text-slate-400")
            test_id(
                ui.button("Use template", icon="content_copy", on_click=use).props("flat dense"),
                f"template-{template.key}",
            )


def _import_button(runtime: Runtime) -> None:
    async def handle(event: events.UploadEventArguments) -> None:
        upload.reset()
        content = await event.file.read()
        try:
            document = read_flow_file(content, event.file.name or "the file")
        except ImportRefused as refused:
            _show_import_problems(event.file.name, refused.problems)
            return
        document["name"] = unique_name(
            str(document.get("name") or UNTITLED), await _taken_names(runtime)
        )
        await _create_and_open(runtime, document)

    with ui.dialog() as dialog, ui.card().classes("w-[28rem]"):
        ui.label("Import a flow").classes("text-lg font-semibold")
        ui.label("Choose a flow file (.json) exported from FlowLoom.").classes("text-slate-500")
        upload = test_id(
            ui.upload(on_upload=handle, auto_upload=True, max_file_size=10 * 1024 * 1024)
            .props('accept=".json,application/json" flat bordered')
            .classes("w-full"),
            "import-file",
        )
        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=dialog.close).props("flat")
    test_id(
        ui.button("Import", icon="upload_file", on_click=dialog.open).props("outline"),
        "import-flow",
    )


def _show_import_problems(filename: str, problems: list[str]) -> None:
    with ui.dialog(value=True) as dialog, ui.card().classes("w-[32rem]"):
        with ui.row().classes("items-center gap-2"):
            ui.icon("error", color="negative", size="1.5rem")
            ui.label(f"{filename} could not be imported").classes("text-lg font-semibold")
        ui.label(
            "Nothing was created. Fix these problems in the file, or export the flow again:"
        ).classes("text-slate-600")
        with ui.column().classes("gap-1 max-h-80 overflow-auto").mark("import-problems"):
            for problem in problems:
                with ui.row().classes("no-wrap gap-2 items-start"):
                    ui.icon("chevron_right", size="1rem").classes("text-negative mt-1")
                    ui.label(problem).classes("text-sm")
        with ui.row().classes("w-full justify-end"):
            ui.button("OK", on_click=dialog.delete)


async def _confirm_delete(
    runtime: Runtime, flow: FlowRecord, on_deleted: Callable[[], Awaitable[None]]
) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(f"Delete “{flow.name}”?").classes("text-lg font-semibold")
        ui.label(
            "The flow and all its saved versions are deleted, and its webhooks and schedules "
            "stop. Its past runs stay in the run history until they expire."
        ).classes("text-slate-600")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
            test_id(
                ui.button("Delete", color="negative", on_click=lambda: dialog.submit(True)),
                "confirm-delete",
            )
    confirmed = await answer_of(dialog)
    if confirmed:
        await runtime.db.flows.delete(flow.id)
        ui.notify(f"Deleted {flow.name}.")
        await on_deleted()
