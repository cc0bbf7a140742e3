"""recovery: the account of each run, and one recovery_events row per detected crash.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Runs recorded before this revision traded the default account ("").
    op.add_column(
        "system_state",
        sa.Column("account", sa.String(length=64), server_default=sa.text("''"), nullable=False),
    )
    op.create_index("ix_system_state_account_started_at", "system_state", ["account", "started_at"])
    op.create_table(
        "recovery_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("detected_by_run_id", sa.String(length=36), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("downtime_s", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "discrepancies",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_events")),
        sa.UniqueConstraint("run_id", name=op.f("uq_recovery_events_run_id")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["system_state.run_id"],
            name=op.f("fk_recovery_events_run_id_system_state"),
        ),
        sa.CheckConstraint(
            "status IN ('detected', 'reconciled', 'accepted')",
            name=op.f("ck_recovery_events_status"),
        ),
    )
    op.create_index("ix_recovery_events_detected_at", "recovery_events", ["detected_at"])


def downgrade() -> None:
    op.drop_index("ix_recovery_events_detected_at", table_name="recovery_events")
    op.drop_table("recovery_events")
    op.drop_index("ix_system_state_account_started_at", table_name="system_state")
    with op.batch_alter_table("system_state") as batch:
        batch.drop_column("account")
