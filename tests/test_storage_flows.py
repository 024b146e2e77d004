"""Flows and their versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage import Database, DuplicateName, NotFound, VersionConflict


def document(name: str = "Greeter", **extra: Any) -> dict[str, Any]:
    return {
        "schema": "flowloom/1",
        "name": name,
        "nodes": [{"id": "start", "type": "trigger.manual"}],
        "edges": [],
        **extra,
    }


async def test_created_flow_reads_back_at_version_one(db: Database) -> None:
    created = await db.flows.create(document(), message="first draft")

    stored = await db.flows.get(created.id)

    assert stored == created
    assert stored.name == "Greeter"
    assert stored.version == 1
    assert stored.active is False
    assert stored.retention == {"days": None, "max_runs": None}
    assert stored.created_at.tzinfo is UTC
    assert abs((datetime.now(UTC) - stored.created_at).total_seconds()) < 60
    [first] = await db.flows.versions(created.id)
    assert (first.version, first.message, first.document) == (1, "first draft", document())


async def test_ids_are_short_and_url_safe(db: Database) -> None:
    ids = {(await db.flows.create(document(f"flow {i}"))).id for i in range(5)}

    assert len(ids) == 5
    assert all(flow_id.isalnum() and flow_id.islower() and len(flow_id) == 12 for flow_id in ids)


async def test_document_round_trips_with_unknown_keys_in_order(db: Database) -> None:
    original = {"zeta": 1, "schema": "flowloom/1", "name": "Ordered", "alpha": {"b": 2, "a": 1}}

    created = await db.flows.create(original)

    stored = await db.flows.get(created.id)
    assert stored.document == original
    assert list(stored.document) == list(original)
    assert list(stored.document["alpha"]) == ["b", "a"]


async def test_find_looks_up_by_id_then_by_name(db: Database) -> None:
    flow = await db.flows.create(document("Sub flow"))

    by_id = await db.flows.find(flow.id)
    by_name = await db.flows.find("Sub flow")

    assert by_id is not None and by_id.id == flow.id
    assert by_name is not None and by_name.id == flow.id
    assert await db.flows.find("nothing by that name") is None


async def test_list_is_newest_saved_first_with_the_total(db: Database) -> None:
    first = await db.flows.create(document("First"))
    second = await db.flows.create(document("Second"))
    third = await db.flows.create(document("Third"))
    await db.flows.update(first.id, document("First"))

    page, total = await db.flows.list(limit=2)
    rest, _ = await db.flows.list(limit=2, offset=2)

    assert total == 3
    assert [flow.id for flow in page] == [first.id, third.id]
    assert [flow.id for flow in rest] == [second.id]


async def test_every_save_is_a_new_version_listed_newest_first(db: Database) -> None:
    flow = await db.flows.create(document(), message="v1")

    saved = await db.flows.update(flow.id, document(description="two"), message="v2")
    saved = await db.flows.update(flow.id, document(description="three"), base_version=2)

    assert saved.version == 3
    assert saved.document["description"] == "three"
    assert saved.updated_at >= flow.updated_at
    versions = await db.flows.versions(flow.id)
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.message for v in versions] == [None, "v2", "v1"]
    assert versions[1].document["description"] == "two"


async def test_saving_over_a_newer_version_is_a_conflict(db: Database) -> None:
    flow = await db.flows.create(document())
    await db.flows.update(flow.id, document(description="from another tab"), base_version=1)

    with pytest.raises(VersionConflict) as conflict:
        await db.flows.update(flow.id, document(description="mine"), base_version=1)

    assert (conflict.value.base_version, conflict.value.current_version) == (1, 2)
    assert "Reload" in str(conflict.value)
    stored = await db.flows.get(flow.id)
    assert stored.version == 2
    assert stored.document["description"] == "from another tab"


async def test_restore_saves_the_old_document_as_a_new_version(db: Database) -> None:
    flow = await db.flows.create(document(description="original"))
    await db.flows.update(flow.id, document(description="changed"))

    restored = await db.flows.restore(flow.id, 1)

    assert restored.version == 3
    assert restored.document["description"] == "original"
    versions = await db.flows.versions(flow.id)
    assert [v.version for v in versions] == [3, 2, 1]
    assert versions[0].message == "Restored version 1"
    with pytest.raises(NotFound, match="no version 9"):
        await db.flows.restore(flow.id, 9)


async def test_two_flows_cannot_share_a_name(db: Database) -> None:
    await db.flows.create(document("Taken"))
    other = await db.flows.create(document("Other"))

    with pytest.raises(DuplicateName, match="Taken"):
        await db.flows.create(document("Taken"))
    with pytest.raises(DuplicateName):
        await db.flows.update(other.id, document("Taken"))

    assert (await db.flows.get(other.id)).version == 1
    _, total = await db.flows.list()
    assert total == 2


async def test_a_document_without_a_name_is_untitled(db: Database) -> None:
    flow = await db.flows.create({"schema": "flowloom/1", "nodes": []})

    assert flow.name == "Untitled flow"


async def test_unknown_flows_are_not_found(db: Database) -> None:
    for attempt in (
        db.flows.get("missing"),
        db.flows.update("missing", document()),
        db.flows.delete("missing"),
        db.flows.versions("missing"),
        db.flows.restore("missing", 1),
        db.flows.set_active("missing", True),
        db.flows.set_retention("missing", days=1, max_runs=None),
    ):
        with pytest.raises(NotFound, match="missing"):
            await attempt


async def test_active_flag_is_kept_and_listed(db: Database) -> None:
    on = await db.flows.create(document("On"))
    await db.flows.create(document("Off"))

    activated = await db.flows.set_active(on.id, True)

    assert activated.active is True
    assert [flow.id for flow in await db.flows.active()] == [on.id]
    await db.flows.set_active(on.id, False)
    assert await db.flows.active() == []


async def test_retention_overrides_are_kept_per_flow(db: Database) -> None:
    flow = await db.flows.create(document())

    changed = await db.flows.set_retention(flow.id, days=7, max_runs=None)

    assert changed.retention == {"days": 7, "max_runs": None}
    assert (await db.flows.get(flow.id)).retention == {"days": 7, "max_runs": None}
    with pytest.raises(ValueError):
        await db.flows.set_retention(flow.id, days=0, max_runs=None)


async def test_deleting_a_flow_removes_its_versions_and_triggers_but_keeps_runs(
    db: Database,
) -> None:
    flow = await db.flows.create(document())
    await db.flows.update(flow.id, document(description="two"))
    token = await db.triggers.webhook_token(flow.id, "hook")
    await db.triggers.save_schedule(flow.id, "cron", next_run_at=datetime.now(UTC))
    await db.runs.create(
        run_id="run-1", flow_id=flow.id, flow_version=2, trigger="manual", input=None
    )

    await db.flows.delete(flow.id)

    with pytest.raises(NotFound):
        await db.flows.get(flow.id)
    with pytest.raises(NotFound):
        await db.flows.versions(flow.id)
    assert await db.triggers.find_webhook(token) is None
    assert await db.triggers.schedules(flow.id) == []
    run = await db.runs.get("run-1")
    assert run.flow_id is None
    assert run.flow_version == 2
    # the name is free again
    await db.flows.create(document())


async def test_follow_tells_of_changes_another_process_made_to_active_flows(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    other = await Database.open(database_url, data_dir=tmp_path / "other")
    try:
        told: list[tuple[str, int | None, bool | None]] = []
        db.flows.watch(
            lambda flow_id, flow: told.append(
                (flow_id, flow.version if flow else None, flow.active if flow else None)
            )
        )
        assert await db.flows.follow() == 0  # the first call only looks
        flow = await other.flows.create({"name": "Elsewhere"})
        await other.flows.update(flow.id, {"name": "Elsewhere"})
        assert await db.flows.follow() == 0  # never active: nothing listens for it

        await other.flows.set_active(flow.id, True)
        await other.flows.update(flow.id, {"name": "Elsewhere", "description": "v3"})
        changed = await db.flows.follow()
        unchanged = await db.flows.follow()
        await other.flows.set_active(flow.id, False)
        deactivated = await db.flows.follow()
        await other.flows.set_active(flow.id, True)
        await db.flows.follow()
        await other.flows.delete(flow.id)
        deleted = await db.flows.follow()
    finally:
        await other.close()

    assert (changed, unchanged, deactivated, deleted) == (1, 0, 1, 1)
    assert told == [
        (flow.id, 3, True),  # activated and saved again: told once, as it is now
        (flow.id, 3, False),
        (flow.id, 3, True),
        (flow.id, None, None),
    ]
