"""Spool edge cases the mutation check found untested: limits, counting, damage class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tradingbot.events.model import TRADE, Event
from tradingbot.events.spool import SPOOL_FILE_NAME, EventSpool, SpoolFull

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
