"""What triggers need to keep: webhook tokens and schedule times, per (flow, trigger node)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from storage.engines import DatabaseEngines
from storage.models import Flow, Run, Schedule, WebhookToken, utc_now
from storage.records import RunRecord, StorageError
from storage.runs import new_run_row
from storage.upsert import upsert


class TriggerRepository:
    """`db.triggers`: webhook tokens (made once, then stable) and schedule state."""

    def __init__(self, engines: DatabaseEngines) -> None:
        self._engines = engines
        self._insert_token = upsert(
            engines.dialect, WebhookToken, keys=("flow_id", "node_id"), update=()
        )

    async def webhook_token(self, flow_id: str, node_id: str) -> str:
        """The secret token in the trigger node's webhook URL, made on first request."""
        async with self._engines.reading() as session:
            token = await session.scalar(_token_of(flow_id, node_id))
        if token is not None:
            return token
        async with self._engines.writing() as session:
            new = {
                "flow_id": flow_id,
                "node_id": node_id,
                "token": secrets.token_urlsafe(32),
                "created_at": utc_now(),
            }
            await session.execute(self._insert_token, new)  # a racing caller's token wins
            token = await session.scalar(_token_of(flow_id, node_id))
        assert token is not None
        return token

    async def find_webhook(self, token: str) -> tuple[str, str] | None:
        """(flow_id, node_id) of the webhook trigger with this token; None if unknown."""
        async with self._engines.reading() as session:
            row = (
                await session.execute(
                    select(WebhookToken.flow_id, WebhookToken.node_id).where(
                        WebhookToken.token == token
                    )
                )
            ).first()
        return None if row is None else (row.flow_id, row.node_id)

    async def webhooks(self, flow_id: str) -> list[tuple[str, str]]:
        """(node_id, token) of every webhook trigger of the flow that has a token."""
        async with self._engines.reading() as session:
            rows = await session.execute(
                select(WebhookToken.node_id, WebhookToken.token)
                .where(WebhookToken.flow_id == flow_id)
                .order_by(WebhookToken.node_id)
            )
            return [(row.node_id, row.token) for row in rows]

    async def save_schedule(
        self,
        flow_id: str,
        node_id: str,
        *,
        next_run_at: datetime | None,
        last_fired_at: datetime | None = None,
    ) -> None:
        """Store when the schedule fires next; `last_fired_at`, when given, too (None keeps
        the one stored)."""
        values: dict[str, Any] = {
            "flow_id": flow_id,
            "node_id": node_id,
            "next_run_at": next_run_at,
        }
        changed = ["next_run_at"]
        if last_fired_at is not None:
            values["last_fired_at"] = last_fired_at
            changed.append("last_fired_at")
        statement = upsert(
            self._engines.dialect, Schedule, keys=("flow_id", "node_id"), update=changed
        )
        async with self._engines.writing() as session:
            await session.execute(statement, values)

    async def claim_firing(
        self,
        flow_id: str,
        node_id: str,
        *,
        due_at: datetime,
        next_run_at: datetime | None,
        run: RunRecord | None = None,
    ) -> bool:
        """Record that the firing due at `due_at` happens, if nobody recorded it yet.

        True for exactly one caller, even with several processes scheduling: the one that
        should start the run. It moves `next_run_at` on and sets `last_fired_at = due_at`.
        Nobody wins once the flow is inactive: a firing that comes due while the flow is
        being deactivated starts no run.
        The winner's `run` (the firing's run, normally `queued`) is stored in the same
        transaction, so a claimed firing always has its run, even if the process dies
        before starting it. StorageError when the claim or the run cannot be stored;
        nothing changed then, and the firing is still due.
        """
        try:
            async with self._engines.writing() as session:
                result = await session.execute(
                    update(Schedule)
                    .where(
                        Schedule.flow_id == flow_id,
                        Schedule.node_id == node_id,
                        Schedule.next_run_at == due_at,
                        select(Flow.id).where(Flow.id == flow_id, Flow.active).exists(),
                    )
                    .values(next_run_at=next_run_at, last_fired_at=due_at)
                )
                won = bool(getattr(result, "rowcount", 0))
                if won and run is not None:
                    await session.execute(insert(Run).values(new_run_row(run)))
        except SQLAlchemyError as exc:  # rolled back: the firing is still due
            raise StorageError(
                f"Could not record the firing of schedule {node_id} of flow {flow_id} due at "
                f"{due_at.isoformat()} ({getattr(exc, 'orig', None) or exc}); it is still due."
            ) from exc
        return won

    async def schedules(self, flow_id: str | None = None) -> list[dict[str, Any]]:
        """Stored schedules (of one flow, or all): dicts of flow_id, node_id, next_run_at,
        last_fired_at."""
        statement = select(Schedule).order_by(Schedule.flow_id, Schedule.node_id)
        if flow_id is not None:
            statement = statement.where(Schedule.flow_id == flow_id)
        async with self._engines.reading() as session:
            return [
                {
                    "flow_id": schedule.flow_id,
                    "node_id": schedule.node_id,
                    "next_run_at": schedule.next_run_at,
                    "last_fired_at": schedule.last_fired_at,
                }
                for schedule in await session.scalars(statement)
            ]

    async def clear(self, flow_id: str, *, webhooks: bool = True) -> None:
        """Forget the flow's schedules and, unless `webhooks=False`, its webhook tokens (a
        token made afterwards is a new URL; keep them to keep URLs across deactivation)."""
        async with self._engines.writing() as session:
            await session.execute(delete(Schedule).where(Schedule.flow_id == flow_id))
            if webhooks:
                await session.execute(delete(WebhookToken).where(WebhookToken.flow_id == flow_id))


def _token_of(flow_id: str, node_id: str) -> Any:
    return select(WebhookToken.token).where(
        WebhookToken.flow_id == flow_id, WebhookToken.node_id == node_id
    )
