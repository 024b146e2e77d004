"""The canvas in a real browser: Debian's Chromium driving FlowCanvas on a real NiceGUI server.

One server and one browser for the module; each test opens a fresh page on its own documents.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api

from tests.canvas_browser import EXAMPLES, CanvasServer, launch_chromium

# `FLOWLOOM_SCREENSHOTS=docs pytest tests/test_canvas_browser.py` refreshes the README's picture.
SCREENSHOTS = os.environ.get("FLOWLOOM_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanvasServer]:
    app = CanvasServer(tmp_path_factory.mktemp("canvas") / "server.log").start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: CanvasServer) -> Iterator[Any]:
    server.clear_events()
    context = browser.new_context(viewport={"width": 1400, "height": 820})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"the page raised: {errors}"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return document


def chain(*ids: str, **extra: Any) -> dict[str, Any]:
    """A trigger and then `data.set` steps, left to right, wired one after another."""
    nodes = [
        {
            "id": node_id,
            "type": "trigger.manual" if at == 0 else "data.set",
            "name": node_id.title(),
            "position": {"x": 320 * at, "y": 80},
            "config": {} if at == 0 else {"values": {"step": at}},
        }
        for at, node_id in enumerate(ids)
    ]
    edges = [{"source": a, "target": b} for a, b in itertools.pairwise(ids)]
    return {"schema": "flowloom/1", "name": "Chain", "nodes": nodes, "edges": edges, **extra}


def show(page: Any, server: CanvasServer, readonly: bool = False, **documents: Any) -> None:
    for key, document in documents.items():
        server.put_document(key, document)
    page.goto(server.page_url(*documents, readonly=readonly))
    for key, document in documents.items():
        count = len(document["nodes"]) + len(document.get("x_notes", []))
        if count:
            page.wait_for_function(
                "([key, count]) => document.querySelectorAll("
                "`[data-canvas='${key}'] .vue-flow__node`).length === count",
                arg=[key, count],
            )
        else:
            page.locator(f"[data-canvas='{key}'] [data-testid=canvas-empty]").wait_for()
    page.wait_for_timeout(150)  # the first fit of the view


def node(page: Any, node_id: str, canvas: str = "main") -> Any:
    return page.locator(f"[data-canvas='{canvas}'] .vue-flow__node[data-id='{node_id}']")


def handle(page: Any, node_id: str, port: str, canvas: str = "main") -> Any:
    return node(page, node_id, canvas).locator(f".vue-flow__handle[data-handleid='{port}']")


def center(locator: Any) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()


def ids_of(document: dict[str, Any]) -> list[str]:
    return [n["id"] for n in document["nodes"]]


def edge_list(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (e["source"], e.get("source_port", "out"), e["target"], e.get("target_port", "in"))
        for e in document["edges"]
    ]


# -- adding, connecting, deleting ----------------------------------------------------------


def test_dragging_from_the_palette_adds_a_node_and_sends_the_document(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main={"schema": "flowloom/1", "name": "Empty", "nodes": [], "edges": []})
    assert page.locator("[data-testid=canvas-empty]").is_visible()

    pane = page.locator("[data-canvas='main'] .vue-flow__pane")
    page.locator("[data-testid='palette-trigger.webhook']").drag_to(
        pane, target_position={"x": 300, "y": 260}
    )
    page.locator("[data-testid='palette-logic.condition']").drag_to(
        pane, target_position={"x": 700, "y": 260}
    )

    document = server.wait_for("change", lambda d: len(d["nodes"]) == 2)
    webhook, condition = document["nodes"]
    assert webhook["type"] == "trigger.webhook" and webhook["name"] == "Webhook"
    assert webhook["config"] == {
        "response": "sync",
        "timeout_s": 30,
        "max_body_bytes": 10485760,
        "allowed_origins": "*",
    }
    assert condition["id"] == "condition" and condition["name"] == "If / else"
    assert condition["position"]["x"] > webhook["position"]["x"] + 200
    assert node(page, "webhook").is_visible() and node(page, "condition").is_visible()
    assert not page.locator("[data-testid=canvas-empty]").is_visible()
    # a trigger has no input handle; a condition has "true" and "false"
    assert node(page, "webhook").locator(".vue-flow__handle.target").count() == 0
    assert handle(page, "condition", "true").is_visible()
    assert handle(page, "condition", "false").is_visible()


def test_click_in_the_palette_adds_after_the_selected_step_and_connects_it(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=chain("start"))
    node(page, "start").click()
    page.locator("[data-testid='palette-logic.condition']").click()
    page.locator("[data-testid='palette-data.set']").click()
    page.locator("[data-testid='palette-data.set']").click()

    document = server.wait_for("change", lambda d: len(d["nodes"]) == 4)
    assert [n["name"] for n in document["nodes"]] == [
        "Start",
        "If / else",
        "Set values",
        "Set values 2",
    ]
    assert edge_list(document) == [
        ("start", "out", "condition", "in"),
        ("condition", "true", "set", "in"),
        ("set", "out", "set_2", "in"),
    ]


def test_dragging_from_a_handle_to_another_connects_the_two(
    page: Any, server: CanvasServer
) -> None:
    document = chain("start", "check", "yes")
    document["nodes"][1].update(type="logic.condition", config={"expression": "input.ok"})
    document["edges"] = [{"source": "start", "target": "check"}]
    show(page, server, main=document)

    drag(page, center(handle(page, "check", "true")), center(handle(page, "yes", "in")))

    changed = server.wait_for("change", lambda d: len(d["edges"]) == 2)
    assert changed["edges"][-1] == {
        "source": "check",
        "source_port": "true",
        "target": "yes",
        "target_port": "in",
    }
    assert page.locator("[data-canvas='main'] .vue-flow__edge").count() == 2


def test_delete_key_and_the_small_cross_remove_steps_and_connections(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=chain("start", "middle", "end"))

    node(page, "middle").click()
    page.keyboard.press("Delete")
    document = server.wait_for("change", lambda d: len(d["nodes"]) == 2)
    assert ids_of(document) == ["start", "end"] and document["edges"] == []

    node(page, "end").click()
    node(page, "end").locator("[data-testid=node-delete]").click()
    document = server.wait_for("change", lambda d: len(d["nodes"]) == 1)
    assert ids_of(document) == ["start"]


def test_selected_connection_has_a_cross_that_removes_it(page: Any, server: CanvasServer) -> None:
    show(page, server, main=chain("start", "end"))
    (x1, y1), (x2, y2) = center(handle(page, "start", "out")), center(handle(page, "end", "in"))
    page.mouse.click((x1 + x2) / 2, (y1 + y2) / 2)
    page.locator("[data-testid=edge-delete]").click()
    document = server.wait_for("change", lambda d: d["edges"] == [])
    assert ids_of(document) == ["start", "end"]


def test_undo_and_redo_walk_the_history_of_documents(page: Any, server: CanvasServer) -> None:
    show(page, server, main=chain("start", "middle", "end"))

    node(page, "middle").click()
    page.keyboard.press("Delete")
    server.wait_for("change", lambda d: len(d["nodes"]) == 2)

    server.clear_events()
    page.keyboard.press("Control+z")
    restored = server.wait_for("change")
    assert ids_of(restored) == ["start", "middle", "end"]
    assert edge_list(restored) == [
        ("start", "out", "middle", "in"),
        ("middle", "out", "end", "in"),
    ]
    assert node(page, "middle").is_visible()

    server.clear_events()
    page.keyboard.press("Control+Shift+z")
    assert ids_of(server.wait_for("change")) == ["start", "end"]

    server.clear_events()
    server.call("main", "undo")  # the page's own undo button goes the same way
    assert ids_of(server.wait_for("change")) == ["start", "middle", "end"]
    server.clear_events()
    page.keyboard.press("Control+y")
    assert ids_of(server.wait_for("change")) == ["start", "end"]


def test_copy_and_paste_between_two_canvases_renames_and_keeps_inner_edges(
    page: Any, server: CanvasServer
) -> None:
    source = chain("start", "first", "second")
    source["nodes"][2]["settings"] = {"retries": 2}
    target = chain("first")
    show(page, server, a=source, b=target)

    node(page, "first", "a").click()
    node(page, "second", "a").click(modifiers=["Shift"])
    page.keyboard.press("Control+c")

    pane = page.locator("[data-canvas='b'] .vue-flow__pane")
    pane.click(position={"x": 200, "y": 420})
    page.keyboard.press("Control+v")

    pasted = server.wait_for("change", lambda d: len(d["nodes"]) == 3, canvas="b")
    assert ids_of(pasted) == ["first", "first_2", "second"]
    assert [n["name"] for n in pasted["nodes"]] == ["First", "First 2", "Second"]
    assert pasted["nodes"][2]["settings"] == {"retries": 2}
    assert edge_list(pasted) == [("first_2", "out", "second", "in")]
    assert node(page, "first_2", "b").is_visible()
    assert not server.events("change", canvas="a")


# -- layout ----------------------------------------------------------------------------------


def test_auto_layout_places_steps_left_to_right(page: Any, server: CanvasServer) -> None:
    document = chain("start", "middle", "end")
    for at, position in enumerate([(900, 400), (0, 0), (450, 700)]):
        document["nodes"][at]["position"] = {"x": position[0], "y": position[1]}
    show(page, server, main=document)

    page.locator("[data-testid=canvas-layout]").click()

    laid_out = server.wait_for("change")
    x = {n["id"]: n["position"]["x"] for n in laid_out["nodes"]}
    y = {n["id"]: n["position"]["y"] for n in laid_out["nodes"]}
    assert x["start"] + 240 < x["middle"] and x["middle"] + 240 < x["end"]
    assert y["start"] == y["middle"] == y["end"]


def test_a_flow_without_positions_is_laid_out_when_drawn(page: Any, server: CanvasServer) -> None:
    # As the REST API or an imported file may send it: no step says where it goes.
    document = chain("start", "middle", "end")
    for step in document["nodes"]:
        del step["position"]
    show(page, server, readonly=True, main=document)
    page.wait_for_timeout(300)  # the layout engine loads on first use

    boxes = {n: node(page, n).bounding_box() for n in ("start", "middle", "end")}
    assert boxes["start"]["x"] + boxes["start"]["width"] < boxes["middle"]["x"]
    assert boxes["middle"]["x"] + boxes["middle"]["width"] < boxes["end"]["x"]
    assert boxes["start"]["y"] == boxes["middle"]["y"] == boxes["end"]["y"]
    assert not server.events("change")  # drawing is not an edit


# -- the view: drawing a flow, the minimap --------------------------------------------------


def edge_paths(page: Any, canvas: str = "main") -> Any:
    return page.locator(f"[data-canvas='{canvas}'] .vue-flow__edge path.vue-flow__edge-path")


def view_transform(page: Any, canvas: str = "main") -> str:
    pane = page.locator(f"[data-canvas='{canvas}'] .vue-flow__transformationpane")
    transform: str = pane.evaluate("(pane) => pane.style.transform")
    return transform


def test_a_flow_is_drawn_whole_in_view_with_arrows_on_its_connections(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=chain("start", "middle", "end"))
    edge_paths(page).nth(1).wait_for(state="attached")
    assert edge_paths(page).count() == 2
    # every connection ends in an arrow the page defines
    assert edge_paths(page).evaluate_all(
        "(paths) => paths.every((path) => {"
        "  const id = /url\\('#(.+)'\\)/.exec(path.getAttribute('marker-end'))?.[1];"
        "  return Boolean(id) && document.getElementById(id) !== null })"
    )
    pane = page.locator("[data-canvas='main'] .vue-flow").bounding_box()
    for node_id in ("start", "middle", "end"):
        box = node(page, node_id).bounding_box()
        assert pane["x"] <= box["x"] and box["x"] + box["width"] <= pane["x"] + pane["width"]
        assert pane["y"] <= box["y"] and box["y"] + box["height"] <= pane["y"] + pane["height"]


def test_the_page_fetches_the_canvas_bundle_with_its_own_scripts(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, a=chain("start"), b=chain("end"))
    bundle = page.evaluate(
        "() => new URL(JSON.parse(document.querySelector('script[type=importmap]').textContent)"
        ".imports['flowloom-canvas'], location.href).href"
    )
    preloaded = page.locator("link[rel=modulepreload]").evaluate_all(
        "(links) => links.map((link) => link.href)"
    )
    assert preloaded.count(bundle) == 1  # once, for both canvases


def test_set_document_draws_the_new_flow_and_starts_a_new_history(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=chain("start", "middle", "end"))
    other = chain("first", "second")
    server.call("main", "set_document", other)
    node(page, "second").wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll(`[data-canvas='main'] .vue-flow__node`).length === 2"
    )
    assert edge_paths(page).count() == 1

    # the same steps again, connected otherwise: drawn though they were measured before
    other["edges"] = []
    server.call("main", "set_document", other)
    page.wait_for_function(
        "() => document.querySelectorAll(`[data-canvas='main'] .vue-flow__edge`).length === 0"
    )
    other["edges"] = [{"source": "second", "target": "first"}]
    server.call("main", "set_document", other)
    page.locator("[data-canvas='main'] .vue-flow__edge[data-id='second:out->first:in']").wait_for()
    assert edge_paths(page).count() == 1

    assert page.locator("[data-testid=canvas-undo]").is_disabled()
    page.wait_for_timeout(300)
    assert not server.events("change")


def test_the_minimap_draws_the_steps_and_pans_and_zooms_the_view(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=chain("start", "middle", "end"))
    minimap = page.locator("[data-canvas='main'] .vue-flow__minimap svg")
    minimap.locator(".vue-flow__minimap-node").wait_for()
    drawn = minimap.locator(".vue-flow__minimap-node").get_attribute("d") or ""
    assert drawn.count("M") == 3  # one outline per step

    before = view_transform(page)
    page.mouse.move(*center(minimap))
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        f"() => document.querySelector('.vue-flow__transformationpane')"
        f".style.transform !== {json.dumps(before)}"
    )
    zoomed = view_transform(page)
    assert zoomed.split("scale")[1] != before.split("scale")[1]

    x, y = center(minimap)
    drag(page, (x, y), (x + 30, y + 10))
    panned = view_transform(page)
    assert panned != zoomed and panned.split("scale")[1] == zoomed.split("scale")[1]
    assert not server.events("change")


def test_zoomed_in_on_a_big_flow_only_the_steps_in_view_are_in_the_page(
    page: Any, server: CanvasServer
) -> None:
    ids = [f"s{at}" for at in range(240)]
    big = chain(*ids)
    for at, step in enumerate(big["nodes"]):
        step["position"] = {"x": 280 * (at % 20), "y": 180 * (at // 20)}
    show(page, server, main=big)
    everything = "[data-canvas='main'] .vue-flow__node"
    assert page.locator(everything).count() == 240  # the whole flow is in view

    page.mouse.move(900, 420)
    for _ in range(30):
        page.mouse.wheel(0, -200)
    page.wait_for_function(f"() => document.querySelectorAll(`{everything}`).length < 100")

    # what the page is sent is still the whole flow
    shown = page.locator(everything).first.get_attribute("data-id")
    node(page, shown).click()
    page.keyboard.press("Delete")
    document = server.wait_for("change")
    kept = [e for e in big["edges"] if shown not in (e["source"], e["target"])]
    assert len(document["nodes"]) == 239 and document["edges"] == kept

    page.locator("[data-testid=canvas-fit]").click()
    page.wait_for_function(f"() => document.querySelectorAll(`{everything}`).length === 239")


# -- run statuses and problems ---------------------------------------------------------------


def test_set_status_marks_the_node_with_its_data_id(page: Any, server: CanvasServer) -> None:
    show(page, server, main=example("support_triage"))

    server.call("main", "set_status", "triage", "running")
    page.locator(".vue-flow__node.status-running[data-id='triage']").wait_for()

    server.call("main", "set_status", "triage", "succeeded", 1.24, 345)
    server.call("main", "set_status", "billing", "failed", 0.3)
    server.call("main", "set_status", "other", "skipped")
    page.locator(".vue-flow__node.status-succeeded[data-id='triage']").wait_for()
    assert "status-running" not in (node(page, "triage").get_attribute("class") or "")
    assert node(page, "triage").locator("[data-testid=node-figures]").inner_text() == (
        "1.2 s · 345 tokens"
    )
    page.locator(".vue-flow__node.status-failed[data-id='billing']").wait_for()
    page.locator(".vue-flow__node.status-skipped[data-id='other']").wait_for()

    server.call("main", "clear_statuses")
    page.wait_for_function("() => !document.querySelector('.vue-flow__node[class*=status-]')")


def test_status_set_while_the_page_is_built_is_drawn(page: Any, server: CanvasServer) -> None:
    server.put_statuses("main", {"end": ["failed", 2.5, None]})
    show(page, server, main=chain("start", "end"))
    page.locator(".vue-flow__node.status-failed[data-id='end']").wait_for()
    assert node(page, "end").locator("[data-testid=node-figures]").inner_text() == "2.5 s"


def test_set_problems_shows_a_badge_with_the_message(page: Any, server: CanvasServer) -> None:
    show(page, server, main=example("support_triage"))
    message = "'Triage' (triage): 'model' must be set."
    server.call(
        "main",
        "set_problems",
        [
            {"level": "error", "code": "config", "message": message, "node_id": "triage"},
            {"level": "error", "code": "shape", "message": "The flow has no trigger."},
        ],
    )
    badge = node(page, "triage").locator("[data-testid=problem-badge]")
    badge.wait_for()
    assert badge.get_attribute("title") == message
    assert (
        page.locator("[data-testid=flow-problems]")
        .inner_text()
        .strip()
        .endswith("The flow has no trigger.")
    )
    assert node(page, "billing").locator("[data-testid=problem-badge]").count() == 0

    server.call("main", "set_problems", [])
    badge.wait_for(state="detached")


# -- loops, notes, what survives ------------------------------------------------------------


def test_loop_box_holds_its_body_and_dropping_into_it_sets_parent(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=example("planner_workers"))
    box = node(page, "each").bounding_box()
    worker = node(page, "work").bounding_box()
    assert box["x"] < worker["x"] and worker["x"] + worker["width"] < box["x"] + box["width"]
    assert box["y"] < worker["y"] and worker["y"] + worker["height"] < box["y"] + box["height"]

    # moving the box moves its body and keeps it the box's
    head = node(page, "each").locator(".fl-loop-head")
    start = center(head)
    drag(page, start, (start[0], start[1] + 60))
    moved = server.wait_for("change")
    work = next(n for n in moved["nodes"] if n["id"] == "work")
    assert work["parent"] == "each" and work["position"] == {"x": 40, "y": 60}

    # a step dropped into the box joins its body; dragged out, it leaves it
    box = node(page, "each").bounding_box()
    pane = page.locator("[data-canvas='main'] .vue-flow__pane")
    corner = pane.bounding_box()
    page.locator("[data-testid='palette-data.template']").drag_to(
        pane,
        target_position={
            "x": box["x"] - corner["x"] + box["width"] - 100,
            "y": box["y"] - corner["y"] + 120,
        },
    )
    added = server.wait_for("change", lambda d: any(n["id"] == "template" for n in d["nodes"]))
    assert next(n for n in added["nodes"] if n["id"] == "template")["parent"] == "each"

    server.clear_events()
    start = center(node(page, "template").locator(".fl-node-head"))
    drag(page, start, (start[0], box["y"] + box["height"] + 150))
    out = server.wait_for("change")
    assert "parent" not in next(n for n in out["nodes"] if n["id"] == "template")


def test_sticky_note_is_kept_under_x_notes(page: Any, server: CanvasServer) -> None:
    show(page, server, main=chain("start"))
    page.locator("[data-testid=canvas-note]").click()
    document = server.wait_for("change", lambda d: len(d.get("x_notes", [])) == 1)
    assert document["x_notes"][0]["id"] == "note"
    note = page.locator(".vue-flow__node[data-id='note:note']")
    note.dblclick()
    page.keyboard.type("Ask Sam before changing the prompt.")
    node(page, "start").click()
    written = server.wait_for("change", lambda d: d["x_notes"][0]["text"] != "")
    assert written["x_notes"][0]["text"] == "Ask Sam before changing the prompt."
    assert ids_of(written) == ["start"]


def test_unknown_keys_survive_an_edit(page: Any, server: CanvasServer) -> None:
    document = chain("start", "end", vars={"team": "support"}, x_owner={"name": "Ada"})
    document["settings"] = {"timezone": "Europe/Paris", "timeout_s": 60}
    document["description"] = "Kept as it is."
    document["nodes"][1].update(
        settings={"retries": 3, "on_error": "continue"},
        tool={"description": "Sets a value", "parameters": {"type": "object"}},
        x_color="teal",
    )
    document["edges"][0]["x_label"] = "always"
    show(page, server, main=copy.deepcopy(document))

    start = center(node(page, "end").locator(".fl-node-head"))
    drag(page, start, (start[0] + 100, start[1] + 50))

    edited = server.wait_for("change")
    moved = edited["nodes"][1]["position"]
    assert moved != document["nodes"][1]["position"]
    document["nodes"][1]["position"] = moved
    assert edited == document


def test_update_node_from_the_page_redraws_its_ports(page: Any, server: CanvasServer) -> None:
    document = chain("start", "route")
    document["nodes"][1].update(
        type="logic.switch",
        config={"cases": [{"port": "small", "expression": "input.n < 10"}], "default": "other"},
    )
    show(page, server, main=document)
    assert handle(page, "route", "small").is_visible()

    server.call(
        "main",
        "update_node",
        "route",
        {
            "name": "Size",
            "config": {
                "cases": [
                    {"port": "small", "expression": "input.n < 10"},
                    {"port": "large", "expression": "input.n >= 10"},
                ],
                "default": "other",
            },
            "settings": {"on_error": "route"},
        },
    )
    handle(page, "route", "large").wait_for()
    assert handle(page, "route", "error").is_visible()
    assert node(page, "route").locator(".fl-node-name").inner_text() == "Size"
    changed = server.wait_for("change")
    assert changed["nodes"][1]["name"] == "Size"


def test_double_click_opens_and_selection_is_reported(page: Any, server: CanvasServer) -> None:
    show(page, server, main=chain("start", "end"))
    node(page, "end").click()
    assert server.wait_for("select", lambda ids: ids == ["end"]) == ["end"]
    node(page, "start").dblclick()
    assert server.wait_for("open") == "start"


def test_readonly_canvas_has_no_palette_and_does_not_move(page: Any, server: CanvasServer) -> None:
    show(page, server, readonly=True, main=chain("start", "end"))
    assert page.locator("[data-testid^=palette-]").count() == 0

    def offset() -> tuple[float, float]:
        (x1, y1), (x2, y2) = center(node(page, "start")), center(node(page, "end"))
        return x2 - x1, y2 - y1

    before = offset()
    start = center(node(page, "end"))
    drag(page, start, (start[0] + 120, start[1] + 80))  # pans the view instead
    assert offset() == before
    page.keyboard.press("Delete")
    page.wait_for_timeout(300)
    assert not server.events("change")
    assert node(page, "end").is_visible()


def test_screenshot_of_an_example_flow(page: Any, server: CanvasServer, tmp_path: Path) -> None:
    """A run drawn on an example flow: the README's picture (docs/screenshot-canvas.png)."""
    page.set_viewport_size({"width": 1440, "height": 760})
    show(page, server, main=example("support_triage"))
    server.call("main", "set_status", "incoming", "succeeded", 0.01)
    server.call("main", "set_status", "triage", "succeeded", 0.82, 412)
    server.call("main", "set_status", "technical", "running")
    server.call("main", "set_status", "billing", "skipped")
    server.call("main", "set_status", "other", "skipped")
    page.locator(".vue-flow__node.status-running[data-id='technical']").wait_for()
    assert page.locator("[data-canvas='main'] .vue-flow__edge.edge-taken").count() == 2
    assert page.locator("[data-canvas='main'] .vue-flow__edge.animated").count() == 1
    page.wait_for_timeout(300)
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / "screenshot-canvas.png"))


def test_flow_keys_set_by_the_page_survive_later_edits_and_undo(
    page: Any, server: CanvasServer
) -> None:
    show(page, server, main=chain("start", "middle", "end", settings={"timezone": "UTC"}))
    node(page, "middle").click()
    page.keyboard.press("Delete")
    server.wait_for("change", lambda d: len(d["nodes"]) == 2)

    server.call("main", "update_document", {"settings": {"timezone": "Asia/Tokyo"}, "x_pins": {}})
    server.clear_events()
    page.keyboard.press("Control+z")
    restored = server.wait_for("change")
    assert ids_of(restored) == ["start", "middle", "end"]
    assert restored["settings"] == {"timezone": "Asia/Tokyo"} and restored["x_pins"] == {}
