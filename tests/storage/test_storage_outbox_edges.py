"""The outbox repository's edges on SQLite and PostgreSQL: naive times, retrying failed
mail, giving claims back, storm windows, retention and the reading queries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from support.waiting import WAIT_S, wait_until
from tradingbot.storage import Database
from tradingbot.storage.errors import RecordNotFound
from tradingbot.storage.outbox import (
    FAILED,
    PENDING,
    SENT,
    NewMail,
    OutboxRecord,
    OutboxRepository,
)

T0 = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)
NAIVE = T0.replace(tzinfo=None)

Call = Callable[[OutboxRepository], object]

LOCK_ROW = sqlalchemy.text("SELECT id FROM outbox WHERE id = :id FOR UPDATE")
CLAIMS_WAITING = sqlalchemy.text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox%'"
)
MARK_SENT = sqlalchemy.text(
    "UPDATE outbox SET status = 'sent', sent_at = :at, attempts = attempts + 1 WHERE id = :id"
)


def mail(message_id: str = "<a@example.com>", **overrides: object) -> NewMail:
    values: dict[str, object] = {
        "message_id": message_id,
        "kind": "alert",
        "severity": 40,
        "subject": "[trading-bot] ERROR broker down",
        "sender": "bot@example.com",
        "recipients": ("ops@example.com",),
        "context": {"message": "broker down"},
        "created_at": T0,
    }
    values.update(overrides)
    return NewMail(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda r: r.add(mail(created_at=NAIVE)), "created_at"),
        (lambda r: r.add(mail(next_attempt_at=NAIVE)), "next_attempt_at"),
        (lambda r: r.add(mail(window_ends_at=NAIVE)), "window_ends_at"),
        (lambda r: r.coalesce("k", NAIVE), "now"),
        (lambda r: r.window_end("k", NAIVE, 300.0), "now"),
        (lambda r: r.claim_due(NAIVE, T0, 10), "now"),
        (lambda r: r.claim_due(T0, NAIVE, 10), "lease_until"),
        (lambda r: r.mark_sent(1, NAIVE), "at"),
        (lambda r: r.mark_failed(1, NAIVE, "550"), "at"),
        (lambda r: r.reschedule(1, NAIVE, "421"), "next_attempt_at"),
        (lambda r: r.retry_failed(1, NAIVE), "at"),
        (lambda r: r.release(1, NAIVE), "at"),
        (lambda r: r.release_claims_of(["run-1"], NAIVE), "at"),
        (lambda r: r.delete_sent_before(NAIVE), "before"),
        (lambda r: r.mailed_near("k", NAIVE, 300.0), "at"),
        (lambda r: r.sent_since(NAIVE), "since"),
    ],
)
def test_a_naive_time_is_refused_naming_the_argument(
    database: Database, call: Call, argument: str
) -> None:
    """A datetime without a time zone is refused, and the error names the argument."""
    with pytest.raises(ValueError, match=f"^{argument}: naive datetime"):
        call(OutboxRepository(database))


def added(repo: OutboxRepository, new: NewMail) -> OutboxRecord:
    record = repo.add(new)
    assert record is not None
    return record


def stored(repo: OutboxRepository, row_id: int) -> OutboxRecord:
    record = repo.get(row_id)
    assert record is not None
    return record


def test_a_missing_mail_is_reported_by_its_id(database: Database) -> None:
    """Marking a mail that is not there names it; reading it finds nothing."""
    repo = OutboxRepository(database)
    with pytest.raises(RecordNotFound, match="no mail 999 in the outbox"):
        repo.mark_sent(999, T0)
    with pytest.raises(RecordNotFound, match="no mail 999 in the outbox"):
        repo.release(999, T0)
    assert repo.get(999) is None
    assert repo.by_message_id("<nowhere@x>") is None
    assert repo.retry_failed(999, T0) is False


def test_a_stored_mail_reads_back_field_for_field(database: Database) -> None:
    """Every field of a stored mail comes back as written, then as claimed and folded."""
    repo = OutboxRepository(database)
    end = T0 + timedelta(minutes=5)
    new = mail(
        "<f@x>",
        dedup_key="RISK:risk:limit",
        next_attempt_at=end,
        window_ends_at=end,
        event_id="8b7f6c0e-2f7a-4d55-9a0e-6f1c2b3d4e5f",
        context={"message": "limit", "count": 1},
    )
    record = added(repo, new)
    expected = OutboxRecord(
        id=record.id,
        message_id="<f@x>",
        kind="alert",
        dedup_key="RISK:risk:limit",
        severity=40,
        subject="[trading-bot] ERROR broker down",
        sender="bot@example.com",
        recipients=("ops@example.com",),
        context={"message": "limit", "count": 1},
        mime=None,
        status=PENDING,
        attempts=0,
        last_error=None,
        next_attempt_at=end,
        created_at=T0,
        sent_at=None,
        coalesced=1,
        window_ends_at=end,
        folded_into=None,
        claimed_by=None,
        event_id="8b7f6c0e-2f7a-4d55-9a0e-6f1c2b3d4e5f",
    )
    assert record == expected
    assert stored(repo, record.id) == expected
    assert repo.by_message_id("<f@x>") == expected
    (claimed,) = repo.claim_due(end, end + timedelta(seconds=85), 10, owner="run-1")
    assert claimed.id == record.id
    assert stored(repo, record.id).claimed_by == "run-1"
    digest = added(repo, mail("<d@x>", kind="digest"))
    repo.fold([record.id], digest.id)
    assert stored(repo, record.id).folded_into == digest.id


def test_retry_makes_only_that_failed_mail_pending_again(database: Database) -> None:
    """``mail retry ID`` revives the named failed mail, due at once with its Message-ID;
    pending, sent and other failed mail is left as it is."""
    repo = OutboxRepository(database)
    failed = added(repo, mail("<failed@x>"))
    other = added(repo, mail("<other@x>"))
    pending = added(repo, mail("<pending@x>"))
    sent = added(repo, mail("<sent@x>"))
    repo.mark_failed(failed.id, T0, "550 no such user")
    repo.mark_failed(other.id, T0, "550 no such user")
    repo.mark_sent(sent.id, T0)
    later = T0 + timedelta(hours=2)
    assert repo.retry_failed(failed.id, later) is True
    again = stored(repo, failed.id)
    assert (again.status, again.next_attempt_at, again.message_id) == (
        PENDING,
        later,
        "<failed@x>",
    )
    assert stored(repo, other.id).status == FAILED
    assert repo.retry_failed(failed.id, later) is False  # pending now
    assert repo.retry_failed(pending.id, later) is False
    assert repo.retry_failed(sent.id, later) is False
    assert stored(repo, sent.id).status == SENT
    assert [r.id for r in repo.claim_due(later, later + timedelta(minutes=1), 10)] == [
        pending.id,  # due since T0
        failed.id,
    ]


def test_a_released_claim_is_due_again_unattempted(database: Database) -> None:
    """A claim given back is due at the given time and unowned; other claims stay."""
    repo = OutboxRepository(database)
    a = added(repo, mail("<a@x>"))
    b = added(repo, mail("<b@x>"))
    lease = T0 + timedelta(seconds=85)
    assert len(repo.claim_due(T0, lease, 10, owner="run-1")) == 2
    free_at = T0 + timedelta(minutes=30)
    repo.release(a.id, free_at)
    released, kept = stored(repo, a.id), stored(repo, b.id)
    assert (released.next_attempt_at, released.claimed_by, released.attempts) == (free_at, None, 0)
    assert (kept.next_attempt_at, kept.claimed_by) == (lease, "run-1")
    before = repo.claim_due(free_at - timedelta(seconds=1), free_at + timedelta(hours=1), 10)
    assert [r.id for r in before] == [b.id]  # its lease ended; the released one waits
    assert [r.id for r in repo.claim_due(free_at, free_at + timedelta(seconds=85), 10)] == [a.id]


def test_claims_take_the_earliest_due_pending_mail_first(database: Database) -> None:
    """Oldest due first (by due time, then by insertion); failed and sent mail is never
    claimed, even when it is older than the pending mail."""
    repo = OutboxRepository(database)
    failed = added(repo, mail("<failed@x>"))
    sent = added(repo, mail("<sent@x>"))
    repo.mark_failed(failed.id, T0 - timedelta(minutes=20), "550")
    repo.mark_sent(sent.id, T0 - timedelta(minutes=20))
    late = added(repo, mail("<late@x>", next_attempt_at=T0 - timedelta(minutes=1)))
    first = added(repo, mail("<first@x>", next_attempt_at=T0 - timedelta(minutes=2)))
    second = added(repo, mail("<second@x>", next_attempt_at=T0 - timedelta(minutes=5)))
    # Retried at the same time as ``second``: PostgreSQL now stores it after that one.
    repo.reschedule(first.id, T0 - timedelta(minutes=5), "421 busy", attempted=False)
    lease = T0 + timedelta(seconds=85)
    order = [repo.claim_due(T0, lease, 1, owner="run-1") for _ in range(4)]
    assert [[r.id for r in claimed] for claimed in order] == [
        [first.id],
        [second.id],
        [late.id],
        [],
    ]
    assert stored(repo, failed.id).status == FAILED
    assert stored(repo, sent.id).claimed_by is None


def test_freezing_stores_one_mails_subject_and_bytes_once(database: Database) -> None:
    """The first rendering of a mail is kept for every later attempt; other mail is not
    touched."""
    repo = OutboxRepository(database)
    a = added(repo, mail("<a@x>"))
    b = added(repo, mail("<b@x>"))
    repo.freeze(a.id, "[trading-bot] rendered", "Subject: rendered\r\n\r\nfirst\r\n")
    repo.freeze(a.id, "[trading-bot] again", "Subject: again\r\n\r\nsecond\r\n")
    frozen, untouched = stored(repo, a.id), stored(repo, b.id)
    assert (frozen.subject, frozen.mime) == (
        "[trading-bot] rendered",
        "Subject: rendered\r\n\r\nfirst\r\n",
    )
    assert (untouched.subject, untouched.mime) == ("[trading-bot] ERROR broker down", None)


def test_marking_keeps_the_times_and_errors_an_operator_reads(database: Database) -> None:
    """A sent mail has no error left; a failed one shows when it failed and the first
    2000 characters of why; a release without an attempt does not count one."""
    repo = OutboxRepository(database)
    a = added(repo, mail("<a@x>"))
    b = added(repo, mail("<b@x>"))
    c = added(repo, mail("<c@x>"))
    repo.reschedule(a.id, T0 + timedelta(seconds=5), "SMTPServerDisconnected: gone")
    repo.mark_sent(a.id, T0 + timedelta(seconds=6))
    assert stored(repo, a.id).last_error is None
    failed_at = T0 + timedelta(seconds=7)
    repo.mark_failed(b.id, failed_at, "550 " + "x" * 3000)
    failed = stored(repo, b.id)
    assert failed.next_attempt_at == failed_at
    assert failed.last_error == ("550 " + "x" * 3000)[:2000]
    repo.reschedule(c.id, T0 + timedelta(seconds=9), "421 " + "y" * 3000, attempted=False)
    waiting = stored(repo, c.id)
    assert (waiting.attempts, waiting.next_attempt_at) == (0, T0 + timedelta(seconds=9))
    assert waiting.last_error == ("421 " + "y" * 3000)[:2000]


def test_a_dead_runs_claims_are_freed_only_while_pending_and_leased(database: Database) -> None:
    """Of a dead run's claims, only pending mail whose lease is still running is made due:
    a mail it sent stays sent, and an expired lease (or one ending right then) is left."""
    repo = OutboxRepository(database)
    rows = [added(repo, mail(f"<{n}@x>")) for n in "abcd"]
    for seconds in (60, 60, 30, 10):  # one row per claim, oldest first
        repo.claim_due(T0, T0 + timedelta(seconds=seconds), 1, owner="run-dead")
    repo.mark_sent(rows[1].id, T0 + timedelta(seconds=1))
    moment = T0 + timedelta(seconds=30)
    assert repo.release_claims_of(["run-dead"], moment) == 1
    freed = stored(repo, rows[0].id)
    assert (freed.next_attempt_at, freed.claimed_by) == (moment, None)
    sent = stored(repo, rows[1].id)
    assert (sent.status, sent.next_attempt_at) == (SENT, T0 + timedelta(seconds=60))
    assert stored(repo, rows[2].id).next_attempt_at == moment  # its lease ends right then
    assert stored(repo, rows[2].id).claimed_by == "run-dead"
    assert stored(repo, rows[3].id).next_attempt_at == T0 + timedelta(seconds=10)


def test_folding_moves_only_pending_mail_into_the_digest(database: Database) -> None:
    """A mail already sent is not folded into a digest (it would be listed twice); the
    digest lists its mails oldest first, whatever happened to them before."""
    repo = OutboxRepository(database)
    digest = added(repo, mail("<digest@x>", kind="digest"))
    pending = added(repo, mail("<pending@x>"))
    later = added(repo, mail("<later@x>"))
    sent = added(repo, mail("<sent@x>"))
    repo.mark_sent(sent.id, T0)
    repo.fold([later.id, sent.id], digest.id)
    repo.fold([pending.id], digest.id)  # the older mail in a later pass (it was retried)
    assert [r.id for r in repo.folded_into(digest.id)] == [pending.id, later.id]
    assert (stored(repo, sent.id).status, stored(repo, sent.id).folded_into) == (SENT, None)


def test_retention_keeps_mail_sent_at_the_cutoff_and_digests_still_to_send(
    database: Database,
) -> None:
    """Only mail sent before the cutoff goes, with its folded rows; a digest sent at or
    after the cutoff, or not sent yet, keeps the mail folded into it."""
    repo = OutboxRepository(database)
    cutoff = T0 + timedelta(days=30)

    def digest_with_one(name: str, sent_at: datetime | None) -> tuple[int, int]:
        digest = added(repo, mail(f"<digest-{name}@x>", kind="digest"))
        folded = added(repo, mail(f"<folded-{name}@x>"))
        repo.fold([folded.id], digest.id)
        if sent_at is not None:
            repo.mark_sent(digest.id, sent_at)
        return digest.id, folded.id

    old = digest_with_one("old", cutoff - timedelta(seconds=1))
    at_cutoff = digest_with_one("at-cutoff", cutoff)
    recent = digest_with_one("recent", cutoff + timedelta(days=1))
    waiting = digest_with_one("waiting", None)
    assert repo.delete_sent_before(cutoff) == 2
    assert repo.get(old[0]) is None
    assert repo.get(old[1]) is None
    for digest_id, folded_id in (at_cutoff, recent, waiting):
        assert [r.id for r in repo.folded_into(digest_id)] == [folded_id]


def test_the_open_digest_is_the_oldest_pending_unrendered_digest(database: Database) -> None:
    """Overflow is folded only into a digest still to be rendered: never into an alert, a
    failed digest, or a second digest when an older one is open."""
    repo = OutboxRepository(database)
    added(repo, mail("<alert@x>"))
    assert repo.open_digest() is None
    broken = added(repo, mail("<broken@x>", kind="digest"))
    repo.mark_failed(broken.id, T0, "TemplateError: digest")
    assert repo.open_digest() is None
    older = added(repo, mail("<older@x>", kind="digest"))
    added(repo, mail("<newer@x>", kind="digest"))
    repo.release(older.id, T0 + timedelta(minutes=30))  # rewrites the older row
    open_digest = repo.open_digest()
    assert open_digest is not None
    assert open_digest.id == older.id


def test_sends_of_the_last_hour_are_listed_oldest_first(database: Database) -> None:
    """The rate limit counts mail sent after the given moment (not at it), in sending
    order, whatever order it was marked in."""
    repo = OutboxRepository(database)
    rows = [added(repo, mail(f"<{n}@x>")) for n in "abcd"]
    added(repo, mail("<pending@x>"))
    for row, minutes in zip(rows, (50, 20, 0, -10), strict=True):
        repo.mark_sent(row.id, T0 + timedelta(minutes=minutes))
    assert repo.sent_since(T0) == [T0 + timedelta(minutes=20), T0 + timedelta(minutes=50)]
    assert repo.sent_since(T0 - timedelta(minutes=11)) == [
        T0 - timedelta(minutes=10),
        T0,
        T0 + timedelta(minutes=20),
        T0 + timedelta(minutes=50),
    ]


def test_rows_filter_by_status_and_kind_in_insertion_order(database: Database) -> None:
    """The shell's ``mail`` lists pending and failed mail, oldest first, up to a limit."""
    repo = OutboxRepository(database)
    a = added(repo, mail("<a@x>"))
    b = added(repo, mail("<b@x>"))
    c = added(repo, mail("<c@x>", kind="digest"))
    d = added(repo, mail("<d@x>"))
    repo.mark_failed(b.id, T0, "550")
    repo.reschedule(a.id, T0 + timedelta(seconds=5), "421")  # rewrites the first row
    assert [r.id for r in repo.rows()] == [a.id, b.id, c.id, d.id]
    assert [r.id for r in repo.rows(status=PENDING)] == [a.id, c.id, d.id]
    assert [r.id for r in repo.rows(status=FAILED)] == [b.id]
    assert [r.id for r in repo.rows(kind="digest")] == [c.id]
    assert [r.id for r in repo.rows(status=PENDING, kind="alert")] == [a.id, d.id]
    assert [r.id for r in repo.rows(status=PENDING, limit=2)] == [a.id, c.id]


def test_stats_count_pending_and_failed_mail_apart(database: Database) -> None:
    """Health shows the pending depth and the failed count separately, zero when none."""
    repo = OutboxRepository(database)
    empty = repo.stats()
    assert (empty.pending, empty.oldest_pending_at, empty.failed) == (0, None, 0)
    added(repo, mail("<a@x>", created_at=T0 + timedelta(minutes=1)))
    added(repo, mail("<b@x>"))
    failed = added(repo, mail("<c@x>", created_at=T0 - timedelta(minutes=5)))
    sent = added(repo, mail("<d@x>", created_at=T0 - timedelta(minutes=9)))
    repo.mark_sent(sent.id, T0)
    only_pending = repo.stats()
    assert (only_pending.pending, only_pending.oldest_pending_at, only_pending.failed) == (
        3,
        T0 - timedelta(minutes=5),
        0,
    )
    repo.mark_failed(failed.id, T0, "550")
    stats = repo.stats()
    assert (stats.pending, stats.oldest_pending_at, stats.failed) == (2, T0, 1)


def test_mailed_events_finds_mail_among_more_ids_than_one_query_takes(
    database: Database,
) -> None:
    """The catch-up's look-up of 1,201 events finds the mail of the first, the last and
    those at the edges of each 500-id query, with its kind."""
    repo = OutboxRepository(database)
    ids = [f"event-{n:04d}" for n in range(1201)]
    mailed = {0: "alert", 499: "trade_execution", 500: "alert", 1000: "alert", 1200: "alert"}
    for n, kind in mailed.items():
        added(repo, mail(f"<{n}@x>", kind=kind, event_id=ids[n]))
    added(repo, mail("<no-event@x>"))
    expected = {(ids[n], kind) for n, kind in mailed.items()}
    assert repo.mailed_events(ids + ids[:10]) == expected
    assert repo.mailed_events([]) == set()


def test_the_latest_event_mail_ignores_mail_no_event_made(database: Database) -> None:
    """The catch-up looks back from the newest mail made from an event, not from a later
    watchdog alert."""
    repo = OutboxRepository(database)
    added(repo, mail("<watchdog@x>", created_at=T0 + timedelta(minutes=9)))
    assert repo.latest_event_mail() is None
    added(repo, mail("<e1@x>", event_id="e1", created_at=T0 + timedelta(minutes=1)))
    added(repo, mail("<e2@x>", event_id="e2", created_at=T0))
    assert repo.latest_event_mail() == T0 + timedelta(minutes=1)


def test_an_alert_counts_into_the_newest_open_follow_up_of_its_own_key(
    database: Database,
) -> None:
    """Only a pending, unrendered follow-up of the same alert counts a repeat (the newest
    when there are two); another alert's, a sent or a rendered one does not."""
    repo = OutboxRepository(database)
    end = T0 + timedelta(minutes=5)

    def follow_up(name: str, key: str) -> OutboxRecord:
        return added(repo, mail(name, dedup_key=key, next_attempt_at=end, window_ends_at=end))

    follow_up("<other@x>", "other")
    assert repo.coalesce("k", T0) is None
    sent = follow_up("<sent@x>", "k")
    repo.mark_sent(sent.id, T0)
    assert repo.coalesce("k", T0) is None
    rendered = follow_up("<rendered@x>", "k")
    repo.freeze(rendered.id, "[trading-bot] x2", "Subject: x2\r\n\r\nbody\r\n")
    assert repo.coalesce("k", T0) is None
    older = follow_up("<older@x>", "k")
    newer = follow_up("<newer@x>", "k")
    counted = repo.coalesce("k", T0)
    assert counted is not None
    assert (counted.id, counted.coalesced) == (newer.id, 2)
    assert stored(repo, older.id).coalesced == 1
    assert stored(repo, rendered.id).coalesced == 1


def test_a_storm_window_runs_from_the_latest_mail_of_its_key_and_ends_sharp(
    database: Database,
) -> None:
    """After a follow-up the next window starts at its end; at the very end of a window a
    repeat starts a new storm instead of joining it."""
    repo = OutboxRepository(database)
    added(repo, mail("<first@x>", dedup_key="k"))
    end = T0 + timedelta(seconds=300)
    assert repo.window_end("k", T0 + timedelta(seconds=299), 300.0) == end
    assert repo.window_end("k", end, 300.0) is None
    added(repo, mail("<next@x>", dedup_key="k", next_attempt_at=end, window_ends_at=end))
    added(repo, mail("<other@x>", dedup_key="other", created_at=T0 - timedelta(hours=1)))
    later = T0 + timedelta(seconds=350)
    assert repo.window_end("k", later, 300.0) == T0 + timedelta(seconds=600)
    assert repo.window_end("other", later, 300.0) is None
    assert repo.window_end("unknown", later, 300.0) is None


def test_a_mail_covers_its_storm_window_and_the_seconds_before_it(database: Database) -> None:
    """The catch-up skips an alert an identical mail covers: a first mail from 2 s before
    its creation to the end of its window, a follow-up up to its own window's end, both
    ends included; another alert's mail, or a row to ignore, covers nothing."""
    repo = OutboxRepository(database)
    window = 300.0
    first = added(repo, mail("<first@x>", dedup_key="k"))
    for seconds, covered in ((-3, False), (-2, True), (-1, True), (0, True), (300, True)):
        assert repo.mailed_near("k", T0 + timedelta(seconds=seconds), window) is covered
    assert repo.mailed_near("k", T0 + timedelta(seconds=301), window) is False
    assert repo.mailed_near("other", T0, window) is False
    assert repo.mailed_near("k", T0, window, ignore=[first.id]) is False
    end = T0 + timedelta(seconds=300)
    earlier = added(repo, mail("<f@x>", dedup_key="f", created_at=T0 + timedelta(seconds=100)))
    added(
        repo,
        mail(
            "<follow@x>",
            dedup_key="f",
            created_at=T0 + timedelta(seconds=200),
            next_attempt_at=end,
            window_ends_at=end,
        ),
    )
    only_the_follow_up = [earlier.id]
    assert repo.mailed_near("f", end, window, ignore=only_the_follow_up) is True
    after = end + timedelta(seconds=1)
    assert repo.mailed_near("f", after, window, ignore=only_the_follow_up) is False
    assert repo.mailed_near("f", after, window) is True  # the earlier mail: until T0 + 400


def test_mail_sent_at_the_same_moment_is_listed_newest_first(database: Database) -> None:
    """The dashboard's sent mail: two mails of one delivery moment, the newer on top."""
    repo = OutboxRepository(database)
    older = added(repo, mail("<older@x>"))
    newer = added(repo, mail("<newer@x>"))
    repo.mark_sent(newer.id, T0)
    repo.mark_sent(older.id, T0)
    assert [r.id for r in repo.recent(status=SENT)] == [newer.id, older.id]


@pytest.mark.postgres
def test_on_postgresql_a_mail_marked_sent_while_a_claim_waits_is_not_claimed(
    fresh_postgres_url: str,
) -> None:
    """A mail whose sending is recorded while another process's claim waits for the row
    (the sender retrying its mark after a database blip, its lease run out) is not
    claimed, so it is not sent a second time."""
    with Database.open(fresh_postgres_url) as first, Database.open(fresh_postgres_url) as second:
        first.upgrade()
        repo = OutboxRepository(first)
        row = added(repo, mail("<a@x>"))
        lease = T0 + timedelta(seconds=85)
        repo.claim_due(T0, lease, 10, owner="run-a")
        later = lease + timedelta(seconds=1)
        claims: list[list[OutboxRecord]] = []

        def claim() -> None:
            claims.append(
                OutboxRepository(second).claim_due(later, later + timedelta(seconds=85), 10)
            )

        engine = sqlalchemy.create_engine(fresh_postgres_url, poolclass=NullPool)
        watcher = engine.execution_options(isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as holder, watcher.connect() as watch:
                holder.execute(LOCK_ROW, {"id": row.id})
                claimer = threading.Thread(target=claim)
                claimer.start()
                wait_until(
                    lambda: watch.execute(CLAIMS_WAITING).scalar(),
                    message="the claim's UPDATE to wait for the row lock",
                )
                holder.execute(MARK_SENT, {"id": row.id, "at": lease})  # what mark_sent does
                holder.commit()
                claimer.join(timeout=WAIT_S)
        finally:
            engine.dispose()
    assert not claimer.is_alive()
    assert claims == [[]]
