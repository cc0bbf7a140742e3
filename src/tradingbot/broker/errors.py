"""What a caller of the broker can be refused with, and why."""

from __future__ import annotations


class BrokerNotReady(RuntimeError):
    """The broker is not synced with the gateway: the request is refused, not queued."""


class TradingBlocked(RuntimeError):
    """New orders are refused until reconciliation passes (or an operator accepts it)."""


class UnknownOrder(LookupError):
    """No order with this id (``orderRef``) was placed through this broker."""


class UnknownSymbol(LookupError):
    """The gateway has no contract for this symbol."""


class BrokerConnectionError(ConnectionError):
    """The gateway could not be reached or synced, or the connection was lost."""
