"""system_state: one row per process run (start, heartbeat, clean stop).

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "system_state",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clean_stop", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_system_state")),
    )
    op.create_index("ix_system_state_started_at", "system_state", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_system_state_started_at", table_name="system_state")
    op.drop_table("system_state")
