"""The broker side of the bot: connection state shared with health checks, and the
asyncio loop thread the ``ib_async`` client lives on.

The actor itself is :class:`tradingbot.actors.broker.BrokerActor`.
"""

from tradingbot.broker.loop import LoopThread
from tradingbot.broker.status import (
    BrokerNotReady,
    BrokerStatus,
    BrokerView,
    ConnectionState,
    OrderRecord,
    TradingBlocked,
    UnknownOrder,
)

__all__ = [
    "BrokerNotReady",
    "BrokerStatus",
    "BrokerView",
    "ConnectionState",
    "LoopThread",
    "OrderRecord",
    "TradingBlocked",
    "UnknownOrder",
]
