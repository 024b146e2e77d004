"""Studio benchmark: the canvas in Debian's Chromium, on a real NiceGUI server.

    .venv/bin/python bench/studio_bench.py [--show 300] [--drag 500] [--runs 5]

- time to show a flow: from navigation to the flow as a person sees it: every node drawn (in
  the DOM, measured and visible), every connection drawn, and the view at rest (fitted, no
  longer moving: the same transform two frames in a row; the time is that of the first),
  read off the page's own clock (`performance.now()` counts from navigation start); cold is a
  fresh browser context (empty cache), warm a reload; a 1-node flow shows what the page costs
  before the canvas draws anything;
- page weight: bytes sent over the wire for the page (HTML with the document, scripts, styles,
  fonts), as Chromium counts them;
- dragging a node with the mouse in a big flow: frames per second and the longest frames while
  it moves (the page's requestAnimationFrame clock), and ms per mouse step (each step waits
  until the page has handled the move).

The page is tests/canvas_app.py: the canvas alone, as the editor shows it, without the rest of
the studio. Chromium runs headless without a GPU, so the figures are on the slow side.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from tests.canvas_browser import CanvasServer, launch_chromium

KINDS = [
    ("data.set", {"values": {"n": "{{ input.n + 1 }}"}}),
    ("logic.condition", {"expression": "input.n > 3"}),
    ("http.request", {"method": "GET", "url": "https://example.com/api/items"}),
    ("ai.agent", {"provider": "openai", "model": "gpt-4o-mini", "prompt": "{{ input }}"}),
    ("data.template", {"template": "Item {{ input.n }}"}),
]

ALL_DRAWN = """([nodeCount, edgeCount]) => {
  const seen = (window.__benchShown ||= { transform: null, at: 0 })
  const notYet = () => { seen.transform = null; return false }
  const nodes = document.querySelectorAll('.vue-flow__node')
  if (nodes.length !== nodeCount) return notYet()
  for (const node of nodes) if (node.style.visibility === 'hidden' || !node.offsetWidth) return notYet()
  const paths = document.querySelectorAll('.vue-flow__edge path.vue-flow__edge-path')
  if (paths.length !== edgeCount) return notYet()
  for (const path of paths) if (!/^M[\\d.-]+,[\\d.-]+/.test(path.getAttribute('d') || '')) return notYet()
  const transform = document.querySelector('.vue-flow__transformationpane').style.transform
  if (transform === seen.transform) return seen.at
  seen.transform = transform
  seen.at = performance.now()
  return false
}"""

SCALE = """() => {
  const transform = document.querySelector('.vue-flow__transformationpane').style.transform
  return parseFloat(/scale\\(([^)]+)\\)/.exec(transform)[1])
}"""

MIDDLE_NODE = """() => {
  const pane = document.querySelector('.vue-flow').getBoundingClientRect()
  const cx = pane.left + pane.width / 2
  const cy = pane.top + pane.height / 2
  let best = null
  for (const node of document.querySelectorAll('.vue-flow__node')) {
    const r = node.getBoundingClientRect()
    const d = Math.hypot(r.left + r.width / 2 - cx, r.top + r.height / 2 - cy)
    if (!best || d < best.d) best = { d, id: node.dataset.id }
  }
  return best.id
}"""

DRAG_PROBE = """() => {
  const frames = []
  const tick = (t) => { frames.push(t); if (window.__dragging) requestAnimationFrame(tick) }
  window.__dragging = true
  window.__frames = frames
  requestAnimationFrame(tick)
}"""


def big_flow(count: int) -> dict[str, Any]:
    """`count` steps in rows of 20, each row a chain behind one trigger, like a long flow."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    per_row = 20
    for index in range(count):
        row, column = divmod(index, per_row)
        if column == 0:
            kind, config = "trigger.manual", {}
        else:
            kind, config = KINDS[index % len(KINDS)]
        nodes.append(
            {
                "id": f"n{index}",
                "type": kind,
                "name": f"Step {index}",
                "position": {"x": column * 280, "y": row * 180},
                "config": config,
            }
        )
        if column:
            previous = nodes[index - 1]
            port = "true" if previous["type"] == "logic.condition" else "out"
            edges.append({"source": previous["id"], "source_port": port, "target": f"n{index}"})
    return {"schema": "flowloom/1", "name": f"{count} steps", "nodes": nodes, "edges": edges}


def time_to_show(browser: Any, server: CanvasServer, count: int, runs: int) -> dict[str, Any]:
    flow = big_flow(count)
    server.put_document("show", flow)
    drawn = [count, len(flow["edges"])]
    cold: list[float] = []
    warm: list[float] = []
    weight: dict[str, int] = {}
    for run in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 820})
        page = context.new_page()
        sizes: dict[str, int] = {}

        def count_bytes(request: Any, sizes: dict[str, int] = sizes) -> None:
            measured = request.sizes()
            kind = request.resource_type
            sizes[kind] = (
                sizes.get(kind, 0) + measured["responseBodySize"] + measured["responseHeadersSize"]
            )

        page.on("requestfinished", count_bytes)
        page.goto(server.page_url("show"))
        cold.append(page.wait_for_function(ALL_DRAWN, arg=drawn, polling="raf").json_value())
        page.wait_for_load_state("networkidle")
        if run == 0:
            weight = dict(sizes)
        page.reload()
        warm.append(page.wait_for_function(ALL_DRAWN, arg=drawn, polling="raf").json_value())
        context.close()
    return {"cold": cold, "warm": warm, "weight": weight}


def drag_smoothness(browser: Any, server: CanvasServer, count: int, fit: bool) -> dict[str, float]:
    flow = big_flow(count)
    server.put_document("drag", flow)
    context = browser.new_context(viewport={"width": 1400, "height": 820})
    page = context.new_page()
    page.goto(server.page_url("drag"))
    page.wait_for_function(ALL_DRAWN, arg=[count, len(flow["edges"])], polling="raf")
    page.wait_for_timeout(400)
    if not fit:  # zoom in, around the middle of the view, to 100 %
        page.mouse.move(900, 420)
        for _ in range(60):
            if page.evaluate(SCALE) >= 0.97:
                break
            page.mouse.wheel(0, -60)
            page.wait_for_timeout(30)
        page.wait_for_timeout(300)
    node_id = page.evaluate(MIDDLE_NODE)
    target = page.locator(f".vue-flow__node[data-id='{node_id}']")
    box = target.bounding_box()
    assert box, f"node {node_id} is not on screen"
    x, y = box["x"] + box["width"] / 2, box["y"] + min(20, box["height"] / 2)
    steps = 120
    page.mouse.move(x, y)
    page.mouse.down()
    page.evaluate(DRAG_PROBE)
    started = time.perf_counter()
    page.mouse.move(x + 300, y + 200, steps=steps)
    took = time.perf_counter() - started
    page.mouse.up()
    zoom = page.evaluate(SCALE)
    frames: list[float] = page.evaluate(
        "() => { window.__dragging = false; return window.__frames }"
    )
    moved = target.bounding_box()
    context.close()
    assert moved and abs(moved["x"] - box["x"]) > 50, "the node did not follow the mouse"
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    span_s = (frames[-1] - frames[0]) / 1000 if len(frames) > 1 else took
    return {
        "ms_per_step": took * 1000 / steps,
        "fps": (len(frames) - 1) / span_s if span_s else 0.0,
        "p95_frame_ms": sorted(gaps)[int(len(gaps) * 0.95)] if gaps else 0.0,
        "max_frame_ms": max(gaps) if gaps else 0.0,
        "zoom": zoom,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", type=int, default=300, help="nodes in the flow to show")
    parser.add_argument("--drag", type=int, default=500, help="nodes in the flow to drag in")
    parser.add_argument("--runs", type=int, default=5, help="times to show the flow")
    options = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        server = CanvasServer(Path(folder) / "server.log").start()
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                baseline = time_to_show(browser, server, 1, options.runs)
                shown = time_to_show(browser, server, options.show, options.runs)
                fitted = drag_smoothness(browser, server, options.drag, fit=True)
                zoomed = drag_smoothness(browser, server, options.drag, fit=False)
                browser.close()
        finally:
            server.stop()

    # other work on the machine slows every figure: compare runs made under a similar load
    print(f"Load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"Show a flow (navigation → all drawn, view at rest; {options.runs} runs each):")
    for flow, figures in ((f"{options.show} nodes", shown), ("1 node", baseline)):
        for label in ("cold", "warm"):
            times = figures[label]
            print(
                f"  {flow:9} {label:4}  median {statistics.median(times):6.0f} ms   "
                f"best {min(times):6.0f} ms   worst {max(times):6.0f} ms"
            )
    print("  (target for 300 nodes: ≤ 1500 ms; 1 node is NiceGUI's page with an empty canvas)")
    weight = shown["weight"]
    print(f"Page weight (cold, {options.show}-node flow): {sum(weight.values()) / 1024:.0f} KiB")
    for kind, size in sorted(weight.items(), key=lambda item: -item[1]):
        print(f"  {kind:12} {size / 1024:8.1f} KiB")
    print(f"Drag a node in a {options.drag}-node flow (120 mouse steps):")
    for label, figures in (("all in view", fitted), ("100 % zoom", zoomed)):
        print(
            f"  {label:12} {figures['fps']:5.1f} frames/s   "
            f"p95 frame {figures['p95_frame_ms']:5.1f} ms   "
            f"longest {figures['max_frame_ms']:5.1f} ms   "
            f"{figures['ms_per_step']:5.1f} ms per mouse step   (zoom {figures['zoom']:.2f})"
        )


if __name__ == "__main__":
    main()
