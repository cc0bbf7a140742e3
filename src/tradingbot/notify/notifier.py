"""The notifier: write every mail to the durable outbox first, then deliver from it.

:meth:`Notifier.enqueue` commits a pending row and returns; :meth:`Notifier.deliver_due`
claims the rows that are due, renders each once (the rendered message, with its stable
Message-ID, is stored before the first attempt so every attempt sends the same bytes),
sends them over one SMTP connection and marks each row *sent* in its own short
transaction immediately after the server accepted its DATA. That is the only window in
which a crash can duplicate a mail (see ``docs/notifications.md``).

Storms and rate limit, both durable:

* Identical alerts (same ``dedup_key``) within ``storm_window_s``: the first is sent at
  once; the rest are counted into one follow-up row, sent when the window ends, that
  says how many there were.
* At most ``rate_limit_per_hour`` mails are sent in any hour. Mail due beyond that is
  *folded* into one digest row, sent as soon as the limit allows, that lists each of
  them. Nothing is dropped: a folded row stays in the table, pointing at its digest.

Everything here is blocking and thread-safe; the notifier actor runs
:meth:`deliver_due` on its own sender thread, a CLI command may call it directly.
"""

from __future__ import annotations

import hashlib
import smtplib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from tradingbot.config import Config, check_mailbox
from tradingbot.events.model import RISK, SYSTEM, TRADE, Severity
from tradingbot.notify.render import KINDS, Renderer, build_message, message_id, to_wire
from tradingbot.notify.retry import RetryPolicy, is_transient
from tradingbot.notify.routing import (
    ALERT,
    LOWEST_ALWAYS_MAILED,
    TRADE_EXECUTION,
    Notification,
    route,
)
from tradingbot.notify.settings import NotifySettings
from tradingbot.notify.status import DeliveryReport, NotifyStatus
from tradingbot.notify.transport import (
    ConnectFailed,
    EmlTransport,
    Session,
    SmtpTransport,
    Transport,
)
from tradingbot.storage import Database, EventQuery, StorageError
from tradingbot.storage.outbox import (
    DIGEST_KIND,
    NewMail,
    OutboxRecord,
    OutboxRepository,
    OutboxStats,
)

log = structlog.get_logger(__name__)

HOUR = timedelta(hours=1)
MESSAGE_ID_NAMESPACE = uuid.UUID("0c7d4e0a-36f1-4d8e-9b0e-6f2f4b9a51c3")
MAX_DEDUP_KEY_CHARS = 255
MARK_SENT_TRIES = 3
CATCH_UP_MAX_AGE = timedelta(days=1)
CATCH_UP_MARGIN = timedelta(minutes=5)
CATCH_UP_PAGES = 20
# A reply about one message: the connection itself is fine, the next mail may go.
_REPLY_ERRORS = (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def dedup_key_of(*parts: str) -> str:
    """A dedup key from its parts; long ones end in a digest so the key stays short."""
    key = ":".join(parts)
    if len(key) <= MAX_DEDUP_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return key[: MAX_DEDUP_KEY_CHARS - 33] + ":" + digest


@dataclass(frozen=True, slots=True, kw_only=True)
class Enqueued:
    """What :meth:`Notifier.enqueue` did with a notification.

    ``record`` is the new pending row; ``None`` when the notification was counted into
    an existing row (``coalesced_into``), was already stored (``duplicate``: same
    Message-ID), or its kind is switched off (``disabled``).
    """

    record: OutboxRecord | None = None
    coalesced_into: int | None = None
    duplicate: bool = False
    disabled: bool = False


FailedCallback = Callable[[OutboxRecord, BaseException], None]


def _no_callback(record: OutboxRecord, error: BaseException) -> None:
    return None


@dataclass
class _Pass:
    """Mutable tallies of one delivery pass."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    folded: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            claimed=self.claimed,
            sent=self.sent,
            retried=self.retried,
            failed=self.failed,
            folded=self.folded,
            released=self.released,
            errors=tuple(self.errors),
        )


class Notifier:
    """Enqueue notifications durably and deliver them; usable without the actor running.

    ```python
    notifier = Notifier.from_config(config, database)
    notifier.enqueue("recovery_report", context, severity=Severity.ERROR)
    notifier.deliver_due()  # or let the notifier actor deliver it
    ```
    """

    def __init__(
        self,
        database: Database,
        settings: NotifySettings,
        *,
        now: Callable[[], datetime] = _utcnow,
        transport: Transport | None = None,
        renderer: Renderer | None = None,
        policy: RetryPolicy | None = None,
        status: NotifyStatus | None = None,
        on_failed: FailedCallback = _no_callback,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.owner = owner  # stored with each claim (a run id): a dead run's claims are freed
        self._database = database
        self.repository = OutboxRepository(database)
        self._now = now
        if transport is None:
            transport = (
                EmlTransport(settings.outbox_dir)
                if settings.smtp is None
                else SmtpTransport(settings.smtp)
            )
        self.transport = transport
        self.renderer = renderer or Renderer(settings.templates_dir)
        self.policy = policy or RetryPolicy(
            settings.retry_attempts,
            settings.retry_interval_s,
            settings.retry_jitter_s,
            settings.max_backoff_s,
        )
        self.status = status or NotifyStatus()
        self.status.update(mode="eml" if isinstance(transport, EmlTransport) else "smtp")
        self.on_failed = on_failed
        self._pass_lock = threading.Lock()  # one delivery pass at a time in this process
        self._unmarked: set[int] = set()  # sent, but marking the row failed (database down)

    @classmethod
    def from_config(
        cls, config: Config, database: Database, **kwargs: Any
    ) -> Notifier:  # pragma: no cover - thin
        return cls(database, NotifySettings.from_config(config), **kwargs)

    # -- enqueue --------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        context: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
        severity: Severity | str | int = Severity.INFO,
        token: str | None = None,
        recipients: tuple[str, ...] | None = None,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> Enqueued:
        """Store a notification as pending mail (durable when this returns).

        ``kind`` is one of ``trade_execution``, ``alert``, ``daily_summary``,
        ``recovery_report``. ``context`` is the template's input (JSON-able).
        ``dedup_key`` groups identical alerts for storm coalescing. ``token`` makes the
        Message-ID, hence the enqueue, idempotent (pass something derived from the
        source, e.g. an event id); ``event_id`` names the event a mail is made from: an
        event gets at most one mail of each kind (``duplicate`` otherwise, even with
        another sender address, hence another Message-ID).
        ``at`` is when the notification arose (default: now); the catch-up passes the
        event's time, so storm windows count a late mail where it belongs.
        Raises ``ValueError`` for an unknown kind or a bad recipient and
        :class:`~tradingbot.storage.StorageError` if the outbox cannot be written.
        """
        if kind not in KINDS or kind == DIGEST_KIND:
            raise ValueError(f"unknown notification kind {kind!r}")
        if kind not in self.settings.types:
            return Enqueued(disabled=True)
        if event_id is not None and (event_id, kind) in self.repository.mailed_events([event_id]):
            return Enqueued(duplicate=True)  # not even counted into a storm: one occurrence
        level = Severity.parse(severity)
        to = self.settings.recipients if recipients is None else _checked(recipients)
        now = self._now() if at is None else at
        window = self.settings.storm_window_s
        values = {**context, "count": 1}
        due: datetime | None = None
        if dedup_key is not None:  # stored even without coalescing: it must fit its column
            dedup_key = dedup_key_of(dedup_key)
        if dedup_key is not None and window > 0:
            row = self.repository.coalesce(dedup_key, now)
            if row is not None:
                return Enqueued(coalesced_into=row.id)
            due = self.repository.window_end(dedup_key, now, window)
            if due is not None:
                values["follow_up"] = True
        sender = self.settings.sender
        mail = NewMail(
            message_id=self._message_id(kind, token),
            kind=kind,
            severity=int(level),
            subject=self._subject(kind, values, level),
            sender=sender,
            recipients=to,
            context=values,
            created_at=now,
            dedup_key=dedup_key,
            next_attempt_at=due,
            window_ends_at=due,
            event_id=event_id,
        )
        record = self.repository.add(mail)
        if record is None:
            return Enqueued(duplicate=True)
        log.info(
            "mail_enqueued",
            kind=kind,
            message_id=record.message_id,
            subject=record.subject,
            due=None if due is None else due.isoformat(),
        )
        return Enqueued(record=record)

    def enqueue_notification(
        self, notification: Notification, *, at: datetime | None = None
    ) -> Enqueued:
        """:meth:`enqueue` what routing made of an event (see :func:`route`)."""
        return self.enqueue(
            notification.kind,
            notification.context,
            dedup_key=notification.dedup_key,
            severity=notification.severity,
            token=notification.token,
            event_id=notification.event_id,
            at=at,
        )

    def _message_id(self, kind: str, token: str | None) -> str:
        ident = uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{kind}:{token}") if token else uuid.uuid4()
        return message_id(f"{ident.hex}.{kind}", self.settings.sender)

    def catch_up(self) -> int:
        """Enqueue the mail of events stored but never enqueued; return how many.

        An event reaches the notifier after its commit, through the event hub and the
        actor's mailbox; a ``kill -9`` (or a crash of the notifier actor) in that hop
        would lose its mail. This looks at the TRADE, SYSTEM and RISK events from five
        minutes before the newest mail made from an event (at most a day back; a day when
        there is none) and enqueues what routing asks for and the outbox lacks — a mail
        written meanwhile that no event made (the watchdog's alert, a recovery report)
        does not shorten the look-back. Idempotent: each mail names its event. An alert
        an identical mail already covered (same dedup key, inside its storm window) is
        not mailed again: it was counted into that mail, or the operator has the same
        alert from the same minutes.
        """
        queries = []
        if TRADE_EXECUTION in self.settings.types:
            queries.append(EventQuery(types=(TRADE,)))
        if ALERT in self.settings.types:
            queries.append(
                # Lower than the alert severity when needed: routing mails kill-switch
                # changes whatever their severity, and catch-up must find them too.
                EventQuery(
                    types=(SYSTEM, RISK),
                    min_severity=min(self.settings.min_severity, LOWEST_ALWAYS_MAILED),
                )
            )
        if not queries:
            return 0
        now = self._now()
        latest = self.repository.latest_event_mail()
        since = now - CATCH_UP_MAX_AGE
        if latest is not None:
            since = max(since, latest - CATCH_UP_MARGIN)
        found = []
        for query in queries:
            cursor: str | None = None
            for _ in range(CATCH_UP_PAGES):
                page = self._database.events.query(
                    replace(query, since=since, limit=1000, cursor=cursor)
                )
                found.extend(page.events)
                cursor = page.next_cursor
                if cursor is None:
                    break
        # Mails made by this or by another process, whatever its sender address.
        mailed = self.repository.mailed_events([str(event.id) for event in found])
        added = 0
        made: list[int] = []  # rows this catch-up wrote: they cover nothing it must skip
        for event in sorted(found, key=lambda event: event.timestamp):  # oldest first
            wanted = route(event, self.settings)
            if wanted is None or wanted.event_id is None:
                continue
            if (wanted.event_id, wanted.kind) in mailed:
                continue
            window = self.settings.storm_window_s
            if (
                wanted.dedup_key is not None
                and window > 0
                and self.repository.mailed_near(
                    dedup_key_of(wanted.dedup_key), event.timestamp, window, ignore=made
                )
            ):
                continue
            result = self.enqueue_notification(wanted, at=min(event.timestamp, now))
            if result.record is not None:
                made.append(result.record.id)
            added += result.record is not None or result.coalesced_into is not None
        if added:
            log.warning("mails_caught_up", count=added, since=since.isoformat())
        return added

    def prune(self) -> int:
        """Delete sent mail older than ``retention_days`` (pending and failed mail stays)."""
        before = self._now() - timedelta(days=self.settings.retention_days)
        deleted = self.repository.delete_sent_before(before)
        if deleted:
            log.info("outbox_pruned", deleted=deleted, before=before.isoformat())
        return deleted

    def send(self, kind: str, context: Mapping[str, Any], **options: Any) -> Enqueued:
        """Enqueue, then run one delivery pass here (for a CLI without the actor)."""
        result = self.enqueue(kind, context, **options)
        self.deliver_due()
        return result

    def _subject(self, kind: str, values: Mapping[str, Any], level: Severity) -> str:
        try:
            return self.renderer.subject(kind, self._render_context(kind, values, level))
        except Exception as exc:  # noqa: BLE001 - whatever a template or context raises
            # Rendered again (and reported) when it is sent; the row must be stored now.
            return f"[trading-bot] {kind} (not rendered: {type(exc).__name__})"

    @staticmethod
    def _render_context(kind: str, values: Mapping[str, Any], level: Severity) -> dict[str, Any]:
        context = dict(values)
        context.setdefault("severity", level.name)
        context.setdefault("count", 1)
        return context

    # -- delivery -------------------------------------------------------------------------

    def deliver_due(self) -> DeliveryReport:
        """Claim the due mail and deliver it; one pass at a time per process."""
        with self._pass_lock:
            tally = _Pass()
            try:
                self._deliver(tally)
            finally:
                self.refresh()
            return tally.report()

    def refresh(self) -> OutboxStats | None:
        """Read the outbox depth into :attr:`status`; ``None`` if the database is down."""
        try:
            stats = self.repository.stats()
        except StorageError as exc:
            log.debug("outbox_stats_failed", error=str(exc))  # the pass reports the outage
            return None
        self.status.update(
            pending=stats.pending, oldest_pending_at=stats.oldest_pending_at, failed=stats.failed
        )
        return stats

    def _deliver(self, tally: _Pass) -> None:
        now = self._now()
        self._mark_unmarked(now)
        claimed = self.repository.claim_due(
            now,
            now + timedelta(seconds=self.settings.lease_s),
            self.settings.batch_size,
            owner=self.owner,
        )
        claimed = [row for row in claimed if row.id not in self._unmarked]
        tally.claimed = len(claimed)
        if not claimed:
            return
        to_send = self._apply_rate_limit(claimed, now, tally)
        if not to_send:
            return
        session = self.transport.open()
        try:
            self._send_all(session, to_send, tally)
        finally:
            try:
                session.close()
            except OSError as exc:  # QUIT after the work is done: harmless
                log.debug("smtp_close_failed", error=str(exc))

    def _apply_rate_limit(
        self, claimed: list[OutboxRecord], now: datetime, tally: _Pass
    ) -> list[OutboxRecord]:
        limit = self.settings.rate_limit_per_hour
        sent = self.repository.sent_since(now - HOUR)
        budget = max(0, limit - len(sent))
        ordered = [r for r in claimed if r.kind == DIGEST_KIND] + [
            r for r in claimed if r.kind != DIGEST_KIND
        ]
        to_send, overflow = ordered[:budget], ordered[budget:]
        if not overflow:
            return to_send
        # The next slot frees when the oldest send still counted is an hour old.
        times = sorted(sent)
        index = len(times) + len(to_send) - limit
        free_at = times[index] + HOUR if 0 <= index < len(times) else now + HOUR
        free_at = max(free_at, now)
        folded = [r for r in overflow if r.kind != DIGEST_KIND]
        for row in overflow:
            if row.kind == DIGEST_KIND:
                self.repository.release(row.id, free_at)
                tally.released += 1
        if folded:
            digest = next((r for r in to_send if r.kind == DIGEST_KIND and r.mime is None), None)
            if digest is None:
                digest = self.repository.open_digest()
            if digest is None:
                digest = self._new_digest(now, free_at)
            self.repository.fold([r.id for r in folded], digest.id)
            tally.folded += len(folded)
            log.warning(
                "mail_rate_limited",
                folded=len(folded),
                digest=digest.message_id,
                digest_due=free_at.isoformat(),
                limit_per_hour=limit,
            )
        return to_send

    def _new_digest(self, now: datetime, due: datetime) -> OutboxRecord:
        sender = self.settings.sender
        record = self.repository.add(
            NewMail(
                message_id=message_id(f"{uuid.uuid4().hex}.{DIGEST_KIND}", sender),
                kind=DIGEST_KIND,
                severity=int(Severity.WARNING),
                subject="[trading-bot] DIGEST of notifications held by the rate limit",
                sender=sender,
                recipients=self.settings.recipients,
                context={"rate_limit_per_hour": self.settings.rate_limit_per_hour},
                created_at=now,
                next_attempt_at=due,
            )
        )
        assert record is not None  # a fresh random Message-ID
        return record

    def _send_all(self, session: Session, rows: list[OutboxRecord], tally: _Pass) -> None:
        down_until: datetime | None = None
        for row in rows:
            if down_until is not None:
                # The server is unreachable: the rest wait for the same retry, unattempted.
                self.repository.release(row.id, down_until)
                tally.released += 1
                continue
            try:
                data = row.mime if row.mime is not None else self._freeze(row)
            except StorageError:
                raise  # the database, not this mail: the pass ends, the row waits its lease
            except Exception as exc:  # noqa: BLE001 - a template or context error of any kind
                self._fail(row, exc, tally)  # fails this mail alone, never the whole pass
                continue
            try:
                session.send(row.message_id, row.sender, row.recipients, data)
            except OSError as exc:  # smtplib's exceptions included
                down_until = self._attempt_failed(row, exc, tally)
                continue
            except (UnicodeError, ValueError) as exc:  # a message no server can take
                self._fail(row, exc, tally)
                continue
            self._sent(row)
            tally.sent += 1

    def _freeze(self, row: OutboxRecord) -> str:
        """Render ``row`` once and store the result: every attempt sends these bytes."""
        level = Severity(row.severity)
        context = self._render_context(row.kind, row.context, level)
        context["count"] = row.coalesced
        context["message_id"] = row.message_id
        if row.kind == DIGEST_KIND:
            context["items"] = [self._digest_item(r) for r in self.repository.folded_into(row.id)]
            context.setdefault("rate_limit_per_hour", self.settings.rate_limit_per_hour)
        rendered = self.renderer.render(row.kind, context)
        message = build_message(
            rendered,
            sender=row.sender,
            recipients=row.recipients,
            message_id=row.message_id,
            date=self._now(),
            kind=row.kind,
            severity=level.name,
            event_id=row.event_id,
        )
        data = to_wire(message)
        self.repository.freeze(row.id, rendered.subject, data)
        return data

    def _digest_item(self, row: OutboxRecord) -> dict[str, Any]:
        level = Severity(row.severity)
        context = self._render_context(row.kind, row.context, level)
        context["count"] = row.coalesced
        try:
            rendered = self.renderer.render(row.kind, context)
            subject, text = rendered.subject, rendered.text
        except Exception as exc:  # noqa: BLE001 - listed under its stored subject, whatever broke
            subject, text = row.subject, f"(not rendered: {exc})"
        return {
            "subject": subject,
            "text": text,
            "kind": row.kind,
            "severity": level.name,
            "created_at": row.created_at.isoformat(),
            "count": row.coalesced,
            "message_id": row.message_id,
        }

    def _attempt_failed(self, row: OutboxRecord, error: OSError, tally: _Pass) -> datetime | None:
        """Reschedule or fail ``row``; return the retry time if the server is down."""
        cause = error.cause if isinstance(error, ConnectFailed) else error
        attempt = row.attempts + 1
        delay = self.policy.delay_after(attempt, error)
        now = self._now()
        text = f"{type(cause).__name__}: {cause}"
        self.status.update(last_error=text, last_error_at=now)
        tally.errors.append(text)
        if delay is None:
            self._fail(row, cause, tally)
            self.status.update(server_ok=True)  # it answered, with a refusal
            return None
        retry_at = now + timedelta(seconds=delay)
        self.repository.reschedule(row.id, retry_at, text)
        tally.retried += 1
        connection_level = isinstance(error, ConnectFailed) or not isinstance(error, _REPLY_ERRORS)
        log_method = log.warning if self.policy.in_burst(attempt) else log.error
        log_method(
            "mail_attempt_failed",
            message_id=row.message_id,
            attempt=attempt,
            error=text,
            retry_at=retry_at.isoformat(),
            permanent_cause=isinstance(error, ConnectFailed) and not is_transient(cause),
        )
        if connection_level:
            self.status.update(server_ok=False)
            return retry_at
        return None

    def _fail(self, row: OutboxRecord, error: BaseException, tally: _Pass) -> None:
        text = f"{type(error).__name__}: {error}"
        self.repository.mark_failed(row.id, self._now(), text)
        tally.failed += 1
        log.error("mail_failed", message_id=row.message_id, subject=row.subject, error=text)
        try:
            self.on_failed(row, error)
        except Exception:  # the callback only reports; it must not undo the marking
            log.exception("mail_failed_callback_failed", message_id=row.message_id)

    def _sent(self, row: OutboxRecord) -> None:
        """Mark ``row`` sent at once: the duplicate window closes with this commit."""
        at = self._now()
        self.status.add_sent(1, at)
        self.status.update(server_ok=True)
        for attempt in range(MARK_SENT_TRIES):
            try:
                self.repository.mark_sent(row.id, at)
            except StorageError as exc:
                if attempt == MARK_SENT_TRIES - 1:
                    # Never send it again from this process; the next pass retries marking.
                    self._unmarked.add(row.id)
                    log.error("mail_sent_not_marked", message_id=row.message_id, error=str(exc))
            else:
                log.info("mail_sent", message_id=row.message_id, subject=row.subject)
                return

    def _mark_unmarked(self, now: datetime) -> None:
        for row_id in sorted(self._unmarked):
            try:
                self.repository.mark_sent(row_id, now)
            except StorageError:
                return
            self._unmarked.discard(row_id)


def _checked(recipients: tuple[str, ...]) -> tuple[str, ...]:
    if not recipients:
        raise ValueError("recipients: at least one address")
    return tuple(check_mailbox(r) for r in recipients)
