"""What storage hands back: plain, immutable records (no SQLAlchemy objects leak out).

Storage imports nothing of FlowLoom's other packages; the engine's run recorder talks to it
with plain data (see `RunRepository.record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted", "waiting")
UNFINISHED = ("queued", "running")


class StorageError(Exception):
    """Base class of storage errors; messages are meant for people."""


class NotFound(StorageError):
    """No flow, run, version or credential by that id or name."""


class VersionConflict(StorageError):
    """A save was based on an older version than the one stored (e.g. two open tabs)."""

    def __init__(self, flow_id: str, base_version: int, current_version: int) -> None:
        self.flow_id = flow_id
        self.base_version = base_version
        self.current_version = current_version
        super().__init__(
            f"This flow was changed elsewhere: you edited version {base_version}, but version "
            f"{current_version} is saved now. Reload it to see the changes, then save again."
        )


class DuplicateName(StorageError):
    """Another flow or credential already has that name."""


@dataclass(frozen=True, slots=True)
class FlowRecord:
    id: str
    name: str
    document: dict[str, Any]
    version: int
    active: bool
    created_at: datetime
    updated_at: datetime
    #: Per-flow retention overrides: {"days": int | None, "max_runs": int | None}.
    retention: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlowVersionRecord:
    flow_id: str
    version: int
    document: dict[str, Any]
    message: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StepRow:
    """One node visit as stored. `seq` orders the steps of a run (0, 1, 2, … as started)."""

    run_id: str
    seq: int
    node_id: str
    node_name: str
    node_type: str
    status: str
    visit: int = 1
    parent: str | None = None
    item_index: int | None = None
    input: Any = None
    output: Any = None
    port: str | None = None
    error: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    #: Exchanges with outside services (model calls), for inspection and replay.
    exchanges: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    flow_id: str | None
    flow_version: int | None
    trigger: str | None
    status: str
    input: Any
    output: Any
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: Filled by `get_run` and `unfinished_runs`; empty in lists.
    steps: list[StepRow] = field(default_factory=list)
    #: The runtime (FlowLoom process) that runs it, if one claimed it.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A credential without its secrets: only the names of its fields."""

    name: str
    type: str
    fields: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """An outgoing event webhook. `secret` signs deliveries; never show it."""

    id: str
    url: str
    events: list[str]
    headers: dict[str, str]
    flow_id: str | None
    created_at: datetime
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One attempt to deliver an event: the status code it got, or the error."""

    id: int
    subscription_id: str
    delivery_id: str
    event: str
    run_id: str | None
    attempt: int
    status_code: int | None
    error: str | None
    response: str | None
    duration_ms: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RuntimeRecord:
    """A FlowLoom process running flows on the database, as it last said it was alive."""

    id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
