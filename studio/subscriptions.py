"""Outgoing event webhooks: tell other services when runs end.

A subscription (`db.subscriptions`) names a URL, the events it wants (`run.succeeded`,
`run.failed`, `run.cancelled`, `run.waiting`), extra headers, an optional secret and an
optional flow. When a run ends, the engine's event reaches `SubscriptionService.listener`,
which only queues a delivery: sending happens in background tasks, so a slow receiver never
slows a run. Each delivery is a POST of

    {"event": "run.succeeded", "delivery_id": "…", "sent_at": "…",
     "run": {"id", "flow_id", "status", "output", "error", "finished_at", "duration_s"}}

with `X-FlowLoom-Event`, `X-FlowLoom-Delivery` and, with a secret,
`X-FlowLoom-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>`. An answer other than
2xx (4xx other than 408 and 429 excepted) or no answer is retried with exponential backoff
(`delivery_backoff_s`, doubled each time) up to `delivery_attempts` times; every attempt is
logged with what it got (`db.subscriptions.deliveries`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from engine import Event, RunFinished
from storage import StorageError, SubscriptionRecord
from storage.jsontext import readable
from studio.webhook_auth import sign

if TYPE_CHECKING:
    from studio.runtime import Runtime

log = structlog.get_logger("flowloom.subscriptions")

EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.waiting")
#: At most this many sends at once; more deliveries wait their turn.
CONCURRENT_SENDS = 8
#: Deliveries waiting beyond this many are dropped (and logged) rather than eat memory.
MAX_PENDING = 10_000
SEND_TIMEOUT_S = 10.0
RESPONSE_KEPT_CHARS = 1000
_NOT_RETRIED = frozenset(range(400, 500)) - {408, 429}


class SubscriptionService:
    """Sends run events to the subscriptions of a `Runtime` (its `subscriptions`)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._attempts = runtime.settings.delivery_attempts
        self._backoff_s = runtime.settings.delivery_backoff_s
        self._subscriptions: list[SubscriptionRecord] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Semaphore(CONCURRENT_SENDS)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # The HTTP client (its TLS context takes ~35 ms to make) waits for the first delivery.
        await self.reload()

    async def stop(self) -> None:
        """Stop sending; deliveries still waiting are dropped (each attempt so far is logged)."""
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def reload(self) -> None:
        """Read the subscriptions again (after one was added or deleted)."""
        try:
            self._subscriptions = await self._runtime.db.subscriptions.list()
        except StorageError as exc:
            log.error("could not read the event subscriptions", error=str(exc))

    async def follow(self) -> None:
        """Read the subscriptions again if another process added or deleted one."""
        known = {subscription.id for subscription in self._subscriptions}
        if await self._runtime.db.subscriptions.ids() != known:
            await self.reload()

    async def idle(self) -> None:
        """Wait until every queued delivery is done (tests, shutdown)."""
        while self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)

    # -- the engine listener ------------------------------------------------------------------

    #: The engine calls this listener only when a run ends.
    event_kinds = (RunFinished,)

    def __call__(self, event: Event) -> None:
        """Queue deliveries for a run that ended; cheap, and never raises into the engine."""
        if not isinstance(event, RunFinished) or not self._subscriptions:
            return
        flow_id = event.flow_id
        if flow_id is None or event.parent_run_id is not None:
            return  # a sub-flow's run (or a flow never stored): its parent run is what counts
        name = f"run.{event.status}"
        wanted = [
            s
            for s in self._subscriptions
            if name in s.events and (s.flow_id is None or s.flow_id == flow_id)
        ]
        if not wanted:
            return
        if len(self._deliveries) >= MAX_PENDING:
            log.error("too many event deliveries waiting; dropped one", run_id=event.run_id)
            return
        body = {
            "event": name,
            "run": {
                "id": event.run_id,
                "flow_id": flow_id,
                "status": event.status,
                "output": readable(event.output),
                "error": readable(event.error),
                "finished_at": datetime.fromtimestamp(event.at, UTC).isoformat(),
                "duration_s": event.duration_s,
            },
        }
        loop = asyncio.get_running_loop()
        for subscription in wanted:
            task = loop.create_task(self._deliver(subscription, name, event.run_id, body))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    # -- sending ------------------------------------------------------------------------------

    async def _deliver(
        self, subscription: SubscriptionRecord, event: str, run_id: str, run: dict[str, Any]
    ) -> None:
        delivery_id = os.urandom(12).hex()
        raw = json.dumps(
            {**run, "delivery_id": delivery_id, "sent_at": datetime.now(UTC).isoformat()},
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        ).encode()
        headers = {
            **subscription.headers,
            "Content-Type": "application/json",
            "X-FlowLoom-Event": event,
            "X-FlowLoom-Delivery": delivery_id,
        }
        if subscription.secret:
            headers["X-FlowLoom-Signature"] = sign(subscription.secret, raw)
        for attempt in range(1, self._attempts + 1):
            status, error, response, duration_ms = await self._send(subscription.url, raw, headers)
            try:
                await self._runtime.db.subscriptions.log_delivery(
                    subscription_id=subscription.id,
                    delivery_id=delivery_id,
                    event=event,
                    run_id=run_id,
                    attempt=attempt,
                    status_code=status,
                    error=error,
                    response=response,
                    duration_ms=duration_ms,
                )
            except StorageError as exc:
                log.error("could not log an event delivery", error=str(exc))
            if status is not None and (200 <= status < 300 or status in _NOT_RETRIED):
                return
            if attempt < self._attempts:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        log.warning(
            "gave up delivering an event",
            subscription_id=subscription.id,
            run_id=run_id,
            attempts=self._attempts,
        )

    async def _send(
        self, url: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None, str | None, float]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=SEND_TIMEOUT_S, headers={"User-Agent": "FlowLoom"}, follow_redirects=False
            )
        started = time.perf_counter()
        async with self._sending:
            try:
                answer = await self._client.post(url, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                elapsed = (time.perf_counter() - started) * 1000
                return None, f"{type(exc).__name__}: {exc}"[:500], None, elapsed
        elapsed = (time.perf_counter() - started) * 1000
        error = None if answer.is_success else f"HTTP {answer.status_code}"
        return answer.status_code, error, answer.text[:RESPONSE_KEPT_CHARS], elapsed
