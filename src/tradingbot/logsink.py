"""Where finished log lines go: stdout and the log file, and what happens when the file fails.

A log call must never take the process down, and must never write to a file descriptor
it does not own. So :class:`LogSink`:

- forgets its descriptor the moment it closes it (a number the kernel may hand to the
  next socket is never written to or closed again);
- catches every write error: when the log file cannot be written (folder removed, disk
  full, read-only remount) the line still goes to stdout, the file is given up, and it
  is reopened (its folder recreated) with a backoff of 1, 2, 4… up to 10 s;
- reports the change of state once per episode, not once per line: the listener (the
  runtime: a SYSTEM WARNING event) is called after the lock is released, and
  :meth:`LogSink.file_state` feeds the ``logs:file`` health check.

The rotation check (logrotate moved the file: reopen it) runs at most once a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

__all__ = ["LogFileState", "LogSink"]

REOPEN_CHECK_S = 1.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 10.0  # a retry is one mkdir and one open: cheap


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFileState:
    """Whether the log file is being written; ``error`` says why not."""

    path: Path
    error: str | None = None
    failed_at: float | None = None  # time.time() of the first failure of this episode
    lines_missed: int = 0  # lines written to stdout only, this episode

    @property
    def ok(self) -> bool:
        return self.error is None


LogFileListener = Callable[[LogFileState], None]


class LogSink:
    """Writes finished JSON lines to stdout and the log file, one write each, thread-safe."""

    def __init__(self, stream: TextIO, log_file: Path | None) -> None:
        self._lock = threading.Lock()
        self._stream = stream
        try:
            self._stream_fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._stream_fd = None  # a StringIO in tests
        self._path = log_file
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._next_check = 0.0
        self._error: str | None = None
        self._failed_at: float | None = None
        self._missed = 0
        self._retry_s = RETRY_MIN_S
        self._listener: LogFileListener | None = None
        self._notifying = threading.local()
        if log_file is not None:
            try:
                self._open()
            except OSError as exc:
                self._fail(exc, time.monotonic())

    # -- observation ------------------------------------------------------------------

    def file_state(self) -> LogFileState | None:
        """The log file's state, or ``None`` when this sink writes no file.

        A failed file whose retry is due is retried now (with a line saying so), and a
        removed or rotated one is reopened, so a quiet process (the health check asks
        every few seconds) recovers as soon as the file can be written again.
        """
        changed: LogFileState | None = None
        with self._lock:
            if self._path is None:
                return None
            now = time.monotonic()
            if self._error is not None and now >= self._next_check:
                changed = self._write_file(_retry_line())
            elif now >= self._next_check:  # a quiet process notices a removed file too
                try:
                    self._reopen_if_needed(now)
                except OSError as exc:
                    changed = self._fail(exc, now)
            state = self._state()
        if changed is not None:
            self._notify(changed)
        return state

    def set_listener(self, listener: LogFileListener | None) -> None:
        """Call ``listener`` (on the logging thread, no lock held) when the file fails or
        recovers; it may log (its own lines never call it again)."""
        self._listener = listener

    # -- writing ----------------------------------------------------------------------

    def write(self, line: bytes) -> None:
        """Write one line to the file (if it works) and to stdout; never raises."""
        data = line + b"\n"
        size = len(data)
        changed: LogFileState | None = None
        with self._lock:
            fd = self._fd
            if fd is not None and self._error is None and time.monotonic() < self._next_check:
                try:  # the fast path: a healthy file, no reopen check due
                    written = os.write(fd, data)
                    if written != size:
                        _write_all(fd, data[written:])
                except OSError as exc:
                    changed = self._fail(exc, time.monotonic())
            elif self._path is not None:
                changed = self._write_file(data)
            stream_fd = self._stream_fd
            try:
                if stream_fd is None:
                    self._stream.write(data.decode())
                elif (written := os.write(stream_fd, data)) != size:
                    _write_all(stream_fd, data[written:])
            except (OSError, ValueError):
                pass  # stdout closed or full: there is nowhere left to say it
        if changed is not None:
            self._notify(changed)

    def close(self) -> None:
        with self._lock:
            self._close_fd()
            self._path = None

    # -- internals (lock held) --------------------------------------------------------

    def _state(self) -> LogFileState:
        assert self._path is not None
        return LogFileState(
            path=self._path, error=self._error, failed_at=self._failed_at, lines_missed=self._missed
        )

    def _write_file(self, data: bytes) -> LogFileState | None:
        """Write to the log file; the new state if it just failed or recovered."""
        now = time.monotonic()
        was_failed = self._error is not None
        if now >= self._next_check:
            try:
                self._reopen_if_needed(now)
            except OSError as exc:
                return self._fail(exc, now)
        if self._fd is None:
            self._missed += 1
            return None
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            return self._fail(exc, now)
        if was_failed:
            self._error = None
            self._failed_at = None
            self._retry_s = RETRY_MIN_S
            state = self._state()
            self._missed = 0
            return state
        return None

    def _reopen_if_needed(self, now: float) -> None:
        """Reopen a rotated, removed or failed file (a failed one on its backoff)."""
        assert self._path is not None
        self._next_check = now + (REOPEN_CHECK_S if self._error is None else self._retry_s)
        if self._fd is not None:
            try:
                stat = os.stat(self._path)
                current: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
            except OSError:
                current = None
            if current == self._identity:
                return
            self._close_fd()
        self._open()

    def _open(self) -> None:
        assert self._path is not None
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            stat = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._identity = (stat.st_dev, stat.st_ino)

    def _close_fd(self) -> None:
        fd, self._fd, self._identity = self._fd, None, None  # forget it before closing
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass  # the number is ours no more either way

    def _fail(self, exc: OSError, now: float) -> LogFileState | None:
        """Give the file up (stdout goes on), retry on the backoff; the new state the
        first time (a failure that goes on is said once)."""
        self._close_fd()
        first = self._error is None
        self._error = str(exc)
        if first:
            self._failed_at = time.time()
            self._missed = 1
            self._retry_s = RETRY_MIN_S
        else:
            self._missed += 1
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
        self._next_check = now + self._retry_s
        return self._state() if first else None

    def _notify(self, state: LogFileState) -> None:
        listener = self._listener
        if listener is None or getattr(self._notifying, "active", False):
            return
        self._notifying.active = True
        try:
            listener(state)
        except Exception as exc:  # noqa: BLE001 - a listener must not break logging
            # Not through logging (this is the log sink itself): one line on stderr.
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"trading-bot: log-file listener failed: {exc!r}\n")
        finally:
            self._notifying.active = False


def _retry_line() -> bytes:
    """The line a retry writes to the file (the pipeline's JSON shape, made here)."""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    record = {
        "event": "log_file_retried",
        "level": "info",
        "logger": "tradingbot.logsink",
        "timestamp": at,
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)  # one call for a whole line, almost always
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]
