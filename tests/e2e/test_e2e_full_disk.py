"""A full disk during a database outage (issue #11, item 2), on a real process.

The faults are real: ``TRADINGBOT_HOME`` (spool, logs, outbox) is a size-limited tmpfs
that the test fills to the last byte, and the PostgreSQL link is cut with a TCP proxy.
Mounting needs root; without it the test skips with the reason (it fails under
``CI=true``). Before the fix the process ended (``No space left on device``).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Bot, BotFactory, wait_until
from sqlalchemy.engine import make_url

from support.tcp_proxy import TcpProxy
from tradingbot import exitcodes
from tradingbot.storage import Database, EventQuery

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ENV = {"TRADINGBOT_HEALTH_INTERVAL_S": "0.3", "TRADINGBOT_HEALTH_CHECK_TIMEOUT_S": "2"}


@pytest.fixture
def small_home(short_tmp: Path) -> Iterator[Path]:
    """A state folder on its own 8 MiB tmpfs."""
    home = short_tmp / "home"
    home.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], capture_output=True, check=False)


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(fresh_postgres_url)
    link = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield link
    link.close()


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full, to the last block."""
    with path.open("wb", buffering=0) as filler:
        for size in (65536, 4096, 512, 1):
            chunk = b"\0" * size
            while True:
                try:
                    filler.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break


def spool_write(bot: Bot) -> dict[str, object]:
    checks = bot.get("/api/health").json()["checks"]
    found: dict[str, object] = checks.get("events:spoolWrite", [{}])[0]
    return found


def stored_notes(url: str) -> list[str]:
    with Database.open(url) as database:
        page = database.events.query(EventQuery(types=("SYSTEM",), limit=1000))
    return sorted(e.message for e in page.events if e.source == "operator")


def test_full_disk_during_a_database_outage_keeps_running_and_loses_nothing_acknowledged(
    bot_factory: BotFactory, fresh_postgres_url: str, proxy: TcpProxy, small_home: Path
) -> None:
    """With the database down and the disk full, the process keeps running: a durable note is
    refused (never falsely acknowledged), events:spoolWrite fails and the metric counts it;
    once disk and database are back, every acknowledged note is stored exactly once."""
    through = make_url(fresh_postgres_url).set(host="127.0.0.1", port=proxy.port)
    bot = bot_factory(through.render_as_string(hide_password=False), ENV, home=small_home)
    assert bot.shell("note before the outage").returncode == 0

    proxy.cut()
    spooled = bot.shell("note spooled during the outage")
    assert spooled.returncode == 0, spooled.stderr
    assert "stored durably" in spooled.stdout

    filler = small_home / "filler"
    fill(filler)
    acknowledged = ["spooled during the outage"]
    for n in range(200):  # the spool's last page may still hold a few records
        note = f"note {n} while the disk is full"
        reply = bot.shell(f"note {note}")
        if reply.returncode != 0:
            break
        assert "stored durably" in reply.stdout, reply
        acknowledged.append(note)
    assert reply.returncode != 0, "a durable note was acknowledged on a full disk 200 times"
    assert "not stored" in reply.stderr, reply.stderr
    assert "Traceback" not in reply.stderr

    check = wait_until(
        lambda: (c := spool_write(bot)).get("status") == "fail" and c,
        message="events:spoolWrite to fail",
    )
    assert "No space left on device" in str(check["output"]), check
    assert bot.get("/api/health").status == 503
    metrics = bot.get("/metrics").body.decode()
    [failures] = [
        line
        for line in metrics.splitlines()
        if line.startswith("tradingbot_event_spool_write_failures_total ")
    ]
    assert float(failures.split()[1]) >= 1
    assert bot.alive(), bot.diagnostics()
    said = [e for e in bot.log_events() if e.get("event") == "spool_write_failed"]
    assert [e["level"] for e in said] == ["critical"], "said once per episode"

    filler.unlink()
    proxy.restore()
    wait_until(
        lambda: set(acknowledged) <= set(stored_notes(fresh_postgres_url)),
        30.0,
        "every acknowledged note to be stored",
    )
    wait_until(lambda: spool_write(bot).get("status") == "pass", message="spoolWrite to pass")
    notes = stored_notes(fresh_postgres_url)
    assert notes.count("before the outage") == 1
    assert all(notes.count(note) == 1 for note in acknowledged), notes
    assert bot.alive(), bot.diagnostics()
    bot.signal(signal.SIGTERM)
    assert bot.wait(30) == exitcodes.OK, bot.diagnostics()
