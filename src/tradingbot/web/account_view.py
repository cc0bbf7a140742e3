"""The account for the dashboard's overview: today's P&L, the equity, the positions.

Everything comes from the broker's status (:class:`~tradingbot.broker.BrokerStatus`),
which the broker fills from the gateway's streams: the P&L (``reqPnL``), each holding's
valuation (average cost, market price, unrealized P&L) and the account values
(``NetLiquidation``: the equity). When the status has no equity (the account-updates
stream is not followed: several managed accounts and no ``TRADINGBOT_IB_ACCOUNT``), the
equity is asked of the broker off the event loop with a short timeout, and the answer
(or the failure) is kept for :data:`EQUITY_CACHE_S` so that refreshing pages never queue
queries at the gateway.

While the broker is not synced the figures are the last ones received, and the overview
says so with their time ("not connected: figures as of 14:02 UTC").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from tradingbot.broker import BrokerNotReady, BrokerStatus, ConnectionState
from tradingbot.broker import api as broker_api
from tradingbot.broker.answers import AccountValue
from tradingbot.supervision import SupervisionTree
from tradingbot.web.services import BROKER_STATUS, TREE

EQUITY_TAG: Final = "NetLiquidation"
EQUITY_QUERY_S: Final = 2.0  # the fallback query's timeout (a page must not hang on it)
EQUITY_CACHE_S: Final = 5.0  # how long a queried equity (or its failure) is reused


@dataclass(slots=True)
class _Queried:
    """The last fallback query: its answer (value, currency) or why not, and when (monotonic)."""

    at: float
    value: tuple[float, str] | None
    error: str


class EquityCache:
    """The fallback equity query, at most once per :data:`EQUITY_CACHE_S`."""

    def __init__(self) -> None:
        self._last: _Queried | None = None

    async def equity(
        self, tree: SupervisionTree | None, status: BrokerStatus
    ) -> tuple[tuple[float, str] | None, str]:
        """(value, currency) or None, and why none."""
        last = self._last
        now = time.monotonic()
        if last is not None and now - last.at < EQUITY_CACHE_S:
            return last.value, last.error
        if tree is None:
            return None, "the bot is not running"
        try:
            values = await asyncio.to_thread(
                broker_api.account_values, tree.handle("broker"), status, EQUITY_QUERY_S
            )
        except (BrokerNotReady, OSError, RuntimeError) as exc:  # shown, never raised
            self._last = _Queried(now, None, f"{type(exc).__name__}: {exc}")
            return self._last.value, self._last.error
        found = _net_liquidation(values)
        error = "" if found is not None else f"the gateway sent no {EQUITY_TAG}"
        self._last = _Queried(now, found, error)
        return found, error


def _net_liquidation(values: list[AccountValue]) -> tuple[float, str] | None:
    for value in values:
        if value.tag == EQUITY_TAG and value.currency not in ("", "BASE"):
            try:
                return float(value.value), value.currency
            except ValueError:
                return None
    return None


EQUITY_CACHE: Final = web.AppKey("dashboard_equity_cache", EquityCache)


def _hhmm(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%H:%M UTC")


async def account_overview(app: web.Application) -> dict[str, Any]:
    """The overview's account block (see the module docstring)."""
    status = app[BROKER_STATUS]
    view = status.view()
    connected = view.state == ConnectionState.SYNCED
    pnl = status.pnl()
    holdings = status.holdings()
    stamps: list[datetime] = [h.received_at for h in holdings.values()]
    if pnl is not None:
        stamps.append(pnl.received_at)
    streamed = status.account_value(EQUITY_TAG)
    equity: dict[str, Any] | None = None
    equity_note = ""
    if streamed is not None:
        value, currency, received = streamed
        stamps.append(received)
        equity = {"value": value, "currency": currency, "as_of": _hhmm(received)}
    elif connected:
        found, equity_note = await app[EQUITY_CACHE].equity(app[TREE](), status)
        if found is not None:
            equity = {"value": found[0], "currency": found[1], "as_of": "queried"}
    else:
        equity_note = "not known while the broker is not connected"
    change_pct = None
    if equity is not None and pnl is not None and equity["value"] - pnl.daily > 0:
        # Rounded here so that a tiny loss does not read "-0.00 %".
        change_pct = round(pnl.daily / (equity["value"] - pnl.daily) * 100.0, 2) + 0.0
    positions = []
    for symbol, quantity in sorted(status.positions().items()):
        held = holdings.get(symbol)
        positions.append(
            {
                "symbol": symbol,
                "quantity": quantity,
                "avg_cost": None if held is None else held.avg_cost,
                "market_price": None if held is None else held.market_price,
                "unrealized": None if held is None else held.unrealized,
                "daily": None if held is None else held.daily,
                "as_of": "" if held is None else _hhmm(held.received_at),
            }
        )
    as_of = _hhmm(max(stamps)) if stamps else ""
    return {
        "connected": connected,
        "broker_state": view.state.value,
        "stale_note": ""
        if connected
        else (
            f"not connected: figures as of {as_of}"
            if as_of
            else "not connected: no figures received yet"
        ),
        "pnl": None if pnl is None else pnl.as_dict() | {"as_of": _hhmm(pnl.received_at)},
        "equity": equity,
        "equity_note": equity_note,
        "change_pct": change_pct,
        "positions": positions,
    }
