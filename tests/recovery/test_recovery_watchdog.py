"""watchdog-check's verdicts: alive, hung, dead, stopped, exited, never ran, per account."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tradingbot import exitcodes
from tradingbot.recovery import RunLock, acquire_run_lock
from tradingbot.recovery.watchdog import check
from tradingbot.storage import Database, RunRecord

T0 = datetime(2025, 3, 7, 14, 30, 0, tzinfo=UTC)
MAX_AGE_S = 300.0


def _start(database: Database, *, account: str = "", pid: int = 4242) -> RunRecord:
    return database.system_state.start_run(
        run_id=str(uuid.uuid4()),
        pid=pid,
        host="box-1",
        version="0.1.0",
        started_at=T0,
        account=account,
    )


def _check(database: Database, after_s: float, account: str = "") -> tuple[str, int, str]:
    verdict = check(
        database, account=account, max_age_s=MAX_AGE_S, now=T0 + timedelta(seconds=after_s)
    )
    assert "\n" not in verdict.line
    return verdict.state, verdict.exit_code, verdict.line


def _lock(database: Database, account: str = "") -> RunLock:
    return acquire_run_lock(
        database, account, pid=4242, host="box-1", run_id=str(uuid.uuid4()), grace_s=0.0
    )


def test_no_run_yet_is_not_an_alarm(database: Database) -> None:
    """A database nobody ran on yet: exit 0, 'no run recorded'."""
    state, code, line = _check(database, 0)
    assert (state, code) == ("never_ran", exitcodes.OK)
    assert "no run recorded" in line


def test_held_lock_and_fresh_heartbeat_is_alive(database: Database) -> None:
    """Lock held and heartbeat within the limit: alive, exit 0."""
    run = _start(database)
    lock = _lock(database)
    try:
        state, code, line = _check(database, MAX_AGE_S - 1)
    finally:
        lock.release()
    assert (state, code) == ("alive", exitcodes.OK)
    assert run.run_id in line


def test_held_lock_and_stale_heartbeat_is_hung(database: Database) -> None:
    """Lock held but heartbeat older than the limit: HUNG, exit 7, naming the holder."""
    _start(database)
    lock = _lock(database)
    try:
        state, code, line = _check(database, MAX_AGE_S + 1)
    finally:
        lock.release()
    assert (state, code) == ("hung", exitcodes.WATCHDOG_HUNG)
    assert "HUNG" in line
    assert "pid 4242" in line


def test_free_lock_and_stale_heartbeat_without_clean_stop_is_dead(database: Database) -> None:
    """No holder, no clean stop, heartbeat older than the limit: DEAD, exit 6."""
    run = _start(database, pid=99)
    state, code, line = _check(database, MAX_AGE_S + 1)
    assert (state, code) == ("dead", exitcodes.WATCHDOG_DEAD)
    assert "DEAD" in line
    assert run.run_id in line
    assert "pid 99" in line


def test_free_lock_and_fresh_heartbeat_is_not_yet_dead(database: Database) -> None:
    """A run that just ended without a clean stop is not declared dead before the limit."""
    _start(database)
    state, code, line = _check(database, MAX_AGE_S - 1)
    assert (state, code) == ("exited", exitcodes.OK)
    assert "not yet declared dead" in line


def test_clean_stop_is_quiet_however_old(database: Database) -> None:
    """A run stopped on purpose is 'stopped', exit 0, even days later."""
    run = _start(database)
    database.system_state.record_clean_stop(run.run_id, T0 + timedelta(seconds=5))
    state, code, line = _check(database, 86_400 * 3)
    assert (state, code) == ("stopped", exitcodes.OK)
    assert "stopped cleanly" in line


@pytest.mark.parametrize("other", ["DU222", ""], ids=["other-account", "default-account"])
def test_verdict_is_per_account(database: Database, other: str) -> None:
    """Only the configured account's latest run and lock count."""
    _start(database, account="DU111", pid=1)
    _start(database, account=other, pid=2)
    database.system_state.record_clean_stop(
        database.system_state.latest(1, account=other)[0].run_id, T0
    )
    state, code, _line = _check(database, MAX_AGE_S + 1, account="DU111")
    assert (state, code) == ("dead", exitcodes.WATCHDOG_DEAD)
    state, code, _line = _check(database, MAX_AGE_S + 1, account=other)
    assert (state, code) == ("stopped", exitcodes.OK)
