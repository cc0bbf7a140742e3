"""Strategies: the user's trading rules as supervised actors, with a small typed API.

==============  ======================================================================
``api``         what a strategy author uses: ``Strategy``, ``StrategyBase``, ``Context``,
                and the plain data (``Quote``, ``Bar``, ``Signal``, ``Fill``, ...)
``context``     the context of one strategy incarnation: signals, orders, queries
``loader``      ``TRADINGBOT_STRATEGIES`` / ``_STRATEGY_CONFIG`` / ``_WATCHLIST``, checked
``actor``       one strategy's actor: waits for the gates, rebuilds, runs the callbacks
``host``        the ``strategies`` supervisor, event routing, the crash-loop report
``example``     the shipped example (a moving-average crossover; an example, not advice)
==============  ======================================================================

Guide: ``docs/strategies.md``.
"""

from tradingbot.strategies.api import (
    Bar,
    Context,
    Fill,
    Order,
    OrderId,
    OrderRefused,
    OrderUpdate,
    ParamValue,
    Position,
    Quote,
    Signal,
    SignalId,
    Strategy,
    StrategyBase,
)

__all__ = [
    "Bar",
    "Context",
    "Fill",
    "Order",
    "OrderId",
    "OrderRefused",
    "OrderUpdate",
    "ParamValue",
    "Position",
    "Quote",
    "Signal",
    "SignalId",
    "Strategy",
    "StrategyBase",
]
