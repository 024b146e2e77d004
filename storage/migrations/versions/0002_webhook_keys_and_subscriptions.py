"""Webhook idempotency keys, and outgoing event subscriptions with their delivery log.

Revision ID: 0002
Revises: 0001
Created: 2025-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# As in 0001: types spelled out, times `timestamptz` on PostgreSQL and UTC text on SQLite.
TIMESTAMP = sa.DateTime(timezone=True)
AUTOINCREMENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A repeated webhook delivery (same Idempotency-Key or sender's delivery id, per trigger
    # node) answers with the run the first one started, until the key expires.
    op.create_table(
        "idempotency_keys",
        sa.Column("flow_id", sa.String(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_idempotency_keys_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", "node_id", "key", name=op.f("pk_idempotency_keys")),
    )
    # Pruning deletes the expired keys.
    op.create_index(op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"])

    # Outgoing event webhooks; `secret` is a Fernet token, `flow_id` an optional filter.
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("flow_id", sa.String(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_subscriptions_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )

    # One row per delivery attempt, with the answer (status code or error) it got.
    op.create_table(
        "deliveries",
        sa.Column("id", AUTOINCREMENT_ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(), nullable=False),
        sa.Column("delivery_id", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_deliveries_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    # A subscription's latest deliveries; pruning old ones.
    op.create_index(
        op.f("ix_deliveries_subscription_id_id"), "deliveries", ["subscription_id", "id"]
    )
    op.create_index(op.f("ix_deliveries_created_at"), "deliveries", ["created_at"])


def downgrade() -> None:
    op.drop_table("deliveries")  # its indexes go with it
    op.drop_table("subscriptions")
    op.drop_table("idempotency_keys")
