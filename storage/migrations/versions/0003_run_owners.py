"""Which FlowLoom process runs a run: `runs.owner` and the `runtimes` that heartbeat.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# As in 0001: times `timestamptz` on PostgreSQL and UTC text on SQLite.
TIMESTAMP = sa.DateTime(timezone=True)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A run's owner is the runtime (one FlowLoom process) executing it; a process starting
    # beside a live one resumes only the runs whose owner is gone.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))
    op.create_table(
        "runtimes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtimes")),
    )


def downgrade() -> None:
    op.drop_table("runtimes")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
