"""Persistence for trading-bot: the only package that imports SQLAlchemy.

Open a :class:`Database` from ``Config.database_url``, :meth:`~Database.upgrade` it (or
:meth:`~Database.require_current_schema` when the operator upgrades explicitly), and use
its repositories. Repositories take and return plain frozen dataclasses with
timezone-aware UTC timestamps, and raise only :class:`StorageError` subclasses.
"""

from tradingbot.storage.advisory_lock import AdvisoryLock, LockHolder
from tradingbot.storage.backup import (
    BackupManifest,
    RestoreResult,
    backup_database,
    default_backup_path,
    pre_restore_path,
    prune_backups,
    read_manifest,
    restore_database,
    verify_backup,
)
from tradingbot.storage.bars import BarRecord, BarRepository
from tradingbot.storage.books_snapshots import BooksSnapshot, BooksSnapshotRepository
from tradingbot.storage.database import Database
from tradingbot.storage.engine import create_engine_for
from tradingbot.storage.equity_marks import EquityMark, EquityMarkRepository
from tradingbot.storage.errors import (
    BackupError,
    DuplicateRecord,
    InvalidQuery,
    RecordNotFound,
    SchemaOutOfDate,
    StorageError,
    StorageUnavailable,
)
from tradingbot.storage.event_query import EventPage, EventQuery, EventSummary
from tradingbot.storage.event_table import EventRepository
from tradingbot.storage.job_runs import JobRunRecord, JobRunRepository
from tradingbot.storage.reconciliations import ReconciliationRecord, ReconciliationRepository
from tradingbot.storage.recovery import RecoveryEvent, RecoveryRepository
from tradingbot.storage.system_state import RunRecord, SystemStateRepository
from tradingbot.storage.trading_state import (
    StaleTradingState,
    TradingStateRecord,
    TradingStateRepository,
)

__all__ = [
    "AdvisoryLock",
    "BackupError",
    "BackupManifest",
    "BarRecord",
    "BarRepository",
    "BooksSnapshot",
    "BooksSnapshotRepository",
    "Database",
    "DuplicateRecord",
    "EquityMark",
    "EquityMarkRepository",
    "EventPage",
    "EventQuery",
    "EventRepository",
    "EventSummary",
    "InvalidQuery",
    "JobRunRecord",
    "JobRunRepository",
    "LockHolder",
    "ReconciliationRecord",
    "ReconciliationRepository",
    "RecordNotFound",
    "RecoveryEvent",
    "RecoveryRepository",
    "RestoreResult",
    "RunRecord",
    "SchemaOutOfDate",
    "StaleTradingState",
    "StorageError",
    "StorageUnavailable",
    "SystemStateRepository",
    "TradingStateRecord",
    "TradingStateRepository",
    "backup_database",
    "create_engine_for",
    "default_backup_path",
    "pre_restore_path",
    "prune_backups",
    "read_manifest",
    "restore_database",
    "verify_backup",
]
