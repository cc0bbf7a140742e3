"""``OutboxRepository.recent``: the dashboard's mail page reads the newest mails of one
status, newest first, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradingbot.storage import Database
from tradingbot.storage.outbox import FAILED, PENDING, SENT, NewMail, OutboxRepository


def _mail(n: int, now: datetime) -> NewMail:
    return NewMail(
        message_id=f"<recent-{n}@example.com>",
        kind="alert",
        severity=40,
        subject=f"mail {n}",
        sender="bot@example.com",
        recipients=("ops@example.com",),
        context={},
        created_at=now + timedelta(seconds=n),
    )


def test_recent_lists_one_status_newest_first_and_sent_by_sending_time(
    database: Database,
) -> None:
    """Pending and failed mail come newest first; sent mail by when it was sent, latest
    first; ``limit`` keeps the newest."""
    repository = OutboxRepository(database)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    rows = [repository.add(_mail(n, now)) for n in range(6)]
    ids = [row.id for row in rows if row is not None]
    assert len(ids) == 6
    repository.mark_failed(ids[1], now, "550 no such user")
    repository.mark_sent(ids[2], now + timedelta(minutes=5))  # sent last
    repository.mark_sent(ids[3], now + timedelta(minutes=1))
    assert [m.subject for m in repository.recent(status=PENDING)] == ["mail 5", "mail 4", "mail 0"]
    assert [m.subject for m in repository.recent(status=PENDING, limit=2)] == ["mail 5", "mail 4"]
    failed = repository.recent(status=FAILED)
    assert [(m.subject, m.last_error) for m in failed] == [("mail 1", "550 no such user")]
    assert [m.subject for m in repository.recent(status=SENT)] == ["mail 2", "mail 3"]
