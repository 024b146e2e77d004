"""What webhooks and event subscriptions keep in the database, on SQLite and PostgreSQL:
idempotency keys (one run per key, even when racing), subscriptions and their delivery log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage import Database, NotFound


async def test_a_key_starts_one_run_until_it_expires(db: Database) -> None:
    flow = await db.flows.create({"name": "Hooked"})
    later = datetime.now(UTC) + timedelta(hours=24)

    def create(run_id: str, key: str = "k1", expires_at: datetime = later) -> object:
        return db.runs.create_once(
            key=key,
            expires_at=expires_at,
            run_id=run_id,
            flow_id=flow.id,
            node_id="hook",
            flow_version=1,
            input={"n": run_id},
        )

    first = await create("run-a")
    again = await create("run-b")
    other = await create("run-c", key="k2")
    stored = await db.runs.get("run-a")

    assert first == ("run-a", True)
    assert again == ("run-a", False)
    assert other == ("run-c", True)
    assert (stored.status, stored.trigger, stored.input) == ("queued", "hook", {"n": "run-a"})
    with pytest.raises(NotFound):
        await db.runs.get("run-b")

    expired = await create("run-d", key="k3", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    reused = await create("run-e", key="k3")
    assert expired == ("run-d", True)
    assert reused == ("run-e", True)  # an expired key starts a new run
    report = await db.prune(days=30, max_runs_per_flow=1000)
    assert report["runs_deleted"] == 0


async def test_racing_deliveries_with_one_key_store_one_run(db: Database) -> None:
    flow = await db.flows.create({"name": "Raced"})
    later = datetime.now(UTC) + timedelta(hours=1)

    results = await asyncio.gather(
        *(
            db.runs.create_once(
                key="same",
                expires_at=later,
                run_id=f"run-{n}",
                flow_id=flow.id,
                node_id="hook",
                flow_version=1,
                input=None,
            )
            for n in range(6)
        )
    )

    assert len({run_id for run_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert (await db.runs.list(flow_id=flow.id))[1] == 1


async def test_a_key_for_a_missing_flow_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await db.runs.create_once(
            key="k",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            run_id="r",
            flow_id="no-such-flow",
            node_id="hook",
            flow_version=1,
            input=None,
        )


async def test_subscriptions_keep_their_secret_encrypted_and_log_deliveries(
    db: Database,
) -> None:
    flow = await db.flows.create({"name": "Watched"})
    created = await db.subscriptions.create(
        url="http://127.0.0.1:9/hook",
        events=["run.failed", "run.failed", "run.succeeded"],
        headers={"X-Team": "ops"},
        secret="s3cret",
        flow_id=flow.id,
    )
    await db.subscriptions.log_delivery(
        subscription_id=created.id,
        delivery_id="d1",
        event="run.failed",
        run_id="r1",
        attempt=1,
        status_code=500,
        error="HTTP 500",
        response="oops",
        duration_ms=3.5,
    )
    await db.subscriptions.log_delivery(
        subscription_id=created.id,
        delivery_id="d1",
        event="run.failed",
        run_id="r1",
        attempt=2,
        status_code=200,
        error=None,
        response="ok",
        duration_ms=2.0,
    )

    [listed] = await db.subscriptions.list()
    deliveries = await db.subscriptions.deliveries(created.id)

    assert listed.events == ["run.failed", "run.succeeded"]
    assert listed.secret == "s3cret"
    assert "s3cret" not in repr(listed)
    assert [(d.attempt, d.status_code) for d in deliveries] == [(2, 200), (1, 500)]
    with pytest.raises(NotFound):
        await db.subscriptions.create(url="http://x", events=["run.failed"], flow_id="nope")

    await db.flows.delete(flow.id)  # a flow's subscriptions go with it
    assert await db.subscriptions.list() == []
    with pytest.raises(NotFound):
        await db.subscriptions.deliveries(created.id)


async def test_rotating_the_key_keeps_subscription_secrets_readable(db: Database) -> None:
    await db.subscriptions.create(url="http://x", events=["run.failed"], secret="keep-me")

    await db.credentials.rotate_key("a brand new passphrase")

    [listed] = await db.subscriptions.list()
    assert listed.secret == "keep-me"
