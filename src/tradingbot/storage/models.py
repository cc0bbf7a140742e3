"""SQLAlchemy declarative models: the schema as Python, private to ``storage/``.

Every ``Mapped[datetime]`` column is a :class:`UTCDateTime` (timezone-aware UTC).
Constraint names follow :data:`NAMING_CONVENTION` so migrations can refer to them on
both backends. A change here needs a migration in ``migrations/versions/``; the test
suite fails when the two disagree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradingbot.events.model import MAX_ID_CHARS, Severity
from tradingbot.storage.timestamps import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LENGTH = 36
ACCOUNT_LENGTH = 64
EVENT_TYPE_LENGTH = 32

# The CHECK on events.severity: the query planner of the events repository relies on
# severity taking only these values (it expands "severity >= X" into one index range per
# value). A new Severity member therefore needs a migration.
SEVERITY_CHECK = "severity IN ({})".format(", ".join(str(int(s)) for s in Severity))


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class SystemState(Base):
    """One row per process run: written at start, beaten while alive, closed at clean stop."""

    __tablename__ = "system_state"
    __table_args__ = (
        Index("ix_system_state_started_at", "started_at"),
        Index("ix_system_state_account_started_at", "account", "started_at"),
    )

    run_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    pid: Mapped[int]
    host: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    clean_stop: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The IB account the run traded ("" when unset): the run lock and crash detection are
    # per database and account.
    account: Mapped[str] = mapped_column(
        String(ACCOUNT_LENGTH), default="", server_default=text("''")
    )


class EventRow(Base):
    """One recorded event (see :class:`tradingbot.events.Event`).

    ``seq`` is a surrogate key in insertion order, never reused (SQLite: the rowid, with
    AUTOINCREMENT; PostgreSQL: a bigserial); with ``ts`` it gives the total order of the
    keyset pagination. Every ``(…, ts, seq)`` index serves "newest first" by a backward
    scan. ``type`` and ``severity`` share one index: a query on types, on a minimum
    severity or on both is answered as one short range per (type, severity) pair. The
    ``strategy_id`` and ``trade_id`` indexes are partial (most events have neither).
    """

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(SEVERITY_CHECK, name="severity"),
        Index("ix_events_ts_seq", "ts", "seq"),
        Index("ix_events_type_severity_ts_seq", "type", "severity", "ts", "seq"),
        Index("ix_events_severity_ts_seq", "severity", "ts", "seq"),
        Index(
            "ix_events_strategy_id_ts_seq",
            "strategy_id",
            "ts",
            "seq",
            postgresql_where=text("strategy_id IS NOT NULL"),
            sqlite_where=text("strategy_id IS NOT NULL"),
        ),
        Index(
            "ix_events_trade_id_ts_seq",
            "trade_id",
            "ts",
            "seq",
            postgresql_where=text("trade_id IS NOT NULL"),
            sqlite_where=text("trade_id IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(UUID_LENGTH), unique=True)
    ts: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(EVENT_TYPE_LENGTH))
    severity: Mapped[int] = mapped_column(SmallInteger())
    message: Mapped[str] = mapped_column(Text())
    source: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    strategy_id: Mapped[str | None] = mapped_column(String(MAX_ID_CHARS))
    trade_id: Mapped[str | None] = mapped_column(String(MAX_ID_CHARS))
    user_id: Mapped[str | None] = mapped_column(String(MAX_ID_CHARS))
    context: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    recorded_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))


OUTBOX_STATUSES = ("pending", "sent", "failed", "folded")
OUTBOX_STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in OUTBOX_STATUSES))
MESSAGE_ID_LENGTH = 255
OUTBOX_KIND_LENGTH = 32
DEDUP_KEY_LENGTH = 255
CLAIMED_BY_LENGTH = 64
ADDRESS_LENGTH = 320


class OutboxRow(Base):
    """One notification e-mail, written (pending) before it is sent (see ``notify/``).

    ``message_id`` is the stable RFC 5322 Message-ID: a retry or a resend after a crash
    carries the same one. ``context`` holds the render inputs; ``mime`` the message as
    sent, frozen (rendered once) before the first attempt so every attempt sends the same
    bytes. A row with ``mime`` still ``NULL`` is *open*: storm coalescing may add to its
    ``coalesced`` count until ``window_ends_at``, and a digest row collects the rows
    ``folded`` into it (``folded_into``) by the rate limit. ``next_attempt_at`` doubles as
    a short claim: a sender moves it forward before an attempt, so two processes never
    send the same row at once; ``claimed_by`` names the claiming run, so the next start
    after a crash can free that run's claims at once instead of waiting for them to expire.
    ``event_id`` is the event a mail was made from (trade mails, alerts), if any; an
    event has at most one mail of each kind, whatever its Message-ID (a unique index).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(OUTBOX_STATUS_CHECK, name="status"),
        CheckConstraint(SEVERITY_CHECK, name="severity"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index(
            "ix_outbox_dedup_key_created_at",
            "dedup_key",
            "created_at",
            postgresql_where=text("dedup_key IS NOT NULL"),
            sqlite_where=text("dedup_key IS NOT NULL"),
        ),
        Index(
            "ix_outbox_folded_into",
            "folded_into",
            postgresql_where=text("folded_into IS NOT NULL"),
            sqlite_where=text("folded_into IS NOT NULL"),
        ),
        Index("ix_outbox_sent_at", "sent_at"),
        Index(
            "ux_outbox_event_id_kind",
            "event_id",
            "kind",
            unique=True,
            postgresql_where=text("event_id IS NOT NULL"),
            sqlite_where=text("event_id IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(MESSAGE_ID_LENGTH), unique=True)
    kind: Mapped[str] = mapped_column(String(OUTBOX_KIND_LENGTH))
    dedup_key: Mapped[str | None] = mapped_column(String(DEDUP_KEY_LENGTH))
    severity: Mapped[int] = mapped_column(SmallInteger())
    subject: Mapped[str] = mapped_column(Text())
    sender: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    recipients: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    context: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    mime: Mapped[str | None] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer(), default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text())
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    coalesced: Mapped[int] = mapped_column(Integer(), default=1, server_default=text("1"))
    window_ends_at: Mapped[datetime | None]
    folded_into: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    claimed_by: Mapped[str | None] = mapped_column(String(CLAIMED_BY_LENGTH))
    event_id: Mapped[str | None] = mapped_column(String(36))


RECOVERY_STATUSES = ("detected", "reconciled", "accepted")
RECOVERY_STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in RECOVERY_STATUSES))


class RecoveryEventRow(Base):
    """One crashed run, detected at a later start (see ``storage/recovery.py``).

    ``run_id`` (unique) is the crashed run, so a crash is recorded once; its pid, host,
    version and last heartbeat are copied so the row reads on its own. ``status`` moves
    from ``detected`` to ``reconciled`` or ``accepted``; ``discrepancies`` is the
    reconciliation's finding list (JSON).
    """

    __tablename__ = "recovery_events"
    __table_args__ = (
        CheckConstraint(RECOVERY_STATUS_CHECK, name="status"),
        Index("ix_recovery_events_detected_at", "detected_at"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH), ForeignKey("system_state.run_id"), unique=True
    )
    detected_by_run_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    detected_at: Mapped[datetime]
    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH))
    pid: Mapped[int]
    host: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    downtime_s: Mapped[float] = mapped_column(Float())
    status: Mapped[str] = mapped_column(String(16))
    discrepancies: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql")
    )
    updated_at: Mapped[datetime]


RECONCILIATION_STATUSES = ("clean", "discrepancies", "failed", "accepted")
RECONCILIATION_STATUS_CHECK = "status IN ({})".format(
    ", ".join(f"'{s}'" for s in RECONCILIATION_STATUSES)
)


class ReconciliationRow(Base):
    """One comparison of our books with the broker's (see ``storage/reconciliations.py``).

    ``positions`` is the broker's positions at ``as_of`` (symbol -> [quantity, average
    cost]); the latest ``clean`` or ``accepted`` row of an account is the baseline the
    next reconciliation adds our fills to. ``boundary_exec_ids`` are the executions of
    the last seconds before ``as_of`` already in those positions (execution times have
    one-second resolution). ``accepted_orders`` are the permIds of open orders an operator
    accepted (not the bot's, or not in its books), not reported again while they stay
    open. ``discrepancies`` is the finding list (JSON).
    """

    __tablename__ = "reconciliations"
    __table_args__ = (
        CheckConstraint(RECONCILIATION_STATUS_CHECK, name="status"),
        Index("ix_reconciliations_account_as_of", "account", "as_of"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(UUID_LENGTH))
    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH))
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    as_of: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    positions: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    boundary_exec_ids: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    accepted_orders: Mapped[list[int]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    discrepancies: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql")
    )
    error: Mapped[str | None] = mapped_column(Text())
    duration_s: Mapped[float] = mapped_column(Float())
    accepted_by: Mapped[str | None] = mapped_column(String(255))


TRADING_MODES = ("running", "paused", "tripped")
TRADING_MODE_CHECK = "mode IN (" + ", ".join(f"'{m}'" for m in TRADING_MODES) + ")"


class TradingStateRow(Base):
    """The kill switch of one account (see ``storage/trading_state.py``): whether new
    orders may go out, who changed that, why and when. One row per account; its history
    is in the events table (every switch is a durable event)."""

    __tablename__ = "trading_state"
    __table_args__ = (CheckConstraint(TRADING_MODE_CHECK, name="mode"),)

    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))
    since: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer)


JOB_RUN_STATUSES = ("running", "ok", "failed", "abandoned")
JOB_RUN_STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in JOB_RUN_STATUSES))


class JobRunRow(Base):
    """One run of a scheduled job for one slot (see ``storage/job_runs.py``).

    ``(job, run_key)`` is unique: inserting the row *is* the claim, so a slot runs once
    across restarts, crashes and processes sharing the database. ``run_key`` is the
    trading date (``2026-03-10``) for daily jobs, the slot's UTC minute for interval jobs.
    """

    __tablename__ = "job_runs"
    __table_args__ = (
        CheckConstraint(JOB_RUN_STATUS_CHECK, name="status"),
        UniqueConstraint("job", "run_key"),
        Index("ix_job_runs_job_started_at", "job", "started_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    job: Mapped[str] = mapped_column(String(64))
    run_key: Mapped[str] = mapped_column(String(32))
    trading_date: Mapped[date] = mapped_column(Date())
    scheduled_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(UUID_LENGTH))
    attempts: Mapped[int] = mapped_column(Integer())
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float())
    outcome: Mapped[str | None] = mapped_column(Text())


class BarRow(Base):
    """One OHLCV bar of one symbol (see ``storage/bars.py``): ``bar_size`` is IB's name
    of its length (``1 min``, ``1 day``), ``start`` its first instant (UTC). The primary
    key ``(symbol, bar_size, start)`` makes the daily bar update an idempotent upsert."""

    __tablename__ = "bars"

    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    bar_size: Mapped[str] = mapped_column(String(16), primary_key=True)
    start: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[float] = mapped_column(Float())
    high: Mapped[float] = mapped_column(Float())
    low: Mapped[float] = mapped_column(Float())
    close: Mapped[float] = mapped_column(Float())
    volume: Mapped[float] = mapped_column(Float())
    wap: Mapped[float | None] = mapped_column(Float())
    stored_at: Mapped[datetime]


class BooksSnapshotRow(Base):
    """Our books at the end of a New York trading date (see
    ``storage/books_snapshots.py``): the open positions rebuilt from the fills, with the
    count and sum of ``seq`` of the TRADE events they were built from, so a fill stored
    later with an older timestamp makes the snapshot stale (a cheap SQL check); and the
    P&L totals of the days since ``base``, the snapshot it was built from."""

    __tablename__ = "books_snapshots"

    day: Mapped[date] = mapped_column(Date(), primary_key=True)
    boundary: Mapped[datetime]
    fills: Mapped[int] = mapped_column(BigInteger())
    seq_sum: Mapped[int] = mapped_column(BigInteger())
    replay_from: Mapped[datetime]
    positions: Mapped[list[Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    base: Mapped[date | None] = mapped_column(Date())
    days: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    created_at: Mapped[datetime]


class EquityMarkRow(Base):
    """The account as the broker reported it when the daily summary of a trading date
    was made (see ``storage/equity_marks.py``): net liquidation, the broker's P&L of
    the day and each open position with its mark. One row per account and date: the
    first one stored stays, so later reports show what the mail showed."""

    __tablename__ = "equity_marks"

    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH), primary_key=True)
    trading_date: Mapped[date] = mapped_column(Date(), primary_key=True)
    recorded_at: Mapped[datetime]
    equity: Mapped[float | None] = mapped_column(Float())
    currency: Mapped[str] = mapped_column(String(8))
    daily_pnl: Mapped[float | None] = mapped_column(Float())
    realized_pnl: Mapped[float | None] = mapped_column(Float())
    unrealized_pnl: Mapped[float | None] = mapped_column(Float())
    positions: Mapped[list[Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
