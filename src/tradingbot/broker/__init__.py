"""The Interactive Brokers adapter: one package, one role per module.

==================  ===================================================================
``api``             what callers use: place/cancel orders, queries, market data
``actor``           the broker actor: connection lifecycle, message dispatch, health
``orders``          how an order is placed and cancelled; ORDER and TRADE events
``pretrade``        the pre-trade risk check every new order passes; RISK events
``riskbook``        the risk limits and what the checks remember across restarts
``account``         the account's positions and P&L as the gateway streams them
``flatten``         cancel-all (global cancel) and flatten (reduce-only closing orders)
``streams``         market data subscriptions of the actor
``barstreams``      bar subscriptions of the actor: real-time bars, folded into longer bars
``stream_starts``   what both share: start once for all who wait, request again, cancel
``bars``            the ``Bar``, bar subscriptions (shared), the 5 s → n s aggregator
``queries``         positions, portfolio, account values, executions, orders, bars
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
from tradingbot.broker.answers import (
    AccountPnL,
    AccountValue,
    CancelAllResult,
    Execution,
    GatewayOrder,
    PortfolioItem,
    Position,
)
from tradingbot.broker.api import (
    account_values,
    cancel_all,
    cancel_order,
    completed_orders,
    executions,
    historical_bars,
    open_orders,
    place_order,
    portfolio,
    positions,
    subscribe_bars,
    subscribe_market_data,
    unsubscribe_bars,
    unsubscribe_market_data,
)
from tradingbot.broker.bars import Bar
from tradingbot.broker.errors import (
    BarsUnavailable,
    BrokerConnectionError,
    BrokerNotReady,
    NotReducing,
    RiskRefused,
    TradingBlocked,
    UnknownOrder,
    UnknownSymbol,
)
from tradingbot.broker.flatten import ClosingOrder, FlattenResult, flatten
from tradingbot.broker.ids import ORDER_REF_PREFIX, trade_event_id
from tradingbot.broker.loop import LoopThread
from tradingbot.broker.market import MarketData, Quote
from tradingbot.broker.messages import OrderRequest
from tradingbot.broker.riskbook import RiskBook
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
    "AccountPnL",
    "AccountValue",
    "Bar",
    "BarsUnavailable",
    "BrokerActor",
    "BrokerConnectionError",
    "BrokerNotReady",
    "BrokerSettings",
    "BrokerStatus",
    "BrokerView",
    "CancelAllResult",
    "ClosingOrder",
    "ConnectionState",
    "Execution",
    "FlattenResult",
    "GatewayOrder",
    "LoopThread",
    "MarketData",
    "NotReducing",
    "OrderRecord",
    "OrderRequest",
    "PortfolioItem",
    "Position",
    "Quote",
    "RiskBook",
    "RiskRefused",
    "TradingBlocked",
    "UnknownOrder",
    "UnknownSymbol",
    "account_values",
    "cancel_all",
    "cancel_order",
    "completed_orders",
    "executions",
    "flatten",
    "historical_bars",
    "open_orders",
    "place_order",
    "portfolio",
    "positions",
    "subscribe_bars",
    "subscribe_market_data",
    "trade_event_id",
    "unsubscribe_bars",
    "unsubscribe_market_data",
]
