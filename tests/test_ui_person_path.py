"""A person's path through the studio in a real browser (Debian's Chromium via Playwright).

New flow → drag a step from the palette → connect it → fill in its form → save → reload →
run → watch the steps turn green → open a step's output. One `flowloom studio` process, which
styles its pages with the prebuilt Tailwind CSS.

`FLOWLOOM_SCREENSHOTS=docs pytest tests/test_ui_person_path.py` refreshes
docs/screenshot-editor.png, the README's picture of the editor.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright_api

from tests.canvas_browser import launch_chromium
from tests.flowloom_process import REPO, free_port

SCREENSHOTS = os.environ.get("FLOWLOOM_SCREENSHOTS")


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`flowloom studio` on a free loopback port with a data dir of its own."""
    folder = tmp_path_factory.mktemp("studio")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
    env.pop("PYTEST_CURRENT_TEST", None)  # NiceGUI would think it runs under its test plugin
    env.update(FLOWLOOM_DATA_DIR=str(folder / "data"), FLOWLOOM_PORT=str(port))
    log_path = folder / "studio.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio", "studio"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the studio did not start:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def page(studio_url: str) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        tab = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        yield tab
        browser.close()
    assert not errors, f"the page raised: {errors}"


def node(page: Any, node_id: str) -> Any:
    return page.locator(f".vue-flow__node[data-id='{node_id}']")


def center(locator: Any) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_a_person_builds_saves_runs_and_inspects_a_flow(page: Any, studio_url: str) -> None:
    page.goto(studio_url)
    page.get_by_test_id("new-flow").click()
    page.get_by_test_id("create-flow").click()
    node(page, "start").wait_for()

    # drag "Text from template" from the palette to the right of the Start step
    start_box = node(page, "start").bounding_box()
    page.get_by_test_id("palette-data.template").drag_to(
        page.locator(".vue-flow__pane"),
        target_position={"x": start_box["x"] + 60, "y": start_box["y"] + 40},
    )
    added = page.locator(".vue-flow__node:not([data-id='start'])")
    added.wait_for()
    new_id = added.get_attribute("data-id")

    # connect Start's output to the new step's input
    page.mouse.move(*center(node(page, "start").locator(".vue-flow__handle[data-handleid='out']")))
    page.mouse.down()
    page.mouse.move(
        *center(node(page, new_id).locator(".vue-flow__handle[data-handleid='in']")), steps=12
    )
    page.mouse.up()
    page.locator(".vue-flow__edge").wait_for()

    # fill in its form
    node(page, new_id).click()
    template = page.get_by_test_id("field-template").locator("textarea")
    template.fill("Hello {{ input.name }}!")
    page.get_by_text("Unsaved changes").wait_for()
    page.get_by_test_id("save-flow").click()
    page.get_by_text("Saved · version 2").wait_for()

    # what was saved is what comes back
    page.reload()
    node(page, new_id).wait_for()
    page.locator(".vue-flow__edge").wait_for()
    node(page, new_id).click()
    assert page.get_by_test_id("field-template").locator("textarea").input_value() == (
        "Hello {{ input.name }}!"
    )

    # run it and watch each step turn green
    page.get_by_test_id("run-flow").click()
    run_input = page.get_by_test_id("run-input").locator(".cm-content")
    run_input.click()
    page.keyboard.press("Control+a")
    page.keyboard.type('{"name": "Ada"}')
    page.get_by_test_id("start-run").click()
    node(page, new_id).and_(page.locator(".status-succeeded")).wait_for()
    assert "status-succeeded" in (node(page, "start").get_attribute("class") or "")
    page.get_by_text("The run succeeded").wait_for()

    # open the step's output
    page.get_by_test_id(f"run-step-{new_id}").click()
    page.locator("[data-testid=step-output], .q-tab-panel").get_by_text(
        "Hello Ada!"
    ).first.wait_for()


WELCOME = {
    "schema": "flowloom/1",
    "name": "Welcome new customers",
    "description": "Greets a new customer and flags the big accounts for a call.",
    "nodes": [
        {
            "id": "start",
            "type": "trigger.manual",
            "name": "New customer",
            "position": {"x": 0, "y": 120},
        },
        {
            "id": "profile",
            "type": "data.set",
            "name": "Profile",
            "position": {"x": 280, "y": 120},
            "config": {
                "values": {
                    "greeting": "Welcome, {{ input.name }}!",
                    "big": "{{ input.seats > 50 }}",
                }
            },
        },
        {
            "id": "big",
            "type": "logic.condition",
            "name": "Big account?",
            "position": {"x": 560, "y": 120},
            "config": {"expression": "input.big"},
        },
        {
            "id": "call",
            "type": "data.template",
            "name": "Book a call",
            "position": {"x": 860, "y": 20},
            "config": {
                "template": "Call {{ nodes.Profile.name }} this week about {{ nodes.Profile.seats }} seats."
            },
        },
        {
            "id": "mail",
            "type": "data.template",
            "name": "Send welcome mail",
            "position": {"x": 860, "y": 240},
            "config": {"template": "{{ input.greeting }} Here is how to start."},
        },
    ],
    "edges": [
        {"source": "start", "target": "profile"},
        {"source": "profile", "target": "big"},
        {"source": "big", "source_port": "true", "target": "call"},
        {"source": "big", "source_port": "false", "target": "mail"},
    ],
}


def test_the_editor_after_a_run_shows_the_step_and_makes_a_picture(
    page: Any, studio_url: str, tmp_path: Path
) -> None:
    flow = httpx.post(f"{studio_url}/api/v1/flows", json={"document": WELCOME}).json()
    httpx.post(
        f"{studio_url}/api/v1/flows/{flow['id']}/runs?wait=5", json={"name": "Ada", "seats": 120}
    )
    page.goto(f"{studio_url}/flows/{flow['id']}")
    node(page, "call").wait_for()
    page.get_by_test_id("run-flow").click()
    page.get_by_test_id("start-run").click()
    page.get_by_text("The run succeeded").wait_for()
    page.get_by_test_id("run-step-call").click()
    page.wait_for_timeout(500)
    folder = REPO / SCREENSHOTS if SCREENSHOTS else tmp_path  # =docs refreshes the README's
    folder.mkdir(exist_ok=True)
    picture = folder / "screenshot-editor.png"
    page.screenshot(path=str(picture))
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 20_000  # a drawn page, not a blank one


def test_pages_are_styled_by_the_prebuilt_css_not_tailwinds_browser_runtime(
    page: Any, studio_url: str
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(studio_url)
    title = page.locator(".text-2xl", has_text="Flows")
    title.wait_for()
    page.wait_for_load_state("networkidle")

    assert not [url for url in requested if "tailwindcss" in url]  # NiceGUI's runtime
    stylesheets = [url for url in requested if re.search(r"/_flowloom/\w+/tailwind\.css$", url)]
    assert len(stylesheets) == 1, requested
    # its URL changes with its content, so browsers may keep it
    assert httpx.get(stylesheets[0]).headers["cache-control"] == "public, max-age=31536000"

    # the studio's Tailwind classes take effect: the title's text-2xl and font-semibold, and
    # the templates' `grid-cols-1 md:grid-cols-3` (a variant) at this width
    assert title.evaluate("e => getComputedStyle(e).fontSize") == "24px"
    assert title.evaluate("e => getComputedStyle(e).fontWeight") == "600"
    columns = page.locator(".nicegui-grid").evaluate("e => getComputedStyle(e).gridTemplateColumns")
    assert len(columns.split()) == 3, columns


def test_a_long_flow_description_is_cut_short_in_its_own_column(page: Any, studio_url: str) -> None:
    document = {**WELCOME, "name": "Long story", "description": "words " * 80}
    assert httpx.post(f"{studio_url}/api/v1/flows", json={"document": document}).is_success
    page.goto(studio_url)
    summary = page.get_by_text(" · words words", exact=False).first
    summary.wait_for()
    header = page.get_by_text("Last changed", exact=True).first

    box, column = summary.bounding_box(), header.bounding_box()
    assert box is not None and column is not None
    assert box["x"] + box["width"] <= column["x"]  # it ends before the next column starts
    assert summary.evaluate("e => e.scrollWidth > e.clientWidth")  # cut, with an ellipsis
    # the row's "last changed" cell starts where its column's header does
    changed_x = summary.evaluate(
        "e => e.closest('.nicegui-row.w-full').querySelector('.w-36').getBoundingClientRect().x"
    )
    assert abs(changed_x - column["x"]) < 2
