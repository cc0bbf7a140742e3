"""The ``outbox`` table: notification e-mail, written before it is sent.

A mail is *pending* from the moment :meth:`OutboxRepository.add` commits it until a
sender marks it *sent* (the SMTP server accepted it), *failed* (a permanent refusal) or
*folded* (the rate limit moved it into a digest mail, which lists it). Nothing else ever
removes a mail, so pending mail survives crashes and restarts.

Claims: :meth:`~OutboxRepository.claim_due` moves a due row's ``next_attempt_at`` a lease
into the future with a conditional UPDATE, so two senders (the notifier actor and a CLI
command in another process) never attempt the same row at once; a sender that dies
mid-attempt leaves a claim that simply expires.

Every method is one short transaction, safe from any thread, and raises only
:class:`~tradingbot.storage.StorageError` subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update

from tradingbot.storage.errors import DuplicateRecord, RecordNotFound
from tradingbot.storage.models import OutboxRow
from tradingbot.storage.timestamps import require_utc

if TYPE_CHECKING:
    from tradingbot.storage.database import Database

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
FOLDED = "folded"
DIGEST_KIND = "digest"
MAX_ERROR_CHARS = 2000
IN_CHUNK = 500  # ids per IN (...) list: well below SQLite's bound-parameter limit
COVER_SLACK = timedelta(seconds=2)  # an event is created a moment before its mail row


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMail:
    """A mail to store as pending. ``next_attempt_at`` defaults to ``created_at``."""

    message_id: str
    kind: str
    severity: int
    subject: str
    sender: str
    recipients: tuple[str, ...]
    context: dict[str, Any]
    created_at: datetime
    dedup_key: str | None = None
    next_attempt_at: datetime | None = None
    window_ends_at: datetime | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRecord:
    """One stored mail. Timestamps are timezone-aware UTC."""

    id: int
    message_id: str
    kind: str
    dedup_key: str | None
    severity: int
    subject: str
    sender: str
    recipients: tuple[str, ...]
    context: dict[str, Any]
    mime: str | None
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    coalesced: int
    window_ends_at: datetime | None
    folded_into: int | None
    claimed_by: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """Depth of the outbox: pending mail, the oldest pending one's age, failures."""

    pending: int
    oldest_pending_at: datetime | None
    failed: int


class OutboxRepository:
    """Reads and writes the outbox of ``database``."""

    def __init__(self, database: Database) -> None:
        # The facade's transactions: storage-internal, shared with every repository.
        self._tx = database._tx

    # -- writing --------------------------------------------------------------------------

    def add(self, mail: NewMail) -> OutboxRecord | None:
        """Store ``mail`` as pending; ``None`` if it is already stored.

        Already stored means: the same Message-ID, or a mail of the same kind made from
        the same event (``event_id``), whatever its Message-ID. Enqueueing an event's mail
        twice (the live path and a catch-up, two catch-ups, two processes) stores it once.
        """
        created = require_utc(mail.created_at, "created_at")
        due = require_utc(mail.next_attempt_at or created, "next_attempt_at")
        window = mail.window_ends_at
        if window is not None:
            window = require_utc(window, "window_ends_at")
        row = OutboxRow(
            message_id=mail.message_id,
            kind=mail.kind,
            dedup_key=mail.dedup_key,
            severity=int(mail.severity),
            subject=mail.subject,
            sender=mail.sender,
            recipients=list(mail.recipients),
            context=mail.context,
            mime=None,
            status=PENDING,
            attempts=0,
            last_error=None,
            next_attempt_at=due,
            created_at=created,
            sent_at=None,
            coalesced=1,
            window_ends_at=window,
            folded_into=None,
            claimed_by=None,
            event_id=mail.event_id,
        )
        try:
            with self._tx.write() as session:
                session.add(row)
                session.flush()
                return _to_record(row)
        except DuplicateRecord:
            return None

    def coalesce(self, dedup_key: str, now: datetime) -> OutboxRecord | None:
        """Count one more occurrence of an alert into an open follow-up row, if there is one.

        An open follow-up row is pending, not yet rendered (``mime`` is NULL) and its
        window has not ended. Returns the updated row, or ``None`` when there is none.
        """
        at = require_utc(now, "now")
        with self._tx.write() as session:
            row = session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.dedup_key == dedup_key,
                    OutboxRow.status == PENDING,
                    OutboxRow.mime.is_(None),
                    OutboxRow.window_ends_at > at,
                )
                .order_by(OutboxRow.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            row.coalesced = row.coalesced + 1
            return _to_record(row)

    def window_end(self, dedup_key: str, now: datetime, window_s: float) -> datetime | None:
        """When the storm window of ``dedup_key`` that contains ``now`` ends, if one does.

        A window starts with the latest mail of that key (at its creation, or at the end
        of its own window for a follow-up) and lasts ``window_s``.
        """
        at = require_utc(now, "now")
        with self._tx.read() as session:
            row = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.dedup_key == dedup_key)
                .order_by(OutboxRow.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            start = row.window_ends_at or row.created_at
            end = start + timedelta(seconds=window_s)
            return end if at < end else None

    def claim_due(
        self, now: datetime, lease_until: datetime, limit: int, *, owner: str | None = None
    ) -> list[OutboxRecord]:
        """Claim up to ``limit`` due pending rows (oldest first) until ``lease_until``.

        ``owner`` (a run id) is stored with each claim: see :meth:`release_claims_of`.
        """
        at = require_utc(now, "now")
        lease = require_utc(lease_until, "lease_until")
        claimed: list[OutboxRecord] = []
        with self._tx.write() as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.status == PENDING, OutboxRow.next_attempt_at <= at)
                .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                .limit(limit)
            ).all()
            connection = session.connection()
            for row in rows:
                result = connection.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == row.id,
                        OutboxRow.status == PENDING,
                        OutboxRow.next_attempt_at == row.next_attempt_at,
                    )
                    .values(next_attempt_at=lease, claimed_by=owner)
                )
                if result.rowcount == 1:
                    claimed.append(_to_record(row))
        return claimed

    def freeze(self, row_id: int, subject: str, mime: str) -> None:
        """Store the rendered message once; later attempts send exactly these bytes."""
        with self._tx.write() as session:
            session.connection().execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id, OutboxRow.mime.is_(None))
                .values(subject=subject, mime=mime)
            )

    def mark_sent(self, row_id: int, at: datetime) -> None:
        """The server accepted the mail: it is never sent again."""
        when = require_utc(at, "at")
        self._set(
            row_id,
            status=SENT,
            sent_at=when,
            attempts=OutboxRow.attempts + 1,
            last_error=None,
        )

    def mark_failed(self, row_id: int, at: datetime, error: str) -> None:
        """A permanent refusal: the mail stays, as failed, for the operator to see."""
        when = require_utc(at, "at")
        self._set(
            row_id,
            status=FAILED,
            next_attempt_at=when,
            attempts=OutboxRow.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
        )

    def reschedule(
        self, row_id: int, next_attempt_at: datetime, error: str, *, attempted: bool = True
    ) -> None:
        """A transient failure: try again at ``next_attempt_at``; count the attempt."""
        when = require_utc(next_attempt_at, "next_attempt_at")
        values: dict[str, Any] = {
            "next_attempt_at": when,
            "last_error": error[:MAX_ERROR_CHARS],
            "claimed_by": None,
        }
        if attempted:
            values["attempts"] = OutboxRow.attempts + 1
        self._set(row_id, **values)

    def retry_failed(self, row_id: int, at: datetime) -> bool:
        """Make a failed mail pending again, due at ``at`` (same Message-ID, same bytes).

        For an operator who fixed what made the server refuse it; ``False`` if the row is
        not a failed mail.
        """
        with self._tx.write() as session:
            result = session.connection().execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id, OutboxRow.status == FAILED)
                .values(status=PENDING, next_attempt_at=require_utc(at, "at"))
            )
            return bool(result.rowcount == 1)

    def release(self, row_id: int, at: datetime) -> None:
        """Give a claimed row back, due at ``at`` (its attempt was not made)."""
        self._set(row_id, next_attempt_at=require_utc(at, "at"), claimed_by=None)

    def release_claims_of(self, owners: Sequence[str], at: datetime) -> int:
        """Make the rows still claimed by ``owners`` (runs known dead) due at ``at``.

        A process killed in the middle of a delivery pass leaves its claims behind; this
        lets the next start send those mails now instead of when the leases expire.
        Claims of any other owner (a live process of another account, a CLI command) are
        left alone. Returns the number of rows freed.
        """
        if not owners:
            return 0
        moment = require_utc(at, "at")
        with self._tx.write() as session:
            result = session.connection().execute(
                update(OutboxRow)
                .where(
                    OutboxRow.status == PENDING,
                    OutboxRow.claimed_by.in_(list(owners)),
                    OutboxRow.next_attempt_at > moment,
                )
                .values(next_attempt_at=moment, claimed_by=None)
            )
            return int(result.rowcount)

    def fold(self, row_ids: Sequence[int], digest_id: int) -> None:
        """Move pending rows into the digest ``digest_id`` (the rate limit's overflow)."""
        if not row_ids:
            return
        with self._tx.write() as session:
            session.connection().execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(list(row_ids)), OutboxRow.status == PENDING)
                .values(status=FOLDED, folded_into=digest_id)
            )

    def delete_sent_before(self, before: datetime) -> int:
        """Delete mail sent before ``before`` and the rows folded into such digests.

        Pending and failed mail is never deleted. Returns the number of rows deleted.
        """
        cutoff = require_utc(before, "before")
        old_sent = select(OutboxRow.id).where(OutboxRow.status == SENT, OutboxRow.sent_at < cutoff)
        with self._tx.write() as session:
            connection = session.connection()
            folded = connection.execute(
                delete(OutboxRow).where(
                    OutboxRow.status == FOLDED, OutboxRow.folded_into.in_(old_sent)
                )
            ).rowcount
            sent = connection.execute(
                delete(OutboxRow).where(OutboxRow.status == SENT, OutboxRow.sent_at < cutoff)
            ).rowcount
        return int(folded) + int(sent)

    def _set(self, row_id: int, **values: Any) -> None:
        with self._tx.write() as session:
            result = session.connection().execute(
                update(OutboxRow).where(OutboxRow.id == row_id).values(**values)
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no mail {row_id} in the outbox")

    # -- reading --------------------------------------------------------------------------

    def get(self, row_id: int) -> OutboxRecord | None:
        with self._tx.read() as session:
            row = session.get(OutboxRow, row_id)
            return None if row is None else _to_record(row)

    def by_message_id(self, message_id: str) -> OutboxRecord | None:
        with self._tx.read() as session:
            row = session.scalars(
                select(OutboxRow).where(OutboxRow.message_id == message_id)
            ).first()
            return None if row is None else _to_record(row)

    def latest_event_mail(self) -> datetime | None:
        """When the newest mail made from an event was enqueued (``None``: never)."""
        with self._tx.read() as session:
            return session.scalar(
                select(func.max(OutboxRow.created_at)).where(OutboxRow.event_id.is_not(None))
            )

    def mailed_events(self, event_ids: Sequence[str]) -> set[tuple[str, str]]:
        """``(event_id, kind)`` of the mails stored for any of ``event_ids`` (any sender)."""
        found: set[tuple[str, str]] = set()
        ids = list(dict.fromkeys(event_ids))
        with self._tx.read() as session:
            for start in range(0, len(ids), IN_CHUNK):
                rows = session.execute(
                    select(OutboxRow.event_id, OutboxRow.kind).where(
                        OutboxRow.event_id.in_(ids[start : start + IN_CHUNK])
                    )
                ).all()
                found.update((str(event_id), kind) for event_id, kind in rows)
        return found

    def mailed_near(
        self, dedup_key: str, at: datetime, window_s: float, *, ignore: Sequence[int] = ()
    ) -> bool:
        """Whether a mail of ``dedup_key`` (not one of the rows ``ignore``) covers ``at``.

        A first mail covers its storm window (its creation plus ``window_s``): identical
        alerts in it are counted into a follow-up. A follow-up covers its creation up to
        the end of its window. ``COVER_SLACK`` before a row's creation counts too: the
        event that made it was created a moment before it was stored.
        """
        moment = require_utc(at, "at")
        window = timedelta(seconds=window_s)
        with self._tx.read() as session:
            rows = session.execute(
                select(OutboxRow.created_at, OutboxRow.window_ends_at).where(
                    OutboxRow.dedup_key == dedup_key,
                    OutboxRow.created_at >= moment - 2 * window,
                    OutboxRow.created_at <= moment + COVER_SLACK,
                    OutboxRow.id.not_in(list(ignore)),
                )
            ).all()
        return any(
            created - COVER_SLACK <= moment <= (ends if ends is not None else created + window)
            for created, ends in rows
        )

    def open_digest(self) -> OutboxRecord | None:
        """The pending digest that still collects folded mail (not yet rendered)."""
        with self._tx.read() as session:
            row = session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.kind == DIGEST_KIND,
                    OutboxRow.status == PENDING,
                    OutboxRow.mime.is_(None),
                )
                .order_by(OutboxRow.id)
                .limit(1)
            ).first()
            return None if row is None else _to_record(row)

    def folded_into(self, digest_id: int) -> list[OutboxRecord]:
        """The mails a digest stands for, oldest first."""
        with self._tx.read() as session:
            rows = session.scalars(
                select(OutboxRow).where(OutboxRow.folded_into == digest_id).order_by(OutboxRow.id)
            ).all()
            return [_to_record(row) for row in rows]

    def sent_since(self, since: datetime) -> list[datetime]:
        """When each mail sent after ``since`` was sent, oldest first."""
        at = require_utc(since, "since")
        with self._tx.read() as session:
            times = session.scalars(
                select(OutboxRow.sent_at)
                .where(OutboxRow.status == SENT, OutboxRow.sent_at > at)
                .order_by(OutboxRow.sent_at)
            ).all()
            return [t for t in times if t is not None]

    def rows(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 1000
    ) -> list[OutboxRecord]:
        """Rows in insertion order, optionally of one status and kind (tests, the shell)."""
        query = select(OutboxRow)
        if status is not None:
            query = query.where(OutboxRow.status == status)
        if kind is not None:
            query = query.where(OutboxRow.kind == kind)
        with self._tx.read() as session:
            rows = session.scalars(query.order_by(OutboxRow.id).limit(limit)).all()
            return [_to_record(row) for row in rows]

    def recent(self, *, status: str, limit: int = 50) -> list[OutboxRecord]:
        """The newest ``limit`` rows of one status, newest first (the dashboard's mail page).

        Sent mail accumulates: it is read newest-sent first along ``ix_outbox_sent_at``.
        """
        order = OutboxRow.sent_at.desc() if status == SENT else OutboxRow.id.desc()
        query = select(OutboxRow).where(OutboxRow.status == status)
        with self._tx.read() as session:
            rows = session.scalars(query.order_by(order, OutboxRow.id.desc()).limit(limit)).all()
            return [_to_record(row) for row in rows]

    def stats(self) -> OutboxStats:
        """Pending depth, oldest pending creation time, and the failed count.

        Index range scans over the pending and failed rows only: sent mail accumulates
        and is never counted here (this runs after every delivery pass).
        """
        with self._tx.read() as session:
            counts = dict(
                session.execute(
                    select(OutboxRow.status, func.count())
                    .where(OutboxRow.status.in_((PENDING, FAILED)))
                    .group_by(OutboxRow.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(OutboxRow.created_at)).where(OutboxRow.status == PENDING)
            )
        return OutboxStats(
            pending=int(counts.get(PENDING, 0)),
            oldest_pending_at=oldest,
            failed=int(counts.get(FAILED, 0)),
        )


def _to_record(row: OutboxRow) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        message_id=row.message_id,
        kind=row.kind,
        dedup_key=row.dedup_key,
        severity=row.severity,
        subject=row.subject,
        sender=row.sender,
        recipients=tuple(row.recipients),
        context=dict(row.context),
        mime=row.mime,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        coalesced=row.coalesced,
        window_ends_at=row.window_ends_at,
        folded_into=row.folded_into,
        claimed_by=row.claimed_by,
        event_id=row.event_id,
    )
