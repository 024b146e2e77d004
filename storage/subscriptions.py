"""Outgoing event webhooks: subscriptions, and the log of every delivery attempt."""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from storage.credentials import CredentialStore
from storage.engines import DatabaseEngines
from storage.models import Delivery, Subscription, utc_now
from storage.records import DeliveryRecord, NotFound, SubscriptionRecord


class SubscriptionRepository:
    """`db.subscriptions`: who wants to hear about runs, and what each delivery got back."""

    def __init__(self, engines: DatabaseEngines, credentials: CredentialStore) -> None:
        self._engines = engines
        self._credentials = credentials

    async def create(
        self,
        *,
        url: str,
        events: Sequence[str],
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        flow_id: str | None = None,
    ) -> SubscriptionRecord:
        """A new subscription; its secret is kept encrypted. NotFound if `flow_id` names no
        flow."""
        row = Subscription(
            id=secrets.token_hex(8),
            url=url,
            events=list(dict.fromkeys(events)),
            headers=dict(headers or {}),
            secret=self._credentials.seal(secret) if secret else None,
            flow_id=flow_id,
            created_at=utc_now(),
        )
        try:
            async with self._engines.writing() as session:
                session.add(row)
        except IntegrityError as exc:
            raise NotFound(f"There is no flow with id {flow_id}.") from exc
        return self._record(row)

    async def list(self) -> builtins.list[SubscriptionRecord]:
        """Every subscription, oldest first, with its secret decrypted (for signing)."""
        async with self._engines.reading() as session:
            rows = await session.scalars(
                select(Subscription).order_by(Subscription.created_at, Subscription.id)
            )
            return [self._record(row) for row in rows]

    async def ids(self) -> set[str]:
        """The ids of every subscription: cheap to compare (subscriptions are added and
        deleted, never changed)."""
        async with self._engines.reading() as session:
            return set(await session.scalars(select(Subscription.id)))

    async def get(self, subscription_id: str) -> SubscriptionRecord:
        """The subscription; NotFound."""
        async with self._engines.reading() as session:
            row = await session.get(Subscription, subscription_id)
        if row is None:
            raise _not_found(subscription_id)
        return self._record(row)

    async def delete(self, subscription_id: str) -> None:
        """Delete the subscription and its delivery log; NotFound."""
        async with self._engines.writing() as session:
            result = await session.execute(
                delete(Subscription).where(Subscription.id == subscription_id)
            )
        if not getattr(result, "rowcount", 0):
            raise _not_found(subscription_id)

    async def log_delivery(
        self,
        *,
        subscription_id: str,
        delivery_id: str,
        event: str,
        run_id: str | None,
        attempt: int,
        status_code: int | None,
        error: str | None,
        response: str | None,
        duration_ms: float,
        at: datetime | None = None,
    ) -> None:
        """Keep one delivery attempt and its answer (a deleted subscription's is dropped)."""
        values: dict[str, Any] = {
            "subscription_id": subscription_id,
            "delivery_id": delivery_id,
            "event": event,
            "run_id": run_id,
            "attempt": attempt,
            "status_code": status_code,
            "error": error,
            "response": response,
            "duration_ms": duration_ms,
            "created_at": at or utc_now(),
        }
        try:
            async with self._engines.writer.begin() as connection:
                await connection.execute(insert(Delivery).values(**values))
        except IntegrityError:
            pass  # the subscription was deleted while its delivery was on the way

    async def deliveries(
        self, subscription_id: str, *, limit: int = 100
    ) -> builtins.list[DeliveryRecord]:
        """The subscription's latest delivery attempts, newest first; NotFound."""
        async with self._engines.reading() as session:
            if await session.get(Subscription, subscription_id) is None:
                raise _not_found(subscription_id)
            rows = await session.scalars(
                select(Delivery)
                .where(Delivery.subscription_id == subscription_id)
                .order_by(Delivery.id.desc())
                .limit(limit)
            )
            return [
                DeliveryRecord(
                    id=row.id,
                    subscription_id=row.subscription_id,
                    delivery_id=row.delivery_id,
                    event=row.event,
                    run_id=row.run_id,
                    attempt=row.attempt,
                    status_code=row.status_code,
                    error=row.error,
                    response=row.response,
                    duration_ms=row.duration_ms,
                    created_at=row.created_at,
                )
                for row in rows
            ]

    def _record(self, row: Subscription) -> SubscriptionRecord:
        return SubscriptionRecord(
            id=row.id,
            url=row.url,
            events=list(row.events),
            headers=dict(row.headers),
            flow_id=row.flow_id,
            created_at=row.created_at,
            secret=self._credentials.unseal(row.secret) if row.secret else None,
        )


def _not_found(subscription_id: str) -> NotFound:
    return NotFound(f"There is no subscription with id {subscription_id}.")
