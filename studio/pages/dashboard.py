"""`/dashboard`: live numbers of every flow — runs, failures, latency, webhook traffic, model
tokens and cost, agent health and the next schedule fires. Refreshes every 2 seconds."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from engine.metrics import Histogram, RunMetrics
from studio.components.layout import page_title, test_id
from studio.runtime import Runtime

REFRESH_S = 2.0
STATUS_COLORS = {
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#94a3b8",
    "interrupted": "#f59e0b",
    "running": "#4f46e5",
    "queued": "#a5b4fc",
    "waiting": "#0ea5e9",
}


def merged(histograms: list[Histogram]) -> Histogram | None:
    """Several histograms with the same buckets as one."""
    if not histograms:
        return None
    total = Histogram(histograms[0].bounds)
    for histogram in histograms:
        total.counts = [a + b for a, b in zip(total.counts, histogram.counts, strict=True)]
        total.total += histogram.total
        total.observations += histogram.observations
    return total


def seconds_text(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def empty_hint(options: dict[str, Any], has_data: bool, text: str) -> None:
    """A quiet line in the middle of a chart that has nothing to show yet."""
    options["title"] = {
        "show": not has_data,
        "text": text,
        "left": "center",
        "top": "middle",
        "textStyle": {"color": "#94a3b8", "fontSize": 13, "fontWeight": "normal"},
    }


class Dashboard:
    """The dashboard's elements and how they are refreshed from the runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.metrics: RunMetrics = runtime.metrics
        self.webhook_samples: deque[tuple[str, dict[str, int]]] = deque(maxlen=90)
        with ui.row().classes("w-full gap-4"):
            self.active = self._card("Runs going on now", "play_circle", "dashboard-active")
            self.last_hour = self._card("Runs in the last hour", "history", "dashboard-hour")
            self.latency = self._card(
                "Run time p50 / p95 since start", "timer", "dashboard-latency"
            )
            self.cost = self._card("Model cost, last 24 h", "payments", "dashboard-cost")
        with ui.row().classes("w-full gap-4 no-wrap"):
            self.runs_chart = self._chart("Runs per minute, last hour", "dashboard-runs-chart")
            self.webhook_chart = self._chart("Webhook calls per second", "dashboard-webhooks")
        with ui.row().classes("w-full gap-4 no-wrap"):
            self.steps_chart = self._chart("Step time by step type (p50, p95)", "dashboard-steps")
            self.models_chart = self._chart("Tokens by model, last 24 h", "dashboard-models")
        with ui.card().classes("w-full"):
            ui.label("Agents, last 24 h").classes("text-base font-semibold")
            self.agents = test_id(
                ui.table(
                    columns=[
                        {"name": "agent", "label": "Agent", "field": "agent", "align": "left"},
                        {"name": "model", "label": "Model", "field": "model", "align": "left"},
                        {"name": "calls", "label": "Calls", "field": "calls"},
                        {"name": "success", "label": "Succeeded", "field": "success"},
                        {"name": "latency", "label": "Mean time", "field": "latency"},
                        {"name": "tokens", "label": "Tokens in / out", "field": "tokens"},
                        {"name": "cost", "label": "Cost", "field": "cost"},
                        {
                            "name": "error",
                            "label": "Last error",
                            "field": "error",
                            "align": "left",
                            "classes": "text-red-700 whitespace-normal",
                        },
                    ],
                    rows=[],
                    row_key="agent",
                )
                .classes("w-full")
                .props("flat dense"),
                "dashboard-agents",
            )
            self.no_agents = ui.label("No agent has run in the last 24 hours.").classes(
                "text-slate-500"
            )
        with ui.card().classes("w-full"):
            ui.label("Next schedule fires").classes("text-base font-semibold")
            self.schedules = ui.column().classes("gap-1")
        ui.timer(REFRESH_S, self.refresh)
        ui.timer(0.1, self.refresh, once=True)

    @staticmethod
    def _card(title: str, icon: str, testid: str) -> ui.label:
        with ui.card().classes("flex-1 min-w-[12rem]"), ui.row().classes("items-center gap-3"):
            ui.icon(icon, size="2rem", color="primary")
            with ui.column().classes("gap-0"):
                ui.label(title).classes("text-sm text-slate-500")
                value = test_id(ui.label("—").classes("text-2xl font-semibold"), testid)
        return value

    @staticmethod
    def _chart(title: str, testid: str) -> ui.echart:
        with ui.card().classes("flex-1 min-w-0"):
            ui.label(title).classes("text-base font-semibold")
            chart = ui.echart(
                {
                    "tooltip": {"trigger": "axis"},
                    "legend": {"bottom": 0},
                    "grid": {"left": 40, "right": 16, "top": 16, "bottom": 48},
                    "xAxis": {"type": "category", "data": []},
                    "yAxis": {"type": "value", "minInterval": 1},
                    "series": [],
                }
            ).classes("w-full h-64")
        return test_id(chart, testid)

    # -- refreshing ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        metrics = self.metrics
        runs = merged(list(metrics.run_durations.values()))
        self.latency.text = (
            f"{seconds_text(runs.quantile(0.5))} / {seconds_text(runs.quantile(0.95))}"
            if runs
            else "—"
        )
        self._sample_webhooks()
        self._steps()
        db = self.runtime.db
        now = datetime.now(UTC)
        # from the database: the runs of every FlowLoom process sharing it (`flowloom serve`'s)
        self.active.text = str(await db.stats.runs_going_on())
        per_minute = await db.stats.runs_per_minute(now - timedelta(hours=1))
        self._runs(per_minute, now)
        usage = await db.stats.usage(now - timedelta(hours=24))
        self.cost.text = f"${sum(u['cost_usd'] for u in usage):,.4f}"
        self._models(usage)
        self._agents(await db.stats.agent_health(now - timedelta(hours=24)))
        self._schedules(await db.triggers.schedules(), now)

    def _runs(self, per_minute: list[dict[str, Any]], now: datetime) -> None:
        start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
        minutes = [start + timedelta(minutes=i) for i in range(60)]
        index = {minute: i for i, minute in enumerate(minutes)}
        counts: dict[str, list[int]] = {}
        for row in per_minute:
            i = index.get(row["minute"])
            if i is not None:
                counts.setdefault(row["status"], [0] * 60)[i] += row["runs"]
        self.last_hour.text = str(sum(sum(values) for values in counts.values()))
        options = self.runs_chart.options
        options["xAxis"]["data"] = [m.strftime("%H:%M") for m in minutes]
        options["series"] = [
            {
                "name": status,
                "type": "bar",
                "stack": "runs",
                "data": values,
                "itemStyle": {"color": STATUS_COLORS.get(status, "#64748b")},
            }
            for status, values in sorted(counts.items())
        ]
        empty_hint(options, bool(counts), "No runs in the last hour")
        self.runs_chart.update()

    def _sample_webhooks(self) -> None:
        self.webhook_samples.append(
            (datetime.now().strftime("%H:%M:%S"), dict(self.metrics.webhooks))
        )
        samples = list(self.webhook_samples)
        codes = sorted({code for _, counts in samples for code in counts})
        options = self.webhook_chart.options
        options["xAxis"]["data"] = [at for at, _ in samples[1:]]
        options["series"] = [
            {
                "name": code,
                "type": "line",
                "showSymbol": False,
                "data": [
                    round((now.get(code, 0) - before.get(code, 0)) / REFRESH_S, 2)
                    for (_, before), (_, now) in itertools.pairwise(samples)
                ],
            }
            for code in codes
        ]
        empty_hint(options, bool(codes), "No webhook calls to this studio since it started")
        self.webhook_chart.update()

    def _steps(self) -> None:
        kinds = sorted(self.metrics.step_durations.items())
        options = self.steps_chart.options
        options["xAxis"]["data"] = [kind for kind, _ in kinds]
        options["yAxis"] = {"type": "value", "name": "seconds" if kinds else ""}
        options["series"] = [
            {"name": name, "type": "bar", "data": [h.quantile(q) for _, h in kinds]}
            for name, q in (("p50", 0.5), ("p95", 0.95))
        ]
        empty_hint(options, bool(kinds), "No step has run in this studio since it started")
        self.steps_chart.update()

    def _models(self, usage: list[dict[str, Any]]) -> None:
        by_model: dict[str, list[int]] = {}
        for row in usage:
            tokens = by_model.setdefault(row["model"], [0, 0])
            tokens[0] += row["input_tokens"]
            tokens[1] += row["output_tokens"]
        models = sorted(by_model)
        options = self.models_chart.options
        options["xAxis"]["data"] = models
        options["series"] = [
            {
                "name": "input",
                "type": "bar",
                "stack": "tokens",
                "data": [by_model[m][0] for m in models],
            },
            {
                "name": "output",
                "type": "bar",
                "stack": "tokens",
                "data": [by_model[m][1] for m in models],
            },
        ]
        empty_hint(options, bool(models), "No model calls in the last 24 hours")
        self.models_chart.update()

    def _agents(self, health: list[dict[str, Any]]) -> None:
        self.agents.rows = [
            {
                "agent": item["agent"],
                "model": item["model"] or "—",
                "calls": item["calls"],
                "success": f"{item['success_rate'] * 100:.0f} %"
                if item["success_rate"] is not None
                else "—",
                "latency": seconds_text(item["mean_latency_s"]),
                "tokens": f"{item['input_tokens']:,} / {item['output_tokens']:,}",
                "cost": f"${item['cost_usd']:,.4f}",
                "error": item["last_error"] or "",
            }
            for item in health
        ]
        self.agents.update()
        self.agents.set_visibility(bool(health))
        self.no_agents.set_visibility(not health)

    def _schedules(self, schedules: list[dict[str, Any]], now: datetime) -> None:
        upcoming = sorted(
            (s for s in schedules if s.get("next_run_at") is not None),
            key=lambda s: s["next_run_at"],
        )[:8]
        self.schedules.clear()
        with self.schedules:
            if not upcoming:
                ui.label("No active schedule.").classes("text-slate-500")
            for schedule in upcoming:
                when: datetime = schedule["next_run_at"]
                minutes = max(0, int((when - now).total_seconds() // 60))
                ui.label(
                    f"{when.astimezone().strftime('%a %H:%M')} (in {minutes} min) — "
                    f"flow {schedule['flow_id']}, trigger {schedule['node_id']}"
                )


async def dashboard_page(runtime: Runtime) -> None:
    page_title("Dashboard", "Live numbers of every flow, refreshed every 2 seconds.")
    Dashboard(runtime)
