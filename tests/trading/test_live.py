"""Live-account safety: which accounts may trade, and the gate that enforces it."""

from __future__ import annotations

from typing import Any

import pytest

from tradingbot.broker.status import LIVE_ACCOUNT_GATE, BrokerStatus
from tradingbot.events.model import Event, Severity
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.trading.live import PENDING, LiveAccountGuard, live_trading_refusal


class Sink:
    """Collects recorded events (stands in for the event logger's handle)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        self.events.extend(message.events)


@pytest.mark.parametrize(
    ("broker", "account", "opted_in", "allowed"),
    [
        ("sim", "U1234567", False, True),
        ("sim", None, False, True),
        ("ibkr", "DU1234567", False, True),
        ("ibkr", "du7654321", False, True),
        ("ibkr", "U1234567", True, True),
        ("ibkr", "U1234567", False, False),
        ("ibkr", "F1234567", False, False),
    ],
)
def test_only_paper_accounts_trade_without_the_opt_in(
    broker: str, account: str | None, opted_in: bool, allowed: bool
) -> None:
    """With a real gateway only DU accounts trade unless TRADINGBOT_LIVE_TRADING=yes; the
    simulator always does."""
    refusal = live_trading_refusal(broker, account, opted_in)
    assert (refusal is None) is allowed
    if refusal is not None:
        assert f"account {account} is not a paper account" in refusal
        assert "TRADINGBOT_LIVE_TRADING" in refusal


def test_an_unknown_account_is_pending_not_refused() -> None:
    """With a real gateway and no account yet, the answer is "pending", not a refusal."""
    assert live_trading_refusal("ibkr", None, False) == PENDING
    assert live_trading_refusal("ibkr", "", True) == PENDING


def _guard(status: BrokerStatus, sink: Sink | None, **kwargs: Any) -> LiveAccountGuard:
    recorder = None if sink is None else EventRecorder(sink)
    settings: dict[str, Any] = {"broker_kind": "ibkr", "account": None, "opted_in": False}
    settings.update(kwargs)
    return LiveAccountGuard(status, recorder=lambda: recorder, **settings)


def test_a_configured_live_account_is_refused_at_start_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A configured U account closes the gate before the tree starts, prints one stderr
    line, and records the SYSTEM ERROR event once events can be recorded."""
    status = BrokerStatus()
    sink = Sink()
    recorder: list[EventRecorder] = []
    guard = LiveAccountGuard(
        status,
        broker_kind="ibkr",
        account="U1234567",
        opted_in=False,
        recorder=lambda: recorder[0] if recorder else None,
    )
    reason = guard.start()
    assert reason is not None
    assert status.trading_blocked(LIVE_ACCOUNT_GATE) == reason
    assert guard.start_gate() == reason
    assert status.order_refusal(None) is not None
    err = capsys.readouterr().err.splitlines()
    assert err == [f"trading-bot: {reason}"]

    recorder.append(EventRecorder(sink))
    guard.started()
    assert [(e.type, e.severity, e.message) for e in sink.events] == [
        ("SYSTEM", Severity.ERROR, reason)
    ]
    status.update(accounts=("U1234567",))  # the gateway confirms it: nothing said again
    assert capsys.readouterr().err == ""
    assert len(sink.events) == 1


def test_the_reported_account_decides_when_none_is_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a configured account the gate waits for the gateway: a DU account opens
    it, a U account closes it (said once), an opt-in keeps it open and says so once as a
    WARNING event."""
    status = BrokerStatus()
    sink = Sink()
    guard = _guard(status, sink)
    assert guard.start() == PENDING
    assert guard.start_gate() == PENDING
    assert capsys.readouterr().err == ""

    status.update(accounts=("DU1234567",))
    assert guard.start_gate() is None
    status.update(accounts=("U7654321",))
    refused = guard.start_gate()
    assert refused is not None
    assert "account U7654321" in refused
    status.update(last_error="noise")  # other changes do not say it again
    assert capsys.readouterr().err.count("live trading refused") == 1
    assert [e.message for e in sink.events] == [refused]

    opted = BrokerStatus()
    _guard(opted, sink, opted_in=True).start()
    opted.update(accounts=("U7654321",))
    assert opted.trading_blocked(LIVE_ACCOUNT_GATE) is None
    opted.update(accounts=("U7654321", "DU1"))  # still the same live account: said once
    allowed = [e for e in sink.events if e.context["event"] == "live_trading_allowed"]
    assert [(e.severity, e.message) for e in allowed] == [
        (Severity.WARNING, "live trading allowed on account U7654321 (TRADINGBOT_LIVE_TRADING=yes)")
    ]


def test_the_simulator_never_closes_the_gate() -> None:
    """TRADINGBOT_BROKER=sim trades whatever account it is given."""
    status = BrokerStatus()
    assert _guard(status, None, broker_kind="sim", account="U1234567").start() is None
    assert status.trading_blocked() is None


def test_every_reported_account_must_be_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    """A gateway managing a paper and a live account is refused (the live one is named)."""
    status = BrokerStatus()
    guard = _guard(status, Sink())
    guard.start()
    status.update(accounts=("DU1111111", "U2222222"))
    refused = guard.start_gate()
    assert refused is not None
    assert "U2222222" in refused
    assert "live trading refused" in capsys.readouterr().err
