"""The :class:`~tradingbot.strategies.api.Context` of one strategy actor incarnation.

Every order goes through the broker's idempotent ``place_order`` with a client order id
derived from the strategy id, the signal and a key (:func:`client_order_id`), so the
same decision placed again — by a restarted strategy, or a retry — finds its order and
sends nothing new. The order names its strategy and signal; the broker writes both into
the order's ORDER and TRADE events. Each decision is recorded as a durable SIGNAL event
before any order it causes: an order needs a signal.

The calls block the strategy's own thread (the broker answers from its loop thread, so
the broker actor is never waiting on a strategy); each has a timeout.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from tradingbot.broker import (
    Bar,
    BrokerNotReady,
    BrokerStatus,
    ConnectionState,
    MarketData,
    OrderRequest,
    Position,
    Quote,
    TradingBlocked,
    UnknownOrder,
)
from tradingbot.broker import api as broker_api
from tradingbot.broker.ids import strategy_of
from tradingbot.events import SIGNAL
from tradingbot.events.recorder import EventRecorder
from tradingbot.strategies.api import (
    SIGNAL_SIDES,
    Order,
    OrderId,
    OrderRefused,
    Signal,
    SignalId,
)
from tradingbot.tellable import Tellable

MIN_TIMER_S = 0.05
BARS_KEPT = 1000  # completed bars kept per symbol for ``bars(symbol, n)``


def client_order_id(strategy_id: str, signal_id: SignalId, basis: str) -> str:
    """The idempotency key of an order: ``<strategy>.<16 hex digits>`` (at most 40
    characters), the same for the same strategy, signal and basis (the caller's key, or
    side, symbol and quantity)."""
    digest = hashlib.sha256(f"{signal_id}|{basis}".encode()).hexdigest()[:16]
    return f"{strategy_id}.{digest}"


def owns(strategy_id: str, order_ref: str) -> bool:
    """Was the order with this ``orderRef`` placed by strategy ``strategy_id``?"""
    return strategy_of(order_ref) == strategy_id


class StrategyContext:
    """The strategy's window on the bot (see :class:`tradingbot.strategies.api.Context`)."""

    def __init__(
        self,
        *,
        strategy_id: str,
        params: Mapping[str, Any],
        broker: Tellable,
        status: BrokerStatus,
        market: MarketData,
        recorder: EventRecorder,
        source: str,
        timeout_s: float,
        schedule: Callable[[float], None],
        last_signals: Mapping[str, Signal],
    ) -> None:
        self.strategy_id = strategy_id
        self.watchlist: tuple[str, ...] = ()
        self.params = params
        self.log = structlog.get_logger("tradingbot.strategies").bind(strategy_id=strategy_id)
        self._broker = broker
        self._status = status
        self._market = market
        self._recorder = recorder.bind(source=source, strategy_id=strategy_id)
        self._timeout_s = timeout_s
        self._schedule = schedule
        self._signals: dict[str, Signal] = dict(last_signals)
        self._bars: dict[str, deque[Bar]] = {}
        self.activity = {"signals": 0, "orders": 0, "refused": 0}  # this incarnation's

    # -- reading ----------------------------------------------------------------------

    def quote(self, symbol: str) -> Quote | None:
        return self._market.quote(symbol)

    def bars(self, symbol: str, n: int) -> Sequence[Bar]:
        kept = self._bars.get(symbol)
        if not kept or n <= 0:
            return []
        return list(kept)[-n:]

    def add_bar(self, bar: Bar) -> None:
        """Keep a completed bar (live or warm-up); the host calls this before ``on_bar``."""
        self._bars.setdefault(bar.symbol, deque(maxlen=BARS_KEPT)).append(bar)

    def positions(self) -> Mapping[str, Position]:
        found = broker_api.positions(self._broker, self._status, self._timeout_s)
        return {p.symbol: p for p in found if p.quantity != 0}

    def position(self, symbol: str) -> float:
        held = self.positions().get(symbol)
        return 0.0 if held is None else held.quantity

    def open_orders(self) -> Sequence[Order]:
        found = broker_api.open_orders(self._broker, self._status, self._timeout_s)
        orders = []
        for o in found:
            if not owns(self.strategy_id, o.order_ref):
                continue
            record = self._status.order(o.order_ref)
            orders.append(
                Order(
                    id=o.order_ref,
                    symbol=o.symbol,
                    side=o.side,
                    quantity=o.quantity,
                    order_type=o.order_type,
                    limit_price=o.limit_price,
                    status=o.status,
                    filled=o.filled,
                    signal_id=None if record is None else record.signal_id,
                )
            )
        return orders

    def last_signals(self) -> Mapping[str, Signal]:
        return dict(self._signals)

    def trading_blocked(self) -> str | None:
        state = self._status.view().state
        if state != ConnectionState.SYNCED:
            return f"the broker is {state.value}, not synced"
        return self._status.trading_blocked()

    # -- deciding ---------------------------------------------------------------------

    def signal(
        self,
        symbol: str,
        side: str,
        strength: float,
        reason: str,
        inputs: Mapping[str, Any] | None = None,
    ) -> SignalId:
        if side not in SIGNAL_SIDES:
            raise ValueError(f"side: expected one of {', '.join(SIGNAL_SIDES)}, got {side!r}")
        if not isinstance(strength, int | float) or not math.isfinite(strength):
            raise ValueError(f"strength: expected a finite number, got {strength!r}")
        if not reason:
            raise ValueError("reason: say why (it is stored with the signal)")
        inputs = dict(inputs or {})
        event = self._recorder.record_durable(
            SIGNAL,
            f"{side} {symbol}: {reason}",
            context={
                "symbol": symbol,
                "side": side,
                "strength": float(strength),
                "reason": reason,
                "inputs": inputs,
            },
        )
        signal = Signal(
            id=str(event.id),
            symbol=symbol,
            side=side,
            strength=float(strength),
            reason=reason,
            inputs=inputs,
            at=event.timestamp,
        )
        self._signals[symbol] = signal
        self.activity["signals"] += 1
        return signal.id

    def buy(
        self,
        symbol: str,
        quantity: float,
        *,
        limit: float | None = None,
        signal: SignalId | None = None,
        key: str | None = None,
    ) -> OrderId:
        return self._place("BUY", symbol, quantity, limit, signal, key)

    def sell(
        self,
        symbol: str,
        quantity: float,
        *,
        limit: float | None = None,
        signal: SignalId | None = None,
        key: str | None = None,
    ) -> OrderId:
        return self._place("SELL", symbol, quantity, limit, signal, key)

    def close(
        self,
        symbol: str,
        quantity: float | None = None,
        *,
        limit: float | None = None,
        signal: SignalId | None = None,
        key: str | None = None,
    ) -> OrderId | None:
        try:
            held = self.position(symbol)
        except BrokerNotReady as exc:
            raise OrderRefused(f"close {symbol} refused: {exc}") from exc
        if held == 0:
            return None
        amount = abs(held) if quantity is None else min(abs(quantity), abs(held))
        side = "SELL" if held > 0 else "BUY"
        return self._place(side, symbol, amount, limit, signal, key)

    def cancel(self, order_id: OrderId) -> None:
        if not owns(self.strategy_id, order_id):
            raise OrderRefused(f"cancel refused: {order_id} is not an order of {self.strategy_id}")
        try:
            broker_api.cancel_order(self._broker, self._status, order_id, self._timeout_s)
        except (BrokerNotReady, UnknownOrder, ValueError) as exc:
            raise OrderRefused(f"cancel {order_id} refused: {exc}") from exc

    def schedule(self, every_s: float) -> None:
        if not every_s >= MIN_TIMER_S:
            raise ValueError(f"every_s: at least {MIN_TIMER_S:g} s, got {every_s!r}")
        self._schedule(every_s)

    def _place(
        self,
        side: str,
        symbol: str,
        quantity: float,
        limit: float | None,
        signal: SignalId | None,
        key: str | None,
    ) -> OrderId:
        if signal is None:
            last = self._signals.get(symbol)
            if last is None:
                raise ValueError(
                    f"no signal for {symbol}: record the decision with ctx.signal(...) first"
                )
            signal = last.id
        basis = key if key is not None else f"{side}:{symbol}:{quantity:g}:{limit}"
        try:
            request = OrderRequest(
                symbol,
                side,
                quantity,
                order_type="MKT" if limit is None else "LMT",
                limit_price=limit,
                client_order_id=client_order_id(self.strategy_id, signal, basis),
                strategy_id=self.strategy_id,
                signal_id=signal,
            )
        except ValueError as exc:
            self.activity["refused"] += 1
            raise OrderRefused(f"order refused: {exc}") from exc
        try:
            order_id = broker_api.place_order(self._broker, self._status, request, self._timeout_s)
        except (TradingBlocked, BrokerNotReady) as exc:
            self.activity["refused"] += 1
            raise OrderRefused(str(exc)) from exc
        self.activity["orders"] += 1
        return order_id
