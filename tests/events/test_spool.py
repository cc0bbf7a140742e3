"""The event spool: durable across kill -9, ordered, exactly-once replay, damage contained."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import threading
import zlib
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from tradingbot.events.model import ORDER, TRADE, Event, EventValidationError, Severity
from tradingbot.events.spool import SPOOL_FILE_NAME, EventSpool, SpoolError, SpoolFull

T0 = datetime(2024, 3, 8, 14, 30, 0, 123456, tzinfo=UTC)


def make_event(i: int, **fields: Any) -> Event:
    fields.setdefault("type", TRADE)
    fields.setdefault("message", f"fill {i}")
    fields.setdefault("timestamp", T0 + timedelta(seconds=i))
    return Event(**fields)


def record(payload: bytes, crc: int | None = None) -> bytes:
    """A spool line for ``payload`` with its true CRC unless one is given."""
    return b"%08x %s\n" % (zlib.crc32(payload) if crc is None else crc, payload)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_round_trip_preserves_order_and_every_field(tmp_path: Path) -> None:
    """Events come back in append order with every field equal, also after reopening."""
    rich = Event(
        type="MY_SIGNAL",
        message='two\nlines, "quoted", \u20ac \u6f22',
        severity=Severity.CRITICAL,
        source="strategy:mean_reversion",
        strategy_id="mr-1",
        trade_id="T-42",
        user_id="alice",
        context={"price": 101.25, "qty": 3, "nested": {"a": [1, "b", None, True]}},
        timestamp=datetime(2024, 3, 8, 9, 30, 0, 1, tzinfo=timezone(timedelta(hours=-5))),
    )
    events = [make_event(0), rich, *(make_event(i, severity=Severity.DEBUG) for i in range(2, 6))]
    spool = EventSpool(tmp_path)
    spool.append(events[:1])
    spool.append(events[1:4])
    spool.append(events[4:])

    assert spool.read() == events
    assert EventSpool(tmp_path).read() == events
    assert len(lines_of(spool.path)) == len(events)  # one line per event


def test_append_fsyncs_the_file_once_per_call_and_the_new_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every append fsyncs the spool file exactly once; creating it also fsyncs the dir."""
    real_fsync = os.fsync
    synced: list[tuple[int, bool]] = []

    def spy(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_ino, stat.S_ISDIR(st.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    directory = tmp_path / "spool"
    spool = EventSpool(directory)

    spool.append([make_event(i) for i in range(10)])
    file_inode = spool.path.stat().st_ino
    assert synced.count((file_inode, False)) == 1
    assert (directory.stat().st_ino, True) in synced

    synced.clear()
    spool.append([make_event(i) for i in range(10, 20)])
    assert synced == [(file_inode, False)]


CHILD = """
import sys
from pathlib import Path
from tradingbot.events.model import Event
from tradingbot.events.spool import EventSpool

spool = EventSpool(Path(sys.argv[1]))
i = 0
while True:
    batch = [Event(type="ORDER", message=f"order {i}.{j}") for j in range(3)]
    spool.append(batch)
    print(" ".join(str(e.id) for e in batch), flush=True)  # the acknowledgement
    i += 1
"""


def test_events_acknowledged_before_a_real_kill_9_are_all_replayed(tmp_path: Path) -> None:
    """A process SIGKILLed mid-stream loses no acknowledged event; a new start finds them."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < 150:
            line = proc.stdout.readline()
            assert line, f"child died: {proc.stderr.read() if proc.stderr else ''}"
            acked.extend(line.split())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    acked.extend(proc.stdout.read().split())  # acknowledgements printed before the kill
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    spool = EventSpool(tmp_path)
    spooled = [str(event.id) for event in spool.read()]
    assert spooled[: len(acked)] == acked
    assert len(spooled) - len(acked) <= 3  # at most the batch in flight, never acked
    assert spool.depth() == len(spooled)

    late = make_event(999)
    spool.append([late])
    assert spool.read()[-1] == late


@pytest.mark.parametrize("damage", ["cut mid-record", "CRC mismatch on last line"])
def test_a_torn_tail_loses_only_that_record(tmp_path: Path, damage: str) -> None:
    """A crash mid-append costs only the unacknowledged last record, and appends go on."""
    events = [make_event(0), make_event(1), make_event(2, message="x" * 2000)]
    spool = EventSpool(tmp_path)
    for event in events:
        spool.append([event])
    lines = lines_of(spool.path)
    if damage == "cut mid-record":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    else:
        lines[-1] = lines[-1][:-10] + b"X" + lines[-1][-9:]
    spool.path.write_bytes(b"".join(lines))

    with capture_logs() as logs:
        reopened = EventSpool(tmp_path)
        assert reopened.read() == events[:2]
    assert reopened.torn_tail == 1
    assert reopened.corrupt_records == 0
    assert reopened.depth() == 2
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1  # reported once, not once per scan
    assert warnings[0]["line"] == 3

    fresh = make_event(10)  # shorter than the torn record: the torn bytes must be cut
    reopened.append([fresh])
    assert reopened.path.stat().st_size == reopened.size_bytes()
    assert reopened.read() == [*events[:2], fresh]
    assert EventSpool(tmp_path).read() == [*events[:2], fresh]
    assert reopened.torn_tail == 1


@pytest.mark.parametrize("damage", ["CRC mismatch", "bad JSON", "invalid event"])
def test_a_corrupt_middle_record_is_skipped_counted_and_quarantined(
    tmp_path: Path, damage: str
) -> None:
    """A bad record in the middle is skipped and counted, the rest survive, and commit
    moves exactly its bytes to a quarantine file."""
    events = [make_event(i) for i in range(5)]
    spool = EventSpool(tmp_path)
    spool.append(events)
    lines = lines_of(spool.path)
    if damage == "CRC mismatch":
        lines[2] = lines[2].replace(b"fill 2", b"fill 7")
    elif damage == "bad JSON":
        lines[2] = record(b'{"id": "not closed"')
    else:
        bad = events[2].to_dict() | {"type": "lower-case"}
        lines[2] = record(orjson.dumps(bad))
    bad_bytes = lines[2]
    spool.path.write_bytes(b"".join(lines))

    with capture_logs() as logs:
        reopened = EventSpool(tmp_path)
        survivors = reopened.read()
        assert reopened.read() == survivors
    assert survivors == events[:2] + events[3:]
    assert reopened.corrupt_records == 1
    assert reopened.depth() == 4
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["line"] for entry in errors] == [3]

    reopened.commit(len(survivors))
    quarantined = list(tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*"))
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes() == bad_bytes
    assert stat.S_IMODE(quarantined[0].stat().st_mode) == 0o600
    assert reopened.read() == []
    assert spool.path.stat().st_size == 0


def test_commit_of_everything_truncates_the_file(tmp_path: Path) -> None:
    """Committing all read events leaves an empty spool file and zero depth."""
    spool = EventSpool(tmp_path)
    spool.append([make_event(i) for i in range(4)])
    inode = spool.path.stat().st_ino

    spool.commit(len(spool.read()))

    assert spool.path.stat().st_size == 0
    assert spool.path.stat().st_ino == inode  # truncated in place
    assert (spool.depth(), spool.size_bytes(), spool.oldest()) == (0, 0, None)
    assert EventSpool(tmp_path).read() == []


def test_partial_commit_keeps_the_rest_and_events_appended_after_read(tmp_path: Path) -> None:
    """commit(n) drops only the first n read events; later ones and new appends stay."""
    events = [make_event(i) for i in range(5)]
    spool = EventSpool(tmp_path)
    spool.append(events)
    assert spool.read() == events
    late = [make_event(i) for i in range(5, 7)]
    spool.append(late)

    spool.commit(3)
    assert spool.read() == events[3:] + late
    assert EventSpool(tmp_path).read() == events[3:] + late
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPOOL_FILE_NAME]  # no temp left
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600

    spool.commit(2)  # the rest of what read() returned, in a second step
    assert spool.read() == late
    assert spool.depth() == 2


def test_commit_refuses_more_than_read_returned(tmp_path: Path) -> None:
    """Committing events the caller never read is refused and drops nothing."""
    spool = EventSpool(tmp_path)
    spool.append([make_event(i) for i in range(3)])
    with pytest.raises(ValueError, match="count"):
        spool.commit(1)  # nothing read yet
    spool.read()
    spool.commit(2)
    with pytest.raises(ValueError, match="count"):
        spool.commit(2)
    assert spool.depth() == 1
    assert len(spool.read()) == 1


def test_commit_refuses_when_the_spool_no_longer_starts_with_what_was_read(
    tmp_path: Path,
) -> None:
    """If the spool changed under a reader (a second instance committed), commit drops
    nothing and raises SpoolError instead of discarding unstored events."""
    events = [make_event(i) for i in range(4)]
    first = _spool_with(tmp_path, events)
    assert first.read() == events
    second = EventSpool(tmp_path)
    second.read()
    second.commit(1)

    with pytest.raises(
        SpoolError, match=f"changed since read\\(\\): record 1 is {events[1].id}, expected"
    ):
        first.commit(2)
    assert EventSpool(tmp_path).read() == events[1:]


def test_spool_full_leaves_the_file_unchanged(tmp_path: Path) -> None:
    """An append past max_bytes raises SpoolFull naming path and limit, writing nothing."""
    one = len(b"".join(lines_of(_spool_with(tmp_path / "probe", [make_event(0)]).path)))
    spool = EventSpool(tmp_path / "full", max_bytes=3 * one + one // 2)
    spool.append([make_event(i) for i in range(3)])
    before = spool.path.read_bytes()

    with pytest.raises(SpoolFull) as raised:
        spool.append([make_event(3), make_event(4)])
    assert str(spool.path) in str(raised.value)
    assert str(3 * one + one // 2) in str(raised.value)
    with pytest.raises(SpoolFull):
        spool.append([make_event(5)])

    assert spool.path.read_bytes() == before
    assert spool.depth() == 3
    assert [e.message for e in spool.read()] == ["fill 0", "fill 1", "fill 2"]


def _spool_with(directory: Path, events: list[Event]) -> EventSpool:
    spool = EventSpool(directory)
    spool.append(events)
    return spool


def test_depth_size_and_oldest_track_the_spool_and_survive_reopen(tmp_path: Path) -> None:
    """depth, size_bytes and oldest follow appends and commits and are recomputed on open."""
    spool = EventSpool(tmp_path)
    assert (spool.depth(), spool.size_bytes(), spool.oldest()) == (0, 0, None)

    first = make_event(0, timestamp=T0 + timedelta(hours=1))
    spool.append([first, make_event(1)])  # oldest = first spooled, not the minimum
    spool.append([make_event(2)])
    assert spool.depth() == 3
    assert spool.size_bytes() == spool.path.stat().st_size
    assert spool.oldest() == first.timestamp

    reopened = EventSpool(tmp_path)
    assert reopened.stats() == spool.stats()

    reopened.read()
    reopened.commit(1)
    assert reopened.depth() == 2
    assert reopened.oldest() == T0 + timedelta(seconds=1)
    assert reopened.size_bytes() == reopened.path.stat().st_size


def test_directory_and_file_are_private(tmp_path: Path) -> None:
    """A new spool directory is created 0700 and the spool file 0600."""
    directory = tmp_path / "home" / "spool"
    spool = EventSpool(directory)
    assert not directory.exists()  # opening alone creates nothing
    spool.append([make_event(0)])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600


def test_io_errors_raise_spool_error_naming_the_path(tmp_path: Path) -> None:
    """An unusable spool path raises SpoolError with the path and the OS error."""
    spool = EventSpool(tmp_path)
    spool.path.mkdir()  # something that is not a file now sits where the spool goes
    with pytest.raises(SpoolError, match="Is a directory") as raised:
        spool.append([make_event(0)])
    assert str(spool.path) in str(raised.value)
    with pytest.raises(SpoolError, match=str(spool.path)):
        EventSpool(tmp_path)


def test_an_unserialisable_context_writes_nothing(tmp_path: Path) -> None:
    """A batch with a non-JSON context is rejected as a whole, naming the field."""
    spool = EventSpool(tmp_path)
    spool.append([make_event(0)])
    before = spool.path.read_bytes()
    with pytest.raises(EventValidationError, match="context"):
        spool.append([make_event(1), make_event(2, context={"x": object()})])
    assert spool.path.read_bytes() == before


def test_temp_files_of_an_interrupted_commit_are_removed_on_open(tmp_path: Path) -> None:
    """A commit killed before its rename leaves the spool intact and its temp file cleaned."""
    spool = _spool_with(tmp_path, [make_event(i) for i in range(3)])
    (tmp_path / f".{SPOOL_FILE_NAME}.tmp-abc123").write_bytes(b"half a rewrite")
    reopened = EventSpool(tmp_path)
    assert reopened.read() == spool.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPOOL_FILE_NAME]


def test_appends_from_another_thread_during_read_and_commit_are_never_lost(
    tmp_path: Path,
) -> None:
    """Hundreds of appends racing read/commit cycles: every event is replayed once, in order."""
    spool = EventSpool(tmp_path)
    appended = [make_event(i, type=ORDER) for i in range(600)]
    state = threading.Condition()
    written = 0  # events whose append() has returned
    reads_started = 0
    done = False
    failures: list[SpoolError] = []

    def reads_beyond(n: int) -> bool:
        return reads_started > n

    def writes_beyond(n: int) -> bool:
        return done or written > n

    def writer() -> None:
        nonlocal written, done
        try:
            for start in range(0, len(appended), 2):
                with state:  # pace: one append per reader cycle, racing its read()
                    state.wait_for(partial(reads_beyond, start // 2), timeout=10)
                spool.append(appended[start : start + 2])
                with state:
                    written += 2
                    state.notify_all()
        except SpoolError as exc:  # reported to the test thread below
            failures.append(exc)
        finally:
            with state:
                done = True
                state.notify_all()

    replayed: list[Event] = []
    rng = random.Random(3)
    thread = threading.Thread(target=writer)
    thread.start()
    raced = 0  # cycles in which an append landed between read() and commit()
    while not done or spool.depth():
        with state:
            reads_started += 1
            state.notify_all()
        events = spool.read()
        seen = len(replayed) + len(events)
        with state:  # "storing" them while the writer appends more
            state.wait_for(partial(writes_beyond, seen), timeout=10)
        count = rng.randint(0, len(events)) if rng.random() < 0.3 else len(events)
        replayed.extend(events[:count])
        spool.commit(count)
        raced += spool.depth() > len(events) - count
    thread.join()

    assert not failures
    assert replayed == appended
    assert raced >= 50  # the race this test is about really happened, many times
    assert spool.read() == []
