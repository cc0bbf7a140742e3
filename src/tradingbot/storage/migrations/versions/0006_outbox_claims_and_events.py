"""outbox: which run holds a row's claim, and which event a mail was made from.

``claimed_by`` lets the start after a crash free the dead run's claims at once;
``event_id`` lets the notifier's catch-up find the newest mail made from an event and
tell that an event's mail exists whatever sender address made its Message-ID.

Revision ID: 0006
Revises: 0005
Create Date: 2025-01-06 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claimed_by", sa.String(length=64), nullable=True))
    op.add_column("outbox", sa.Column("event_id", sa.String(length=36), nullable=True))
    op.create_index(
        "ix_outbox_event_id",
        "outbox",
        ["event_id"],
        postgresql_where=sa.text("event_id IS NOT NULL"),
        sqlite_where=sa.text("event_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_event_id", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("event_id")
        batch.drop_column("claimed_by")
