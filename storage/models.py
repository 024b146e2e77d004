"""The database tables, as SQLAlchemy 2.0 typed models.

The migrations in `storage/migrations/versions/` create exactly these tables; a test compares
the two. Rows never leave `storage/`: repositories turn them into the records of
`storage/records.py`.

JSON columns use the generic `JSON` type on every database. On PostgreSQL that is `json`,
not `jsonb`, on purpose: `json` keeps a document's keys in the order they were written (a
flow exported after a save reads like the one imported; a step's output shows its keys in
the order the step produced them), and nothing here queries inside JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names that alembic can find again (SQLite's batch migrations need names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored in UTC and always read back timezone-aware.

    PostgreSQL keeps it as `timestamptz`; SQLite has no time zones, so the UTC wall time is
    stored as text that sorts in time order. A naive datetime is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# An integer primary key that counts up by itself on both databases (SQLite only does that
# for INTEGER, PostgreSQL gets 64 bits).
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Flow(Base):
    """A flow: its current document, and whether its triggers listen (`active`)."""

    __tablename__ = "flows"

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int]
    active: Mapped[bool] = mapped_column(default=False)
    retention_days: Mapped[int | None]
    retention_max_runs: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FlowVersion(Base):
    """Every saved document of a flow; version 1 is the one it was created with."""

    __tablename__ = "flow_versions"

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Run(Base):
    """One execution of a flow: the header only; its steps are rows of `steps`.

    Runs outlive their flow: deleting a flow sets `flow_id` to NULL, and retention prunes
    the runs later like any others.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "flow_id", "created_at"),
        Index(None, "created_at"),
        Index(None, "status"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    flow_id: Mapped[str | None] = mapped_column(ForeignKey("flows.id", ondelete="SET NULL"))
    flow_version: Mapped[int | None]
    trigger: Mapped[str | None]
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: The runtime (FlowLoom process) executing the run; see `Runtime`.
    owner: Mapped[str | None]


class Runtime(Base):
    """A FlowLoom process running flows on this database, seen at its last heartbeat."""

    __tablename__ = "runtimes"

    id: Mapped[str] = mapped_column(primary_key=True)
    host: Mapped[str]
    pid: Mapped[int]
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]


class CancelRequest(Base):
    """Somebody asked to cancel a run that another FlowLoom process (its owner) executes."""

    __tablename__ = "cancel_requests"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    requested_at: Mapped[datetime]


class Step(Base):
    """One visit of one node in a run; `seq` orders a run's steps as they started."""

    __tablename__ = "steps"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str]
    node_name: Mapped[str]
    node_type: Mapped[str]
    status: Mapped[str] = mapped_column(String(16))
    visit: Mapped[int]
    parent: Mapped[str | None]
    item_index: Mapped[int | None]
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    port: Mapped[str | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    cost_usd: Mapped[float] = mapped_column(Float)
    model: Mapped[str | None]
    logs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    exchanges: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class Credential(Base):
    """A named secret. `secret` is a Fernet token of the JSON of its fields; `fields` lists
    the field names only, so a credential can be described without decrypting it."""

    __tablename__ = "credentials"

    name: Mapped[str] = mapped_column(primary_key=True)
    type: Mapped[str]
    fields: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookToken(Base):
    """The secret in a webhook trigger's URL, made once per (flow, trigger node)."""

    __tablename__ = "webhook_tokens"

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[datetime]


class Schedule(Base):
    """When a schedule trigger fires next and when it last fired, so restarts neither skip
    nor repeat a firing."""

    __tablename__ = "schedules"

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(primary_key=True)
    next_run_at: Mapped[datetime | None]
    last_fired_at: Mapped[datetime | None]


class ConversationMessage(Base):
    """One message of an agent's conversation memory, kept under a key such as a chat id."""

    __tablename__ = "conversation_messages"
    __table_args__ = (Index(None, "key", "id"),)

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    key: Mapped[str]
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class IdempotencyKey(Base):
    """A key a webhook caller sent (Idempotency-Key, a sender's delivery id) and the run it
    started, so a repeated delivery answers with that run instead of starting another."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index(None, "expires_at"),)

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    run_id: Mapped[str]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Subscription(Base):
    """An outgoing event webhook: FlowLoom POSTs run events to `url`. `secret` (a Fernet
    token, like a credential's) signs each body; `flow_id` limits it to one flow's runs."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    secret: Mapped[str | None] = mapped_column(Text)
    flow_id: Mapped[str | None] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class Delivery(Base):
    """One attempt to deliver an event to a subscription, with the answer it got."""

    __tablename__ = "deliveries"
    __table_args__ = (Index(None, "subscription_id", "id"), Index(None, "created_at"))

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    delivery_id: Mapped[str]
    event: Mapped[str]
    run_id: Mapped[str | None]
    attempt: Mapped[int]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
