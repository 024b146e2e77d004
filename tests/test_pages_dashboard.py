"""The live dashboard (`/dashboard`) with NiceGUI's simulated user."""

from __future__ import annotations

from pathlib import Path

from nicegui import ui

from engine.settings import Settings
from studio.runtime import Runtime
from tests.documents import chain, manual, step
from tests.studio_pages import Studio, studio

__all__ = ["studio"]


async def test_dashboard_shows_live_run_numbers(studio: Studio) -> None:
    document = chain(manual(), step("fail", "data.set", {"values": {"n": "{{ 1 // input.z }}"}}))
    document["name"] = "Dashboard sample"
    flow = await studio.runtime.db.flows.create(document)
    for z in (1, 1, 0):
        record = await studio.runtime.submit(flow, {"z": z})
        await studio.runtime.wait(record.id, 5)

    await studio.user.open("/dashboard")
    await studio.sees("Runs in the last hour")
    await studio.sees("Run time p50 / p95 since start")  # not the last hour: says so

    def shown(testid: str) -> str:
        (label,) = studio.user.find(marker=testid).elements
        assert isinstance(label, ui.label)
        return label.text

    await studio.until(lambda: shown("dashboard-hour") == "3")
    chart = next(iter(studio.user.find(marker="dashboard-runs-chart").elements))
    assert isinstance(chart, ui.echart)
    series = {s["name"]: sum(s["data"]) for s in chart.options["series"]}
    assert series == {"succeeded": 2, "failed": 1}
    assert shown("dashboard-active") == "0"
    assert "/" in shown("dashboard-latency")
    await studio.sees("No agent has run in the last 24 hours.")

    record = await studio.runtime.submit(flow, {"z": 1})
    await studio.runtime.wait(record.id, 5)
    await studio.until(lambda: shown("dashboard-hour") == "4", timeout_s=6)  # live, no reload


async def test_an_empty_chart_says_so_without_a_stray_axis_name(studio: Studio) -> None:
    await studio.user.open("/dashboard")
    await studio.sees("Runs in the last hour")
    chart = next(iter(studio.user.find(marker="dashboard-steps").elements))
    assert isinstance(chart, ui.echart)

    await studio.until(lambda: chart.options.get("title", {}).get("show") is True)
    assert chart.options["title"]["text"] == "No step has run in this studio since it started"
    assert chart.options["yAxis"]["name"] == ""  # "seconds" hung over an empty chart


async def test_runs_going_on_count_those_another_process_runs(
    studio: Studio, tmp_path: Path
) -> None:
    # `flowloom serve` beside the studio on one database runs a webhook's long run.
    serve = Runtime(Settings(data_dir=tmp_path / "data"))
    await serve.start(recover=False)
    try:
        document = chain(manual(), step("wait", "flow.delay", {"seconds": 30}))
        flow = await serve.db.flows.create(document)
        record = await serve.submit(flow, {})
        await studio.until(lambda: serve.is_running(record.id))
        await studio.user.open("/dashboard")
        await studio.sees("Runs going on now")
        (label,) = studio.user.find(marker="dashboard-active").elements
        assert isinstance(label, ui.label)
        await studio.until(lambda: label.text == "1")
        await serve.cancel(record.id)
        await studio.until(lambda: label.text == "0", timeout_s=6)
    finally:
        await serve.stop()
