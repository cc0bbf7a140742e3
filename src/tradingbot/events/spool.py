"""The spool: an fsync'd, append-only file that holds events while the database is down.

The event logger appends here when it cannot store events; when the database is back it
replays them with :meth:`EventSpool.read`, stores them, then calls
:meth:`EventSpool.commit` with how many it stored. A ``kill -9`` at any point loses
nothing that :meth:`EventSpool.append` returned for: the next start opens the same file
and finds the events. Replaying an event twice is harmless (the database ignores a known
UUID); losing or reordering one is not, so every rewrite is atomic.

File format, one record per line::

    <crc32 of payload, 8 lower-case hex digits> <payload>\\n

where the payload is the orjson encoding of :meth:`Event.to_dict` (never contains a
newline). A final line without its newline, or whose CRC does not match, is a *torn
tail* (a crash during append, never acknowledged): it is ignored, counted in
:attr:`EventSpool.torn_tail` and cut off before the next append. Any other bad line is a
*corrupt record*: skipped, counted in :attr:`EventSpool.corrupt_records`, and moved to a
quarantine file ``<name>.corrupt-<timestamp>`` at the next commit, for an operator.

Threads: one lock serialises :meth:`~EventSpool.append`, :meth:`~EventSpool.read` and
:meth:`~EventSpool.commit`; :meth:`~EventSpool.depth`, :meth:`~EventSpool.size_bytes`,
:meth:`~EventSpool.oldest` and :meth:`~EventSpool.stats` read an immutable snapshot
without the lock, so a health check never waits for a long replay. A spool directory
belongs to one process at a time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

import orjson
import structlog

from tradingbot.events.model import Event, EventValidationError

__all__ = ["SPOOL_FILE_NAME", "EventSpool", "SpoolError", "SpoolFull", "SpoolStats"]

log = structlog.get_logger(__name__)

SPOOL_FILE_NAME = "events.spool"
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB
_CRC_DIGITS = 8
_HEADER = _CRC_DIGITS + 1  # "<crc> "
_TEMP_PREFIX = f".{SPOOL_FILE_NAME}.tmp-"


class SpoolError(Exception):
    """The spool file could not be read or written; the message names the path and error."""


class SpoolFull(SpoolError):
    """Appending would grow the spool beyond its size limit; nothing was written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolStats:
    """What health and the tree snapshot show about the spool."""

    depth: int
    size_bytes: int
    oldest: datetime | None
    torn_tail: int
    corrupt_records: int
    write_error: str | None = None  # why the last append failed (None once one succeeds)
    write_failures: int = 0  # appends that failed (disk full, I/O error, read-only, limit)


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of the spool file, classified."""

    kind: Literal["event", "corrupt", "torn"]
    number: int  # 1-based line number
    offset: int  # byte offset of the line's start
    raw: bytes  # the line as stored, newline included when present
    event: Event | None = None
    reason: str = ""


def encode_record(event: Event) -> bytes:
    """One spool record for ``event``: ``<crc32 hex> <json>\\n``."""
    try:
        payload = orjson.dumps(event.to_dict())
    except TypeError as exc:  # orjson.JSONEncodeError
        raise EventValidationError(
            f"context: event {event.id} is not JSON-serialisable: {exc}"
        ) from None
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode(line: bytes) -> tuple[Event | None, str]:
    """The event in a newline-terminated line, or None and why it is bad."""
    payload = line[_HEADER:-1]
    if len(line) < _HEADER + 1 or line[_CRC_DIGITS:_HEADER] != b" ":
        return None, "malformed record header"
    try:
        crc = int(line[:_CRC_DIGITS], 16)
    except ValueError:
        return None, "malformed record header"
    if zlib.crc32(payload) != crc:
        return None, "CRC mismatch"
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return None, f"bad JSON: {exc}"
    if not isinstance(data, dict):
        return None, "record is not a JSON object"
    try:
        return Event.from_dict(data), ""
    except EventValidationError as exc:
        return None, f"invalid event: {exc}"


def _scan(stream: BinaryIO) -> Iterator[_Line]:
    """Classify every line; a CRC-bad or unterminated *last* line is the torn tail."""
    offset = 0
    pending: _Line | None = None  # a CRC-bad line: corrupt if another line follows
    for number, raw in enumerate(stream, start=1):
        if pending is not None:
            yield pending
            pending = None
        if not raw.endswith(b"\n"):  # only the last line can lack its newline
            yield _Line("torn", number, offset, raw, reason="no newline")
        else:
            event, reason = _decode(raw)
            if event is not None:
                yield _Line("event", number, offset, raw, event)
            elif reason in ("CRC mismatch", "malformed record header"):
                pending = _Line("corrupt", number, offset, raw, reason=reason)
            else:
                yield _Line("corrupt", number, offset, raw, reason=reason)
        offset += len(raw)
    if pending is not None:
        yield _Line("torn", pending.number, pending.offset, pending.raw, reason=pending.reason)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class EventSpool:
    """The spool file ``<directory>/events.spool``, at most ``max_bytes`` long.

    Opening scans an existing file (after a crash) to recompute depth, size and oldest;
    it does not modify it.
    """

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes: expected a positive size, got {max_bytes}")
        self.directory = Path(directory)
        self.path = self.directory / SPOOL_FILE_NAME
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # Where the next record goes: the end of the last complete, non-torn line.
        self._end = 0
        self._depth = 0
        self._oldest: datetime | None = None
        # Each bad line is counted and logged once, keyed by its offset in this file.
        self._seen_corrupt: set[int] = set()
        self._seen_torn: int | None = None
        self._torn_tail = 0
        self._corrupt_records = 0
        self._stale = False  # a failed write left the file in an unknown state
        self._write_error: str | None = None
        self._write_failures = 0
        self._last_read: list[Event] = []  # what read() returned, minus what was committed
        self._stats = SpoolStats(depth=0, size_bytes=0, oldest=None, torn_tail=0, corrupt_records=0)
        with self._lock:
            self._remove_stale_temp_files()
            self._load()

    # -- observation (no lock) ---------------------------------------------------------

    def depth(self) -> int:
        """Events currently spooled (corrupt and torn records are not counted)."""
        return self._stats.depth

    def size_bytes(self) -> int:
        """Bytes the spool's records occupy on disk (the figure ``max_bytes`` limits)."""
        return self._stats.size_bytes

    def oldest(self) -> datetime | None:
        """Timestamp of the first spooled event, or None when the spool is empty."""
        return self._stats.oldest

    def stats(self) -> SpoolStats:
        """A consistent snapshot of depth, size, oldest and the damage counters."""
        return self._stats

    @property
    def torn_tail(self) -> int:
        """How many torn tails (crash mid-append) this spool has found and ignored."""
        return self._stats.torn_tail

    @property
    def corrupt_records(self) -> int:
        """How many corrupt records this spool has found and skipped (each counted once)."""
        return self._stats.corrupt_records

    # -- the protocol ------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        """Append one record per event and fsync once; durable when this returns.

        Raises SpoolFull (nothing written) when the file would exceed ``max_bytes``,
        SpoolError for an I/O error, EventValidationError if an event's context is not
        JSON-serialisable (nothing written).
        """
        if not events:
            return
        data = b"".join(encode_record(event) for event in events)
        with self._lock:
            if self._stale:
                try:
                    self._load()
                except SpoolError as exc:
                    self._write_failed(str(exc))
                    raise
            if self._end + len(data) > self.max_bytes:
                full = SpoolFull(
                    f"event spool {self.path} is full: {self._end} bytes spooled,"
                    f" {len(data)} more would exceed the limit of {self.max_bytes} bytes"
                )
                self._write_failed(str(full))
                raise full
            try:
                self._write(data)
            except OSError as exc:
                self._stale = True
                error = SpoolError(f"cannot append to event spool {self.path}: {exc}")
                self._write_failed(str(error))
                raise error from exc
            self._write_error = None
            self._end += len(data)
            self._depth += len(events)
            if self._oldest is None:
                self._oldest = events[0].timestamp
            self._publish()

    def clear_write_error(self) -> None:
        """Forget the last append's failure: events reach the database directly again."""
        with self._lock:
            if self._write_error is not None:
                self._write_error = None
                self._publish()

    def read(self) -> list[Event]:
        """Every spooled event, in append order; bad lines are skipped (see module doc)."""
        with self._lock:
            self._last_read = self._load()
            return list(self._last_read)

    def commit(self, count: int) -> None:
        """Drop the first ``count`` events returned by :meth:`read`: they are stored.

        Events appended since read() are kept. Corrupt records are moved to a
        quarantine file first. Raises ValueError if ``count`` exceeds what read()
        returned, SpoolError on an I/O error or if the spool no longer starts with the
        events read() returned (nothing is changed then).
        """
        if count < 0:
            raise ValueError(f"count: expected a non-negative number, got {count}")
        with self._lock:
            if count > len(self._last_read):
                raise ValueError(
                    f"count: commit({count}) but read() returned only"
                    f" {len(self._last_read)} uncommitted events"
                )
            if count == 0 and not self._seen_corrupt and not self._stale:
                return  # nothing stored, nothing to quarantine
            try:
                self._commit(count)
            except OSError as exc:
                self._stale = True
                raise SpoolError(f"cannot commit event spool {self.path}: {exc}") from exc
            del self._last_read[:count]

    # -- internals (lock held) ---------------------------------------------------------

    def _write_failed(self, error: str) -> None:
        self._write_error = error
        self._write_failures += 1
        self._publish()

    def _publish(self) -> None:
        self._stats = SpoolStats(
            depth=self._depth,
            size_bytes=self._end,
            oldest=self._oldest,
            torn_tail=self._torn_tail,
            corrupt_records=self._corrupt_records,
            write_error=self._write_error,
            write_failures=self._write_failures,
        )

    def _open_for_read(self) -> BinaryIO | None:
        try:
            return self.path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"cannot read event spool {self.path}: {exc}") from exc

    def _lines(self, stream: BinaryIO) -> Iterator[_Line]:
        """Scan, reporting each bad line the first time it is seen."""
        try:
            for line in _scan(stream):
                if line.kind == "corrupt" and line.offset not in self._seen_corrupt:
                    self._seen_corrupt.add(line.offset)
                    self._corrupt_records += 1
                    log.error(
                        "event spool: corrupt record skipped",
                        path=str(self.path),
                        line=line.number,
                        offset=line.offset,
                        bytes=len(line.raw),
                        reason=line.reason,
                    )
                elif line.kind == "torn" and line.offset != self._seen_torn:
                    self._seen_torn = line.offset
                    self._torn_tail += 1
                    log.warning(
                        "event spool: torn tail ignored (crash during append)",
                        path=str(self.path),
                        line=line.number,
                        offset=line.offset,
                        bytes=len(line.raw),
                        reason=line.reason,
                    )
                yield line
        except OSError as exc:
            raise SpoolError(f"cannot read event spool {self.path}: {exc}") from exc

    def _load(self) -> list[Event]:
        """Rescan the file: recompute depth, end and oldest; return the events."""
        events: list[Event] = []
        end = 0
        stream = self._open_for_read()
        if stream is not None:
            with stream:
                for line in self._lines(stream):
                    if line.kind != "torn":
                        end = line.offset + len(line.raw)
                    if line.event is not None:
                        events.append(line.event)
        else:
            self._seen_corrupt.clear()
            self._seen_torn = None
        self._end = end
        self._depth = len(events)
        self._oldest = events[0].timestamp if events else None
        self._stale = False
        self._publish()
        return events

    def _write(self, data: bytes) -> None:
        """Write ``data`` at the end of the good records and fsync the file."""
        created_dir = not self.directory.is_dir()
        if created_dir:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            _fsync_dir(self.directory.parent)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(self.path, os.O_WRONLY)
            created = False
        try:
            if created:
                os.fchmod(fd, 0o600)  # whatever the umask
                self._end = 0
                self._depth = 0
                self._oldest = None
            size = os.fstat(fd).st_size
            if size > self._end:  # a torn tail, or a write that failed half-way
                os.ftruncate(fd, self._end)
                self._seen_torn = None
            elif size < self._end:
                raise OSError(f"file shrank unexpectedly from {self._end} to {size} bytes")
            os.lseek(fd, self._end, os.SEEK_SET)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # leave no half record behind
                    os.ftruncate(fd, self._end)
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.directory)

    def _commit(self, count: int) -> None:
        expected = self._last_read[:count]
        stream = self._open_for_read()
        if stream is None:
            if count:
                raise SpoolError(f"event spool {self.path} vanished since read()")
            return
        quarantine: list[bytes] = []
        keep_fd: int | None = None
        keep_path: Path | None = None
        kept = 0
        kept_bytes = 0
        oldest: datetime | None = None
        done = 0
        try:
            with stream:
                for line in self._lines(stream):
                    if line.kind == "corrupt":
                        quarantine.append(line.raw)
                    elif line.event is None:
                        continue  # torn tail: dropped
                    elif done < count:
                        if line.event.id != expected[done].id:
                            raise SpoolError(
                                f"event spool {self.path} changed since read():"
                                f" record {line.number} is {line.event.id}, expected"
                                f" {expected[done].id}; nothing committed"
                            )
                        done += 1
                    else:
                        if keep_fd is None:
                            keep_fd, name = tempfile.mkstemp(
                                prefix=_TEMP_PREFIX, dir=self.directory
                            )
                            keep_path = Path(name)
                            oldest = line.event.timestamp
                        _write_all(keep_fd, line.raw)
                        kept += 1
                        kept_bytes += len(line.raw)
            if done < count:
                raise SpoolError(
                    f"event spool {self.path} changed since read(): only {done} of the"
                    f" {count} events to commit are still there; nothing committed"
                )
            if not quarantine and count == 0:
                return  # nothing to change
            if quarantine:
                self._quarantine(quarantine)
            if keep_fd is None:
                with self.path.open("r+b") as spool:
                    spool.truncate(0)
                    os.fsync(spool.fileno())
            else:
                assert keep_path is not None
                os.fsync(keep_fd)
                os.close(keep_fd)
                keep_fd = None
                os.replace(keep_path, self.path)
                keep_path = None
                _fsync_dir(self.directory)
        finally:
            if keep_fd is not None:
                os.close(keep_fd)
            if keep_path is not None:
                keep_path.unlink(missing_ok=True)
        self._end = kept_bytes
        self._depth = kept
        self._oldest = oldest
        self._seen_corrupt.clear()
        self._seen_torn = None
        self._publish()

    def _quarantine(self, lines: list[bytes]) -> None:
        """Write corrupt lines to ``<name>.corrupt-<timestamp>`` and fsync it; a write that
        fails (a full disk) removes the partial file: the lines are still in the spool."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        target, n = base, 1
        while True:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                n += 1
                target = base.with_name(f"{base.name}-{n}")
        try:
            _write_all(fd, b"".join(lines))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            target.unlink(missing_ok=True)
            raise
        os.close(fd)
        _fsync_dir(self.directory)
        log.error(
            "event spool: corrupt records quarantined",
            path=str(self.path),
            quarantine=str(target),
            records=len(lines),
        )

    def _remove_stale_temp_files(self) -> None:
        """Temp files left by a crash during commit: the spool itself is authoritative."""
        try:
            stale = list(self.directory.glob(f"{_TEMP_PREFIX}*"))
        except OSError:
            return
        for path in stale:
            try:
                path.unlink()
                log.warning(
                    "event spool: removed temp file of an interrupted commit", path=str(path)
                )
            except OSError as exc:
                log.warning("event spool: cannot remove temp file", path=str(path), error=str(exc))
