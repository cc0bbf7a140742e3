"""The kill switch from outside a real process: the shell, the HTTP API, a restart, and a
flatten against a gateway simulator that outlives the bot."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_support import Bot, BotFactory, HttpReply, wait_until
from trading_support import example_env, sim_books, stored_events

from tradingbot.events import ORDER, SIGNAL
from tradingbot.gateway import GatewaySimulator, SimulatorThread, build_simulator
from tradingbot.gateway.model import OrderRequest as GatewayOrderRequest

pytestmark = pytest.mark.slow

TOKEN = "kill-switch-test-token-0815"


def _post(bot: Bot, path: str, body: bytes | None, token: str | None = TOKEN) -> HttpReply:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(bot.url(path), data=body or b"", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return HttpReply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpReply(error.code, dict(error.headers), error.read())


def _trading(bot: Bot) -> dict[str, object]:
    result = bot.shell("trading", as_json=True)
    assert result.returncode == 0, result.stderr
    state: dict[str, object] = json.loads(result.stdout)["kill_switch"]
    return state


def test_a_shell_pause_holds_across_a_restart_and_resume_reopens(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """`pause` stops orders and is still in force after a restart; `resume` lifts it."""
    env = {"TRADINGBOT_API_TOKEN": TOKEN}
    first = bot_factory(bot_database_url, env)
    refused = first.shell("pause")
    assert refused.returncode == 1
    assert "pause REASON" in refused.stderr
    assert "Traceback" not in refused.stderr

    paused = first.shell("pause earnings call at 16:00")
    assert paused.returncode == 0, paused.stderr
    assert "trading: paused by shell uid" in paused.stdout
    assert "earnings call at 16:00" in paused.stdout
    first.signal(signal.SIGTERM)
    assert first.wait() == 0

    second = bot_factory(bot_database_url, env, home=first.home)
    state = _trading(second)
    assert (state["mode"], state["reason"]) == ("paused", "earnings call at 16:00")

    resumed = second.shell("resume call is over")
    assert resumed.returncode == 0, resumed.stderr
    assert _trading(second)["mode"] == "running"
    again = second.shell("resume")
    assert again.returncode == 0
    assert "unchanged: already running" in again.stdout


def test_http_pause_and_resume_need_the_token(bot_factory: BotFactory) -> None:
    """With a token: pause/resume over HTTP work with it and answer 401 without it;
    a malformed body is a 400 problem naming what is wrong."""
    bot = bot_factory(None, {"TRADINGBOT_API_TOKEN": TOKEN})
    assert _post(bot, "/api/trading/pause", b'{"reason": "x"}', token=None).status == 401
    bad = _post(bot, "/api/trading/pause", b'{"why": "x"}')
    assert bad.status == 400
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    assert "reason" in bad.json()["detail"]
    assert _post(bot, "/api/trading/pause", b"not json").status == 400
    # A reason is mailed and printed in terminals: control characters are refused.
    assert _post(bot, "/api/trading/pause", b'{"reason": "x\\u001b[2Jhidden"}').status == 400

    paused = _post(bot, "/api/trading/pause", b'{"reason": "fed minutes"}')
    assert paused.status == 200, paused.body
    body = paused.json()
    assert body["changed"] is True
    assert body["orders_allowed"] is False
    assert body["kill_switch"]["mode"] == "paused"
    assert body["kill_switch"]["changed_by"].startswith("HTTP API token")
    assert body["gates"]["kill_switch"].endswith("fed minutes")

    resumed = _post(bot, "/api/trading/resume", None)
    assert resumed.status == 200, resumed.body
    assert resumed.json()["kill_switch"]["mode"] == "running"


def test_without_a_token_http_cannot_change_trading(sqlite_bot: Bot) -> None:
    """With no token configured, a local client can read the state but a pause answers
    403 pointing to the shell, and nothing changes."""
    refused = _post(sqlite_bot, "/api/trading/pause", b'{"reason": "x"}', token=None)
    assert refused.status == 403
    assert "trading-bot shell" in refused.json()["detail"]
    state = sqlite_bot.get("/api/trading")
    assert state.status == 200
    assert state.json()["kill_switch"]["mode"] == "running"


@pytest.fixture
def gateway() -> Iterator[SimulatorThread]:
    """A gateway simulator in the test process: it outlives the bot, like an IB Gateway."""
    sim = SimulatorThread(build_simulator(seed=3, tick_interval_s=0.2), port=0)
    sim.start()
    yield sim
    sim.stop()


def _by_hand(sim: GatewaySimulator, account: str) -> None:
    """What an operator did in TWS: a long and a short position, and a resting order."""
    sim.brokerage.seed_position(account, "AAPL", 10, 180.0)
    sim.brokerage.seed_position(account, "MSFT", -5, 400.0)
    limit = round(sim.brokerage.prices.price("IBM") * 0.5, 2)
    fields = dict(con_id=0, sec_type="STK", exchange="SMART", currency="USD", tif="DAY")
    request = GatewayOrderRequest(
        order_id=1, symbol="IBM", action="BUY", quantity=3, order_type="LMT",
        lmt_price=limit, account=account, order_ref="", **fields,
    )  # fmt: skip
    sim.brokerage.place(0, request)


def _at_gateway(sim: GatewaySimulator) -> tuple[dict[str, float], int, int]:
    positions = {
        p.instrument.symbol: p.quantity for p in sim.brokerage.account_positions() if p.quantity
    }
    return positions, len(sim.brokerage.open_orders()), len(sim.brokerage.orders)


def test_flatten_from_the_shell_leaves_the_account_flat_at_the_gateway(
    bot_factory: BotFactory, bot_database_url: str | None, gateway: SimulatorThread
) -> None:
    """While paused, `flatten` cancels every open order (also one placed in TWS) and closes
    every position: the gateway shows the account flat, the flatten is mailed, and a
    second `flatten` sends nothing new."""
    bot = bot_factory(
        bot_database_url,
        {
            "TRADINGBOT_BROKER": "ibkr",
            "TRADINGBOT_IB_HOST": "127.0.0.1",
            "TRADINGBOT_IB_PORT": str(gateway.port),
            "TRADINGBOT_IB_CLIENT_ID": "41",
        },
    )
    wait_until(
        lambda: _trading_gates(bot).get("reconciliation") is None,
        message="the start reconciliation to open trading",
    )
    account = gateway.call(lambda s: s.brokerage.account_ids[0])
    gateway.call(lambda s: _by_hand(s, account))
    assert gateway.call(_at_gateway)[:2] == ({"AAPL": 10, "MSFT": -5}, 1)
    assert bot.shell("pause going flat for the night").returncode == 0

    flattened = bot.shell("flatten 3 am drill")
    assert flattened.returncode == 0, flattened.stderr
    assert "(not placed by the bot)" in flattened.stdout
    assert "sent: SELL 10 AAPL MKT (position 10)" in flattened.stdout
    assert "sent: BUY 5 MSFT MKT (position -5)" in flattened.stdout
    _, open_orders, orders = wait_until(
        lambda: (state := gateway.call(_at_gateway)) and not state[0] and state,
        message="the gateway to show the account flat",
    )
    assert open_orders == 0
    mails = wait_until(
        lambda: [
            text
            for path in (bot.home / "outbox").glob("*.eml")
            if "flatten by shell uid" in (text := path.read_text(errors="replace"))
        ],
        message="the flatten's alert mail",
    )
    assert len(mails) == 1
    assert "3 am drill" in mails[0]

    again = bot.shell("flatten once more", as_json=True)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["closing"] == []
    assert gateway.call(_at_gateway) == ({}, 0, orders)
    assert _trading(bot)["mode"] == "paused"  # a flatten never resumes trading


def _trading_gates(bot: Bot) -> dict[str, object]:
    result = bot.shell("trading", as_json=True)
    if result.returncode != 0:
        return {"reconciliation": "no answer"}
    gates: dict[str, object] = json.loads(result.stdout)["gates"]
    return gates


def _node_refused(bot: Bot) -> int:
    return int(bot.node("strategy-ma_cross")["details"].get("refused", 0))


def _placed_refs(bot: Bot, after: datetime | None = None) -> set[str | None]:
    return {
        e.trade_id
        for e in stored_events(bot.database_url, ORDER)
        if e.context.get("action") == "place" and (after is None or e.timestamp > after)
    }


def _signals_since(bot: Bot, since: datetime) -> list[str]:
    return [str(e.id) for e in stored_events(bot.database_url, SIGNAL) if e.timestamp > since]


def test_pause_resume_flatten_and_a_paused_restart_with_the_example_strategy(
    bot_factory: BotFactory,
    bot_database_url: str | None,
    gateway: SimulatorThread,
    short_tmp: Path,
) -> None:
    """The example trades; while paused its signals' orders are refused and none reaches
    the simulator; after `resume` orders flow; `flatten` leaves the account flat at the
    simulator; a restart while paused comes back paused (health warns, orders refused)."""
    env = example_env(short_tmp, gateway.port)
    bot = bot_factory(bot_database_url, env)
    wait_until(lambda: sim_books(gateway).order_refs, 90, "the example's first order")

    assert bot.shell("pause no orders while we look").returncode == 0
    paused_at = datetime.now(UTC)
    refused_before = _node_refused(bot)
    # Three decisions of the strategy while paused, each refused by the broker's gate.
    signals = wait_until(
        lambda: (
            len(s := _signals_since(bot, paused_at)) >= 3
            and _node_refused(bot) - refused_before >= 3
            and s
        ),
        60,
        "three signals refused while paused",
    )
    placed = _placed_refs(bot)
    assert not _placed_refs(bot, after=paused_at)
    assert set(sim_books(gateway).order_refs) <= placed  # nothing new reached the simulator
    ordered_signals = {
        e.context.get("signal_id")
        for e in stored_events(bot.database_url, ORDER)
        if e.context.get("action") == "place"
    }
    assert not ordered_signals & set(signals)

    assert bot.shell("resume looked").returncode == 0
    resumed_at = datetime.now(UTC)
    wait_until(
        lambda: set(sim_books(gateway).order_refs) & _placed_refs(bot, after=resumed_at),
        60,
        "an order at the simulator after resume",
    )

    assert bot.shell("pause going flat").returncode == 0
    flattened = bot.shell("flatten end of the day")
    assert flattened.returncode == 0, flattened.stderr
    wait_until(
        lambda: (books := sim_books(gateway)).open_orders == 0 and not books.positions,
        30,
        "the simulator to show the account flat",
    )

    bot.signal(signal.SIGTERM)
    assert bot.wait() == 0, bot.diagnostics()
    orders_before = sim_books(gateway).order_refs
    again = bot_factory(bot_database_url, env, home=bot.home)
    assert _trading(again)["mode"] == "paused"
    restarted_at = datetime.now(UTC)

    def gate_warns() -> bool:
        check = again.get("/api/health").json()["checks"]["trading:gate"][0]
        return bool(check["status"] == "warn" and "going flat" in check["output"])

    wait_until(gate_warns, 30, "health trading:gate to warn about the pause")
    wait_until(
        lambda: len(_signals_since(again, restarted_at)) >= 1 and _node_refused(again) >= 1,
        60,
        "a signal of the restarted strategy, refused",
    )
    assert not _placed_refs(again, after=restarted_at)
    assert sim_books(gateway).order_refs == orders_before
