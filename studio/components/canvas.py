"""The flow canvas: Vue Flow (the library n8n's canvas uses) as a NiceGUI element.

CONTRACT (the canvas bundle implements it; pages only use this class):

    canvas = FlowCanvas(document, node_types, readonly=False)
    canvas.on_change(lambda document: ...)    # the whole flow document after every edit
    canvas.on_select(lambda node_ids: ...)    # the selected nodes' ids
    canvas.on_open(lambda node_id: ...)       # a node double-clicked: open its settings
    canvas.set_document(document)             # replace what is drawn (restore, import)
    canvas.update_document(patch)             # flow-level keys edited in a form (name, settings)
    canvas.update_node(node_id, patch)        # e.g. {"name": ..., "config": {...}} from a form
    canvas.set_problems(problems)             # Problem.to_dict() list: red badges on nodes
    canvas.set_status(node_id, status, duration_s=None, tokens=None)  # during/after a run
    canvas.clear_statuses()
    canvas.fit_view(); canvas.auto_layout(); canvas.undo(); canvas.redo()

`node_types` is `[NodeType.describe() for every registered type]` (type, title, icon,
category, description, is_trigger, outputs, config_schema). The palette lives inside the
canvas; its entries carry `data-testid="palette-<type>"`. Canvas nodes carry their node id
(Vue Flow's `data-id`) and a status class (`status-running`, `status-succeeded`,
`status-failed`, `status-skipped`).

What the canvas promises:

- Handlers get plain JSON data. `on_change` fires 150 ms after the last edit (drags, typing in
  a note, a burst of deletes send one document) with the whole document; every key the canvas
  does not draw (flow and node `settings`, `vars`, `config`, `tool`, unknown keys) comes back
  as it was given. Handlers may be coroutines.
- Edits the page makes (`update_node`, `auto_layout`, `undo`, `redo`) are edits too: they are
  undoable and come back through `on_change`. `set_document` is not an edit: it starts a new
  undo history and sends nothing back.
- `update_document` merges `patch` into the document's own keys (`name`, `settings`, `vars`,
  keys of the page's own such as `x_pins`; None removes one), in every undo step too, so that
  the next `on_change` (and an undo) carries them; `nodes`, `edges` and `x_notes` are the
  canvas's and are left alone. Call it whenever a form changes such a key.
- `update_node` merges `patch` into the node's keys (a key set to None is removed; the id
  stays); ports follow the config, e.g. a switch's new case gets its own handle.
- Status and problems may be set before the page is shown (a run replayed on load).
- Drawn, and kept in the document: loop bodies inside their loop's box (nodes with `"parent"`,
  positions relative to the box; a loop's box size as `"size": {"width", "height"}`), sticky
  notes under the document key `"x_notes"` (`[{"id", "text", "position", "size"}]`, which the
  engine ignores). A new node gets a unique id from its kind (`condition_2`), a unique name
  from its type's title ("If / else 2") and its config from the schema's defaults.
- Edges the canvas adds carry `source_port` and `target_port`.
- `readonly=True` (run replay): no palette, nothing moves or connects; selecting and
  double-clicking still report.

The browser side is the ES module built from `assets/canvas` into `canvas_bundle/` next to
this file (`make canvas`, which `make studio` and `make test` run when its sources changed).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nicegui import background_tasks, ui
from nicegui.dependencies import register_esm
from nicegui.events import GenericEventArguments

BUNDLE_DIR = Path(__file__).parent / "canvas_bundle"
BUNDLE_MODULE = "flowloom-canvas"
#: Document keys the canvas draws (and owns); the rest is the page's.
DRAWN_KEYS = frozenset({"nodes", "edges", "x_notes"})
#: Starts downloading the bundle, and the icon font every step shows, with the page's own
#: scripts: otherwise the bundle is requested only once `flow_canvas.js`, which imports it, has
#: arrived, and the font only once the first icon is drawn. The bundle's URL is the page's
#: import map's; the font is the one NiceGUI's stylesheet declares.
PRELOAD_HTML = f"""<script>
(() => {{
  for (const face of document.fonts) if (face.family.replace(/"/g, "") === "Material Icons") face.load()
  const map = document.querySelector('script[type="importmap"]')
  const url = map && JSON.parse(map.textContent).imports["{BUNDLE_MODULE}"]
  if (!url) return
  const link = Object.assign(document.createElement("link"), {{ rel: "modulepreload", href: url }})
  document.head.append(link)
}})()
</script>"""

Handler = Callable[[Any], Awaitable[None] | None]


_registered = False


def bundle_registered() -> None:
    """Serve the built bundle as the ES module `flowloom-canvas` (once per process).

    Registered on first use rather than at import, so that importing the studio never fails
    when the bundle is not built yet, and the error says how to build it.
    """
    global _registered
    if _registered:
        return
    if not (BUNDLE_DIR / "index.js").is_file():
        raise FileNotFoundError(
            f"The canvas bundle is missing ({BUNDLE_DIR / 'index.js'}). Build it with "
            "`make canvas` (needs Node.js and npm), or run `make studio`, which builds it."
        )
    register_esm(BUNDLE_MODULE, BUNDLE_DIR, max_time=(BUNDLE_DIR / "index.js").stat().st_mtime)
    _registered = True


class FlowCanvas(ui.element, component="flow_canvas.js"):
    """The flow canvas: palette, steps, connections, loop boxes, sticky notes, run statuses."""

    def __init__(
        self,
        document: Mapping[str, Any],
        node_types: Sequence[Mapping[str, Any]],
        readonly: bool = False,
    ) -> None:
        bundle_registered()
        super().__init__()
        if PRELOAD_HTML not in self.client.head_html:
            ui.add_head_html(PRELOAD_HTML)
        self._props["document"] = copy.deepcopy(dict(document))
        self._props["nodeTypes"] = [dict(node_type) for node_type in node_types]
        self._props["readonly"] = readonly
        self._props["revision"] = 0
        self._props["problems"] = []
        self._props["statuses"] = {}
        self.on("change", self._changed)

    @property
    def document(self) -> dict[str, Any]:
        """The document as last drawn or edited (the canvas's latest `on_change`)."""
        document: dict[str, Any] = self._props["document"]
        return document

    # -- events ------------------------------------------------------------------------------

    def on_change(self, handler: Handler) -> FlowCanvas:
        """Call `handler(document)` with the whole document after every edit (debounced)."""
        return self._listen("change", handler)

    def on_select(self, handler: Handler) -> FlowCanvas:
        """Call `handler(node_ids)` whenever the selection changes (a list, maybe empty)."""
        return self._listen("select", handler)

    def on_open(self, handler: Handler) -> FlowCanvas:
        """Call `handler(node_id)` when a node is double-clicked (or Enter is pressed on it)."""
        return self._listen("open", handler)

    def _listen(self, event: str, handler: Handler) -> FlowCanvas:
        def forward(arguments: GenericEventArguments) -> None:
            result = handler(arguments.args)
            if isinstance(result, Awaitable):
                background_tasks.create(_awaited(result), name=f"canvas {event}")

        self.on(event, forward)
        return self

    def _changed(self, arguments: GenericEventArguments) -> None:
        # kept so that a re-render (reconnect) draws the latest document, not the first one
        self._props["document"] = arguments.args

    # -- what pages call ---------------------------------------------------------------------

    def set_document(self, document: Mapping[str, Any]) -> None:
        """Draw `document` instead of what is drawn (a new undo history; no `on_change`)."""
        self._props["document"] = copy.deepcopy(dict(document))
        self._props["revision"] += 1
        self.update()

    def update_document(self, patch: Mapping[str, Any]) -> None:
        """Merge flow-level keys (name, settings, vars…; None removes one) into the document."""
        document = self.document
        for key, value in patch.items():
            if key in DRAWN_KEYS:
                continue
            if value is None:
                document.pop(key, None)
            else:
                document[key] = copy.deepcopy(value)
        self.run_method("update_document", dict(patch))

    def update_node(self, node_id: str, patch: Mapping[str, Any]) -> None:
        """Merge `patch` into node `node_id` (None removes a key); an undoable edit."""
        self.run_method("update_node", node_id, dict(patch))

    def set_problems(self, problems: Sequence[Mapping[str, Any]]) -> None:
        """Show `Problem.to_dict()`s: a badge on each node named, flow-wide ones on top."""
        self._props["problems"] = [dict(problem) for problem in problems]
        self.run_method("set_problems", self._props["problems"])

    def set_status(
        self,
        node_id: str,
        status: str,
        duration_s: float | None = None,
        tokens: int | None = None,
    ) -> None:
        """Mark node `node_id` with `status` (`status-<status>` class) and its figures."""
        self._props["statuses"][node_id] = {
            "status": status,
            "duration_s": duration_s,
            "tokens": tokens,
        }
        self.run_method("set_status", node_id, status, duration_s, tokens)

    def clear_statuses(self) -> None:
        """Remove every run status from the nodes."""
        self._props["statuses"] = {}
        self.run_method("clear_statuses")

    def fit_view(self) -> None:
        """Zoom and pan so that the whole flow is in view."""
        self.run_method("fit_view")

    def auto_layout(self) -> None:
        """Arrange the steps in layers from left to right (an undoable edit)."""
        self.run_method("auto_layout")

    def undo(self) -> None:
        """Undo the last edit."""
        self.run_method("undo")

    def redo(self) -> None:
        """Redo the last undone edit."""
        self.run_method("redo")


async def _awaited(result: Awaitable[None]) -> None:
    await result
