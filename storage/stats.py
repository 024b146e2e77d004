"""Numbers over the stored runs and steps, for the dashboard and the agent health API.

Each method is one aggregate query over a time window; none reads the JSON payloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, case, extract, func, literal_column, select

from storage.engines import DatabaseEngines
from storage.models import Run, Step
from storage.records import UNFINISHED

RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, Step.__table__)

#: The node types whose steps are model calls ("agents" in the health table).
AGENT_TYPES = ("ai.agent", "ai.router")


class StatsRepository:
    def __init__(self, engines: DatabaseEngines) -> None:
        self._engines = engines

    async def runs_going_on(self) -> int:
        """How many runs are queued or running now, whichever FlowLoom process runs them."""
        query = select(func.count()).select_from(RUNS).where(RUNS.c.status.in_(UNFINISHED))
        async with self._engines.reader.connect() as connection:
            return int(await connection.scalar(query) or 0)

    async def runs_per_minute(self, since: datetime) -> list[dict[str, Any]]:
        """Runs created since `since`, counted per minute and status, oldest minute first:
        [{"minute": datetime, "status": str, "runs": int}]."""
        minute = self._minute(RUNS.c.created_at)
        query = (
            select(minute.label("minute"), RUNS.c.status, func.count().label("runs"))
            .where(RUNS.c.created_at >= since)
            .group_by(minute, RUNS.c.status)
            .order_by(minute)
        )
        async with self._engines.reader.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [
            {"minute": _as_datetime(row["minute"]), "status": row["status"], "runs": row["runs"]}
            for row in rows
        ]

    async def agent_health(
        self, since: datetime | None = None, node_types: Sequence[str] = AGENT_TYPES
    ) -> list[dict[str, Any]]:
        """Per agent (step name and type): calls, success rate, mean latency, tokens, cost
        and the last error, busiest first."""
        seconds = self._seconds(STEPS.c.finished_at) - self._seconds(STEPS.c.started_at)
        ended = STEPS.c.status.in_(("succeeded", "failed"))
        query = (
            select(
                STEPS.c.node_name,
                STEPS.c.node_type,
                func.max(STEPS.c.model).label("model"),
                func.count().label("calls"),
                func.sum(case((STEPS.c.status == "succeeded", 1), else_=0)).label("succeeded"),
                func.avg(seconds).label("mean_latency_s"),
                func.sum(STEPS.c.input_tokens).label("input_tokens"),
                func.sum(STEPS.c.output_tokens).label("output_tokens"),
                func.sum(STEPS.c.cost_usd).label("cost_usd"),
                func.max(STEPS.c.finished_at).label("last_call_at"),
            )
            .where(STEPS.c.node_type.in_(node_types), ended)
            .group_by(STEPS.c.node_name, STEPS.c.node_type)
        )
        errors = (
            select(STEPS.c.node_name, STEPS.c.node_type, STEPS.c.error, STEPS.c.finished_at)
            .where(STEPS.c.node_type.in_(node_types), STEPS.c.status == "failed")
            .order_by(STEPS.c.finished_at.desc())
            .limit(500)
        )
        if since is not None:
            query = query.where(STEPS.c.started_at >= since)
            errors = errors.where(STEPS.c.started_at >= since)
        async with self._engines.reader.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
            failures = (await connection.execute(errors)).mappings().all()
        last_error: dict[tuple[str, str], Any] = {}
        for failure in failures:
            last_error.setdefault((failure["node_name"], failure["node_type"]), failure)
        health = []
        for row in rows:
            failed_step = last_error.get((row["node_name"], row["node_type"]))
            calls = int(row["calls"])
            health.append(
                {
                    "agent": row["node_name"],
                    "node_type": row["node_type"],
                    "model": row["model"],
                    "calls": calls,
                    "succeeded": int(row["succeeded"] or 0),
                    "failed": calls - int(row["succeeded"] or 0),
                    "success_rate": (int(row["succeeded"] or 0) / calls) if calls else None,
                    "mean_latency_s": float(row["mean_latency_s"] or 0.0),
                    "input_tokens": int(row["input_tokens"] or 0),
                    "output_tokens": int(row["output_tokens"] or 0),
                    "cost_usd": float(row["cost_usd"] or 0.0),
                    "last_call_at": _as_datetime(row["last_call_at"]),
                    "last_error": failed_step["error"] if failed_step else None,
                    "last_error_at": (
                        _as_datetime(failed_step["finished_at"]) if failed_step else None
                    ),
                }
            )
        health.sort(key=lambda item: (-item["calls"], item["agent"]))
        return health

    async def usage(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Model tokens and cost per flow and model: [{"flow_id", "model", "input_tokens",
        "output_tokens", "cost_usd", "steps"}], costliest first."""
        query = (
            select(
                RUNS.c.flow_id,
                STEPS.c.model,
                func.sum(STEPS.c.input_tokens).label("input_tokens"),
                func.sum(STEPS.c.output_tokens).label("output_tokens"),
                func.sum(STEPS.c.cost_usd).label("cost_usd"),
                func.count().label("steps"),
            )
            .select_from(STEPS.join(RUNS, RUNS.c.id == STEPS.c.run_id))
            .where(STEPS.c.model.is_not(None))
            .group_by(RUNS.c.flow_id, STEPS.c.model)
        )
        if since is not None:
            query = query.where(STEPS.c.started_at >= since)
        async with self._engines.reader.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        usage = [
            {
                "flow_id": row["flow_id"],
                "model": row["model"],
                "input_tokens": int(row["input_tokens"] or 0),
                "output_tokens": int(row["output_tokens"] or 0),
                "cost_usd": float(row["cost_usd"] or 0.0),
                "steps": int(row["steps"]),
            }
            for row in rows
        ]
        usage.sort(key=lambda item: (-item["cost_usd"], -item["input_tokens"]))
        return usage

    # -- dialect differences ------------------------------------------------------------------

    def _minute(self, column: Any) -> Any:
        if self._engines.dialect == "sqlite":
            # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text
            return func.substr(column, 1, 16)
        return func.date_trunc(literal_column("'minute'"), column)

    def _seconds(self, column: Any) -> Any:
        if self._engines.dialect == "sqlite":
            return func.julianday(column) * 86400.0
        return extract("epoch", column)


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    parsed = datetime.fromisoformat(text if len(text) > 16 else f"{text}:00")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
