"""The flows page (`/`) with NiceGUI's simulated user."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload

from tests.documents import chain, manual, step
from tests.studio_pages import Studio, studio

__all__ = ["studio"]


def greeter(name: str) -> dict[str, Any]:
    document = chain(manual(), step("greet", "data.template", {"template": "Hi {{ input.who }}"}))
    document["name"] = name
    return document


def texts_in(studio: Studio, marker: str) -> list[str]:
    with studio.user:
        box = next(iter(studio.user.find(marker).elements))
        return [element.text for element in box.descendants() if isinstance(element, ui.label)]


async def upload(studio: Studio, filename: str, content: bytes) -> None:
    uploader = next(iter(studio.user.find(ui.upload).elements))
    await uploader.handle_uploads([SmallFileUpload(filename, "application/json", content)])


async def test_list_shows_flows_with_state(studio: Studio) -> None:
    await studio.create_flow(greeter("Morning report"))
    await studio.user.open("/")
    await studio.sees("Morning report")
    await studio.sees("Never run")
    await studio.sees("Start from a template")


async def test_new_flow_suggests_a_free_name_and_opens_the_editor(studio: Studio) -> None:
    await studio.create_flow(greeter("Untitled flow"))
    await studio.user.open("/")
    studio.user.find("new-flow").click()
    await studio.sees("new-flow-name")
    assert next(iter(studio.user.find("new-flow-name").elements)).value == "Untitled flow 2"
    studio.user.find("create-flow").click()
    await studio.sees("save-flow")
    flows, total = await studio.runtime.db.flows.list()
    assert total == 2
    created = next(flow for flow in flows if flow.name == "Untitled flow 2")
    assert [node["type"] for node in created.document["nodes"]] == ["trigger.manual"]


async def test_template_creates_a_flow_of_its_own_each_time(studio: Studio) -> None:
    for _ in range(2):
        await studio.user.open("/")
        studio.user.find("template-support_triage").click()
        await studio.sees("save-flow")
    flows, _ = await studio.runtime.db.flows.list()
    assert sorted(flow.name for flow in flows) == ["Support triage", "Support triage 2"]
    assert all(len(flow.document["nodes"]) == 6 for flow in flows)


async def test_import_refuses_a_broken_flow_listing_every_problem(studio: Studio) -> None:
    await studio.user.open("/")
    broken = {"schema": "flowloom/1", "nodes": [{"id": "a", "type": "data.sett"}], "edges": []}
    await upload(studio, "broken.json", json.dumps(broken).encode())
    await studio.sees("broken.json could not be imported")
    problems = texts_in(studio, "import-problems")
    assert any("data.sett" in text for text in problems)
    assert any("no trigger" in text for text in problems)

    studio.user.find("OK").click()
    await upload(studio, "notes.json", b"{oops")
    await studio.sees("notes.json could not be imported")
    problems = texts_in(studio, "import-problems")
    assert any("not valid JSON" in text and "line 1" in text for text in problems)
    assert (await studio.runtime.db.flows.list())[1] == 0


async def test_import_creates_the_flow_under_a_free_name(studio: Studio) -> None:
    await studio.create_flow(greeter("Greeter"))
    await studio.user.open("/")
    await upload(studio, "greeter.flow.json", json.dumps(greeter("Greeter")).encode())
    await studio.sees("save-flow")
    flows, _ = await studio.runtime.db.flows.list()
    assert sorted(flow.name for flow in flows) == ["Greeter", "Greeter 2"]


async def test_delete_asks_first(studio: Studio) -> None:
    await studio.create_flow(greeter("Doomed"))
    await studio.user.open("/")
    studio.user.find("delete").click()
    await studio.sees("Delete “Doomed”?")
    studio.user.find("confirm-delete").click()
    await studio.sees("No flows yet")
    assert (await studio.runtime.db.flows.list())[1] == 0
