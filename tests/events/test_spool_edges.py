"""Spool edge cases the mutation check found untested: limits, counting, damage class."""

from __future__ import annotations

import contextlib
import errno
import os
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from tradingbot.events import spool as spool_module
from tradingbot.events.model import TRADE, Event
from tradingbot.events.spool import SPOOL_FILE_NAME, EventSpool, SpoolError, SpoolFull

T0 = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)


def events(count: int) -> list[Event]:
    return [
        Event(type=TRADE, message=f"fill {i}", timestamp=T0 + timedelta(seconds=i))
        for i in range(count)
    ]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("size", [0, -1])
def test_a_spool_without_room_is_refused_naming_the_setting(tmp_path: Path, size: int) -> None:
    """A size limit of zero bytes or less is refused at once, naming max_bytes."""
    with pytest.raises(ValueError, match=f"max_bytes: expected a positive size, got {size}"):
        EventSpool(tmp_path, max_bytes=size)


def test_a_one_byte_spool_is_valid_and_full_at_the_first_append(tmp_path: Path) -> None:
    """The smallest limit is one byte: accepted, and every append is refused as full."""
    spool = EventSpool(tmp_path, max_bytes=1)
    with pytest.raises(SpoolFull):
        spool.append(events(1))
    assert spool.depth() == 0


def test_a_negative_commit_is_refused_naming_the_count(tmp_path: Path) -> None:
    """commit(-1) is a caller's bug: refused with the count named, nothing dropped."""
    spool = EventSpool(tmp_path)
    spool.append(events(2))
    spool.read()
    with pytest.raises(ValueError, match="count: expected a non-negative number, got -1"):
        spool.commit(-1)
    assert len(spool.read()) == 2


def test_every_corrupt_record_is_counted(tmp_path: Path) -> None:
    """Two damaged records in the middle are two corrupt records; the others all survive."""
    written = events(5)
    spool = EventSpool(tmp_path)
    spool.append(written)
    lines = lines_of(spool.path)
    lines[1] = lines[1].replace(b"fill 1", b"fill 8")  # CRC no longer matches
    lines[3] = lines[3].replace(b"fill 3", b"fill 9")
    spool.path.write_bytes(b"".join(lines))
    reopened = EventSpool(tmp_path)
    assert reopened.read() == [written[0], written[2], written[4]]
    assert reopened.corrupt_records == 2
    assert reopened.torn_tail == 0


def test_a_last_line_with_a_malformed_header_is_a_torn_tail_not_a_corrupt_record(
    tmp_path: Path,
) -> None:
    """A final line whose header is not a CRC (a crash overwrote it) is a torn tail: ignored,
    cut off by the next append, never quarantined; in the middle it is a corrupt record."""
    written = events(3)
    spool = EventSpool(tmp_path)
    spool.append(written)
    with spool.path.open("ab") as stream:
        stream.write(b"zzzzzzzz {}\n")
    reopened = EventSpool(tmp_path)
    assert reopened.read() == written
    assert (reopened.torn_tail, reopened.corrupt_records) == (1, 0)
    more = events(4)[3:]
    reopened.append(more)
    assert reopened.read() == written + more
    assert b"zzzzzzzz" not in reopened.path.read_bytes()

    lines = lines_of(reopened.path)
    lines.insert(1, b"zzzzzzzz {}\n")
    reopened.path.write_bytes(b"".join(lines))
    again = EventSpool(tmp_path)
    assert again.read() == written + more
    assert (again.torn_tail, again.corrupt_records) == (0, 1)
    again.commit(4)
    assert len(list(tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*"))) == 1


def test_commit_of_nothing_still_quarantines_corrupt_records_all_of_them(tmp_path: Path) -> None:
    """commit(0) after a read that met two corrupt records moves both, byte for byte, to one
    quarantine file, and the spool keeps every good event."""
    written = events(4)
    spool = EventSpool(tmp_path)
    spool.append(written)
    lines = lines_of(spool.path)
    lines[1] = lines[1].replace(b"fill 1", b"fill 8")
    lines[2] = lines[2].replace(b"fill 2", b"fill 9")
    bad = lines[1] + lines[2]
    spool.path.write_bytes(b"".join(lines))
    reopened = EventSpool(tmp_path)
    assert reopened.read() == [written[0], written[3]]
    reopened.commit(0)
    [quarantine] = tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*")
    assert quarantine.read_bytes() == bad
    assert b"fill 8" not in reopened.path.read_bytes()
    assert reopened.read() == [written[0], written[3]]


def test_a_quarantine_cut_off_by_a_full_disk_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing the quarantine file fails the commit and leaves no
    half-written ``.corrupt-*`` file: the spool keeps every record, and the next commit
    (the disk freed) quarantines the damage once, whole."""
    written = events(3)
    spool = EventSpool(tmp_path)
    spool.append(written)
    lines = lines_of(spool.path)
    lines[1] = lines[1].replace(b"fill 1", b"fill 8")
    spool.path.write_bytes(b"".join(lines))
    real_write_all = spool_module._write_all

    def disk_full_in_quarantine(fd: int, data: bytes) -> None:
        if ".corrupt-" in os.readlink(f"/proc/self/fd/{fd}"):
            real_write_all(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(spool_module, "_write_all", disk_full_in_quarantine)
    reopened = EventSpool(tmp_path)
    assert reopened.read() == [written[0], written[2]]
    with pytest.raises(SpoolError, match=r"cannot commit .*No space left on device"):
        reopened.commit(1)
    assert list(tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*")) == []
    assert reopened.path.read_bytes() == b"".join(lines)
    monkeypatch.setattr(spool_module, "_write_all", real_write_all)
    assert reopened.read() == [written[0], written[2]]
    reopened.commit(1)
    [quarantine] = tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*")
    assert quarantine.read_bytes() == lines[1]
    assert reopened.read() == [written[2]]


def test_every_torn_tail_is_counted(tmp_path: Path) -> None:
    """Two crashes during an append, one after the other, are two torn tails."""
    spool = EventSpool(tmp_path)
    spool.append(events(1))
    for n in range(2):
        with spool.path.open("ab") as stream:
            stream.write(b"0123abcd {half a rec")  # no newline: the append was cut short
        spool.read()
        spool.append(events(3)[n + 1 : n + 2])  # cuts the torn tail off first
    assert spool.torn_tail == 2
    assert len(spool.read()) == 3


def record(payload: bytes) -> bytes:
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def test_an_append_that_fills_the_spool_exactly_is_accepted(tmp_path: Path) -> None:
    """max_bytes is the size the spool may reach, not one byte less: the record that fills
    it exactly is spooled, the next one is refused and health shows the refusal's text."""
    size = len(b"".join(lines_of(_spooled(tmp_path / "probe", events(1)).path)))
    spool = EventSpool(tmp_path / "exact", max_bytes=size)
    spool.append(events(1))
    assert (spool.depth(), spool.size_bytes()) == (1, size)
    with pytest.raises(SpoolFull) as raised:
        spool.append(events(2)[1:])
    assert spool.stats().write_error == str(raised.value)  # what health shows


def _spooled(directory: Path, written: list[Event]) -> EventSpool:
    spool = EventSpool(directory)
    spool.append(written)
    return spool


GOOD = events(3)


def _damaged(kind: str) -> bytes:
    """One damaged line of the given kind (a good record of GOOD[2] made bad)."""
    good = record(payload_of(GOOD[2]))
    if kind == "cut":
        return good[: len(good) // 2]
    if kind == "crc":
        return good.replace(b"fill 2", b"fill 7")
    if kind == "short":
        return b"short\n"
    if kind == "separator":
        return good[:8] + b"X" + good[9:]  # the CRC still matches the payload
    if kind == "array":
        return record(b"[1]")
    if kind == "empty":
        return record(b"")  # "00000000 \n": a complete record, its CRC right, no JSON
    raise AssertionError(kind)


def payload_of(event: Event) -> bytes:
    return orjson.dumps(event.to_dict())


@pytest.mark.parametrize(
    ("kind", "where", "counted", "level", "reason"),
    [
        ("cut", "last", "torn", "warning", "no newline"),
        ("crc", "last", "torn", "warning", "CRC mismatch"),
        ("short", "last", "torn", "warning", "malformed record header"),
        ("empty", "last", "corrupt", "error", "bad JSON: "),
        ("crc", "middle", "corrupt", "error", "CRC mismatch"),
        ("separator", "middle", "corrupt", "error", "malformed record header"),
        ("array", "middle", "corrupt", "error", "record is not a JSON object"),
    ],
)
def test_each_kind_of_damage_is_classified_and_logged_with_where_it_is(
    tmp_path: Path, kind: str, where: str, counted: str, level: str, reason: str
) -> None:
    """A damaged line is skipped, counted as a torn tail or a corrupt record, and logged once
    with the spool's path, its line number, byte offset, length and why it is bad."""
    lines = [record(payload_of(event)) for event in GOOD[:2]]
    bad = _damaged(kind)
    after = [record(payload_of(GOOD[2]))] if where == "middle" else []
    (tmp_path / SPOOL_FILE_NAME).write_bytes(b"".join([*lines, bad, *after]))

    with capture_logs() as logs:
        spool = EventSpool(tmp_path)
        assert spool.read() == GOOD[:2] + (GOOD[2:] if where == "middle" else [])
    assert (spool.torn_tail, spool.corrupt_records) == ((counted == "torn"), (counted == "corrupt"))
    [entry] = logs
    assert str(entry.pop("reason")).startswith(reason)
    message = {
        "torn": "event spool: torn tail ignored (crash during append)",
        "corrupt": "event spool: corrupt record skipped",
    }[counted]
    assert entry == {
        "event": message,
        "log_level": level,
        "path": str(spool.path),
        "line": 3,
        "offset": len(b"".join(lines)),
        "bytes": len(bad),
    }


def _with_corrupt_first_record(spool: EventSpool) -> None:
    """Damage the spool's first record (others follow it, so it is corrupt, not torn)."""
    lines = lines_of(spool.path)
    lines[0] = lines[0].replace(b"fill", b"FILL")
    spool.path.write_bytes(b"".join(lines))


@contextlib.contextmanager
def local_time_zone(zone: str) -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


def test_the_quarantine_file_is_named_by_the_utc_time_and_logged(tmp_path: Path) -> None:
    """The quarantine file is ``events.spool.corrupt-<UTC time, to the microsecond>Z`` even
    on a machine whose local time is not UTC, and its path and record count are logged."""
    spool = _spooled(tmp_path, events(3))
    _with_corrupt_first_record(spool)
    spool.read()
    with local_time_zone("JST-9"), capture_logs() as logs:
        before = datetime.now(UTC)
        spool.commit(0)
        after = datetime.now(UTC)
    [quarantine] = tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*")
    stamp = quarantine.name.removeprefix(f"{SPOOL_FILE_NAME}.corrupt-")
    found = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    assert before <= found <= after
    assert logs == [
        {
            "event": "event spool: corrupt records quarantined",
            "log_level": "error",
            "path": str(spool.path),
            "quarantine": str(quarantine),
            "records": 1,
        }
    ]


class StuckClock(datetime):
    """A clock that shows the same microsecond every time (as after a step back by NTP)."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> StuckClock:
        return cls(2026, 12, 6, 10, 0, tzinfo=tz)


def test_quarantines_in_the_same_microsecond_get_numbered_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quarantines whose timestamps collide never overwrite each other: the second and third
    get ``-2`` and ``-3`` after the name, each with its own record."""
    monkeypatch.setattr(spool_module, "datetime", StuckClock)
    written = events(4)
    spool = _spooled(tmp_path, written)
    for _ in range(3):
        _with_corrupt_first_record(spool)
        spool.read()
        spool.commit(0)
    base = f"{SPOOL_FILE_NAME}.corrupt-20261206T100000000000Z"
    names = sorted(p.name for p in tmp_path.glob(f"{SPOOL_FILE_NAME}.corrupt-*"))
    assert names == [base, f"{base}-2", f"{base}-3"]
    quarantined = b"".join((tmp_path / name).read_bytes() for name in names)
    assert quarantined.count(b"FILL") == 3
    assert spool.read() == written[3:]


def test_removing_the_temp_file_of_an_interrupted_commit_is_logged(tmp_path: Path) -> None:
    """Opening a spool that finds a crashed commit's temp file removes it and logs its path."""
    written = _spooled(tmp_path, events(2)).read()
    leftover = tmp_path / f".{SPOOL_FILE_NAME}.tmp-abc123"
    leftover.write_bytes(b"half a rewrite")
    with capture_logs() as logs:
        assert EventSpool(tmp_path).read() == written
    assert logs == [
        {
            "event": "event spool: removed temp file of an interrupted commit",
            "log_level": "warning",
            "path": str(leftover),
        }
    ]


def test_a_temp_file_that_cannot_be_removed_is_logged_and_the_spool_still_opens(
    tmp_path: Path,
) -> None:
    """A leftover temp name that cannot be removed (a directory sits there) is logged with
    its path and the error; the spool opens and replays as usual."""
    written = _spooled(tmp_path, events(2)).read()
    stuck = tmp_path / f".{SPOOL_FILE_NAME}.tmp-abc123"
    stuck.mkdir()
    with capture_logs() as logs:
        assert EventSpool(tmp_path).read() == written
    [entry] = logs
    assert "Is a directory" in str(entry.pop("error"))
    assert entry == {
        "event": "event spool: cannot remove temp file",
        "log_level": "warning",
        "path": str(stuck),
    }
