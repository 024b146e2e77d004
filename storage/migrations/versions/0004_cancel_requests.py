"""Cancelling a run another FlowLoom process executes: the `cancel_requests` it picks up.

Revision ID: 0004
Revises: 0003
Created: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# As in 0001: times `timestamptz` on PostgreSQL and UTC text on SQLite.
TIMESTAMP = sa.DateTime(timezone=True)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cancel_requests",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_cancel_requests_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_cancel_requests")),
    )


def downgrade() -> None:
    op.drop_table("cancel_requests")
