"""`/api/v1/stats`: numbers over the stored runs for the dashboard and for scripts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request

from studio.api import API_PREFIX, runtime_of

stats = APIRouter(prefix=f"{API_PREFIX}/stats", tags=["stats"])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@stats.get("/agents")
async def agent_health(
    request: Request, hours: float = Query(24, gt=0, le=24 * 90)
) -> dict[str, Any]:
    """Each agent's health over the last `hours`: calls, success rate, mean latency, tokens,
    cost and its last error."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    items = await runtime_of(request).db.stats.agent_health(since)
    for item in items:
        item["last_call_at"] = _iso(item["last_call_at"])
        item["last_error_at"] = _iso(item["last_error_at"])
    return {"items": items, "since": since.isoformat()}


@stats.get("/usage")
async def model_usage(
    request: Request, hours: float = Query(24, gt=0, le=24 * 90)
) -> dict[str, Any]:
    """Model tokens and cost per flow and model over the last `hours`."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    return {"items": await runtime_of(request).db.stats.usage(since), "since": since.isoformat()}


@stats.get("/runs")
async def runs_per_minute(
    request: Request, minutes: int = Query(60, gt=0, le=24 * 60)
) -> dict[str, Any]:
    """Runs started per minute and status over the last `minutes`."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    rows = await runtime_of(request).db.stats.runs_per_minute(since)
    return {
        "items": [{**row, "minute": _iso(row["minute"])} for row in rows],
        "since": since.isoformat(),
    }
