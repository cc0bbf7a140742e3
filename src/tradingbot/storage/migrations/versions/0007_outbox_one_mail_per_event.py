"""outbox: at most one mail of each kind per event.

The Message-ID is derived from the event *and the sender address*, so it alone does not
keep a second row out: two processes with different sender addresses, or a catch-up and
the live path racing, could store the same event's mail twice and send it twice. A
unique index on ``(event_id, kind)`` (rows not made from an event are exempt) makes the
database refuse the second row whatever its Message-ID.

An older database may already hold such duplicates: all but the first row of each
``(event_id, kind)`` keep their mail but lose the link to the event (``event_id`` set to
NULL), so the index can be built and nothing is deleted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE outbox SET event_id = NULL WHERE event_id IS NOT NULL AND id NOT IN ("
            " SELECT MIN(id) FROM outbox WHERE event_id IS NOT NULL GROUP BY event_id, kind)"
        )
    )
    op.drop_index("ix_outbox_event_id", table_name="outbox")
    op.create_index(
        "ux_outbox_event_id_kind",
        "outbox",
        ["event_id", "kind"],
        unique=True,
        postgresql_where=sa.text("event_id IS NOT NULL"),
        sqlite_where=sa.text("event_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_outbox_event_id_kind", table_name="outbox")
    op.create_index(
        "ix_outbox_event_id",
        "outbox",
        ["event_id"],
        postgresql_where=sa.text("event_id IS NOT NULL"),
        sqlite_where=sa.text("event_id IS NOT NULL"),
    )
