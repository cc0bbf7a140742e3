"""The Interactive Brokers adapter: one package, one role per module.

==================  ===================================================================
``api``             what callers use: place/cancel orders, queries, market data
``actor``           the broker actor: connection lifecycle, message dispatch, health
``orders``          how an order is placed and cancelled; ORDER and TRADE events
``streams``         market data subscriptions of the actor
``queries``         positions, account values, executions, open/completed orders
``client``          the ``ib_async`` client: connect, callbacks → messages, 1101 resync
``parsing``         ``ib_async`` objects → our dataclasses (fills, statuses, quotes, ...)
``messages``        every message the actor receives (commands and reports)
``answers``         query answers (``Position``, ``Execution``, ``GatewayOrder``, ...)
``status``          connection and order state shared with health checks and callers
``market``          subscriptions and latest quotes, shared across incarnations
``ids``             the ``TB-`` order reference and TRADE event ids
``errors``          what a caller can be refused with
``settings``        where the gateway is and how closely it is watched
``loop``            the asyncio loop thread the client lives on
``iblog``           ``ib_async``'s log levels, corrected for what the broker handles
==================  ===================================================================

Nothing here imports from ``actors``, ``web``, ``control`` or ``runtime``
(``tests/test_import_boundaries.py``).
"""

from tradingbot.broker.actor import BrokerActor
from tradingbot.broker.answers import AccountValue, Execution, GatewayOrder, Position
from tradingbot.broker.api import (
    account_values,
    cancel_order,
    completed_orders,
    executions,
    open_orders,
    place_order,
    positions,
    subscribe_market_data,
    unsubscribe_market_data,
)
from tradingbot.broker.errors import (
    BrokerConnectionError,
    BrokerNotReady,
    TradingBlocked,
    UnknownOrder,
    UnknownSymbol,
)
from tradingbot.broker.ids import ORDER_REF_PREFIX, trade_event_id
from tradingbot.broker.loop import LoopThread
from tradingbot.broker.market import MarketData, Quote
from tradingbot.broker.messages import OrderRequest
from tradingbot.broker.settings import BrokerSettings
from tradingbot.broker.status import (
    FINAL_STATUSES,
    BrokerStatus,
    BrokerView,
    ConnectionState,
    OrderRecord,
)

__all__ = [
    "FINAL_STATUSES",
    "ORDER_REF_PREFIX",
    "AccountValue",
    "BrokerActor",
    "BrokerConnectionError",
    "BrokerNotReady",
    "BrokerSettings",
    "BrokerStatus",
    "BrokerView",
    "ConnectionState",
    "Execution",
    "GatewayOrder",
    "LoopThread",
    "MarketData",
    "OrderRecord",
    "OrderRequest",
    "Position",
    "Quote",
    "TradingBlocked",
    "UnknownOrder",
    "UnknownSymbol",
    "account_values",
    "cancel_order",
    "completed_orders",
    "executions",
    "open_orders",
    "place_order",
    "positions",
    "subscribe_market_data",
    "trade_event_id",
    "unsubscribe_market_data",
]
