"""Online backup, verification and restore of the trading-bot database.

A backup is one uncompressed tar file holding two members:

- ``manifest.json``: format, creation time, dialect, schema revision, row counts per
  table, and the SHA-256 and size of the data member;
- the data: ``database.sqlite.gz`` (a SQLite copy made with SQLite's online backup API)
  or ``database.sql.gz`` (``pg_dump`` plain SQL), gzip-compressed.

Both copies are consistent snapshots taken while the bot runs: the SQLite backup API
copies every page inside one read transaction (WAL readers never block the writer), and
on PostgreSQL the row counts and ``pg_dump`` share one exported snapshot. So every write
committed before the backup starts is in it, and the counts describe exactly the data.

A restore replaces the whole database with the backup's content (atomically: SQLite's
backup API into the live file, or one ``psql --single-transaction``), then upgrades an
older schema. A backup from a newer schema is refused. Whether a bot is running is the
caller's business (the run lock lives in :mod:`tradingbot.recovery`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tradingbot import __version__
from tradingbot.storage import backup_postgres, schema
from tradingbot.storage.backup_postgres import DEFAULT_SCHEMA, table_names
from tradingbot.storage.database import Database
from tradingbot.storage.errors import BackupError

FORMAT = "trading-bot-backup/1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite.gz"
POSTGRES_MEMBER = "database.sql.gz"
SUFFIX = ".backup.tar"
SCHEDULED_PREFIX = "trading-bot-"  # trading-bot-20261206T023000Z.backup.tar
PRE_RESTORE_PREFIX = "pre-restore-"  # never pruned by --keep
_STAMP = re.compile(r"^trading-bot-\d{8}T\d{6}Z\.backup\.tar$")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupManifest:
    """What a backup holds, read from (and checked against) its ``manifest.json``."""

    format: str
    created_at: str  # ISO 8601 UTC
    trading_bot_version: str
    dialect: str  # "sqlite" or "postgresql"
    schema_revision: str | None
    counts: dict[str, int] = field(default_factory=dict)
    member: str = ""
    sha256: str = ""
    size_bytes: int = 0
    # PostgreSQL: the schema the tables were dumped from (written only when not "public",
    # so that an older trading-bot can still read the manifest of a default install).
    postgres_schema: str = DEFAULT_SCHEMA

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """``revision 0006, 1234 rows in 5 tables, sqlite, 2026-12-06T02:30:00+00:00``."""
        where = self.dialect
        if self.dialect == "postgresql" and self.postgres_schema != DEFAULT_SCHEMA:
            where += f" schema {self.postgres_schema}"
        return (
            f"revision {self.schema_revision or 'none'}, {self.rows} rows in "
            f"{len(self.counts)} tables, {where}, made {self.created_at}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreResult:
    """What a restore did: the backup's manifest and the migrations applied after it."""

    manifest: BackupManifest
    upgraded: list[str]
    revision: str | None


def default_backup_path(folder: Path, now: datetime | None = None) -> Path:
    """``folder/trading-bot-YYYYmmddTHHMMSSZ.backup.tar`` for ``now`` (UTC)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{SCHEDULED_PREFIX}{stamp}{SUFFIX}"


def pre_restore_path(folder: Path, now: datetime | None = None) -> Path:
    """Where the database is saved before a restore replaces it."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{PRE_RESTORE_PREFIX}{stamp}{SUFFIX}"


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest scheduled backups in ``folder``; return the deleted.

    Only files named like :func:`default_backup_path` count: a backup saved elsewhere
    or under another name (a pre-restore copy) is never deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    scheduled = sorted(p for p in folder.iterdir() if _STAMP.match(p.name) and p.is_file())
    doomed = scheduled[:-keep]
    for path in doomed:
        path.unlink()
    return doomed


# -- backup ---------------------------------------------------------------------------------


def backup_database(database: Database, destination: Path) -> BackupManifest:
    """Write a consistent, compressed backup of ``database`` to ``destination`` (atomically).

    Raises :class:`BackupError` (or :class:`~tradingbot.storage.StorageUnavailable`)
    when it cannot be made; a partial file is never left at ``destination``.
    """
    destination = destination.absolute()
    try:
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"cannot create {destination.parent}: {_reason(error)}") from None
    with _scratch(destination.parent) as scratch:
        if database.dialect == "sqlite":
            manifest, data = _backup_sqlite(database, scratch)
        else:
            manifest, data = _backup_postgres(database, scratch)
        _write_archive(destination, manifest, data, scratch)
    return manifest


def _backup_sqlite(database: Database, scratch: Path) -> tuple[BackupManifest, Path]:
    source_path = database.sqlite_path
    if source_path is None:
        raise BackupError(f"database {database.redacted_url}: an in-memory database has no backup")
    if not source_path.is_file():
        raise BackupError(
            f"database {database.redacted_url}: the file {source_path} does not exist"
        )
    copy = scratch / "database.sqlite"
    try:
        source = sqlite3.connect(source_path, timeout=30)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # every page in one read transaction: one snapshot
            finally:
                target.close()
        finally:
            source.close()
        revision, counts = _sqlite_contents(copy)
    except sqlite3.Error as error:
        raise BackupError(f"database {database.redacted_url}: backup failed: {error}") from None
    return _compress(copy, scratch / SQLITE_MEMBER, "sqlite", revision, counts)


def _sqlite_contents(path: Path) -> tuple[str | None, dict[str, int]]:
    """The schema revision and the row count of each trading-bot table of a SQLite file."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        revision = None
        if "alembic_version" in names:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = None if row is None else str(row[0])
        counts = {
            name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
            for name in table_names()
            if name in names
        }
    finally:
        connection.close()
    return revision, counts


def _backup_postgres(database: Database, scratch: Path) -> tuple[BackupManifest, Path]:
    dump = scratch / "database.sql"
    revision, counts, name = backup_postgres.dump(database, dump)
    return _compress(dump, scratch / POSTGRES_MEMBER, "postgresql", revision, counts, name)


def _compress(
    raw: Path,
    member: Path,
    dialect: str,
    revision: str | None,
    counts: dict[str, int],
    postgres_schema: str = DEFAULT_SCHEMA,
) -> tuple[BackupManifest, Path]:
    digest = hashlib.sha256()
    with raw.open("rb") as source, member.open("wb") as sink:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=_Hashing(sink, digest), mtime=0)
        with gz:
            shutil.copyfileobj(source, gz, _CHUNK)
    raw.unlink()
    manifest = BackupManifest(
        format=FORMAT,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        trading_bot_version=__version__,
        dialect=dialect,
        schema_revision=revision,
        counts=counts,
        member=member.name,
        sha256=digest.hexdigest(),
        size_bytes=member.stat().st_size,
        postgres_schema=postgres_schema,
    )
    return manifest, member


class _Hashing(io.RawIOBase):
    """A write-only file that hashes what passes through it."""

    def __init__(self, sink: IO[bytes], digest: Any) -> None:
        self._sink = sink
        self._digest = digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._sink.write(view)
        return len(view)


def _write_archive(destination: Path, manifest: BackupManifest, data: Path, scratch: Path) -> None:
    partial = scratch / "backup.tar"
    fields = asdict(manifest)
    if manifest.postgres_schema == DEFAULT_SCHEMA:
        del fields["postgres_schema"]
    body = json.dumps(fields, indent=2, sort_keys=True).encode()
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(body))
            archive.add(data, arcname=data.name, recursive=False, filter=_private)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(partial, 0o600)
        os.replace(partial, destination)
        _fsync_dir(destination.parent)
    except OSError as error:
        raise BackupError(f"cannot write the backup {destination}: {_reason(error)}") from None


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
    return info


# -- verify -----------------------------------------------------------------------------------


def read_manifest(path: Path) -> BackupManifest:
    """The manifest of the backup at ``path``; :class:`BackupError` if it is not one."""
    with _open_archive(path) as archive:
        return _manifest(archive, path)


def verify_backup(path: Path) -> BackupManifest:
    """Check a backup completely: manifest, checksum, decompression, content and counts.

    Returns the manifest; raises :class:`BackupError` naming the first problem.
    """
    with tempfile.TemporaryDirectory(prefix="trading-bot-verify-") as folder:
        manifest, _ = _unpack(path, Path(folder))
    return manifest


def _unpack(path: Path, folder: Path) -> tuple[BackupManifest, Path]:
    """Check the backup at ``path`` and decompress its data into ``folder``."""
    with _open_archive(path) as archive:
        manifest = _manifest(archive, path)
        try:
            member = archive.getmember(manifest.member)
        except KeyError:
            raise BackupError(f"{path}: the data member {manifest.member!r} is missing") from None
        source = archive.extractfile(member)
        if source is None:
            raise BackupError(f"{path}: the data member {manifest.member!r} is not a file")
        raw = folder / manifest.member.removesuffix(".gz")
        digest = hashlib.sha256()
        try:
            with raw.open("wb") as sink:
                reader = gzip.GzipFile(fileobj=_HashingReader(source, digest), mode="rb")
                shutil.copyfileobj(reader, sink, _CHUNK)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
            raise BackupError(f"{path}: the data is damaged ({_reason(error)})") from None
    if digest.hexdigest() != manifest.sha256:
        raise BackupError(f"{path}: checksum mismatch, the backup is damaged")
    if manifest.dialect == "sqlite":
        _check_sqlite_copy(path, raw, manifest)
    else:
        _check_sql_dump(path, raw)
    return manifest, raw


class _HashingReader(io.RawIOBase):
    """A read-only file that hashes what is read through it."""

    def __init__(self, source: IO[bytes], digest: Any) -> None:
        self._source = source
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)


def _check_sqlite_copy(path: Path, raw: Path, manifest: BackupManifest) -> None:
    try:
        connection = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
        try:
            result = connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()
        revision, counts = _sqlite_contents(raw)
    except sqlite3.Error as error:
        raise BackupError(f"{path}: the database copy cannot be read ({error})") from None
    if result != "ok":
        raise BackupError(f"{path}: the database copy fails its integrity check ({result})")
    if revision != manifest.schema_revision or counts != manifest.counts:
        raise BackupError(f"{path}: the database copy does not match its manifest")


def _check_sql_dump(path: Path, raw: Path) -> None:
    with raw.open("rb") as handle:
        head = handle.read(4096)
        handle.seek(max(0, raw.stat().st_size - 4096))
        tail = handle.read()
    if b"PostgreSQL database dump" not in head or b"PostgreSQL database dump complete" not in tail:
        raise BackupError(f"{path}: the SQL dump is incomplete")


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tarfile.TarFile]:
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    try:
        with tarfile.open(path, "r:") as archive:
            yield archive
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BackupError(f"{path}: not a readable trading-bot backup ({_reason(error)})") from None


def _manifest(archive: tarfile.TarFile, path: Path) -> BackupManifest:
    try:
        handle = archive.extractfile(MANIFEST)
        if handle is None:
            raise KeyError(MANIFEST)
        data = json.loads(handle.read(1 << 20))
        manifest = BackupManifest(**data)
    except (KeyError, ValueError, TypeError):
        raise BackupError(f"{path}: not a trading-bot backup (no valid {MANIFEST})") from None
    if manifest.format != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.format!r} (expected {FORMAT})")
    if manifest.member not in (SQLITE_MEMBER, POSTGRES_MEMBER) or manifest.dialect not in (
        "sqlite",
        "postgresql",
    ):
        raise BackupError(f"{path}: the manifest names no known database copy")
    return manifest


# -- restore ----------------------------------------------------------------------------------


def check_restorable(database: Database, manifest: BackupManifest, path: Path) -> None:
    """Raise :class:`BackupError` unless the backup can be restored into ``database``."""
    if manifest.dialect != database.dialect:
        raise BackupError(
            f"{path} is a {manifest.dialect} backup; TRADINGBOT_DATABASE_URL is a "
            f"{database.dialect} database ({database.redacted_url})"
        )
    revision = manifest.schema_revision
    if revision is not None and revision not in schema.known_revisions():
        raise BackupError(
            f"{path} is from a newer schema (revision {revision}) than this trading-bot knows "
            f"(up to {schema.head_revision()}); restore it with the version that made it "
            f"({manifest.trading_bot_version})"
        )
    if manifest.dialect == "postgresql":
        target = backup_postgres.target_schema(database)
        if target != manifest.postgres_schema:
            raise BackupError(
                f"{path} holds the tables of schema {manifest.postgres_schema}; "
                f"TRADINGBOT_DATABASE_URL ({database.redacted_url}) keeps them in schema "
                f"{target}; restore with a search_path that selects "
                f"{manifest.postgres_schema} (?options=-csearch_path%3D"
                f"{manifest.postgres_schema})"
            )


def restore_database(database: Database, path: Path) -> RestoreResult:
    """Replace the content of ``database`` with the backup at ``path``, then upgrade it.

    The backup is verified completely before anything is touched; the replacement is
    atomic. Raises :class:`BackupError` for a damaged, foreign or newer backup.
    """
    manifest = read_manifest(path)
    check_restorable(database, manifest, path)
    folder = database.sqlite_path.parent if database.sqlite_path is not None else None
    with _scratch(folder) as scratch:
        manifest, raw = _unpack(path, scratch)
        check_restorable(database, manifest, path)
        if manifest.dialect == "sqlite":
            _restore_sqlite(database, raw)
        else:
            backup_postgres.restore(database, raw, manifest.postgres_schema)
    database.dispose()  # pooled connections may have cached the old schema
    upgraded = database.upgrade()
    return RestoreResult(manifest=manifest, upgraded=upgraded, revision=database.current_revision())


def _restore_sqlite(database: Database, raw: Path) -> None:
    target_path = database.sqlite_path
    assert target_path is not None
    database.dispose()
    try:
        source = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(target_path, timeout=30)
            try:
                source.backup(target)  # atomic for every other connection to the file
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as error:
        raise BackupError(f"database {database.redacted_url}: restore failed: {error}") from None


# -- helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _scratch(folder: Path | None) -> Iterator[Path]:
    """A private temporary folder, on the destination's file system when possible."""
    try:
        with tempfile.TemporaryDirectory(prefix=".trading-bot-backup-", dir=folder) as path:
            yield Path(path)
    except PermissionError as error:
        raise BackupError(f"cannot write in {folder}: {_reason(error)}") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower() + (f": {error.filename}" if error.filename else "")
    return str(error).splitlines()[0] if str(error) else type(error).__name__
