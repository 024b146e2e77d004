"""A NiceGUI app that shows FlowCanvas and reports what it does, for browser tests and benches.

    python -m tests.canvas_app PORT

- `PUT /test/documents/{key}` stores a flow document under `key`;
- `/test/canvas?keys=a,b` shows one canvas per key, side by side, each drawing its document;
- `PUT /test/statuses/{key}` stores `{node_id: [status, duration_s, tokens]}` that the next
  page showing `key` sets while it builds the canvas (a run replayed on load);
- `GET /test/events` lists what the canvases reported (`{"canvas", "event", "value"}`),
  `DELETE /test/events` forgets them;
- `POST /test/call/{key}/{method}` with a JSON list calls `FlowCanvas.<method>(*args)` on the
  last canvas shown for `key` (set_status, set_problems, update_node, auto_layout…).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

from fastapi import Body, HTTPException
from nicegui import app, ui

from studio.components.canvas import FlowCanvas
from studio.components.node_catalog import node_types
from studio.components.styles import link_prebuilt_tailwind

documents: dict[str, dict[str, Any]] = {}
statuses: dict[str, dict[str, list[Any]]] = {}
events: list[dict[str, Any]] = []
canvases: dict[str, FlowCanvas] = {}
CALLABLE = {
    "set_document",
    "update_document",
    "update_node",
    "set_problems",
    "set_status",
    "clear_statuses",
    "fit_view",
    "auto_layout",
    "undo",
    "redo",
}


@app.put("/test/documents/{key}")
def put_document(key: str, document: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    documents[key] = document
    return {"stored": key}


@app.put("/test/statuses/{key}")
def put_statuses(key: str, preset: Annotated[dict[str, list[Any]], Body()]) -> dict[str, str]:
    statuses[key] = preset
    return {"stored": key}


@app.get("/test/events")
def get_events() -> list[dict[str, Any]]:
    return events


@app.delete("/test/events")
def clear_events() -> dict[str, int]:
    count = len(events)
    events.clear()
    return {"cleared": count}


@app.post("/test/call/{key}/{method}")
def call(key: str, method: str, args: Annotated[list[Any], Body()]) -> dict[str, str]:
    if method not in CALLABLE or key not in canvases:
        raise HTTPException(404, f"no canvas {key!r} or method {method!r}")
    getattr(canvases[key], method)(*args)
    return {"called": method}


def recorder(key: str, event: str) -> Any:
    def record(value: Any) -> None:
        events.append({"canvas": key, "event": event, "value": value})

    return record


@ui.page("/test/canvas")
def canvas_page(keys: str = "main", readonly: bool = False) -> None:
    ui.query(".nicegui-content").classes("p-0")
    with ui.row().classes("w-full no-wrap gap-2").style("height: 100vh"):
        for key in keys.split(","):
            document = documents.get(
                key, {"schema": "flowloom/1", "name": key, "nodes": [], "edges": []}
            )
            canvas = FlowCanvas(document, node_types(), readonly=readonly)
            canvas.classes("h-full flex-1 min-w-0").props(f'data-canvas="{key}"')
            canvas.on_change(recorder(key, "change"))
            canvas.on_select(recorder(key, "select"))
            canvas.on_open(recorder(key, "open"))
            for node_id, args in statuses.pop(key, {}).items():
                canvas.set_status(node_id, *args)
            canvases[key] = canvas


if __name__ in {"__main__", "__mp_main__"}:
    link_prebuilt_tailwind()  # as the studio does (no Tailwind runtime in the browser)
    ui.run(
        host="127.0.0.1",
        port=int(sys.argv[1]) if len(sys.argv) > 1 else 8765,
        reload=False,
        show=False,
        show_welcome_message=False,
        title="FlowLoom canvas test",
        tailwind=False,
    )
