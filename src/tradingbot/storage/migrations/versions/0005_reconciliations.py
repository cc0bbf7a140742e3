"""reconciliations: each comparison of our books with the broker's, and its baseline.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("positions", _json(), nullable=False),
        sa.Column("boundary_exec_ids", _json(), nullable=False),
        sa.Column("accepted_orders", _json(), nullable=False),
        sa.Column("discrepancies", _json(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("accepted_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
        sa.CheckConstraint(
            "status IN ('clean', 'discrepancies', 'failed', 'accepted')",
            name=op.f("ck_reconciliations_status"),
        ),
    )
    op.create_index("ix_reconciliations_account_as_of", "reconciliations", ["account", "as_of"])


def downgrade() -> None:
    op.drop_index("ix_reconciliations_account_as_of", table_name="reconciliations")
    op.drop_table("reconciliations")
