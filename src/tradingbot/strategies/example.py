"""The shipped example: a long-only moving-average crossover on sampled last prices.

**An example of the strategy API, not trading advice.** Every ``sample_s`` seconds it
samples each watchlist symbol's last price; when the ``fast`` average crosses above the
``slow`` one by at least ``min_gap_bps`` it buys about ``order_usd`` worth (1 to
``max_shares`` shares) of a symbol it does not hold; when it crosses below, it closes
the position. At most ``max_orders_per_minute`` orders, and one per symbol every
``cooldown_s``, so it stays far inside the default risk limits. While trading is
blocked (paused, reconciling) it still records its decisions; the broker refuses their
orders and it tries again at the next cross.

On with ``TRADINGBOT_BROKER=sim`` and no ``TRADINGBOT_STRATEGIES``: the simulator's
prices move continuously, so a fresh ``./scripts/run`` shows signals, orders and fills
within a minute or two. Parameters can be set in the ``[ma_cross]`` table of
``TRADINGBOT_STRATEGY_CONFIG``. It takes the account's positions in its watchlist as its
own (rebuilt from the broker at every start).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from tradingbot.strategies.api import (
    Context,
    OrderRefused,
    OrderUpdate,
    ParamValue,
    StrategyBase,
)


class MovingAverageCrossover(StrategyBase):
    """Buy on a golden cross, sell on a death cross (see the module docstring)."""

    strategy_id: ClassVar[str] = "ma_cross"
    params: ClassVar[Mapping[str, ParamValue]] = {
        "sample_s": 1.0,  # seconds between price samples
        "fast": 4,  # samples in the fast average
        "slow": 12,  # samples in the slow average
        "min_gap_bps": 1.0,  # how far (basis points) the averages must part to count
        "order_usd": 1000.0,  # about this much per buy
        "max_shares": 10,
        "cooldown_s": 30.0,  # per symbol, between two orders
        "max_orders_per_minute": 4,
    }

    def __init__(self) -> None:
        self._prices: dict[str, deque[float]] = {}
        self._above: dict[str, bool] = {}
        self._held: dict[str, float] = {}
        self._pending: set[str] = set()
        self._last_order: dict[str, float] = {}
        self._sent: deque[float] = deque()

    def on_start(self, ctx: Context) -> None:
        """Rebuild from the broker: what is held, which orders are still open."""
        self._held = {symbol: p.quantity for symbol, p in ctx.positions().items()}
        self._pending = {order.symbol for order in ctx.open_orders()}
        slow = int(ctx.params["slow"])
        self._prices = {symbol: deque(maxlen=slow) for symbol in ctx.watchlist}
        ctx.schedule(float(ctx.params["sample_s"]))
        ctx.log.info("ma_cross_started", held=self._held, pending=sorted(self._pending), slow=slow)

    def on_timer(self, ctx: Context, now: datetime) -> None:
        """Sample every symbol; act on each crossover."""
        for symbol, prices in self._prices.items():
            quote = ctx.quote(symbol)
            price = None if quote is None else quote.last or quote.bid
            if price is None or not math.isfinite(price) or price <= 0:
                continue
            prices.append(price)
            if len(prices) == prices.maxlen:
                self._consider(ctx, symbol, prices)

    def on_order_status(self, ctx: Context, order: OrderUpdate) -> None:
        """An order ended: its fills change what is held."""
        self._pending.discard(order.symbol)
        signed = order.filled if order.side == "BUY" else -order.filled
        self._held[order.symbol] = self._held.get(order.symbol, 0.0) + signed

    def _consider(self, ctx: Context, symbol: str, prices: deque[float]) -> None:
        fast_n = int(ctx.params["fast"])
        recent = list(prices)
        fast = sum(recent[-fast_n:]) / fast_n
        slow = sum(recent) / len(recent)
        gap_bps = (fast - slow) / slow * 10_000
        threshold = float(ctx.params["min_gap_bps"])
        if abs(gap_bps) < threshold:
            return  # too close to call: keep the previous side
        above = gap_bps > 0
        crossed = self._above.get(symbol) not in (None, above)
        self._above[symbol] = above
        if not crossed or symbol in self._pending or not self._may_order(ctx, symbol):
            return
        held = self._held.get(symbol, 0.0)
        inputs = {
            "fast_ma": round(fast, 4),
            "slow_ma": round(slow, 4),
            "gap_bps": round(gap_bps, 2),
            "price": recent[-1],
        }
        strength = min(1.0, abs(gap_bps) / 10.0)
        if above and held <= 0:
            budget = float(ctx.params["order_usd"])
            cap = int(ctx.params["max_shares"])
            quantity = max(1, min(cap, int(budget // recent[-1])))
            signal = ctx.signal(symbol, "BUY", strength, "fast average crossed above", inputs)
            self._sent_order(symbol)
            try:
                ctx.buy(symbol, quantity, signal=signal)
            except OrderRefused as exc:  # a gate or a risk limit: try at the next cross
                self._pending.discard(symbol)
                ctx.log.warning("ma_cross_order_refused", symbol=symbol, error=str(exc))
        elif not above and held > 0:
            signal = ctx.signal(symbol, "FLAT", strength, "fast average crossed below", inputs)
            self._sent_order(symbol)
            try:
                if ctx.close(symbol, signal=signal) is None:  # flat after all: nothing sent
                    self._pending.discard(symbol)
                    self._held[symbol] = 0.0
            except OrderRefused as exc:
                self._pending.discard(symbol)
                ctx.log.warning("ma_cross_order_refused", symbol=symbol, error=str(exc))

    def _may_order(self, ctx: Context, symbol: str) -> bool:
        # No look at ctx.trading_blocked(): a cross while paused is still a decision (a
        # SIGNAL, so the events show what it would have done) and the broker's gate
        # refuses its order; the limits below keep such refusals few.
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        limit = int(ctx.params["max_orders_per_minute"])
        cooldown = float(ctx.params["cooldown_s"])
        recent = self._last_order.get(symbol)
        return len(self._sent) < limit and (recent is None or now - recent >= cooldown)

    def _sent_order(self, symbol: str) -> None:
        now = time.monotonic()
        self._sent.append(now)
        self._last_order[symbol] = now
        self._pending.add(symbol)
