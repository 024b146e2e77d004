"""The editor (`/flows/{id}`) with NiceGUI's simulated user: forms, validation, save, run."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import ui

from engine import default_registry
from storage import RunRecord
from studio.components.canvas import FlowCanvas
from tests.documents import chain, manual, step
from tests.fake_llm import (
    OPENAI,
    FakeLLM,
    fake_fixture,
    fake_llm_server_fixture,
    text,
)
from tests.studio_pages import Studio, studio

__all__ = ["fake_fixture", "fake_llm_server_fixture", "studio"]


def greeter() -> dict[str, Any]:
    document = chain(
        manual(),
        step("greet", "data.template", {"template": "Hi {{ input.who }}"}, name="Greet"),
    )
    document["name"] = "Greeter"
    return document


def canvas(studio: Studio) -> FlowCanvas:
    found = next(iter(studio.user.find(FlowCanvas).elements))
    assert isinstance(found, FlowCanvas)
    return found


def select(studio: Studio, node_id: str) -> None:
    studio.user.find(FlowCanvas).trigger("select", [node_id])


def only(studio: Studio, marker: str) -> Any:
    return next(iter(studio.user.find(marker).elements))


def field_box(studio: Studio, path: str) -> ui.textarea:
    with studio.user:
        column = only(studio, f"field-{path}")
        return next(e for e in column.descendants() if isinstance(e, ui.input))


def set_value(studio: Studio, element: Any, value: Any) -> None:
    """Type into an element as the person would (inside the page's context)."""
    with studio.user:
        element.value = value


def code_texts(studio: Studio, marker: str) -> str:
    with studio.user:
        box = only(studio, marker)
        return " ".join(e.content for e in box.descendants() if isinstance(e, ui.code))


async def finished_run(studio: Studio, flow_id: str, count: int) -> RunRecord:
    """The newest run of the flow once there are `count` runs and the newest has ended."""
    for _ in range(100):
        runs, total = await studio.runtime.db.runs.list(flow_id=flow_id)
        if total == count and runs[0].status not in ("queued", "running"):
            return await studio.runtime.db.runs.get(runs[0].id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished run number {count}")


async def open_editor(studio: Studio, document: dict[str, Any]) -> str:
    flow_id = await studio.create_flow(document)
    await studio.user.open(f"/flows/{flow_id}")
    await studio.sees("save-flow")
    return flow_id


async def test_config_panel_renders_every_field_of_every_node_type(studio: Studio) -> None:
    types = [node_type for node_type in default_registry() if not node_type.has_body]
    nodes = [manual()] + [
        {"id": t.type.replace(".", "_"), "type": t.type, "name": t.title, "config": {}}
        for t in types
        if t.type != "trigger.manual"
    ]
    await open_editor(studio, {"schema": "flowloom/1", "name": "All", "nodes": nodes})
    for node in nodes:
        described = next(t for t in types if t.type == node["type"]).describe()
        select(studio, node["id"])
        await studio.sees(described["title"])
        for name, schema in described["config_schema"].get("properties", {}).items():
            if "const" not in schema:
                await studio.sees(f"field-{name}")
            if schema.get("description"):
                await studio.sees(schema["description"])
        if "credential" in described["config_schema"].get("properties", {}):
            await studio.sees("credential-picker")
        await studio.sees("advanced")


async def test_editing_a_field_validates_live_and_save_stores_a_version(studio: Studio) -> None:
    flow_id = await open_editor(studio, greeter())
    select(studio, "greet")
    await studio.sees("field-template")
    box = field_box(studio, "template")
    set_value(studio, box, "Hi {{ input.who")
    await studio.sees("problem-template")
    await studio.sees("Unsaved changes")
    assert canvas(studio)._props["problems"][0]["node_id"] == "greet"
    studio.user.find("Problems").click()
    await studio.sees("problem")

    set_value(studio, box, "Hello {{ input.who }}!")
    studio.user.find("save-flow").click()
    await studio.sees("Saved · version 2")
    flow = await studio.runtime.db.flows.get(flow_id)
    assert flow.document["nodes"][1]["config"] == {"template": "Hello {{ input.who }}!"}
    assert canvas(studio)._props["problems"] == []


async def test_save_over_a_newer_version_offers_reload_or_a_copy(studio: Studio) -> None:
    flow_id = await open_editor(studio, greeter())
    other_tab = {**greeter(), "description": "changed elsewhere"}
    await studio.runtime.db.flows.update(flow_id, other_tab, base_version=1)
    select(studio, "greet")
    await studio.sees("step-name")
    set_value(studio, only(studio, "step-name"), "Say hello")
    studio.user.find("save-flow").click()
    await studio.sees("This flow was changed in another tab")
    studio.user.find("conflict-copy").click()
    await studio.sees("Saved · version 1")
    flows, _ = await studio.runtime.db.flows.list()
    copy = next(flow for flow in flows if flow.id != flow_id)
    assert copy.name == "Greeter (copy)"
    assert copy.document["nodes"][1]["name"] == "Say hello"
    assert (await studio.runtime.db.flows.get(flow_id)).version == 2


async def test_reload_after_a_conflict_shows_the_newer_version(studio: Studio) -> None:
    flow_id = await open_editor(studio, greeter())
    await studio.runtime.db.flows.update(
        flow_id, {**greeter(), "description": "from the other tab"}, base_version=1
    )
    studio.user.find("Flow").click()
    set_value(studio, only(studio, "flow-name"), "Greeter renamed")
    studio.user.find("save-flow").click()
    await studio.sees("conflict-reload")
    studio.user.find("conflict-reload").click()
    await studio.sees("Saved · version 2")
    await studio.sees("from the other tab")


async def test_run_dialog_refuses_json_that_does_not_parse(studio: Studio) -> None:
    flow_id = await open_editor(studio, greeter())
    studio.user.find("run-flow").click()
    await studio.sees("run-input")
    set_value(studio, only(studio, "run-input"), '{"who": Ada}')
    studio.user.find("start-run").click()
    await studio.sees("This is not valid JSON")
    assert (await studio.runtime.db.runs.list(flow_id=flow_id))[1] == 0


async def test_run_lights_up_each_step_and_shows_the_result(studio: Studio) -> None:
    flow_id = await open_editor(studio, greeter())
    studio.user.find("run-flow").click()
    await studio.sees("run-input")
    set_value(studio, only(studio, "run-input"), '{"who": "Ada"}')
    studio.user.find("start-run").click()
    await studio.sees("run-result")
    assert '"Hi Ada"' in code_texts(studio, "run-result")
    statuses = canvas(studio)._props["statuses"]
    assert {node: s["status"] for node, s in statuses.items()} == {
        "start": "succeeded",
        "greet": "succeeded",
    }
    studio.user.find("run-step-greet").click()
    await studio.sees("step-inspector")
    assert '"Hi Ada"' in code_texts(studio, "step-inspector")
    runs, _ = await studio.runtime.db.runs.list(flow_id=flow_id)
    assert runs[0].input == {"who": "Ada"}
    assert studio.runtime._watchers == {}  # the panel stopped listening when the run ended

    studio.user.find("run-flow").click()  # the next run starts from the last input
    await studio.sees("run-input")
    assert '"Ada"' in only(studio, "run-input").value


async def test_a_failed_run_names_the_step_and_jumps_to_it(studio: Studio) -> None:
    document = chain(
        manual(),
        step("divide", "data.set", {"values": {"ratio": "{{ 1 / input.zero }}"}}, name="Divide"),
    )
    await open_editor(studio, document)
    studio.user.find("run-flow").click()
    await studio.sees("run-input")
    set_value(studio, only(studio, "run-input"), '{"zero": 0}')
    studio.user.find("start-run").click()
    await studio.sees("The run failed at step “Divide”.")
    await studio.sees("step-error")
    assert canvas(studio)._props["statuses"]["divide"]["status"] == "failed"
    studio.user.find("jump-to-failed-step").click()
    await studio.sees("field-values")
    assert only(studio, "step-name").value == "Divide"


async def test_a_pinned_output_is_handed_on_instead_of_running_the_step(studio: Studio) -> None:
    document = chain(
        manual(),
        step("stamp", "data.set", {"values": {"run": "{{ run.id }}"}}, name="Stamp"),
        step("show", "data.template", {"template": "{{ input.run }}"}, name="Show"),
    )
    flow_id = await open_editor(studio, document)
    studio.user.find("run-flow").click()
    await studio.sees("start-run")
    studio.user.find("start-run").click()
    await studio.sees("run-result")
    first, _ = await studio.runtime.db.runs.list(flow_id=flow_id)
    studio.user.find("run-step-stamp").click()
    await studio.sees("pin-output")
    studio.user.find("pin-output").click()
    select(studio, "stamp")
    await studio.sees("pinned-output")

    studio.user.find("run-flow").click()
    await studio.sees("1 pinned step will not run")
    studio.user.find("start-run").click()
    second = await finished_run(studio, flow_id, count=2)
    assert second.output == {"text": first[0].id}
    await studio.sees("run-result")
    await studio.sees("status-pinned")
    saved = await studio.runtime.db.flows.get(flow_id)
    assert saved.document["x_pins"]["stamp"]["run"] == first[0].id


async def test_trigger_panels_show_the_webhook_address_and_the_next_fire_times(
    studio: Studio,
) -> None:
    document = {
        "schema": "flowloom/1",
        "name": "Triggers",
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "name": "Hook"},
            {
                "id": "tick",
                "type": "trigger.schedule",
                "name": "Tick",
                "config": {"cron": "*/5 * * * *"},
            },
        ],
    }
    flow_id = await open_editor(studio, document)
    select(studio, "hook")
    await studio.sees("webhook-url")
    token = await studio.runtime.db.triggers.webhook_token(flow_id, "hook")
    assert only(studio, "webhook-url").value.endswith(f"/hooks/{token}")
    select(studio, "tick")
    await studio.sees("Every 5 minutes")
    with studio.user:
        times = only(studio, "schedule-next-times").descendants()
        assert len([e for e in times if isinstance(e, ui.label)]) == 6  # a heading and five


async def test_active_switch_makes_the_webhook_listen(studio: Studio) -> None:
    document = {
        "schema": "flowloom/1",
        "name": "Hooked",
        "nodes": [{"id": "hook", "type": "trigger.webhook", "name": "Hook"}],
    }
    flow_id = await open_editor(studio, document)
    studio.user.find("active-toggle").click()
    await studio.sees("Active: its webhooks and schedules now start runs.")
    assert (await studio.runtime.db.flows.get(flow_id)).active
    studio.user.find("active-toggle").click()
    await studio.sees("Inactive: its webhooks and schedules are off.")
    assert not (await studio.runtime.db.flows.get(flow_id)).active


async def test_a_model_answer_streams_in_and_the_step_shows_its_tokens(
    studio: Studio, fake: FakeLLM
) -> None:
    await studio.runtime.db.credentials.put(
        "openai-test", "openai", {"api_key": "sk-test", "base_url": fake.openai_url}
    )
    fake.script(text("Hello there, Ada. Welcome aboard!"))
    document = chain(
        manual(), step("reply", "ai.agent", {**OPENAI, "prompt": "{{ input.q }}"}, name="Reply")
    )
    await open_editor(studio, document)
    studio.user.find("run-flow").click()
    await studio.sees("run-input")
    set_value(studio, only(studio, "run-input"), '{"q": "hi"}')
    studio.user.find("start-run").click()
    await studio.sees("Reply is writing…")
    await studio.sees("run-result")
    with studio.user:
        streamed = [
            e.text for e in only(studio, "live-text").descendants() if isinstance(e, ui.label)
        ]
    assert "Hello there, Ada. Welcome aboard!" in streamed
    studio.user.find("run-step-reply").click()
    await studio.sees("step-usage")
    await studio.sees("Model gpt-4o-mini")
