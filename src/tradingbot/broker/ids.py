"""Our identities at the gateway: order references and TRADE event ids.

Every order the bot places carries ``orderRef`` = ``TB-<key>``: the prefix is how the
broker adopts its own orders again after a restart and how reconciliation tells the
bot's orders from anyone else's. A TRADE event's id is derived from the execution id, so
a fill reported again (after a reconnect, a restart, or by reconciliation) is stored once.
This module is the only place either rule is written (and the form of a strategy's
reference: :func:`strategy_of`).
"""

from __future__ import annotations

import re
import uuid

ORDER_REF_PREFIX = "TB-"
# A strategy's order: ``TB-<strategy id>.<16 hex digits>`` (tradingbot.strategies).
_STRATEGY_ORDER_REF = re.compile(r"TB-([a-z][a-z0-9_-]{0,22})\.[0-9a-f]{16}")
TRADE_EVENT_NAMESPACE = uuid.UUID("5f0c3f9e-8a4b-4c1d-9a57-2b1e0d6c7a10")


def order_ref_for(client_order_id: str | None) -> str:
    """The ``orderRef`` of an order: from the caller's idempotency key, or a fresh one."""
    if client_order_id is not None:
        return f"{ORDER_REF_PREFIX}{client_order_id}"
    return f"{ORDER_REF_PREFIX}{uuid.uuid4().hex[:16]}"


def is_bot_order(order_ref: str) -> bool:
    """Was the order with this ``orderRef`` placed by the bot (this run or an earlier one)?"""
    return order_ref.startswith(ORDER_REF_PREFIX)


def client_order_id_of(order_ref: str) -> str:
    """The idempotency key inside one of our order references."""
    return order_ref.removeprefix(ORDER_REF_PREFIX)


def strategy_of(order_ref: str) -> str | None:
    """The strategy that placed the order with this ``orderRef`` (None: not a strategy's).

    Strategies derive their client order ids as ``<strategy id>.<16 hex digits>``, so an
    order adopted after a restart is still known as that strategy's.
    """
    match = _STRATEGY_ORDER_REF.fullmatch(order_ref)
    return None if match is None else match.group(1)


def trade_event_id(exec_id: str) -> uuid.UUID:
    """The TRADE event's id for one execution: the same on every report, in every run.

    The events table keeps one row per id, so a fill reported again (after a reconnect,
    a restart or by reconciliation) is stored once.
    """
    return uuid.uuid5(TRADE_EVENT_NAMESPACE, exec_id)
