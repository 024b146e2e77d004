"""Initial schema: flows and their versions, runs and steps, credentials, trigger state,
conversation memory.

Revision ID: 0001
Revises:
Created: 2025-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Migrations spell out their types instead of importing the models, which will change.
# Times are `timestamptz` on PostgreSQL and UTC text on SQLite.
TIMESTAMP = sa.DateTime(timezone=True)
# SQLite counts up only an INTEGER primary key; PostgreSQL gets 64 bits.
AUTOINCREMENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("retention_max_runs", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        # Sub-flows find a flow by name, so two flows may not share one.
        sa.UniqueConstraint("name", name=op.f("uq_flows_name")),
    )

    op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_flow_versions_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", "version", name=op.f("pk_flow_versions")),
    )

    # Run headers; a deleted flow's runs stay (flow_id NULL) until retention prunes them.
    op.create_table(
        "runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("flow_id", sa.String(), nullable=True),
        sa.Column("flow_version", sa.Integer(), nullable=True),
        sa.Column("trigger", sa.String(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_runs_flow_id_flows"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    # Newest first, overall and per flow; unfinished runs at start-up.
    op.create_index(op.f("ix_runs_created_at"), "runs", ["created_at"])
    op.create_index(op.f("ix_runs_flow_id_created_at"), "runs", ["flow_id", "created_at"])
    op.create_index(op.f("ix_runs_status"), "runs", ["status"])

    # One row per node visit, apart from the run headers so they can be pruned on their own.
    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("node_name", sa.String(), nullable=False),
        sa.Column("node_type", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("parent", sa.String(), nullable=True),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("port", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("logs", sa.JSON(), nullable=False),
        sa.Column("exchanges", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_steps_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_steps")),
    )

    # `secret` is a Fernet token; `fields` holds the field names only.
    op.create_table(
        "credentials",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_credentials")),
    )

    op.create_table(
        "webhook_tokens",
        sa.Column("flow_id", sa.String(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_webhook_tokens_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", "node_id", name=op.f("pk_webhook_tokens")),
        sa.UniqueConstraint("token", name=op.f("uq_webhook_tokens_token")),
    )

    op.create_table(
        "schedules",
        sa.Column("flow_id", sa.String(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("next_run_at", TIMESTAMP, nullable=True),
        sa.Column("last_fired_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_schedules_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("flow_id", "node_id", name=op.f("pk_schedules")),
    )

    op.create_table(
        "conversation_messages",
        sa.Column("id", AUTOINCREMENT_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    # The last N messages of one conversation.
    op.create_index(op.f("ix_conversation_messages_key_id"), "conversation_messages", ["key", "id"])


def downgrade() -> None:
    op.drop_table("conversation_messages")  # its index goes with it
    op.drop_table("schedules")
    op.drop_table("webhook_tokens")
    op.drop_table("credentials")
    op.drop_table("steps")
    op.drop_table("runs")
    op.drop_table("flow_versions")
    op.drop_table("flows")
