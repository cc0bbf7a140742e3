"""outbox: notification e-mail, written before it is sent (durable, at-least-once).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns, partial-index condition)
INDEXES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("ix_outbox_status_next_attempt_at", ("status", "next_attempt_at"), None),
    ("ix_outbox_dedup_key_created_at", ("dedup_key", "created_at"), "dedup_key IS NOT NULL"),
    ("ix_outbox_folded_into", ("folded_into",), "folded_into IS NOT NULL"),
    ("ix_outbox_sent_at", ("sent_at",), None),
)


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", _bigint(), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=True),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipients", _json(), nullable=False),
        sa.Column("context", _json(), nullable=False),
        sa.Column("mime", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("coalesced", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("folded_into", _bigint(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'folded')", name=op.f("ck_outbox_status")
        ),
        sa.CheckConstraint("severity IN (10, 20, 30, 40, 50)", name=op.f("ck_outbox_severity")),
        sqlite_autoincrement=True,
    )
    for name, columns, where in INDEXES:
        condition = None if where is None else sa.text(where)
        op.create_index(
            name,
            "outbox",
            list(columns),
            postgresql_where=condition,
            sqlite_where=condition,
        )


def downgrade() -> None:
    for name, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name="outbox")
    op.drop_table("outbox")
