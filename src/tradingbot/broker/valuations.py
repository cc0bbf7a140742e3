"""The positions' valuations and the account's equity, kept in :class:`BrokerStatus` for
the dashboard.

Three streams meet per held symbol (a :class:`~tradingbot.broker.answers.Holding`):

- the position stream (``positionEvent``): quantity and average cost;
- each position's P&L subscription (``reqPnLSingle``, made while the position is open,
  cancelled once it is closed, renewed after 1101): the market value, so the market
  price, and the unrealized and day's P&L, as live as the gateway sends them;
- the account-updates stream ``ib_async`` subscribes while connecting (IB's
  ``updatePortfolio``, refreshed every few minutes and on each fill): all of it at once.

The same stream's numeric account values in :data:`FOLLOWED_VALUES` (``NetLiquidation``:
the equity) are kept too. Without one account to follow (several managed accounts and
no ``TRADINGBOT_IB_ACCOUNT``) nothing is valued: the dashboard then asks for the equity.

Everything here runs on the client's loop thread.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ib_async import IB

from tradingbot.broker.answers import Holding
from tradingbot.broker.parsing import number
from tradingbot.broker.status import BrokerStatus

FOLLOWED_VALUES = frozenset({"NetLiquidation", "TotalCashValue", "GrossPositionValue"})
MODEL_CODE = ""  # IB's account model: none


class Valuations:
    """One connection's holdings as last valued, and its per-position P&L subscriptions
    (by contract id); each change goes to the status at once."""

    def __init__(self, ib: IB, account: str, status: BrokerStatus) -> None:
        self._ib = ib
        self._account = account
        self._status = status
        self._held: dict[str, Holding] = {}
        self._symbols: dict[int, str] = {}  # contract id -> symbol, while subscribed

    def seed(self) -> None:
        """Value what the client already knows, and subscribe each open position's P&L."""
        account = self._account
        self._status.set_holdings([])
        for item in self._ib.portfolio(account):
            self.on_portfolio(item)
        for position in self._ib.positions(account):
            self.on_position(position)
        for value in self._ib.accountValues(account):
            self.on_value(value)

    def _put(self, holding: Holding) -> None:
        self._held[holding.symbol] = holding
        self._status.set_holding(holding)

    def _drop(self, symbol: str, con_id: int) -> None:
        held = self._held.pop(symbol, None)
        if held is not None:
            self._status.set_holding(replace(held, quantity=0.0))
        if self._symbols.pop(con_id, None) is not None:
            self._ib.cancelPnLSingle(self._account, MODEL_CODE, con_id)

    def _follow(self, con_id: int, symbol: str) -> None:
        if con_id and con_id not in self._symbols:
            self._symbols[con_id] = symbol
            if not self._ib.pnlSingle(self._account, MODEL_CODE, con_id):
                self._ib.reqPnLSingle(self._account, MODEL_CODE, con_id)

    def on_position(self, p: Any) -> None:
        """``positionEvent``: the quantity and average cost; (un)subscribe its P&L."""
        if p.account != self._account:
            return
        symbol, quantity = p.contract.symbol, float(p.position)
        if not quantity:
            self._drop(symbol, p.contract.conId)
            return
        held = self._held.get(symbol)
        avg_cost = number(p.avgCost)
        if held is None:
            held = Holding(
                account=self._account,
                symbol=symbol,
                quantity=quantity,
                avg_cost=avg_cost or 0.0,
                market_price=None,
                market_value=None,
                unrealized=None,
                realized=None,
                received_at=datetime.now(UTC),
            )
        else:
            held = replace(held, quantity=quantity, avg_cost=avg_cost or held.avg_cost)
        self._put(held)
        self._follow(p.contract.conId, symbol)

    def on_portfolio(self, item: Any) -> None:
        """``updatePortfolioEvent``: the whole valuation of one holding."""
        if item.account != self._account:
            return
        symbol, quantity = item.contract.symbol, float(item.position)
        if not quantity:
            self._drop(symbol, item.contract.conId)
            return
        self._put(
            Holding(
                account=item.account,
                symbol=symbol,
                quantity=quantity,
                avg_cost=number(item.averageCost) or 0.0,
                market_price=number(item.marketPrice),
                market_value=number(item.marketValue),
                unrealized=number(item.unrealizedPNL),
                realized=number(item.realizedPNL),
                daily=self._held[symbol].daily if symbol in self._held else None,
                received_at=datetime.now(UTC),
            )
        )
        self._follow(item.contract.conId, symbol)

    def on_pnl_single(self, p: Any) -> None:
        """``pnlSingleEvent``: the live market value and P&L of one position."""
        symbol = self._symbols.get(p.conId)
        held = None if symbol is None else self._held.get(symbol)
        if held is None or p.account != self._account:
            return
        value = number(p.value)
        price = held.market_price
        if value is not None and held.quantity:
            price = value / held.quantity
        self._put(
            replace(
                held,
                market_value=value if value is not None else held.market_value,
                market_price=price,
                unrealized=number(p.unrealizedPnL),
                realized=number(p.realizedPnL),
                daily=number(p.dailyPnL),
                received_at=datetime.now(UTC),
            )
        )

    def on_value(self, v: Any) -> None:
        """``accountValueEvent``: keep the numeric values in :data:`FOLLOWED_VALUES`."""
        value = number(v.value)
        if value is None or v.currency in ("", "BASE"):
            return  # text values, and the per-currency breakdown
        if v.account == self._account and v.tag in FOLLOWED_VALUES:
            self._status.set_account_value(v.tag, value, v.currency, datetime.now(UTC))


def follow_valuations(ib: IB, account: str, status: BrokerStatus) -> None:
    """Seed and follow the holdings' valuations and the equity of ``account`` (none
    without an account)."""
    if not account:
        return
    valuations = Valuations(ib, account, status)
    # Plain functions, not bound methods: eventkit holds a bound method's object weakly,
    # and nothing else holds this one.
    ib.positionEvent += lambda p: valuations.on_position(p)
    ib.updatePortfolioEvent += lambda item: valuations.on_portfolio(item)
    ib.pnlSingleEvent += lambda p: valuations.on_pnl_single(p)
    ib.accountValueEvent += lambda v: valuations.on_value(v)
    valuations.seed()


def renew_position_pnl(ib: IB, account: str) -> None:
    """After 1101 (data lost): ask again for every position's P&L subscription."""
    for pnl in ib.pnlSingle(account):
        ib.cancelPnLSingle(pnl.account, pnl.modelCode, pnl.conId)
        ib.reqPnLSingle(pnl.account, pnl.modelCode, pnl.conId)
