"""The kill switch: pause and resume new orders, durable, audited, mailed.

:class:`KillSwitch` holds one account's state, stored in the ``trading_state`` table
and applied to the broker's order gate (``BrokerStatus``, gate ``kill_switch``): a
paused bot restarts paused, because :meth:`KillSwitch.load` closes the gate before the
tree starts. Every change is a durable RISK event (``source=kill_switch``) which the
notifier always mails, whatever ``TRADINGBOT_NOTIFY_MIN_SEVERITY`` says.

Failure rules, chosen for safety: a **pause** always takes effect in this process, even
when the database is down (the answer then says it is not durable); a **resume** must
be stored first, or it is refused and trading stays stopped. A change is written only
over the version it read, so two processes (or an operator and the loss limit) never
overwrite each other's switch unseen.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from tradingbot.broker.status import KILL_SWITCH_GATE, BrokerStatus
from tradingbot.events.model import RISK, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.notify.routing import KILL_SWITCH_SOURCE
from tradingbot.storage import Database, StaleTradingState, StorageError, TradingStateRecord
from tradingbot.trading.state import RUNNING_INITIAL, TradingMode, TradingState

log = structlog.get_logger(__name__)

MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchResult:
    """What a pause, resume or trip did: the state now, and whether it changed."""

    state: TradingState
    changed: bool
    warning: str | None = None  # e.g. "not stored: database unavailable"


class KillSwitch:
    """One account's kill switch; thread-safe (shell, HTTP and actors call it)."""

    def __init__(
        self,
        database: Database,
        account: str,
        status: BrokerStatus,
        recorder: Callable[[], EventRecorder | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._account = account
        self._status = status
        self._recorder = recorder
        self._clock = clock
        self._lock = threading.Lock()  # guards _state; never held across I/O
        self._writing = threading.Lock()  # serialises changes (held across the write)
        self._state = RUNNING_INITIAL

    def load(self) -> TradingState:
        """Read the stored state and apply it to the gate (at start, before any order).

        A database error here propagates: a bot that cannot tell whether it was paused
        must not start trading.
        """
        record = self._database.trading_state.get(self._account)
        with self._lock:
            self._state = RUNNING_INITIAL if record is None else _from_record(record)
            self._apply()
            return self._state

    def state(self) -> TradingState:
        with self._lock:
            return self._state

    def pause(self, *, by: str, reason: str) -> SwitchResult:
        """Stop new orders (open orders stay). Takes effect even if it cannot be stored."""
        return self._switch(TradingMode.PAUSED, by=by, reason=reason)

    def trip(self, *, by: str, reason: str) -> SwitchResult:
        """Stop new orders because a risk limit was crossed (``tripped``, CRITICAL)."""
        return self._switch(TradingMode.TRIPPED, by=by, reason=reason)

    def resume(self, *, by: str, reason: str) -> SwitchResult:
        """Let orders flow again (other gates permitting); refused unless stored."""
        return self._switch(TradingMode.RUNNING, by=by, reason=reason)

    def _switch(self, mode: TradingMode, *, by: str, reason: str) -> SwitchResult:
        reason = _clean(reason, "reason") or _DEFAULT_REASONS[mode]
        by = _clean(by, "by") or "unknown"
        with self._writing:  # one change at a time; readers never wait for the database
            with self._lock:
                old = self._state
                if old.mode is mode and old.durable:
                    return SwitchResult(state=old, changed=False)
                now = self._clock()
                new = TradingState(
                    mode=mode,
                    reason=reason,
                    changed_by=by,
                    since=now,
                    version=old.version,
                    durable=False,
                )
                if mode is not TradingMode.RUNNING:
                    # A stop takes effect at once, before the database has answered.
                    self._state = new
                    self._apply()
            warning = None
            try:
                new = _from_record(self._store(new, old.version))
            except StorageError as exc:
                if mode is TradingMode.RUNNING:
                    raise  # trading stays stopped: a resume must be remembered
                warning = f"not stored ({exc}); a restart would not remember it"
                log.error("kill_switch_not_stored", mode=mode.value, error=str(exc))
            with self._lock:
                self._state = new
                self._apply()
        self._record(old, new, warning)
        return SwitchResult(state=new, changed=True, warning=warning)

    def _store(self, state: TradingState, version: int) -> TradingStateRecord:
        """Write ``state`` over ``version``; when another writer changed the row meanwhile
        (or a lost acknowledgement left ours stale), over the version stored now."""
        assert state.since is not None
        for attempt in range(2):
            try:
                return self._database.trading_state.change(
                    self._account,
                    mode=state.mode.value,
                    reason=state.reason,
                    changed_by=state.changed_by,
                    since=state.since,
                    expected_version=version,
                )
            except StaleTradingState:
                if attempt:
                    raise
                current = self._database.trading_state.get(self._account)
                version = 0 if current is None else current.version
        raise AssertionError("unreachable")

    def _apply(self) -> None:
        if self._state.trading:
            self._status.allow_trading(KILL_SWITCH_GATE)
        else:
            self._status.block_trading(self._state.gate_reason(), KILL_SWITCH_GATE)

    def _record(self, old: TradingState, new: TradingState, warning: str | None) -> None:
        """The durable RISK event of a change (always mailed, see notify routing)."""
        recorder = self._recorder()
        if recorder is None:
            return
        what = {
            TradingMode.PAUSED: "trading paused",
            TradingMode.TRIPPED: "trading stopped: risk limit tripped",
            TradingMode.RUNNING: "trading resumed",
        }[new.mode]
        severity = {
            TradingMode.PAUSED: Severity.WARNING,
            TradingMode.TRIPPED: Severity.CRITICAL,
            TradingMode.RUNNING: Severity.WARNING,
        }[new.mode]
        context = {
            "event": f"kill_switch_{new.mode.value}",
            "by": new.changed_by,
            "reason": new.reason,
            "previous": old.mode.value,
            "account": self._account,
            "durable": new.durable,
        }
        if warning is not None:
            context["warning"] = warning
        try:
            recorder.record_durable(
                RISK,
                f"{what} by {new.changed_by}: {new.reason}",
                severity=severity,
                source=KILL_SWITCH_SOURCE,
                context=context,
            )
        except EventNotDurable as exc:
            log.error("kill_switch_event_not_stored", error=str(exc), **context)


_DEFAULT_REASONS = {
    TradingMode.PAUSED: "no reason given",
    TradingMode.TRIPPED: "risk limit",
    TradingMode.RUNNING: "no reason given",
}


def _clean(text: str, what: str) -> str:
    """One line, bounded: a reason lands in events, e-mail subjects and the dashboard."""
    if any(unicodedata.category(ch) in ("Cc", "Cf") and not ch.isspace() for ch in text):
        raise ValueError(f"{what} must not contain control characters")
    cleaned = " ".join(text.split())
    if len(cleaned) > MAX_REASON_CHARS:
        raise ValueError(f"{what} is longer than {MAX_REASON_CHARS} characters")
    return cleaned


def _from_record(record: TradingStateRecord) -> TradingState:
    return TradingState(
        mode=TradingMode(record.mode),
        reason=record.reason,
        changed_by=record.changed_by,
        since=record.since,
        version=record.version,
    )
