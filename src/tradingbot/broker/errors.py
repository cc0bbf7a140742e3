"""What a caller of the broker can be refused with, and why."""

from __future__ import annotations


class BrokerNotReady(RuntimeError):
    """The broker is not synced with the gateway: the request is refused, not queued."""


class TradingBlocked(RuntimeError):
    """New orders are refused until reconciliation passes (or an operator accepts it)."""


class RiskRefused(TradingBlocked):
    """A pre-trade risk limit refused the order (nothing was sent); the message names the
    limit, the value and the order, and ``limit``/``value``/``maximum`` carry them."""

    def __init__(self, message: str, *, limit: str, value: float, maximum: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.maximum = maximum


class NotReducing(TradingBlocked):
    """A reduce-only order that would increase or flip the position: refused, not sent."""


class UnknownOrder(LookupError):
    """No order with this id (``orderRef``) was placed through this broker."""


class UnknownSymbol(LookupError):
    """The gateway has no contract for this symbol."""


class BarsUnavailable(RuntimeError):
    """The gateway refused a historical bar request (no data, no permission, pacing)."""


class BrokerConnectionError(ConnectionError):
    """The gateway could not be reached or synced, or the connection was lost."""
