"""The outbox repository on SQLite and PostgreSQL: idempotent adds, claims, marking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradingbot.storage import Database
from tradingbot.storage.outbox import FAILED, FOLDED, PENDING, SENT, NewMail, OutboxRepository

T0 = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)


def mail(message_id: str = "<a@example.com>", **overrides: object) -> NewMail:
    values: dict[str, object] = {
        "message_id": message_id,
        "kind": "alert",
        "severity": 40,
        "subject": "[trading-bot] ERROR broker down",
        "sender": "bot@example.com",
        "recipients": ("ops@example.com", "Desk <desk@example.com>"),
        "context": {"message": "broker down", "details": {"n": 1}},
        "created_at": T0,
    }
    values.update(overrides)
    return NewMail(**values)  # type: ignore[arg-type]


def test_add_is_idempotent_by_message_id(database: Database) -> None:
    """The same Message-ID is stored once; the second add reports it as already there."""
    repo = OutboxRepository(database)
    first = repo.add(mail())
    assert first is not None
    assert first.status == PENDING
    assert first.recipients == ("ops@example.com", "Desk <desk@example.com>")
    assert first.context == {"message": "broker down", "details": {"n": 1}}
    assert first.next_attempt_at == T0
    assert repo.add(mail()) is None
    assert len(repo.rows()) == 1


def test_an_event_has_one_mail_of_each_kind_whatever_its_message_id(database: Database) -> None:
    """A second mail of the same kind for the same event is refused even under another
    Message-ID; another kind, or mail made from no event, is not affected."""
    repo = OutboxRepository(database)
    event = "8b7f6c0e-2f7a-4d55-9a0e-6f1c2b3d4e5f"
    assert repo.add(mail("<a@desk-a.example>", event_id=event)) is not None
    assert repo.add(mail("<a@desk-b.example>", event_id=event)) is None
    assert repo.add(mail("<t@desk-a.example>", event_id=event, kind="trade_execution"))
    assert repo.add(mail("<n1@x>")) is not None
    assert repo.add(mail("<n2@x>")) is not None
    assert sorted(r.message_id for r in repo.rows()) == [
        "<a@desk-a.example>",
        "<n1@x>",
        "<n2@x>",
        "<t@desk-a.example>",
    ]


def test_claim_takes_due_rows_once_until_the_lease_ends(database: Database) -> None:
    """A claimed row is not claimed again before its lease ends, and is after."""
    repo = OutboxRepository(database)
    repo.add(mail("<a@x>"))
    repo.add(mail("<b@x>", next_attempt_at=T0 + timedelta(minutes=5)))
    lease = T0 + timedelta(seconds=60)
    claimed = repo.claim_due(T0, lease, 10)
    assert [r.message_id for r in claimed] == ["<a@x>"]
    assert repo.claim_due(T0 + timedelta(seconds=30), lease, 10) == []
    again = repo.claim_due(T0 + timedelta(seconds=61), T0 + timedelta(seconds=120), 10)
    assert [r.message_id for r in again] == ["<a@x>"]


def test_claims_of_a_dead_run_are_freed_and_no_one_elses(database: Database) -> None:
    """After a crash the dead run's claims become due at once; live claims stay claimed."""
    repo = OutboxRepository(database)
    for name in ("a", "b", "c"):
        repo.add(mail(f"<{name}@x>"))
    lease = T0 + timedelta(seconds=85)
    repo.claim_due(T0, lease, 1, owner="run-dead")
    repo.claim_due(T0, lease, 1, owner="run-live")
    later = T0 + timedelta(seconds=2)
    assert repo.release_claims_of(["run-dead", "run-gone"], later) == 1
    again = repo.claim_due(later, later + timedelta(seconds=85), 10, owner="run-new")
    assert sorted(r.message_id for r in again) == ["<a@x>", "<c@x>"]
    assert repo.release_claims_of([], later) == 0
    # a row the dead run had rescheduled (a transient failure) keeps its backoff
    repo.reschedule(again[0].id, T0 + timedelta(minutes=10), "SMTPServerDisconnected: gone")
    assert repo.release_claims_of(["run-new"], later) == 1  # only the row still claimed
    row = repo.get(again[0].id)
    assert row is not None
    assert row.next_attempt_at == T0 + timedelta(minutes=10)


def test_sent_failed_and_rescheduled_rows_keep_their_history(database: Database) -> None:
    """Marking sets status, counts the attempt and keeps the last error."""
    repo = OutboxRepository(database)
    a = repo.add(mail("<a@x>"))
    b = repo.add(mail("<b@x>"))
    assert a is not None
    assert b is not None
    repo.reschedule(a.id, T0 + timedelta(seconds=5), "SMTPServerDisconnected: gone")
    repo.mark_sent(a.id, T0 + timedelta(seconds=6))
    repo.mark_failed(b.id, T0, "SMTPDataError: (550, b'rejected')")
    sent, failed = repo.get(a.id), repo.get(b.id)
    assert sent is not None
    assert failed is not None
    assert (sent.status, sent.attempts, sent.sent_at) == (SENT, 2, T0 + timedelta(seconds=6))
    assert (failed.status, failed.attempts) == (FAILED, 1)
    assert failed.last_error is not None
    assert "550" in failed.last_error
    assert repo.claim_due(T0 + timedelta(days=1), T0 + timedelta(days=2), 10) == []
    assert repo.sent_since(T0) == [T0 + timedelta(seconds=6)]
    stats = repo.stats()
    assert (stats.pending, stats.failed) == (0, 1)


def test_coalesce_counts_into_an_open_follow_up_only(database: Database) -> None:
    """Identical alerts count into a pending, unrendered row whose window is still open."""
    repo = OutboxRepository(database)
    repo.add(mail("<first@x>", dedup_key="k"))
    assert repo.coalesce("k", T0) is None  # the first mail has no window of its own
    end = repo.window_end("k", T0 + timedelta(seconds=10), 300.0)
    assert end == T0 + timedelta(seconds=300)
    follow = repo.add(mail("<next@x>", dedup_key="k", next_attempt_at=end, window_ends_at=end))
    assert follow is not None
    counted = repo.coalesce("k", T0 + timedelta(seconds=20))
    assert counted is not None
    assert counted.id == follow.id
    assert counted.coalesced == 2
    assert repo.coalesce("k", end) is None  # the window has ended
    assert repo.window_end("k", end + timedelta(seconds=301), 300.0) is None


def test_fold_moves_rows_into_a_digest_and_stats_count_pending(database: Database) -> None:
    """Folded rows leave the pending count and point at the digest that lists them."""
    repo = OutboxRepository(database)
    digest = repo.add(mail("<digest@x>", kind="digest"))
    a = repo.add(mail("<a@x>", created_at=T0 - timedelta(minutes=3)))
    b = repo.add(mail("<b@x>"))
    assert digest is not None
    assert a is not None
    assert b is not None
    assert repo.open_digest() == digest
    repo.fold([a.id, b.id], digest.id)
    assert [r.message_id for r in repo.folded_into(digest.id)] == ["<a@x>", "<b@x>"]
    assert {r.status for r in repo.folded_into(digest.id)} == {FOLDED}
    stats = repo.stats()
    assert stats.pending == 1
    assert stats.oldest_pending_at == T0
    repo.freeze(digest.id, "[trading-bot] DIGEST", "Subject: x\r\n\r\nbody\r\n")
    assert repo.open_digest() is None
    frozen = repo.get(digest.id)
    assert frozen is not None
    assert frozen.mime == "Subject: x\r\n\r\nbody\r\n"


def test_retention_deletes_old_sent_mail_and_its_folded_rows_only(database: Database) -> None:
    """Sent mail past the cutoff goes (with the rows folded into it); pending/failed stay."""
    repo = OutboxRepository(database)
    old = repo.add(mail("<old@x>"))
    digest = repo.add(mail("<digest@x>", kind="digest"))
    folded = repo.add(mail("<folded@x>"))
    recent = repo.add(mail("<recent@x>"))
    failed = repo.add(mail("<failed@x>"))
    waiting = repo.add(mail("<waiting@x>"))
    assert old is not None
    assert digest is not None
    assert folded is not None
    assert recent is not None
    assert failed is not None
    assert waiting is not None
    repo.mark_sent(old.id, T0)
    repo.fold([folded.id], digest.id)
    repo.mark_sent(digest.id, T0)
    repo.mark_sent(recent.id, T0 + timedelta(days=40))
    repo.mark_failed(failed.id, T0, "550")
    deleted = repo.delete_sent_before(T0 + timedelta(days=30))
    assert deleted == 3
    assert sorted(r.message_id for r in repo.rows()) == ["<failed@x>", "<recent@x>", "<waiting@x>"]
