"""recovery: the account of each run, and one recovery_events row per detected crash.

Runs that ended without a clean stop before this revision, except the latest one, are
recorded as ``accepted`` history: the first start after the upgrade reports the latest
crash (which may be why the operator is restarting), not every kill of the past.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00+00:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

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
    _accept_history()


def _accept_history() -> None:
    """Record every earlier crash but the latest as already accepted (never reported)."""
    bind = op.get_bind()
    runs = sa.table(
        "system_state",
        sa.column("run_id", sa.String),
        sa.column("pid", sa.Integer),
        sa.column("host", sa.String),
        sa.column("version", sa.String),
        sa.column("started_at", sa.DateTime(timezone=True)),
        sa.column("last_heartbeat", sa.DateTime(timezone=True)),
        sa.column("clean_stop", sa.Boolean),
    )
    when = sa.DateTime(timezone=True)
    events = sa.table(
        "recovery_events",
        *(sa.column(name) for name in ("id", "run_id", "detected_by_run_id", "account")),
        *(sa.column(name) for name in ("pid", "host", "version", "downtime_s", "status")),
        *(sa.column(name, when) for name in ("detected_at", "started_at", "last_heartbeat")),
        sa.column("updated_at", when),
        sa.column("discrepancies", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    rows = bind.execute(sa.select(runs).order_by(runs.c.started_at, runs.c.run_id)).all()
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite stores the UTC wall time
    crashed = [i for i, row in enumerate(rows) if not row.clean_stop]
    history = []
    for index in crashed[:-1]:
        row = rows[index]
        back = rows[index + 1].started_at
        history.append(
            {
                "id": str(uuid.uuid4()),
                "run_id": row.run_id,
                "detected_by_run_id": None,
                "detected_at": now,
                "account": "",
                "pid": row.pid,
                "host": row.host,
                "version": row.version,
                "started_at": row.started_at,
                "last_heartbeat": row.last_heartbeat,
                "downtime_s": max(0.0, (back - row.last_heartbeat).total_seconds()),
                "status": "accepted",
                "discrepancies": [],
                "updated_at": now,
            }
        )
    if history:
        bind.execute(sa.insert(events), history)


def downgrade() -> None:
    op.drop_index("ix_recovery_events_detected_at", table_name="recovery_events")
    op.drop_table("recovery_events")
    op.drop_index("ix_system_state_account_started_at", table_name="system_state")
    with op.batch_alter_table("system_state") as batch:
        batch.drop_column("account")
