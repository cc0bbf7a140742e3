"""``trading-bot db backup | verify | restore``: the command-line side of backups.

The work is in :mod:`tradingbot.storage.backup`; this module parses nothing, prints one
line per outcome (errors on stderr, prefixed ``trading-bot:``) and returns exit codes.
``restore`` holds the run lock while it works, so no ``trading-bot run`` can start on a
half-restored database, and it refuses while a run holds it.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from tradingbot import exitcodes
from tradingbot.config import Config


def backups_dir(config: Config) -> Path:
    """Where ``db backup`` writes by default and ``restore`` saves the replaced database."""
    return config.home / "backups"


def backup(config: Config, file: Path | None, keep: int | None) -> int:
    from tradingbot.storage import (
        BackupError,
        Database,
        StorageError,
        backup_database,
        default_backup_path,
        prune_backups,
    )

    destination = file or default_backup_path(backups_dir(config))
    try:
        with Database.open(config.database_url) as database:
            manifest = backup_database(database, destination)
        pruned = [] if keep is None else prune_backups(destination.parent, keep)
    except BackupError as exc:
        print(f"trading-bot: backup failed: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    except StorageError as exc:
        print(f"trading-bot: backup failed: database error: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    except OSError as exc:
        print(f"trading-bot: backup failed: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.FAILURE
    print(f"backup written: {destination} ({manifest.describe()}, sha256 {manifest.sha256})")
    for path in pruned:
        print(f"deleted old backup: {path}")
    return exitcodes.OK


def verify(file: Path) -> int:
    from tradingbot.storage import BackupError, verify_backup

    try:
        manifest = verify_backup(file)
    except BackupError as exc:
        print(f"trading-bot: verify failed: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    print(f"backup OK: {file} ({manifest.describe()})")
    return exitcodes.OK


def restore(config: Config, file: Path) -> int:
    from tradingbot.logconfig import configure_logging
    from tradingbot.recovery import AlreadyRunning, acquire_run_lock
    from tradingbot.storage import (
        BackupError,
        Database,
        StorageError,
        backup_database,
        pre_restore_path,
        read_manifest,
        restore_database,
    )
    from tradingbot.storage.backup import check_restorable

    # stdout is the outcome; library log lines (warnings and up) go to stderr and the log.
    configure_logging(level="WARNING", log_dir=config.log_dir, stream=sys.stderr)
    try:
        with Database.open(config.database_url) as database:
            check_restorable(database, read_manifest(file), file)
            lock = acquire_run_lock(
                database,
                config.ib_account or "",
                pid=os.getpid(),
                host=socket.gethostname(),
                run_id="db-restore",
            )
            try:
                _refuse_other_sqlite_runs(database.sqlite_path, config.ib_account or "")
                saved = None
                if database.current_revision() is not None:
                    saved = pre_restore_path(backups_dir(config))
                    backup_database(database, saved)
                result = restore_database(database, file)
            finally:
                lock.release()
    except AlreadyRunning as exc:
        print(f"trading-bot: restore refused: {exc}; stop it first", file=sys.stderr)
        return exitcodes.ALREADY_RUNNING
    except BackupError as exc:
        print(f"trading-bot: restore failed: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    except StorageError as exc:
        print(f"trading-bot: restore failed: database error: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    if saved is not None:
        print(f"the replaced database was saved to {saved}")
    upgraded = f"; upgraded with {', '.join(result.upgraded)}" if result.upgraded else ""
    print(
        f"restored {file} ({result.manifest.describe()}){upgraded}; "
        f"now at revision {result.revision}"
    )
    return exitcodes.OK


def _refuse_other_sqlite_runs(database_file: Path | None, account: str) -> None:
    """Raise AlreadyRunning when a run of another account holds a lock on this SQLite file."""
    from tradingbot.recovery import AlreadyRunning
    from tradingbot.recovery.runlock import lock_file_path, probe_file_lock

    if database_file is None:
        return
    database_file = database_file.resolve()
    own = lock_file_path(database_file, account)
    for path in sorted(database_file.parent.glob(database_file.name + "*.lock")):
        holder = None if path == own else probe_file_lock(path)
        if holder is not None:
            raise AlreadyRunning(
                f"{holder.describe()} holds the run lock of another account on this "
                f"database ({path})",
                holder,
            )
