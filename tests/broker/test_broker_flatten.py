"""Cancel-all and flatten through the broker actor, against the simulator."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from brokerharness import BrokerHarness, wait_until

from support.ib_errors import IbErrorGuard
from tradingbot.broker import (
    BrokerNotReady,
    BrokerStatus,
    ConnectionState,
    NotReducing,
    OrderRequest,
    TradingBlocked,
    cancel_all,
    flatten,
    place_order,
)
from tradingbot.broker.flatten import NEW_YORK, closing_key
from tradingbot.broker.status import (
    KILL_SWITCH_GATE,
    LIVE_ACCOUNT_GATE,
    RECONCILIATION_GATE,
    RESTART_WINDOW_GATE,
    OrderRecord,
)
from tradingbot.events import ORDER, RISK, Severity
from tradingbot.gateway import GatewaySimulator, SimulatorThread, build_simulator
from tradingbot.gateway.model import OrderRequest as GatewayOrderRequest
from tradingbot.notify.routing import KILL_SWITCH_SOURCE


def _sim_positions(sim: SimulatorThread) -> dict[str, float]:
    return sim.call(
        lambda s: {
            p.instrument.symbol: p.quantity
            for p in s.brokerage.account_positions()
            if p.quantity != 0
        }
    )


def _sim_orders(sim: SimulatorThread) -> list[tuple[str, str]]:
    return sim.call(lambda s: [(o.order_ref, o.status) for o in s.brokerage.orders.values()])


def _sim_open(sim: SimulatorThread) -> list[str]:
    return sim.call(lambda s: [o.order_ref for o in s.brokerage.open_orders()])


def _filled(broker: BrokerHarness, request: OrderRequest) -> str:
    ref = place_order(broker.tree.handle("broker"), broker.status, request)
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Filled",
        message=f"{ref} to fill",
    )
    return ref


def _resting(broker: BrokerHarness, sim: SimulatorThread, symbol: str) -> str:
    limit = round(sim.call(lambda s: s.brokerage.prices.price(symbol)) * 0.5, 2)
    request = OrderRequest(symbol, "BUY", 2, "LMT", limit)
    ref = place_order(broker.tree.handle("broker"), broker.status, request)
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Submitted",
        message=f"{ref} to rest at the gateway",
    )
    return ref


def _flat(sim: SimulatorThread) -> dict[str, float] | None:
    """None until the simulator shows no position and no open order (then {})."""
    if _sim_open(sim):
        return None
    return None if _sim_positions(sim) else {"flat": 0.0}


def _flatten(broker: BrokerHarness, **kwargs: Any) -> Any:
    return flatten(broker.tree.handle("broker"), broker.status, by="test", **kwargs)


@pytest.fixture
def synced(broker: BrokerHarness) -> BrokerHarness:
    """The broker harness, synced with the simulator."""
    broker.wait_state(ConnectionState.SYNCED)
    return broker


def test_flatten_cancels_open_orders_and_closes_every_position(
    synced: BrokerHarness, sim: SimulatorThread
) -> None:
    """After a flatten the simulator shows no open order and no position: longs are sold,
    shorts (also one the bot never placed) bought back, resting orders cancelled."""
    _filled(synced, OrderRequest("AAPL", "BUY", 10))
    _filled(synced, OrderRequest("MSFT", "SELL", 4))
    sim.call(lambda s: s.brokerage.seed_position(s.brokerage.account_ids[0], "IBM", -3, 100.0))
    resting = _resting(synced, sim, "NVDA")
    assert _sim_positions(sim) == {"AAPL": 10, "MSFT": -4, "IBM": -3}

    result = _flatten(synced, reason="drill")

    assert [o.order_ref for o in result.cancelled.open_orders] == [resting]
    assert result.cancelled.scope == "global"
    assert result.still_open == ()
    closes = {(c.symbol, c.side, c.quantity) for c in result.sent}
    assert closes == {("AAPL", "SELL", 10), ("MSFT", "BUY", 4), ("IBM", "BUY", 3)}
    wait_until(lambda: _flat(sim), message="the simulator to show the account flat")
    assert dict(_sim_orders(sim))[resting] == "Cancelled"
    risk = [e for e in synced.sink.of_type(RISK) if e.source == KILL_SWITCH_SOURCE]
    assert [(e.severity, e.message) for e in risk] == [(Severity.WARNING, "flatten by test: drill")]
    [cancel] = [e for e in synced.sink.of_type(ORDER) if e.context.get("action") == "cancel_all"]
    assert (cancel.context["by"], cancel.context["reason"]) == ("test", "drill")
    closing_events = [e for e in synced.sink.of_type(ORDER) if e.context.get("reduce_only")]
    assert len(closing_events) == 3


def test_a_second_flatten_sends_nothing_new(synced: BrokerHarness, sim: SimulatorThread) -> None:
    """Flattening twice sends the closing orders once: the simulator holds no more orders
    after the second flatten than after the first."""
    _filled(synced, OrderRequest("AAPL", "BUY", 5))
    first = _flatten(synced, reason="first")
    assert len(first.sent) == 1
    wait_until(lambda: _flat(sim), message="the account to be flat")
    orders_after_first = _sim_orders(sim)

    second = _flatten(synced, reason="again")

    assert second.closing == ()
    assert second.cancelled.open_orders == ()
    assert _sim_orders(sim) == orders_after_first


def test_a_live_closing_order_is_found_known_and_not_sent_again(
    synced: BrokerHarness, sim: SimulatorThread
) -> None:
    """A closing order whose key is already known and still open is reported, not sent again."""
    _filled(synced, OrderRequest("AAPL", "BUY", 5))
    [held] = [p for p in sim.call(lambda s: s.brokerage.account_positions()) if p.quantity]
    key = closing_key(datetime.now(NEW_YORK), held.account_id, "AAPL", 5.0, 1)
    # The order a first flatten sent and the gateway has not answered yet.
    synced.status.put_order(
        OrderRecord(order_ref=f"TB-{key}", symbol="AAPL", side="SELL", quantity=5, order_type="MKT")
    )
    before = _sim_orders(sim)
    result = _flatten(synced, reason="again")
    [close] = result.closing
    assert (close.order_ref, close.sent, close.error) == (f"TB-{key}", False, None)
    assert _sim_orders(sim) == before


def test_cancel_all_cancels_only_what_the_gateway_has_open(
    synced: BrokerHarness, sim: SimulatorThread
) -> None:
    """Cancel-all reports the orders open at the gateway and cancels them; a filled
    order stays filled; it is recorded and mailed (RISK, kill-switch source) first."""
    filled = _filled(synced, OrderRequest("AAPL", "BUY", 1))
    first, second = _resting(synced, sim, "MSFT"), _resting(synced, sim, "IBM")

    result = cancel_all(
        synced.tree.handle("broker"), synced.status, by="shell uid 0", reason="too volatile"
    )

    assert sorted(o.order_ref for o in result.open_orders) == sorted([first, second])
    wait_until(lambda: not _sim_open(sim), message="the simulator to have no open order")
    statuses = dict(_sim_orders(sim))
    assert (statuses[filled], statuses[first], statuses[second]) == (
        "Filled",
        "Cancelled",
        "Cancelled",
    )
    assert _sim_positions(sim) == {"AAPL": 1}
    [risk] = synced.sink.of_type(RISK)
    assert (risk.source, risk.severity) == (KILL_SWITCH_SOURCE, Severity.WARNING)
    assert risk.message == "cancel-all by shell uid 0: too volatile"
    assert risk.context["event"] == "cancel_all"


@pytest.mark.parametrize(
    "gate_reason", ["paused by shell uid 0: lunch", "tripped by risk: daily loss limit"]
)
def test_flatten_works_while_the_kill_switch_stops_new_orders(
    synced: BrokerHarness, sim: SimulatorThread, gate_reason: str
) -> None:
    """With the kill switch paused or tripped a new order is refused, but a flatten still
    closes the positions (its orders are reduce-only)."""
    _filled(synced, OrderRequest("AAPL", "BUY", 7))
    synced.status.block_trading(gate_reason, KILL_SWITCH_GATE)
    with pytest.raises(TradingBlocked):
        place_order(synced.tree.handle("broker"), synced.status, OrderRequest("AAPL", "BUY", 1))
    result = _flatten(synced, reason="stop")
    assert [(c.symbol, c.side, c.sent) for c in result.closing] == [("AAPL", "SELL", True)]
    wait_until(lambda: _flat(sim), message="the account to be flat while stopped")


def test_flatten_before_reconciliation_passed_sends_no_closing_order(
    synced: BrokerHarness, sim: SimulatorThread
) -> None:
    """While the reconciliation gate is closed the closing orders are refused and reported
    with the reason; the position stays."""
    _filled(synced, OrderRequest("AAPL", "BUY", 3))
    synced.status.block_trading("reconciliation pending", RECONCILIATION_GATE)
    before = _sim_orders(sim)
    [close] = _flatten(synced, reason="x").closing
    assert close.sent is False
    assert close.error is not None
    assert "reconciliation pending" in close.error
    assert _sim_orders(sim) == before
    assert _sim_positions(sim) == {"AAPL": 3}


def test_a_reduce_only_order_that_would_flip_the_position_is_refused(
    synced: BrokerHarness, sim: SimulatorThread
) -> None:
    """A reduce-only order larger than the position, or on the wrong side, never reaches
    the gateway; one that reduces goes out."""
    _filled(synced, OrderRequest("AAPL", "BUY", 5))
    handle = synced.tree.handle("broker")
    for request in (
        OrderRequest("AAPL", "SELL", 6, reduce_only=True),
        OrderRequest("AAPL", "BUY", 1, reduce_only=True),
        OrderRequest("MSFT", "SELL", 1, reduce_only=True),
    ):
        with pytest.raises(NotReducing, match="would not reduce"):
            place_order(handle, synced.status, request)
    assert len(_sim_orders(sim)) == 1
    ref = _filled(synced, OrderRequest("AAPL", "SELL", 2, reduce_only=True))
    assert dict(_sim_orders(sim))[ref] == "Filled"
    assert _sim_positions(sim) == {"AAPL": 3}


def test_flatten_and_cancel_all_while_not_synced_are_refused_at_once(
    synced: BrokerHarness,
) -> None:
    """When the broker is not synced a flatten or cancel-all fails at once with a clear
    error and records nothing."""
    unsynced = BrokerStatus()
    handle = synced.tree.handle("broker")
    with pytest.raises(BrokerNotReady, match="not synced"):
        flatten(handle, unsynced, by="test", reason="x")
    with pytest.raises(BrokerNotReady, match="cancel-all refused"):
        cancel_all(handle, unsynced, by="test", reason="x")
    assert synced.sink.of_type(RISK) == []


def test_with_other_managed_accounts_cancel_all_spares_their_orders(
    tmp_path: Path, ib_errors: IbErrorGuard
) -> None:
    """When the login manages another account too, cancel-all cancels our own orders of
    our account one by one, leaves the other account's orders alone, and reports (but
    cannot cancel) one another client placed in our account."""
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"accounts": {"DU1": {"cash": 1e6}, "DU2": {"cash": 1e6}}}))
    sim = SimulatorThread(build_simulator(seed=0, seed_file=seed, tick_interval_s=0.05), port=0)
    sim.start()
    harness = BrokerHarness(sim.port, account="DU1")
    harness.start()
    try:
        harness.wait_state(ConnectionState.SYNCED)
        ours = _resting(harness, sim, "MSFT")

        def tws_order(s: GatewaySimulator, order_id: int, account: str, ref: str) -> None:
            limit = round(s.brokerage.prices.price("IBM") * 0.5, 2)
            fields = dict(con_id=0, sec_type="STK", exchange="SMART", currency="USD", tif="DAY")
            request = GatewayOrderRequest(
                order_id=order_id, symbol="IBM", action="BUY", quantity=1, order_type="LMT",
                lmt_price=limit, account=account, order_ref=ref, **fields,
            )  # fmt: skip
            s.brokerage.place(0, request)

        sim.call(lambda s: tws_order(s, 1, "DU2", "theirs"))
        sim.call(lambda s: tws_order(s, 2, "DU1", "tws-du1"))
        result = cancel_all(harness.tree.handle("broker"), harness.status, by="t", reason="r")
        assert result.scope == "account"
        assert sorted(o.order_ref for o in result.open_orders) == sorted([ours, "tws-du1"])
        wait_until(
            lambda: (o := harness.status.order(ours)) is not None and o.status == "Cancelled",
            message="our order to be cancelled",
        )
        assert sorted(_sim_open(sim)) == ["theirs", "tws-du1"]
    finally:
        harness.stop()
        sim.stop()


def test_flatten_passes_the_restart_window_but_not_a_refused_live_account(
    synced: BrokerHarness, sim: SimulatorThread
) -> None:
    """During the IB Gateway's restart-window pause a flatten still closes positions; a
    refused live account gets no closing order (the reason says why)."""
    _filled(synced, OrderRequest("AAPL", "BUY", 2))
    synced.status.block_trading(
        "paused for the IB Gateway daily restart window", RESTART_WINDOW_GATE
    )
    with pytest.raises(TradingBlocked):
        place_order(synced.tree.handle("broker"), synced.status, OrderRequest("AAPL", "BUY", 1))
    synced.status.block_trading("live trading refused: account U1", LIVE_ACCOUNT_GATE)
    [refused] = _flatten(synced, reason="x").closing
    assert refused.sent is False
    assert refused.error is not None
    assert "live trading refused" in refused.error
    synced.status.allow_trading(LIVE_ACCOUNT_GATE)
    [close] = _flatten(synced, reason="exit before the restart").closing
    assert close.sent is True
    wait_until(lambda: _flat(sim), message="the account to be flat during the window")
