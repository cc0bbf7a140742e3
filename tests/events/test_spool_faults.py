"""Spool faults made real: a full file-size limit, a crash mid-commit, a file changed under it."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tradingbot
from tradingbot.events.model import TRADE, Event, EventValidationError
from tradingbot.events.spool import SPOOL_FILE_NAME, EventSpool, SpoolError

T0 = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)


def events(count: int, start: int = 0) -> list[Event]:
    return [
        Event(type=TRADE, message=f"fill {i}", timestamp=T0 + timedelta(seconds=i))
        for i in range(start, start + count)
    ]


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file of this process may grow past ``limit`` bytes: writes beyond it fail (EFBIG),
    as on a full disk (Python ignores SIGXFSZ; made sure here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_an_append_that_fails_half_way_leaves_no_half_record(tmp_path: Path) -> None:
    """A disk that fills up in the middle of an append raises SpoolError, which health shows
    at once, and leaves the spool exactly as it was; the next append, with room again, is
    replayed after it."""
    spool = EventSpool(tmp_path)
    first = events(3)
    spool.append(first)
    before = spool.path.read_bytes()

    with file_size_limit(len(before) + 40), pytest.raises(SpoolError) as raised:
        spool.append(events(5, start=3))
    assert str(raised.value).startswith(f"cannot append to event spool {spool.path}:")
    assert spool.path.read_bytes() == before
    assert (spool.depth(), spool.stats().write_failures) == (3, 1)
    assert spool.stats().write_error == str(raised.value)  # health shows why, at once

    more = events(2, start=10)
    spool.append(more)
    assert spool.read() == first + more
    assert EventSpool(tmp_path).read() == first + more


def test_a_commit_that_fails_half_way_keeps_every_event_and_no_temp_file(tmp_path: Path) -> None:
    """A disk that fills up while commit rewrites the spool raises SpoolError naming the
    spool, drops nothing, leaves no temp file, and the same commit succeeds later."""
    spool = EventSpool(tmp_path)
    written = events(5)
    spool.append(written)
    assert spool.read() == written

    with file_size_limit(100), pytest.raises(SpoolError) as raised:
        spool.commit(1)
    assert str(raised.value).startswith(f"cannot commit event spool {spool.path}:")
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPOOL_FILE_NAME]
    assert EventSpool(tmp_path).read() == written

    spool.commit(1)
    assert spool.read() == written[1:]


CRASH_IN_COMMIT = """
import resource, signal, sys
from pathlib import Path
from tradingbot.events.spool import EventSpool

spool = EventSpool(Path(sys.argv[1]))
spool.read()
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))
spool.commit(1)  # SIGXFSZ kills the process while it writes the rewritten spool
"""


def test_a_crash_during_commit_loses_nothing_and_leaves_no_litter(tmp_path: Path) -> None:
    """A process killed while commit rewrites the spool leaves every event spooled, and the
    next start removes its half-written temp file; nothing is left in $TMPDIR either."""
    directory, scratch = tmp_path / "spool", tmp_path / "tmpdir"
    scratch.mkdir()
    written = events(5)
    EventSpool(directory).append(written)
    source = Path(tradingbot.__file__).parents[1]  # the code under test, also in the child
    env = os.environ | {"PYTHONPATH": str(source), "TMPDIR": str(scratch)}
    child = subprocess.run(
        [sys.executable, "-c", CRASH_IN_COMMIT, str(directory)],
        env=env,
        cwd=Path.cwd(),  # where a mutation tester finds its configuration
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGXFSZ, child.stderr
    assert len(list(directory.iterdir())) == 2  # the spool and the half-written rewrite

    spool = EventSpool(directory)
    assert sorted(p.name for p in directory.iterdir()) == [SPOOL_FILE_NAME]
    assert list(scratch.iterdir()) == []
    assert spool.read() == written
    spool.commit(2)
    assert EventSpool(directory).read() == written[2:]


def test_a_spool_file_shrunk_from_outside_is_rescanned_after_one_refused_append(
    tmp_path: Path,
) -> None:
    """If the spool file was cut short behind the spool's back, the next append is refused
    saying so, and the one after rescans the file and appends after what is left."""
    spool = EventSpool(tmp_path)
    written = events(3)
    spool.append(written)
    spool.path.write_bytes(spool.path.read_bytes().splitlines(keepends=True)[0])

    with pytest.raises(SpoolError, match="file shrank unexpectedly from"):
        spool.append(events(1, start=3))
    later = events(1, start=4)
    spool.append(later)
    assert spool.read() == [written[0], *later]
    assert spool.depth() == 2


def test_commit_refuses_when_the_spool_vanished_since_read(tmp_path: Path) -> None:
    """A spool file deleted between read() and commit() makes commit raise naming the
    path, instead of reporting events as dropped that were never seen to be stored."""
    spool = EventSpool(tmp_path)
    spool.append(events(2))
    spool.read()
    spool.path.unlink()
    with pytest.raises(SpoolError, match=f"event spool {spool.path} vanished since read"):
        spool.commit(1)


def test_commit_refuses_when_the_spool_lost_events_since_read(tmp_path: Path) -> None:
    """A spool cut short between read() and commit() makes commit raise, saying how many of
    the events to commit are still there, and change nothing."""
    spool = EventSpool(tmp_path)
    written = events(3)
    spool.append(written)
    spool.read()
    first_line = spool.path.read_bytes().splitlines(keepends=True)[0]
    spool.path.write_bytes(first_line)
    with pytest.raises(SpoolError, match="only 1 of the 3 events to commit are still there"):
        spool.commit(3)
    assert spool.path.read_bytes() == first_line


def test_an_event_whose_context_changed_after_creation_is_refused_by_name(
    tmp_path: Path,
) -> None:
    """An event whose context was made unserialisable after it was created is refused,
    naming the event, and nothing of its batch is written."""
    spool = EventSpool(tmp_path)
    good, bad = events(2)
    bad.context["price"] = object()
    with pytest.raises(EventValidationError, match=f"context: event {bad.id} is not JSON"):
        spool.append([good, bad])
    assert spool.read() == []
