"""The embedded simulator's paper account across runs, and execution ids across sessions."""

from __future__ import annotations

import json
from pathlib import Path

from tradingbot.gateway import Brokerage, OrderRequest, Rejection, build_simulator
from tradingbot.gateway.paper import keep_account, load_account, save_account


def _buy(broker: Brokerage, symbol: str, quantity: float, order_id: int) -> str:
    """Fill a market order at once; return its execution id."""
    result = broker.place(
        1,
        OrderRequest(
            order_id=order_id,
            con_id=0,
            symbol=symbol,
            sec_type="STK",
            exchange="SMART",
            currency="USD",
            action="BUY",
            quantity=quantity,
            order_type="MKT",
            lmt_price=None,
            tif="DAY",
            account="",
            order_ref=f"TB-{order_id}",
        ),
    )
    assert not isinstance(result, Rejection)
    return broker.executions[-1].exec_id


def test_the_next_simulator_starts_with_the_saved_positions_cash_and_prices(
    tmp_path: Path,
) -> None:
    """What the embedded simulator held when the bot stopped is what it holds at the next start."""
    path = tmp_path / "simulator.json"
    first = build_simulator(seed=0)
    keep_account(first, path)
    _buy(first.brokerage, "AAPL", 5, 1)
    first.publish_fill(first.brokerage.executions[-1])  # saves, as after every fill
    account = first.brokerage.account_ids[0]
    saved = json.loads(path.read_text())
    assert saved["accounts"][account]["positions"][0]["quantity"] == 5

    second = build_simulator(seed=0)
    assert keep_account(second, path)
    broker = second.brokerage
    [position] = [p for p in broker.positions.values() if p.quantity]
    assert (position.instrument.symbol, position.quantity) == ("AAPL", 5)
    assert broker.accounts[account].cash == first.brokerage.accounts[account].cash
    assert broker.prices.price("AAPL") == first.brokerage.prices.price("AAPL")


def test_an_account_saved_for_another_account_id_is_not_loaded(tmp_path: Path) -> None:
    """After a change of TRADINGBOT_IB_ACCOUNT the simulator starts empty, not with another's."""
    path = tmp_path / "simulator.json"
    other = build_simulator(seed=0, account="DU7777777").brokerage
    _buy(other, "MSFT", 3, 1)
    save_account(other, path)
    fresh = build_simulator(seed=0).brokerage
    assert not load_account(fresh, path)
    assert not any(p.quantity for p in fresh.positions.values())
    assert not load_account(fresh, tmp_path / "missing.json")


def test_execution_ids_are_unique_across_simulator_sessions() -> None:
    """A simulator started again never reuses an execution id (the bot keeps them as fill ids)."""
    first = _buy(Brokerage(), "AAPL", 1, 1)
    second = _buy(Brokerage(), "AAPL", 1, 1)
    assert first != second
