"""The shell's `order` and `risk` commands against a real runtime (SQLite, the built-in
simulator): a manual order passes the same risk limits, a refusal is one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from control_support import run

from support.waiting import wait_until
from tradingbot.config import load_config
from tradingbot.control.commands import RuntimeCommands
from tradingbot.control.order_commands import parse_order
from tradingbot.control.server import CommandError
from tradingbot.control.wiring import runtime_commands
from tradingbot.runtime import Runtime


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeCommands]:
    home: Path = tmp_path_factory.mktemp("home")
    env_file = home / "empty.env"
    env_file.write_text("")
    runtime = Runtime(
        load_config(environ={"TRADINGBOT_HOME": str(home), "TRADINGBOT_ENV_FILE": str(env_file)})
    )
    runtime.start()
    try:
        wait_until(
            lambda: runtime.broker_status.trading_blocked() is None,
            30,
            "the start reconciliation to open trading",
        )
        yield runtime_commands(runtime)
    finally:
        runtime.stop()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("BUY 10", "usage: order BUY|SELL"),
        ("BUY ten AAPL", "QUANTITY and LIMIT_PRICE must be numbers"),
        ("HOLD 10 AAPL", "side: expected BUY or SELL"),
        ("BUY -5 AAPL", "quantity: must be > 0"),
        ("BUY 5 AAPL 0", "limit_price: a LMT order needs a positive limit price"),
        ("BUY 5 AAPL key=has/slash", "client_order_id"),
    ],
)
def test_a_malformed_order_is_refused_naming_the_problem(line: str, expected: str) -> None:
    """A wrong order line is one error naming what is wrong; nothing is placed."""
    with pytest.raises(CommandError, match=expected.replace("|", r"\|")):
        parse_order(line.split())


def test_an_order_line_becomes_a_market_or_limit_order() -> None:
    """Three words are a market order, a fourth a limit price, ``key=`` the idempotency key."""
    market = parse_order(["buy", "10", "aapl"])
    assert (market.side, market.quantity, market.symbol, market.order_type) == (
        "BUY",
        10.0,
        "AAPL",
        "MKT",
    )
    limit = parse_order(["SELL", "5", "MSFT", "301.5", "key=k-1"])
    assert (limit.order_type, limit.limit_price, limit.client_order_id) == ("LMT", 301.5, "k-1")


def test_an_order_over_a_limit_is_refused_in_one_line(commands: RuntimeCommands) -> None:
    """A manual order worth far more than the order limit is refused by the risk limits,
    in one line naming the limit; a small one is sent and counted by `risk`."""
    with pytest.raises(CommandError) as refused:
        run(commands, "order BUY 1000 AAPL")
    message = str(refused.value)
    assert message.startswith("RiskRefused: order refused by risk limit max_order_usd")
    assert "\n" not in message

    sent = run(commands, "order BUY 1 AAPL key=manual-1")
    assert sent.result["order_id"] == "TB-manual-1"
    assert "sent: BUY 1 AAPL MKT" in sent.text
    again = run(commands, "order BUY 1 AAPL key=manual-1")
    assert again.result["order_id"] == "TB-manual-1"

    risk = run(commands, "risk")
    assert risk.result["orders_last_minute"] == 1
    assert risk.result["limits"]["max_order_usd"] == 10_000
    assert "loss limit 2,000.00" in risk.text
