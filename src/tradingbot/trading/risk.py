"""Pre-trade risk limits: the checks every new order passes, whoever places it.

:func:`check_order` is pure: given an order, the inputs it is judged on (the symbol's
position, the last quote, open orders, orders in the last minute) and the limits, it
returns the refusal (the first limit the order would break) and the limits it would
bring near (at or above ``warn_at`` of the maximum). :func:`check_daily_loss` says
whether the day's P&L crossed the daily loss limit (which trips the kill switch).

The rules, in the order they are checked:

1. **price band** (fat-finger guard): a limit price further than ``price_band_pct`` from
   the last quote is refused. A market order needs a quote: without one its value
   cannot be checked, so it is refused. (A limit order without a quote is valued at
   its limit price; its band cannot be checked.)
2. **max order notional**: quantity x price (the limit price, else the last quote).
3. **max position** (shares and notional), only for an order that *increases* the
   absolute position of its symbol.
4. **max open orders** and **max orders per minute** (both count this order).

An order that **reduces** a position without flipping it (a stop-out, a flatten's
closing order) is judged by rule 1 for a limit price only: no other limit refuses it,
and a market order that reduces needs no quote. Such orders bound themselves: the
position they are judged against counts the orders still working, so a second close of
the same shares no longer reduces anything and is judged like any other order.

Enforced in the broker's order path (:mod:`tradingbot.broker.pretrade`), with the limits
of the ``TRADINGBOT_RISK_*`` settings (:meth:`RiskLimits.from_config`); the daily loss
limit is watched by :mod:`tradingbot.trading.loss_limit`. See ``docs/risk.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradingbot.config import Config


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """The limits; units in the names (``_usd`` is in the account's currency)."""

    max_position_shares: float
    max_position_usd: float
    max_order_usd: float
    max_open_orders: int
    max_orders_per_minute: int
    price_band_pct: float
    daily_loss_limit_usd: float
    warn_at: float = 0.8  # a limit used this much (or more) is reported once a day

    @classmethod
    def from_config(cls, config: Config) -> RiskLimits:
        """The limits of the ``TRADINGBOT_RISK_*`` settings."""
        return cls(
            max_position_shares=config.risk_max_position_shares,
            max_position_usd=config.risk_max_position_usd,
            max_order_usd=config.risk_max_order_usd,
            max_open_orders=config.risk_max_open_orders,
            max_orders_per_minute=config.risk_max_orders_per_minute,
            price_band_pct=config.risk_price_band_pct,
            daily_loss_limit_usd=config.risk_daily_loss_limit_usd,
            warn_at=config.risk_warn_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """What the risk checks see of an order."""

    symbol: str
    side: str  # BUY or SELL
    quantity: float
    limit_price: float | None = None  # None: a market order

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side == "BUY" else -self.quantity

    def reduces(self, position: float) -> bool:
        """True when the order brings ``position`` towards zero without flipping it."""
        after = position + self.signed_quantity
        return abs(after) < abs(position) and after * position >= 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskInputs:
    """The state an order is judged on (read from durable or broker state, not memory)."""

    position: float  # signed shares of the order's symbol (with our working orders)
    last_price: float | None  # the last quote (None: no quote yet)
    open_orders: int  # our orders not yet final
    orders_last_minute: int  # our orders placed in the last 60 s


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitUse:
    """One limit and how much of it an order (or the day) uses."""

    limit: str
    value: float
    maximum: float

    @property
    def share(self) -> float:
        return 0.0 if self.maximum <= 0 else abs(self.value) / self.maximum

    def describe(self) -> str:
        return f"{self.limit} {self.value:,.2f} of {self.maximum:,.2f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskVerdict:
    """The outcome of :func:`check_order`: ``refused`` is the broken limit, if any."""

    refused: LimitUse | None
    reason: str | None
    nearing: tuple[LimitUse, ...]

    @property
    def allowed(self) -> bool:
        return self.refused is None


def check_order(order: OrderIntent, inputs: RiskInputs, limits: RiskLimits) -> RiskVerdict:
    """Judge ``order``; see the module docstring for the rules and their order."""
    uses: list[LimitUse] = []
    reducing = order.reduces(inputs.position)
    price = order.limit_price if order.limit_price is not None else inputs.last_price
    if price is None and not reducing:
        return _refuse(
            LimitUse(limit="price_band", value=0.0, maximum=limits.price_band_pct),
            f"no quote for {order.symbol}: the order's value cannot be checked",
        )
    if order.limit_price is not None and inputs.last_price:
        away = abs(order.limit_price - inputs.last_price) / inputs.last_price * 100.0
        band = LimitUse(limit="price_band_pct", value=away, maximum=limits.price_band_pct)
        if away > limits.price_band_pct:
            return _refuse(
                band,
                f"limit {order.limit_price:g} is {away:.1f}% from the last quote "
                f"{inputs.last_price:g} (band {limits.price_band_pct:g}%)",
            )
        uses.append(band)
    if reducing or price is None:
        return RiskVerdict(refused=None, reason=None, nearing=())
    notional = order.quantity * price
    order_use = LimitUse(limit="max_order_usd", value=notional, maximum=limits.max_order_usd)
    if notional > limits.max_order_usd:
        return _refuse(order_use, f"order value {notional:,.2f} above {limits.max_order_usd:,.2f}")
    uses.append(order_use)
    after = inputs.position + order.signed_quantity
    if abs(after) > abs(inputs.position):
        shares = LimitUse(
            limit="max_position_shares", value=abs(after), maximum=limits.max_position_shares
        )
        if abs(after) > limits.max_position_shares:
            return _refuse(
                shares,
                f"position {after:g} {order.symbol} above {limits.max_position_shares:g} shares",
            )
        value = LimitUse(
            limit="max_position_usd", value=abs(after) * price, maximum=limits.max_position_usd
        )
        if abs(after) * price > limits.max_position_usd:
            return _refuse(
                value,
                f"position value {abs(after) * price:,.2f} {order.symbol} above "
                f"{limits.max_position_usd:,.2f}",
            )
        uses += [shares, value]
    open_use = LimitUse(
        limit="max_open_orders", value=inputs.open_orders + 1, maximum=limits.max_open_orders
    )
    if inputs.open_orders + 1 > limits.max_open_orders:
        return _refuse(open_use, f"{inputs.open_orders} orders open (max {limits.max_open_orders})")
    rate_use = LimitUse(
        limit="max_orders_per_minute",
        value=inputs.orders_last_minute + 1,
        maximum=limits.max_orders_per_minute,
    )
    if inputs.orders_last_minute + 1 > limits.max_orders_per_minute:
        return _refuse(
            rate_use,
            f"{inputs.orders_last_minute} orders in the last minute "
            f"(max {limits.max_orders_per_minute})",
        )
    uses += [open_use, rate_use]
    nearing = tuple(use for use in uses if use.share >= limits.warn_at)
    return RiskVerdict(refused=None, reason=None, nearing=nearing)


def check_daily_loss(daily_pnl: float, limits: RiskLimits) -> tuple[LimitUse, bool]:
    """The day's loss against the limit, and whether it is crossed (which trips the switch)."""
    loss = max(0.0, -daily_pnl)
    use = LimitUse(limit="daily_loss_limit_usd", value=loss, maximum=limits.daily_loss_limit_usd)
    return use, loss >= limits.daily_loss_limit_usd


def _refuse(use: LimitUse, reason: str) -> RiskVerdict:
    return RiskVerdict(refused=use, reason=reason, nearing=())
