"""Online backup, verify and restore, on SQLite and PostgreSQL, under a real write load."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command

from tradingbot.events import Event
from tradingbot.storage import (
    BackupError,
    Database,
    backup_database,
    default_backup_path,
    prune_backups,
    read_manifest,
    restore_database,
    verify_backup,
)
from tradingbot.storage import schema as storage_schema
from tradingbot.storage.backup import MANIFEST


class Writer:
    """Inserts batches of events on a thread; ``acknowledged`` grows after each commit."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.acknowledged: list[uuid.UUID] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backup-test-writer")
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = [Event(type="TRADE", message=f"fill {i}") for i in range(20)]
                self._database.events.insert_many(batch)
                with self._lock:
                    self.acknowledged.extend(e.id for e in batch)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def snapshot(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self.acknowledged)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_for_writes(writer: Writer, count: int) -> None:
    from support.waiting import wait_until

    wait_until(lambda: len(writer.snapshot()) >= count, 30, f"{count} acknowledged writes")


def test_backup_under_write_load_holds_every_acknowledged_event(
    database: Database, tmp_path: Path
) -> None:
    """Every event acknowledged before the backup starts is in it, and its counts are exact."""
    target = tmp_path / "b.backup.tar"
    with Writer(database) as writer:
        wait_for_writes(writer, 200)
        before = writer.snapshot()
        manifest = backup_database(database, target)
        wait_for_writes(writer, len(before) + 100)  # the load went on during the backup
    assert writer.error is None
    assert verify_backup(target) == manifest
    assert manifest.schema_revision == database.head_revision()
    assert manifest.counts["events"] >= len(before)
    after_backup = database.events.count()
    assert after_backup > manifest.counts["events"]

    result = restore_database(database, target)
    assert result.upgraded == []
    assert database.events.count() == manifest.counts["events"]
    missing = [i for i in before if database.events.get(i) is None]
    assert missing == []


def test_verify_detects_a_damaged_backup(database: Database, tmp_path: Path) -> None:
    """One flipped byte in the data makes `verify` fail with a checksum mismatch."""
    database.events.insert_many([Event(type="TRADE", message="x")])
    target = tmp_path / "b.backup.tar"
    backup_database(database, target)
    data = bytearray(target.read_bytes())
    position = data.rfind(b"\x1f\x8b")  # the gzip header of the data member
    data[position + 200] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"damaged|checksum"):
        verify_backup(target)


def test_not_a_backup_is_one_clear_error(tmp_path: Path) -> None:
    """A file that is not a backup, or none at all, is a BackupError naming it."""
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    with pytest.raises(BackupError, match="not a readable trading-bot backup"):
        verify_backup(stray)
    with pytest.raises(BackupError, match="no such backup file"):
        verify_backup(tmp_path / "missing.tar")


def rewrite_manifest(path: Path, **changes: object) -> None:
    with tarfile.open(path) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(path, "w") as archive:
        for member, body in members:
            if member.name == MANIFEST:
                data = json.loads(body)
                data.update(changes)
                body = json.dumps(data).encode()
                member.size = len(body)
            archive.addfile(member, io.BytesIO(body))


def test_restore_refuses_a_newer_schema(database: Database, tmp_path: Path) -> None:
    """A backup from a newer schema revision is refused and the database is left alone."""
    database.events.insert_many([Event(type="TRADE", message="kept")])
    target = tmp_path / "b.backup.tar"
    backup_database(database, target)
    rewrite_manifest(target, schema_revision="9999")
    database.events.insert_many([Event(type="TRADE", message="also kept")])
    with pytest.raises(BackupError, match="newer schema"):
        restore_database(database, target)
    assert database.events.count() == 2


@pytest.fixture
def old_database(database_url: str) -> Iterator[Database]:
    """A database one migration behind the head (as an older trading-bot left it)."""
    db = Database.open(database_url)
    previous = storage_schema.script_directory().get_revision(db.head_revision()).down_revision
    assert isinstance(previous, str)
    with db._tx.write_connection() as connection:
        command.upgrade(storage_schema.alembic_config(connection), previous)
    yield db
    db.dispose()


def test_restore_upgrades_an_older_schema(old_database: Database, tmp_path: Path) -> None:
    """A backup made by an older schema is restored, then upgraded to this version's head."""
    old_revision = old_database.current_revision()
    target = tmp_path / "old.backup.tar"
    manifest = backup_database(old_database, target)
    assert manifest.schema_revision == old_revision
    old_database.upgrade()
    result = restore_database(old_database, target)
    assert result.upgraded == [old_database.head_revision()]
    assert old_database.current_revision() == old_database.head_revision()


def test_restore_refuses_another_kind_of_database(database: Database, tmp_path: Path) -> None:
    """A SQLite backup cannot be restored into PostgreSQL, nor the other way round."""
    target = tmp_path / "b.backup.tar"
    backup_database(database, target)
    other = "postgresql" if database.dialect == "sqlite" else "sqlite"
    rewrite_manifest(
        target,
        dialect=other,
        member="database.sql.gz" if other == "postgresql" else "database.sqlite.gz",
    )
    with pytest.raises(BackupError, match=f"is a {other} backup"):
        restore_database(database, target)


@pytest.mark.postgres
def test_missing_pg_dump_is_a_clear_error(
    fresh_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pg_dump on PATH a PostgreSQL backup fails saying what to install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with Database.open(fresh_postgres_url) as database:
        database.upgrade()
        with pytest.raises(BackupError, match=r"pg_dump is not installed.*postgresql-client"):
            backup_database(database, tmp_path / "b.backup.tar")
    assert not (tmp_path / "b.backup.tar").exists()


def test_prune_keeps_the_newest_scheduled_backups(tmp_path: Path) -> None:
    """--keep N deletes the oldest scheduled backups only, never other files."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    made = [default_backup_path(tmp_path, start + timedelta(days=d)) for d in range(5)]
    for path in made:
        path.write_bytes(b"")
    other = tmp_path / "pre-restore-20261130T000000Z.backup.tar"
    other.write_bytes(b"")
    deleted = prune_backups(tmp_path, 2)
    assert deleted == made[:3]
    assert sorted(tmp_path.iterdir()) == sorted([other, *made[3:]])


def test_manifest_is_readable_without_unpacking(database: Database, tmp_path: Path) -> None:
    """The manifest names the dialect, revision, per-table counts and the data's checksum."""
    database.events.insert_many([Event(type="TRADE", message=str(i)) for i in range(3)])
    target = tmp_path / "b.backup.tar"
    backup_database(database, target)
    manifest = read_manifest(target)
    assert manifest.dialect == database.dialect
    assert manifest.counts["events"] == 3
    assert set(manifest.counts) >= {"events", "outbox", "system_state"}
    assert len(manifest.sha256) == 64
    assert target.stat().st_mode & 0o777 == 0o600
