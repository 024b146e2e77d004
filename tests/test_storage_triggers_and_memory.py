"""Trigger state (webhook tokens, schedules) and conversation memory, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import Database
from storage.memory import ConversationStore

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def test_a_webhook_token_is_made_once_and_stays(db: Database) -> None:
    flow = await db.flows.create({"name": "Hooks"})

    token = await db.triggers.webhook_token(flow.id, "hook")
    again = await db.triggers.webhook_token(flow.id, "hook")
    other = await db.triggers.webhook_token(flow.id, "other-hook")

    assert token == again
    assert other != token
    assert len(token) >= 43  # 32 random bytes, URL-safe
    assert await db.triggers.find_webhook(token) == (flow.id, "hook")
    assert await db.triggers.find_webhook("not-a-token") is None
    assert await db.triggers.webhooks(flow.id) == sorted([("hook", token), ("other-hook", other)])


async def test_tokens_are_unique_across_flows(db: Database) -> None:
    flows = [await db.flows.create({"name": f"Flow {i}"}) for i in range(10)]

    tokens = {await db.triggers.webhook_token(flow.id, "hook") for flow in flows}

    assert len(tokens) == 10


async def test_schedules_keep_their_next_and_last_firing(db: Database) -> None:
    flow = await db.flows.create({"name": "Cron"})

    await db.triggers.save_schedule(flow.id, "cron", next_run_at=T0)
    await db.triggers.save_schedule(
        flow.id, "cron", next_run_at=T0 + timedelta(minutes=5), last_fired_at=T0
    )
    await db.triggers.save_schedule(flow.id, "cron", next_run_at=T0 + timedelta(minutes=10))

    [schedule] = await db.triggers.schedules(flow.id)
    assert schedule == {
        "flow_id": flow.id,
        "node_id": "cron",
        "next_run_at": T0 + timedelta(minutes=10),
        "last_fired_at": T0,  # kept: this save did not say it fired
    }
    assert schedule["next_run_at"].tzinfo is not None
    assert await db.triggers.schedules() == [schedule]


async def test_only_one_claim_of_a_firing_wins(db: Database) -> None:
    flow = await db.flows.create({"name": "Cron"})
    await db.flows.set_active(flow.id, True)
    await db.triggers.save_schedule(flow.id, "cron", next_run_at=T0)
    next_time = T0 + timedelta(minutes=5)

    first = await db.triggers.claim_firing(flow.id, "cron", due_at=T0, next_run_at=next_time)
    second = await db.triggers.claim_firing(flow.id, "cron", due_at=T0, next_run_at=next_time)

    assert (first, second) == (True, False)
    [schedule] = await db.triggers.schedules(flow.id)
    assert (schedule["next_run_at"], schedule["last_fired_at"]) == (next_time, T0)


async def test_no_claim_wins_once_the_flow_is_inactive(db: Database) -> None:
    # A firing that comes due while its flow is being deactivated starts nothing.
    flow = await db.flows.create({"name": "Cron"})
    await db.flows.set_active(flow.id, True)
    await db.triggers.save_schedule(flow.id, "cron", next_run_at=T0)
    await db.flows.set_active(flow.id, False)

    claimed = await db.triggers.claim_firing(
        flow.id, "cron", due_at=T0, next_run_at=T0 + timedelta(minutes=5)
    )

    assert claimed is False
    [schedule] = await db.triggers.schedules(flow.id)
    assert (schedule["next_run_at"], schedule["last_fired_at"]) == (T0, None)


async def test_clear_forgets_schedules_and_optionally_keeps_webhook_urls(db: Database) -> None:
    flow = await db.flows.create({"name": "Both"})
    token = await db.triggers.webhook_token(flow.id, "hook")
    await db.triggers.save_schedule(flow.id, "cron", next_run_at=T0)

    await db.triggers.clear(flow.id, webhooks=False)

    assert await db.triggers.schedules(flow.id) == []
    assert await db.triggers.webhook_token(flow.id, "hook") == token
    await db.triggers.clear(flow.id)
    assert await db.triggers.find_webhook(token) is None
    assert await db.triggers.webhook_token(flow.id, "hook") != token


async def test_memory_returns_the_last_messages_of_a_conversation_in_order(
    db: Database,
) -> None:
    await db.memory.append_messages(
        "chat-1", [{"role": "user", "content": f"m{i}"} for i in range(5)]
    )
    await db.memory.append_messages("chat-2", [{"role": "user", "content": "other"}])
    await db.memory.append_messages("chat-1", [{"role": "assistant", "content": "m5"}])

    window = await db.memory.load_messages("chat-1", 3)

    assert [m["content"] for m in window] == ["m3", "m4", "m5"]
    assert len(await db.memory.load_messages("chat-1", 100)) == 6
    assert await db.memory.load_messages("chat-1", 0) == []
    assert await db.memory.load_messages("nobody", 5) == []


async def test_memory_keeps_a_bounded_number_of_messages_per_conversation(
    db: Database,
) -> None:
    memory = ConversationStore(db._engines, max_kept=4)  # a small cap, for the test

    for i in range(10):
        await memory.append_messages("chat", [{"content": str(i)}])

    kept = await memory.load_messages("chat", 100)
    assert [m["content"] for m in kept] == ["6", "7", "8", "9"]
