"""A spool that cannot be written is reported, counted and cleared (issue #11, item 2)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradingbot.events.model import TRADE, Event
from tradingbot.events.spool import EventSpool, SpoolError, SpoolFull
from tradingbot.health import FAIL, PASS
from tradingbot.health.checks import spool_check


def event(i: int) -> Event:
    return Event(type=TRADE, message=f"fill {i}", timestamp=datetime.now(UTC))


def spool_write(spool: EventSpool) -> tuple[str, int, str | None]:
    [check] = [c for c in spool_check(spool)() if c.key == "events:spoolWrite"]
    return check.status, check.observed_value, check.output


def test_a_failed_append_fails_the_spool_write_check_until_an_append_succeeds(
    tmp_path: Path,
) -> None:
    """An I/O error on append (a folder where the file goes) makes events:spoolWrite fail with
    the error and counts it; the next successful append clears it, the count stays."""
    spool = EventSpool(tmp_path)
    assert spool_write(spool) == (PASS, 0, None)
    spool.path.mkdir()
    for _ in range(2):
        with pytest.raises(SpoolError):
            spool.append([event(0)])
    status, failures, output = spool_write(spool)
    assert (status, failures) == (FAIL, 2)
    assert "Is a directory" in str(output)
    assert "held in memory" in str(output)

    shutil.rmtree(spool.path)
    spool.append([event(1)])
    assert spool_write(spool) == (PASS, 2, None)
    assert spool.stats().write_failures == 2


def test_the_size_limit_counts_as_a_write_failure_and_clear_write_error_resets_it(
    tmp_path: Path,
) -> None:
    """A spool at its size limit fails the check like a full disk; once events reach the
    database directly again, clear_write_error() makes it pass."""
    spool = EventSpool(tmp_path, max_bytes=10)
    with pytest.raises(SpoolFull):
        spool.append([event(0)])
    assert spool_write(spool)[:2] == (FAIL, 1)
    spool.clear_write_error()
    assert spool_write(spool) == (PASS, 1, None)
