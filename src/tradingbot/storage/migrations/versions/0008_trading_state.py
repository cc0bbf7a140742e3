"""trading_state: the kill switch of each account (paused, tripped, running), durable.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trading_state",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_trading_state")),
        sa.CheckConstraint(
            "mode IN ('running', 'paused', 'tripped')", name=op.f("ck_trading_state_mode")
        ),
    )


def downgrade() -> None:
    op.drop_table("trading_state")
