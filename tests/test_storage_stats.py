"""Dashboard numbers from stored runs and steps, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage import Database

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


def agent_step(
    run_id: str,
    seq: int,
    name: str,
    status: str,
    seconds: float,
    *,
    tokens: tuple[int, int] = (0, 0),
    cost: float = 0.0,
    model: str = "gpt-4o-mini",
    error: str | None = None,
) -> dict[str, Any]:
    started = NOW.timestamp() - 60 + seq
    return {
        "run_id": run_id,
        "seq": seq,
        "node_id": name.lower(),
        "node_name": name,
        "node_type": "ai.agent",
        "status": status,
        "started_at": started,
        "finished_at": started + seconds,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cost_usd": cost,
        "model": model,
        "error": error,
    }


@pytest.fixture
async def filled(db: Database) -> Database:
    flow = await db.flows.create({"schema": "flowloom/1", "name": "Agents at work"})
    for n in range(3):
        await db.runs.create(
            run_id=f"r{n}", flow_id=flow.id, flow_version=1, trigger=None, input=None
        )
    await db.runs.record(
        [
            {"id": "r0", "status": "succeeded"},
            {"id": "r1", "status": "failed"},
            {"id": "r2", "status": "succeeded"},
        ],
        [
            agent_step("r0", 0, "Classifier", "succeeded", 1.0, tokens=(100, 10), cost=0.01),
            agent_step("r1", 0, "Classifier", "failed", 3.0, error="rate limited, first"),
            agent_step("r2", 0, "Classifier", "succeeded", 2.0, tokens=(50, 5), cost=0.005),
            agent_step(
                "r2",
                1,
                "Writer",
                "succeeded",
                4.0,
                tokens=(7, 700),
                cost=0.2,
                model="claude-sonnet-4-5",
            ),
            {
                "run_id": "r2",
                "seq": 2,
                "node_id": "set",
                "node_name": "Set",
                "node_type": "data.set",
                "status": "succeeded",
                "started_at": NOW.timestamp(),
                "finished_at": NOW.timestamp(),
            },
        ],
    )
    return db


async def test_agent_health_has_success_rate_latency_tokens_cost_and_last_error(
    filled: Database,
) -> None:
    health = await filled.stats.agent_health()

    assert [h["agent"] for h in health] == ["Classifier", "Writer"]
    classifier = health[0]
    assert (classifier["calls"], classifier["succeeded"], classifier["failed"]) == (3, 2, 1)
    assert classifier["success_rate"] == pytest.approx(2 / 3)
    assert classifier["mean_latency_s"] == pytest.approx(2.0, abs=0.01)
    assert (classifier["input_tokens"], classifier["output_tokens"]) == (150, 15)
    assert classifier["cost_usd"] == pytest.approx(0.015)
    assert classifier["last_error"] == "rate limited, first"
    assert health[1]["model"] == "claude-sonnet-4-5"
    assert health[1]["last_error"] is None


async def test_usage_sums_tokens_and_cost_per_flow_and_model(filled: Database) -> None:
    usage = await filled.stats.usage()

    assert [(u["model"], u["input_tokens"], u["output_tokens"]) for u in usage] == [
        ("claude-sonnet-4-5", 7, 700),
        ("gpt-4o-mini", 150, 15),
    ]
    assert usage[0]["cost_usd"] == pytest.approx(0.2)


async def test_runs_per_minute_counts_by_status(filled: Database) -> None:
    minutes = await filled.stats.runs_per_minute(NOW - timedelta(hours=1))

    by_status: dict[str, int] = {}
    for row in minutes:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["runs"]
        assert row["minute"].tzinfo is not None
        assert row["minute"].second == 0
    assert by_status == {"succeeded": 2, "failed": 1}
    assert await filled.stats.runs_per_minute(datetime.now(UTC) + timedelta(minutes=5)) == []
