"""``trading-bot watchdog-check``: the outside view, for a systemd timer.

A dead process cannot report itself. This check reads the latest run of the configured
account and asks who holds the run lock, and gives one :class:`Verdict`:

========================  ==================  ======================================
run lock                  latest heartbeat    verdict (exit code)
========================  ==================  ======================================
held                      fresh               ``alive`` (0)
held                      stale               ``hung`` (``WATCHDOG_HUNG``, 7)
free, clean stop          any                 ``stopped`` (0)
free, no clean stop       stale               ``dead`` (``WATCHDOG_DEAD``, 6)
free, no clean stop       fresh               ``exited`` (0: within the crash timeout;
                                              systemd is restarting it, or the next
                                              check will say ``dead``)
free, no run recorded     -                   ``never_ran`` (0)
========================  ==================  ======================================

"Stale" means older than ``max_age_s`` (default ``TRADINGBOT_CRASH_TIMEOUT_S``). The
check never takes the lock on PostgreSQL (it reads ``pg_locks``) and holds the SQLite
lock file for an instant only, which a starting bot tolerates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tradingbot import exitcodes
from tradingbot.recovery.runlock import probe_run_lock
from tradingbot.storage import Database, LockHolder, RunRecord

ALIVE = "alive"
HUNG = "hung"
DEAD = "dead"
EXITED = "exited"
STOPPED = "stopped"
NEVER_RAN = "never_ran"

_EXIT_CODES = {HUNG: exitcodes.WATCHDOG_HUNG, DEAD: exitcodes.WATCHDOG_DEAD}


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What the check found; ``line`` is the one line printed, ``alert`` asks for an e-mail."""

    state: str
    line: str
    run: RunRecord | None
    holder: LockHolder | None
    heartbeat_age_s: float | None

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES.get(self.state, exitcodes.OK)

    @property
    def alert(self) -> bool:
        """Dead or hung: the operator must hear of it (the alert e-mail)."""
        return self.state in _EXIT_CODES


def check(database: Database, *, account: str, max_age_s: float, now: datetime) -> Verdict:
    """Judge the latest run of ``account``. Raises ``StorageError`` if the database fails."""
    holder = probe_run_lock(database, account)
    runs = database.system_state.latest(1, account=account)
    run = runs[0] if runs else None
    scope = f" (account {account})" if account else ""
    if run is None:
        who = "" if holder is None else f"; the run lock is held by {holder.describe()}"
        return Verdict(
            state=ALIVE if holder is not None else NEVER_RAN,
            line=f"trading-bot{scope}: no run recorded yet{who}",
            run=None,
            holder=holder,
            heartbeat_age_s=None,
        )
    age = max(0.0, (now - run.last_heartbeat).total_seconds())
    stale = age > max_age_s
    beat = f"last heartbeat {age:.0f} s ago (limit {max_age_s:g} s)"
    what = f"run {run.run_id} (pid {run.pid} on {run.host})"
    if holder is not None:
        if stale:
            state = HUNG
            line = f"trading-bot{scope} HUNG: {holder.describe()} holds the run lock but the {beat}"
        else:
            state = ALIVE
            line = f"trading-bot{scope} alive: {what}, {beat}"
    elif run.clean_stop:
        state = STOPPED
        stopped = run.stopped_at.isoformat() if run.stopped_at is not None else "?"
        line = f"trading-bot{scope} stopped: {what} stopped cleanly at {stopped}"
    elif stale:
        state = DEAD
        line = (
            f"trading-bot{scope} DEAD: no process holds the run lock and {what} "
            f"ended without a clean stop; {beat}"
        )
    else:
        state = EXITED
        line = (
            f"trading-bot{scope} not running: {what} ended without a clean stop, "
            f"{beat}: not yet declared dead"
        )
    return Verdict(state=state, line=line, run=run, holder=holder, heartbeat_age_s=age)
