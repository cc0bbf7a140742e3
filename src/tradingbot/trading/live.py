"""Live-account safety: a real gateway on a non-paper account trades only when told to.

Interactive Brokers paper accounts have ids starting with ``DU``. With a real gateway
(``TRADINGBOT_BROKER=ibkr``) and any other account, strategies do not start and no new
order goes out unless ``TRADINGBOT_LIVE_TRADING=yes``. The account is the configured
``TRADINGBOT_IB_ACCOUNT``, else the managed account(s) the gateway reports at connect;
until it is known, the gate stays closed. The built-in simulator's accounts are paper.

:func:`live_trading_refusal` is the rule; :class:`LiveAccountGuard` applies it to the
broker's ``live_account`` order gate, at start and whenever the gateway reports its
accounts, and says a refusal once: one line on stderr and a SYSTEM ERROR event (mailed
as an alert).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Sequence

import structlog

from tradingbot.broker.status import LIVE_ACCOUNT_GATE, BrokerStatus, BrokerView
from tradingbot.events.model import SYSTEM, Severity
from tradingbot.events.recorder import EventRecorder

log = structlog.get_logger(__name__)

PAPER_PREFIX = "DU"
LIVE_SOURCE = "live_account"
PENDING = "live-account check pending: the gateway has not reported its account yet"


def is_paper_account(account: str) -> bool:
    """IB paper account ids start with ``DU`` (``DU1234567``)."""
    return account.strip().upper().startswith(PAPER_PREFIX)


def live_trading_refusal(broker_kind: str, account: str | None, opted_in: bool) -> str | None:
    """Why this account may not trade (``None``: it may).

    ``sim`` always may (the simulator's accounts are paper); an unknown account may not
    yet (:data:`PENDING`); a paper account may; any other only with ``opted_in``.
    """
    if broker_kind == "sim":
        return None
    if not account:
        return PENDING
    if is_paper_account(account) or opted_in:
        return None
    return (
        f"live trading refused: account {account} is not a paper account (paper ids start "
        f"with {PAPER_PREFIX}) and TRADINGBOT_LIVE_TRADING is not yes; strategies do not "
        "start and no new order is sent"
    )


class LiveAccountGuard:
    """Keeps the ``live_account`` gate; thread-safe (the broker actor's thread calls it)."""

    def __init__(
        self,
        status: BrokerStatus,
        *,
        broker_kind: str,
        account: str | None,
        opted_in: bool,
        recorder: Callable[[], EventRecorder | None],
    ) -> None:
        self._status = status
        self._broker_kind = broker_kind
        self._account = account or None
        self._opted_in = opted_in
        self._recorder = recorder
        self._lock = threading.Lock()
        self._said: str | None = None  # the last refusal or opt-in said
        # Said before events could be recorded: (severity, event name, message).
        self._unrecorded: list[tuple[Severity, str, str]] = []

    def start(self) -> str | None:
        """Close or open the gate from the configuration (before the tree starts), and
        re-check whenever the gateway reports accounts. Returns the gate's reason."""
        self._status.listen(self._view_changed)
        return self._apply(self._status.view().accounts)

    def started(self) -> None:
        """The event logger runs: record what was said at start, if anything."""
        with self._lock:
            pending, self._unrecorded = self._unrecorded, []
        for severity, name, message in pending:
            self._record(severity, name, message)

    def start_gate(self) -> str | None:
        """For the strategy host: ``None`` when strategies may start, else why not."""
        return self._status.trading_blocked(LIVE_ACCOUNT_GATE)

    def _view_changed(self, old: BrokerView, new: BrokerView) -> None:
        if new.accounts != old.accounts:
            self._apply(new.accounts)

    def refusal(self, reported: Sequence[str]) -> str | None:
        """The rule for the configured account, else for each account the gateway reported."""
        accounts = [self._account] if self._account else list(reported)
        if not accounts:
            return live_trading_refusal(self._broker_kind, None, self._opted_in)
        for account in accounts:
            reason = live_trading_refusal(self._broker_kind, account, self._opted_in)
            if reason is not None:
                return reason
        return None

    def live_accounts(self, reported: Sequence[str]) -> list[str]:
        """The non-paper accounts this process trades (with a real gateway)."""
        accounts = [self._account] if self._account else list(reported)
        if self._broker_kind == "sim":
            return []
        return [a for a in accounts if not is_paper_account(a)]

    def _apply(self, reported: Sequence[str]) -> str | None:
        reason = self.refusal(reported)
        if reason is None:
            self._status.allow_trading(LIVE_ACCOUNT_GATE)
            live = self.live_accounts(reported)
            if live and self._first(f"live:{live}"):
                # Real money, on purpose: said once as a WARNING, for the audit trail.
                self._note(
                    Severity.WARNING,
                    "live_trading_allowed",
                    f"live trading allowed on account {', '.join(live)} "
                    "(TRADINGBOT_LIVE_TRADING=yes)",
                )
            return None
        self._status.block_trading(reason, LIVE_ACCOUNT_GATE)
        if reason != PENDING and self._first(reason):
            with contextlib.suppress(OSError):  # a closed stderr must not stop the broker
                print(f"trading-bot: {reason}", file=sys.stderr, flush=True)
            self._note(Severity.ERROR, "live_trading_refused", reason)
        return reason

    def _first(self, what: str) -> bool:
        """True unless ``what`` was the last thing said."""
        with self._lock:
            if what == self._said:
                return False
            self._said = what
            return True

    def _note(self, severity: Severity, name: str, message: str) -> None:
        """The SYSTEM event (later, if none can be recorded yet)."""
        (log.error if severity >= Severity.ERROR else log.warning)(name, message=message)
        if self._recorder() is None:
            with self._lock:
                self._unrecorded.append((severity, name, message))
            return
        self._record(severity, name, message)

    def _record(self, severity: Severity, name: str, message: str) -> None:
        recorder = self._recorder()
        if recorder is None:
            return
        recorder.record(
            SYSTEM,
            message,
            severity=severity,
            source=LIVE_SOURCE,
            context={"event": name, "broker": self._broker_kind},
        )
