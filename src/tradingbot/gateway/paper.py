"""The embedded simulator's paper account, kept across runs of the bot.

A real paper account keeps its positions when the bot restarts; the simulator that
``TRADINGBOT_BROKER=sim`` starts inside the process would begin empty every time, and
the start-up reconciliation would then find the bot's books holding positions the
"broker" does not (and keep trading blocked). :func:`keep_account` makes the embedded
simulator load its account (cash, positions and their symbols' last prices) from a JSON
file in the seed format (:meth:`Brokerage.load_seed`) and write it back after every
fill, atomically. Executions and open orders are not kept (a fill of the last run is in
the bot's books already; the embedded simulator's orders are market orders).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .brokerage import Brokerage, Execution
from .server import GatewaySimulator
from .standalone import build_simulator
from .thread import SimulatorThread

log = logging.getLogger("tradingbot.gateway")


def account_state(brokerage: Brokerage) -> dict[str, Any]:
    """The accounts, positions and held symbols' prices, in the seed file's format."""
    accounts: dict[str, Any] = {
        acct: {"cash": account.cash, "positions": []}
        for acct, account in brokerage.accounts.items()
    }
    symbols: dict[str, Any] = {}
    for (acct, _), pos in sorted(brokerage.positions.items()):
        if pos.quantity == 0 or acct not in accounts:
            continue
        symbol = pos.instrument.symbol
        accounts[acct]["positions"].append(
            {"symbol": symbol, "quantity": pos.quantity, "avg_cost": pos.avg_cost}
        )
        symbols[symbol] = {
            "price": brokerage.prices.price(symbol),
            "exchange": pos.instrument.primary_exchange,
        }
    return {"accounts": accounts, "symbols": symbols}


def save_account(brokerage: Brokerage, path: Path) -> None:
    """Write the account state to ``path`` atomically (a failure is logged, not raised)."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(account_state(brokerage), indent=1))
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("simulator account not saved to %s: %s", path, exc)


def load_account(brokerage: Brokerage, path: Path) -> bool:
    """Load a saved account into ``brokerage``; False when there is none, it is
    unreadable, or it belongs to other accounts (a changed ``TRADINGBOT_IB_ACCOUNT``)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        log.warning("simulator account in %s not loaded: %s", path, exc)
        return False
    saved = set(data.get("accounts", {})) if isinstance(data, dict) else set()
    if saved != set(brokerage.account_ids):
        log.warning("simulator account in %s is for %s: not loaded", path, sorted(saved))
        return False
    brokerage.load_seed(path)
    return True


def keep_account(simulator: GatewaySimulator, path: Path) -> bool:
    """Load ``path`` into ``simulator`` (before it starts) and save to it after every
    fill; True when a saved account was loaded."""
    loaded = load_account(simulator.brokerage, path)

    def saved(execution: Execution) -> None:
        save_account(simulator.brokerage, path)

    simulator.on_fill = saved
    return loaded


def start_embedded(account: str | None, path: Path) -> SimulatorThread:
    """The simulator ``TRADINGBOT_BROKER=sim`` runs in the process, started on an
    ephemeral loopback port: the same code path as a real gateway. Its account is the
    configured one (so ``TRADINGBOT_IB_ACCOUNT`` works with it too), kept in ``path``."""
    simulator = build_simulator(seed=0, account=account)
    keep_account(simulator, path)
    thread = SimulatorThread(simulator, host="127.0.0.1", port=0)
    port = thread.start()
    log.info("gateway simulator started on 127.0.0.1:%s (account kept in %s)", port, path)
    return thread
