"""The ``ib_async`` client of one broker actor incarnation: connect it, turn its events into
messages for the actor, ask again for what the gateway says it lost.

The client lives on its own loop thread (:class:`~tradingbot.broker.loop.LoopThread`) and is
touched only there. Its callbacks never call the actor: they build plain messages
(:mod:`tradingbot.broker.parsing`) and *tell* them, tagged with the incarnation's
``epoch``. One exception is deliberate: an order status is also applied to the shared
:class:`~tradingbot.broker.status.BrokerStatus` on the loop thread, so a caller waiting
for an order's outcome wakes without an actor hop (the actor then logs and records it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ib_async import IB, Ticker

from tradingbot.broker.errors import BrokerConnectionError
from tradingbot.broker.loop import LoopThread
from tradingbot.broker.messages import ConnectionLost, GatewayNotice, QuotesArrived
from tradingbot.broker.orders import applied
from tradingbot.broker.parsing import fill_reported, order_status, quote
from tradingbot.broker.settings import BrokerSettings
from tradingbot.broker.status import BrokerStatus

CONNECTIVITY_LOST = 1100
CONNECTIVITY_RESTORED_DATA_LOST = 1101
CONNECTIVITY_RESTORED = 1102
NOTICES = (CONNECTIVITY_LOST, CONNECTIVITY_RESTORED_DATA_LOST, CONNECTIVITY_RESTORED)

Tell = Callable[[Any], bool]  # tell the incarnation a message; False once it stopped
Deliver = Callable[[Any], None]  # tell the broker, this incarnation or the next


@dataclass(frozen=True, slots=True)
class Client:
    """A connected client: its loop, the ``IB`` object, and how to tell its actor.

    ``tell`` reaches this incarnation only; ``deliver`` whichever incarnation runs, or
    the next one once this one ended: for a fact that must outlive the connection (the
    end of an order that was never sent).
    """

    loop: LoopThread
    ib: IB
    epoch: str
    tell: Tell
    deliver: Deliver


async def connect(settings: BrokerSettings) -> IB:
    """Connect and sync a new client (on the loop); raise with the gateway's own reason."""
    s = settings
    ib = IB()
    errors: list[str] = []

    def on_connect_error(req_id: int, code: int, text: str, contract: Any) -> None:
        errors.append(f"error {code}: {text}")

    ib.errorEvent += on_connect_error
    try:
        # On any failure (or cancellation) connectAsync disconnects the client itself.
        await ib.connectAsync(
            s.host,
            s.port,
            clientId=s.client_id,
            timeout=s.connect_timeout_s,
            account=s.account or "",
        )
    except (OSError, RuntimeError, ValueError) as exc:  # TimeoutError is an OSError
        if errors:  # what the gateway said (326: client id in use) is the real reason
            raise BrokerConnectionError(f"{errors[-1]} ({type(exc).__name__})") from exc
        raise
    finally:
        ib.errorEvent -= on_connect_error
    return ib


def listen(ib: IB, tell: Tell, epoch: str, status: BrokerStatus, closing: threading.Event) -> None:
    """Turn the client's events into messages for the actor (call on the loop thread).

    ``closing`` is set by the actor before it disconnects on purpose: that disconnect is
    not a lost connection.
    """

    def on_disconnected() -> None:
        if not closing.is_set():
            tell(ConnectionLost(epoch))

    def on_error(req_id: int, code: int, text: str, contract: Any) -> None:
        if code in NOTICES:
            tell(GatewayNotice(epoch, code, text))

    def on_status(trade: Any) -> None:
        if trade.order.orderRef:
            tell(applied(status, order_status(trade)))

    def on_commission(trade: Any, fill: Any, report: Any) -> None:
        tell(fill_reported(trade.order.orderRef, fill, report))

    def on_tickers(tickers: set[Ticker]) -> None:
        now = time.monotonic()
        tell(QuotesArrived(epoch, tuple(quote(t, now) for t in tickers)))

    ib.disconnectedEvent += on_disconnected
    ib.pendingTickersEvent += on_tickers
    ib.errorEvent += on_error
    ib.orderStatusEvent += on_status
    ib.commissionReportEvent += on_commission


async def request_lost_data(ib: IB, account: str | None) -> tuple[int, int]:
    """After 1101 (connectivity restored, data lost): ask again for what may be missing.

    In the order ``ib_async`` syncs at connect. Open orders: every status that changed
    meanwhile is reported again (``orderStatusEvent``). Executions: a fill of our order
    the client missed arrives with its commission report (``commissionReportEvent``: one
    TRADE event, its id derived from the execution id; fills already seen are not new).
    The account-updates subscription is renewed, since the gateway dropped it. Returns
    how many open orders and executions the gateway reported.
    """
    trades = await ib.reqOpenOrdersAsync()
    fills = await ib.reqExecutionsAsync()
    accounts = ib.managedAccounts()
    subscribed = account or (accounts[0] if len(accounts) == 1 else "")
    if subscribed:
        await ib.reqAccountUpdatesAsync(subscribed)
    return len(trades), len(fills)
