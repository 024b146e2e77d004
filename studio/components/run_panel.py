"""A run followed live: each step lights up on the canvas, model text streams in as it is
written, every step can be opened, and the end says in plain words how it went.

Engine events arrive through `Runtime.watch` on the event loop; the panel only queues them
there and draws them on a short timer, in the page's own context.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nicegui import ui

from engine import (
    Event,
    RunFinished,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRecord,
    StepSkipped,
    StepStarted,
    TokenStreamed,
)
from storage import RunRecord
from studio.components.canvas import FlowCanvas
from studio.components.layout import test_id
from studio.components.status import status_chip
from studio.components.steps import StepView, run_outcome, step_inspector
from studio.components.wording import duration
from studio.runtime import Runtime

DRAW_EVERY_S = 0.15

#: How each step event shows on the canvas (the canvas knows four statuses).
_CANVAS_STATUS = {
    StepStarted: "running",
    StepFinished: "succeeded",
    StepFailed: "failed",
    StepSkipped: "skipped",
    StepCancelled: "skipped",
}


class RunPanel:
    """The Run tab of the editor. `follow(run)` starts showing a run that was just submitted."""

    def __init__(
        self,
        runtime: Runtime,
        canvas: FlowCanvas,
        *,
        on_rerun: Callable[[StepView], Any],
        on_pin: Callable[[StepView], Any],
        on_jump: Callable[[str], Any],
    ) -> None:
        self.runtime = runtime
        self.canvas = canvas
        self.on_rerun = on_rerun
        self.on_pin = on_pin
        self.on_jump = on_jump
        self.run_id: str | None = None
        self.status = "idle"
        self.started = 0.0
        self._events: list[Event] = []
        self._stop_watching: Callable[[], None] | None = None
        self._visits: dict[str, list[StepRecord]] = {}
        self._streams: dict[str, ui.label] = {}
        self._rows: dict[str, ui.element] = {}
        self._inspected: str | None = None

        with ui.column().classes("w-full gap-3") as self.root:
            self.header = ui.row().classes("w-full items-center gap-2 no-wrap")
            self.outcome = ui.column().classes("w-full gap-2")
            self.streams = ui.column().classes("w-full gap-2").mark("live-text")
            self.steps_title = ui.label("Steps").classes("font-semibold")
            self.steps = ui.column().classes("w-full gap-1").mark("run-steps")
            self.inspector = ui.column().classes("w-full gap-2").mark("step-inspector")
        self._show_idle()
        ui.timer(DRAW_EVERY_S, self._draw)
        ui.context.client.on_delete(self.close)

    # -- life cycle ---------------------------------------------------------------------------

    def follow(self, run: RunRecord) -> None:
        """Show `run` from its first event; call right after `Runtime.submit` returned it."""
        self.close()
        self.run_id, self.status, self.started = run.id, "running", time.monotonic()
        self._events.clear()
        self._visits.clear()
        self._streams.clear()
        self._rows.clear()
        self._inspected = None
        self._stop_watching = self.runtime.watch(run.id, self._events.append)
        self.canvas.clear_statuses()
        for part in (self.outcome, self.streams, self.steps, self.inspector):
            part.clear()
        self.steps_title.set_visibility(True)
        self._draw_header()

    def close(self) -> None:
        """Stop listening to the run (the page closed, or another run is followed)."""
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None

    # -- drawing ------------------------------------------------------------------------------

    def _show_idle(self) -> None:
        self.header.clear()
        with self.header:
            ui.icon("play_circle", size="1.5rem").classes("text-slate-400")
            ui.label("Press Run to try the flow; each step lights up as it works.").classes(
                "text-slate-500"
            )
        self.steps_title.set_visibility(False)

    def _draw_header(self) -> None:
        self.header.clear()
        with self.header:
            status_chip(self.status, dense=False)
            self.clock = ui.label().classes("text-sm text-slate-500")
            ui.space()
            if self.status == "running":
                test_id(
                    ui.button("Stop", icon="stop", on_click=self._cancel).props(
                        "outline dense color=negative"
                    ),
                    "cancel-run",
                )
            elif self.run_id:
                ui.link("Open in run history", f"/runs/{self.run_id}").classes("text-sm")
        self._tick()

    def _tick(self) -> None:
        if self.status == "running":
            self.clock.text = f"running for {duration(time.monotonic() - self.started)}"

    async def _cancel(self) -> None:
        if self.run_id:
            await self.runtime.cancel(self.run_id)

    def _draw(self) -> None:
        if self.run_id is None:
            return
        self._tick()
        events, self._events[:] = list(self._events), []
        for event in events:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, TokenStreamed):
            self._stream(event.node_id, event.text)
        elif isinstance(event, StepFailed) and event.will_retry:
            self._stream(
                event.step.node_id, f"\n[attempt {event.step.attempts} failed; retrying]\n"
            )
        elif isinstance(
            event, StepStarted | StepFinished | StepFailed | StepSkipped | StepCancelled
        ):
            self._step(event.step, _CANVAS_STATUS[type(event)])
        elif isinstance(event, RunFinished):
            self._finish(event)

    def _step(self, record: StepRecord, status: str) -> None:
        visits = self._visits.setdefault(record.node_id, [])
        if not visits or visits[-1] is not record:
            visits.append(record)
        tokens = record.input_tokens + record.output_tokens
        self.canvas.set_status(
            record.node_id,
            status,
            duration_s=record.duration_s if status != "running" else None,
            tokens=tokens or None,
        )
        self._draw_row(record, status)
        if self._inspected == record.node_id and status != "running":
            self.inspect(record.node_id)

    def _draw_row(self, record: StepRecord, status: str) -> None:
        if record.item_index is not None:
            return  # steps inside a loop show on the loop's own row
        row = self._rows.get(record.node_id)
        if row is None:
            with self.steps:
                row = self._rows[record.node_id] = test_id(
                    ui.button(on_click=lambda: self.inspect(record.node_id))
                    .props("flat no-caps align=left dense")
                    .classes("w-full"),
                    f"run-step-{record.node_id}",
                )
        row.clear()
        view = StepView.from_record(record)
        with row, ui.row().classes("w-full items-center no-wrap gap-2"):
            ui.label(record.node_name).classes("flex-grow text-left truncate")
            if view.duration_s is not None and status in ("succeeded", "failed"):
                ui.label(duration(view.duration_s)).classes("text-xs text-slate-500")
            status_chip("pinned" if view.pinned else status)

    def _stream(self, node_id: str, text: str) -> None:
        label = self._streams.get(node_id)
        if label is None:
            name = next((r.node_name for r in self._visits.get(node_id, [])), node_id)
            with self.streams, ui.card().classes("w-full p-3 gap-1 shadow-none bg-indigo-50"):
                ui.label(f"{name} is writing…").classes("text-xs text-indigo-700 font-medium")
                label = self._streams[node_id] = ui.label("").classes("text-sm whitespace-pre-wrap")
        label.text += text

    def _finish(self, event: RunFinished) -> None:
        self.status = event.status
        self.close()
        self._draw_header()
        self.outcome.clear()
        with self.outcome:
            run_outcome(
                event.status, event.output, event.error, event.duration_s, on_jump=self.on_jump
            )
        failed = (event.error or {}).get("node_id")
        if failed:
            self.inspect(failed)

    def inspect(self, node_id: str) -> None:
        """Open one step of the run in the inspector below the step list."""
        self._inspected = node_id
        self.inspector.clear()
        visits = [StepView.from_record(record) for record in self._visits.get(node_id, [])]
        with self.inspector:
            ui.separator()
            step_inspector(
                visits,
                on_rerun=self.on_rerun if self.status not in ("running", "idle") else None,
                on_pin=self.on_pin,
            )

    def has_step(self, node_id: str) -> bool:
        return node_id in self._visits
