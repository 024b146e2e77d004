"""Settings (`/settings`) and the run history (`/runs`, `/runs/{id}`) with NiceGUI's simulated user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nicegui import Client

from engine.settings import Settings
from studio.runtime import Runtime
from tests.documents import chain, manual, step
from tests.studio_pages import Studio, studio

__all__ = ["studio"]

SECRET = "sk-test-9c1e7d5a3b"


def everything_sent_to_the_browser(client: Client) -> str:
    """Every element's props, text and classes on the page, as the browser receives them."""
    return json.dumps([element._to_dict() for element in client.elements.values()], default=str)


def stamping_flow(name: str = "Stamper") -> dict[str, Any]:
    document = chain(
        manual(),
        step("stamp", "data.set", {"values": {"run": "{{ run.id }}"}}, name="Stamp"),
        step("show", "data.template", {"template": "{{ input.run }} {{ input.n }}"}, name="Show"),
    )
    document["name"] = name
    return document


async def test_settings_adds_a_credential_and_never_sends_its_secret(studio: Studio) -> None:
    await studio.runtime.db.credentials.put("stored", "anthropic", {"api_key": SECRET})
    client = await studio.user.open("/settings")
    await studio.sees("stored")
    await studio.sees("Anthropic API key · fields: api_key · changed just now")
    assert SECRET not in everything_sent_to_the_browser(client)

    studio.user.find("add-credential").click()
    await studio.sees("credential-name")
    with studio.user:
        next(iter(studio.user.find("credential-name").elements)).value = "my openai"
        next(iter(studio.user.find("credential-field-api_key").elements)).value = SECRET + "2"
    studio.user.find("save-credential").click()
    await studio.sees("Saved credential my openai.")
    await studio.sees("OpenAI API key · fields: api_key · changed just now")
    assert await studio.runtime.db.credentials.get_credential("my openai") == {
        "api_key": SECRET + "2"
    }
    assert SECRET not in everything_sent_to_the_browser(client)
    await studio.sees("retention-defaults")


async def test_settings_deletes_a_credential_after_asking(studio: Studio) -> None:
    await studio.runtime.db.credentials.put("old", "generic", {"value": SECRET})
    await studio.user.open("/settings")
    studio.user.find("delete").click()
    await studio.sees("confirm-delete")
    studio.user.find("confirm-delete").click()
    await studio.sees("No credentials yet")


async def test_run_history_filters_by_flow_and_status(studio: Studio) -> None:
    kept = await studio.runtime.db.flows.create(stamping_flow("Kept"))
    other = await studio.runtime.db.flows.create(stamping_flow("Other"))
    for flow in (kept, other, kept):
        record = await studio.runtime.submit(flow, {"n": 1})
        await studio.runtime.wait(record.id, 5)
    await studio.user.open(f"/runs?flow={kept.id}")
    await studio.sees("2 runs")
    await studio.user.open("/runs?status=failed")
    await studio.sees("No runs here yet")
    await studio.user.open("/runs")
    await studio.sees("3 runs")


async def test_a_past_run_replays_on_its_canvas_and_runs_again_from_a_step(
    studio: Studio,
) -> None:
    flow = await studio.runtime.db.flows.create(stamping_flow())
    first = await studio.runtime.submit(flow, {"n": 1})
    await studio.runtime.wait(first.id, 5)
    await studio.user.open(f"/runs/{first.id}")
    await studio.sees("run-result")
    studio.user.find("step-show").click()
    await studio.sees("rerun-from-step")
    studio.user.find("rerun-from-step").click()
    await studio.sees("Running again from “Show”…")
    runs, total = await studio.runtime.db.runs.list(flow_id=flow.id)
    assert total == 2
    await studio.runtime.wait(runs[0].id, 5)
    again = await studio.runtime.db.runs.get(runs[0].id)
    assert again.status == "succeeded"
    assert again.output == {"text": f"{first.id} 1"}  # Stamp's output came from the first run


def waiting_flow() -> dict[str, Any]:
    document = chain(manual(), step("wait", "flow.delay", {"seconds": 30}, name="Wait"))
    document["name"] = "Waits"
    return document


async def test_a_running_run_is_stopped_from_its_page(studio: Studio) -> None:
    flow = await studio.runtime.db.flows.create(waiting_flow())
    record = await studio.runtime.submit(flow, {})
    await studio.until(lambda: studio.runtime.is_running(record.id))
    await studio.user.open(f"/runs/{record.id}")
    await studio.sees("stop-run")
    studio.user.find("stop-run").click()
    await studio.sees("The run was stopped.")

    run = await studio.runtime.db.runs.get(record.id)
    assert run.status == "cancelled"
    assert not studio.runtime.is_running(record.id)
    await studio.user.open(f"/runs/{record.id}")
    await studio.sees("The run was cancelled.")
    assert len(studio.user.find("The run was cancelled.").elements) == 1  # said once
    await studio.user.should_not_see("stop-run")  # nothing left to stop


async def test_a_run_another_process_runs_is_stopped_from_its_page(
    studio: Studio, tmp_path: Path
) -> None:
    # `flowloom serve` beside the studio on one database took a webhook; its run hangs.
    serve = Runtime(Settings(data_dir=tmp_path / "data", sync_s=0.05))
    await serve.start(recover=False)
    try:
        flow = await serve.db.flows.create(waiting_flow())
        record = await serve.submit(flow, {})
        await studio.until(lambda: serve.is_running(record.id))
        await studio.user.open(f"/runs/{record.id}")
        studio.user.find("stop-run").click()
        await studio.sees("The run was stopped.")
        await serve.flushed()
        run = await studio.runtime.db.runs.get(record.id)
    finally:
        await serve.stop()

    assert (run.status, run.owner) == ("cancelled", serve.instance_id)
    assert run.steps[-1].status == "cancelled"  # serve stopped the step itself
