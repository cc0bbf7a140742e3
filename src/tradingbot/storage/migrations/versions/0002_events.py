"""events: every recorded event, unique by its client-generated UUID.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns, partial-index condition)
INDEXES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("ix_events_ts_seq", ("ts", "seq"), None),
    ("ix_events_type_severity_ts_seq", ("type", "severity", "ts", "seq"), None),
    ("ix_events_severity_ts_seq", ("severity", "ts", "seq"), None),
    ("ix_events_strategy_id_ts_seq", ("strategy_id", "ts", "seq"), "strategy_id IS NOT NULL"),
    ("ix_events_trade_id_ts_seq", ("trade_id", "ts", "seq"), "trade_id IS NOT NULL"),
)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=True),
        sa.Column("trade_id", sa.String(length=128), nullable=True),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
        sa.CheckConstraint("severity IN (10, 20, 30, 40, 50)", name=op.f("ck_events_severity")),
        sqlite_autoincrement=True,
    )
    for name, columns, where in INDEXES:
        condition = None if where is None else sa.text(where)
        op.create_index(
            name,
            "events",
            list(columns),
            postgresql_where=condition,
            sqlite_where=condition,
        )


def downgrade() -> None:
    for name, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name="events")
    op.drop_table("events")
