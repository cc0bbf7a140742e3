"""books_snapshots: our books at the end of a trading date, so reports skip old fills.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "books_snapshots",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("boundary", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fills", sa.BigInteger(), nullable=False),
        sa.Column("seq_sum", sa.BigInteger(), nullable=False),
        sa.Column("replay_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "positions",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("base", sa.Date(), nullable=True),
        sa.Column(
            "days",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_books_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("books_snapshots")
