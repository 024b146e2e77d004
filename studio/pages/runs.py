"""`/runs`: the run history with filters and pages; `/runs/{id}`: one run on its canvas."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from storage import RUN_STATUSES, UNFINISHED, NotFound, RunRecord
from studio.components.canvas import FlowCanvas
from studio.components.layout import empty_state, page_title, test_id
from studio.components.node_catalog import node_types, type_title
from studio.components.status import status_chip, status_label
from studio.components.steps import StepView, latest_by_node, run_outcome, step_inspector
from studio.components.wording import ago, duration, when
from studio.runtime import Runtime

PAGE_SIZE = 25
REFRESH_RUNNING_S = 2.0


async def runs_page(
    runtime: Runtime, *, flow_id: str | None = None, status: str | None = None
) -> None:
    """Every run, newest first, filtered by flow and status."""
    page_title("Runs", "Every run of every flow, newest first. Open one to see each step.")
    flows, _ = await runtime.db.flows.list(limit=1000)
    flow_names = {flow.id: flow.name for flow in flows}
    triggers = {
        (flow.id, node.get("id")): node.get("name") or type_title(node.get("type", ""))
        for flow in flows
        for node in flow.document.get("nodes", [])
    }
    filters: dict[str, Any] = {"flow": flow_id, "status": status, "page": 1}

    @ui.refreshable
    async def table() -> None:
        runs, total = await runtime.db.runs.list(
            flow_id=filters["flow"],
            status=filters["status"],
            limit=PAGE_SIZE,
            offset=(filters["page"] - 1) * PAGE_SIZE,
        )
        if not runs:
            empty_state(
                "history",
                "No runs here yet",
                "Open a flow and press Run; its runs appear here, newest first.",
            )
            return
        with ui.card().classes("w-full p-0 gap-0 shadow-none border border-slate-200"):
            with ui.row().classes(
                "w-full px-4 py-2 text-xs uppercase tracking-wide text-slate-500 border-b "
                "border-slate-200 no-wrap"
            ):
                for label, width in _COLUMNS:
                    ui.label(label).classes(width)
            for run in runs:
                _run_row(run, flow_names, triggers)
        pages = max(1, -(-total // PAGE_SIZE))
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(f"{total} run{'' if total == 1 else 's'}").classes("text-sm text-slate-500")
            if pages > 1:
                ui.pagination(
                    1, pages, direction_links=True, value=filters["page"]
                ).on_value_change(lambda e: _set(filters, "page", e.value, table))

    with ui.row().classes("gap-3"):
        flow_options: dict[str | None, str] = {None: "All flows"}
        flow_options.update(flow_names)
        ui.select(
            flow_options,
            value=flow_id if flow_id in flow_names else None,
            label="Flow",
            on_change=lambda e: _set(filters, "flow", e.value, table),
        ).props("outlined dense").classes("w-64").mark("filter-flow")
        status_options: dict[str | None, str] = {
            None: "Any status",
            **{s: status_label(s) for s in RUN_STATUSES},
        }
        ui.select(
            status_options,
            value=status if status in RUN_STATUSES else None,
            label="Status",
            on_change=lambda e: _set(filters, "status", e.value, table),
        ).props("outlined dense").classes("w-48").mark("filter-status")
    await table()


_COLUMNS = (
    ("Flow", "flex-grow"),
    ("Status", "w-40"),
    ("Started", "w-36"),
    ("Duration", "w-24"),
    ("Trigger", "w-40"),
)


def _set(filters: dict[str, Any], key: str, value: Any, table: Any) -> None:
    filters[key] = value
    if key != "page":
        filters["page"] = 1
    table.refresh()


def _run_row(
    run: RunRecord, flow_names: dict[str, str], triggers: dict[tuple[Any, Any], str]
) -> None:
    took = (
        (run.finished_at - run.started_at).total_seconds()
        if run.started_at and run.finished_at
        else None
    )
    flow_name = flow_names.get(run.flow_id or "", "(deleted flow)")
    with (
        ui.row()
        .classes(
            "w-full px-4 py-3 items-center border-b border-slate-100 last:border-b-0 "
            "hover:bg-slate-50 "
            "cursor-pointer no-wrap"
        )
        .on("click", lambda: ui.navigate.to(f"/runs/{run.id}"))
        .mark(f"run-{run.id}")
    ):
        ui.label(flow_name).classes("flex-grow font-medium truncate")
        with ui.row().classes("w-40"):
            status_chip(run.status)
        ui.label(ago(run.started_at or run.created_at)).classes("w-36 text-sm text-slate-500")
        ui.label(duration(took)).classes("w-24 text-sm text-slate-500")
        ui.label(triggers.get((run.flow_id, run.trigger), run.trigger or "—")).classes(
            "w-40 text-sm text-slate-500 truncate"
        )


async def run_page(runtime: Runtime, run_id: str) -> None:
    """One run replayed on its flow's canvas, with the inspector of the chosen step."""
    try:
        run = await runtime.db.runs.get(run_id)
    except NotFound:
        with ui.column().classes("w-full max-w-6xl mx-auto p-8"):
            empty_state("search_off", "No such run", "It may have expired from the history.")
        return
    document = await _run_document(runtime, run)
    steps = [StepView.from_row(row) for row in run.steps]
    flow_name = str(document.get("name")) if document else "(deleted flow)"
    took = (
        (run.finished_at - run.started_at).total_seconds()
        if run.started_at and run.finished_at
        else None
    )

    async def rerun(step: StepView) -> None:
        try:
            record = await runtime.rerun_from(run.id, step.node_id)
        except Exception as exc:
            ui.notify(f"Could not run again: {exc}", type="negative", multi_line=True)
            return
        ui.notify(f"Running again from “{step.node_name}”…")
        ui.navigate.to(f"/runs/{record.id}")

    refresh: list[ui.timer] = []  # the page's reload while the run goes on (made below)

    async def stop(button: ui.button) -> None:
        for timer in refresh:  # the page reloads once the run has stopped, not meanwhile
            timer.cancel()
        button.disable()
        ui.notify("Stopping the run…")
        if await runtime.cancel(run.id):  # here, or in the FlowLoom process that runs it
            status = (await runtime.db.runs.get(run.id)).status
            ui.notify(
                "The run was stopped."
                if status == "cancelled"
                else f"Asked the run to stop; it is still {status_label(status).lower()}.",
                type="positive" if status == "cancelled" else "warning",
            )
        else:
            ui.notify("The run had already ended.")
        ui.navigate.reload()

    with ui.row().classes(
        "w-full items-center gap-4 px-6 py-3 bg-white border-b border-slate-200 no-wrap"
    ):
        ui.button(icon="arrow_back", on_click=lambda: ui.navigate.to("/runs")).props(
            "flat round dense"
        ).tooltip("Back to all runs")
        with ui.column().classes("gap-0"):
            with ui.row().classes("items-center gap-2"):
                ui.label(flow_name).classes("text-lg font-semibold")
                status_chip(run.status)
            ui.label(
                f"Started {when(run.started_at or run.created_at)} · took {duration(took)} · "
                f"version {run.flow_version or '—'}"
            ).classes("text-sm text-slate-500")
        ui.space()
        if run.status in UNFINISHED:
            stop_button = test_id(
                ui.button("Stop run", icon="stop").props("outline color=negative"), "stop-run"
            )
            stop_button.on_click(lambda: stop(stop_button))
            stop_button.tooltip("Cancel this run: its running steps stop at once")
        if run.flow_id and document:
            ui.button(
                "Open the flow",
                icon="edit",
                on_click=lambda: ui.navigate.to(f"/flows/{run.flow_id}"),
            ).props("outline")

    with ui.row().classes("w-full flex-grow no-wrap gap-0 min-h-0"):
        with ui.column().classes("flex-grow h-full min-w-0"):
            canvas = None
            if document:
                canvas = FlowCanvas(document, node_types(), readonly=True).classes("w-full h-full")
                for node_id, step in latest_by_node(steps).items():
                    canvas.set_status(
                        node_id, step.status, duration_s=step.duration_s, tokens=step.tokens
                    )
            else:
                empty_state(
                    "link_off", "Its flow was deleted", "The steps are listed on the right."
                )
        with ui.column().classes(
            "w-[28rem] h-full overflow-auto bg-white border-l border-slate-200 p-4 gap-3 shrink-0"
        ):
            run_outcome(run.status, run.output, run.error, took, on_jump=lambda n: show_step(n))
            ui.label("Steps").classes("font-semibold")
            step_list = ui.column().classes("w-full gap-1")
            inspector = ui.column().classes("w-full gap-2").mark("step-inspector")

    def show_step(node_id: str) -> None:
        inspector.clear()
        with inspector:
            visits = [step for step in steps if step.node_id == node_id]
            step_inspector(visits, on_rerun=rerun if run.flow_id else None)

    with step_list:
        for node_id, step in latest_by_node(steps).items():
            with (
                test_id(
                    ui.button(on_click=lambda n=node_id: show_step(n))
                    .props("flat no-caps align=left")
                    .classes("w-full"),
                    f"step-{node_id}",
                ),
                ui.row().classes("w-full items-center no-wrap gap-2"),
            ):
                ui.label(step.node_name).classes("flex-grow text-left truncate")
                status_chip(step.shown_status)
    if canvas is not None:
        canvas.on_select(lambda ids: show_step(ids[0]) if ids else None)
    failed = (run.error or {}).get("node_id")
    if failed:
        show_step(failed)
    if run.status in UNFINISHED:  # still going: show it again as it goes on
        refresh.append(ui.timer(REFRESH_RUNNING_S, ui.navigate.reload, once=True))


async def _run_document(runtime: Runtime, run: RunRecord) -> dict[str, Any] | None:
    """The flow document as it was when the run started (its version), if still stored."""
    if run.flow_id is None:
        return None
    try:
        versions = await runtime.db.flows.versions(run.flow_id)
    except NotFound:
        return None
    for version in versions:
        if version.version == run.flow_version:
            return version.document
    return versions[0].document if versions else None
