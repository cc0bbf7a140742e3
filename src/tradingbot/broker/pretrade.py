"""The pre-trade risk check inside the broker's order path: no caller can bypass it.

:meth:`PreTrade.passes` runs in the broker actor for every *new* order, after the gates
(kill switch, reconciliation) and the idempotency check (a retry of a known key gets its
order back unchecked), before the ORDER event is recorded. It judges the order with
:func:`tradingbot.trading.risk.check_order` on inputs that survive restarts:

- **position**: the gateway's position of the symbol (:mod:`tradingbot.broker.account`)
  plus our orders in it still working (open or unresolved), so a burst of orders cannot
  each pass against the same old position;
- **last quote**: the market data stream's last price (else the bid/ask midpoint). A
  symbol without one gets a one-off snapshot from the gateway (``reqTickers``) first;
  the actor does not wait for it: the answer comes back as :class:`QuoteFetched` and
  the order goes on from there, through the gates and the idempotency check again (so a
  retry of its key meanwhile still makes one order). A market order that reduces a
  position needs no quote;
- **open orders**: our orders not final (:class:`BrokerStatus`, adopted again at sync);
- **orders in the last minute**: the :class:`RiskBook` (seeded at start from the stored
  ORDER events).

A refusal answers the caller with :class:`RiskRefused` and is a durable RISK WARNING
event (``source=risk``, context ``event=risk_refused``, the limit, value, maximum and the
order); nothing is sent. A limit used at or above ``warn_at`` is a RISK WARNING
(``event=risk_nearing``) once per day per limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TYPE_CHECKING, Any

import structlog
from ib_async import IB, Stock

from tradingbot.broker.errors import BrokerConnectionError, RiskRefused
from tradingbot.broker.market import MarketData, Quote
from tradingbot.broker.messages import OrderRequest, PlaceOrder, QuoteFetched
from tradingbot.broker.parsing import number
from tradingbot.broker.riskbook import RiskBook
from tradingbot.broker.status import BrokerStatus
from tradingbot.events import RISK, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.trading.risk import LimitUse, OrderIntent, RiskInputs, check_order

if TYPE_CHECKING:
    from tradingbot.broker.client import Client

log = structlog.get_logger("tradingbot.broker")

RISK_SOURCE = "risk"  # the source of the RISK events of the pre-trade checks


def price_of(
    last: float | None, bid: float | None, ask: float | None, close: float | None = None
) -> float | None:
    """The price an order is judged at: the last trade, else the midpoint, else the close."""
    if last is not None and last > 0:
        return last
    if bid is not None and ask is not None and bid > 0 and ask > 0:
        return (bid + ask) / 2
    return close if close is not None and close > 0 else None


def quote_price(quote: Quote | None) -> float | None:
    return None if quote is None else price_of(quote.last, quote.bid, quote.ask)


async def snapshot_price(ib: IB, request: OrderRequest, timeout_s: float) -> float | None:
    """A one-off snapshot of the symbol's quote (on the loop); None when none came."""
    contract = Stock(request.symbol, request.exchange, request.currency)
    qualified = await asyncio.wait_for(ib.qualifyContractsAsync(contract), timeout_s)
    if not qualified or qualified[0] is None or not contract.conId:
        return None  # the gateway has no such contract
    tickers = await asyncio.wait_for(ib.reqTickersAsync(contract), timeout_s)
    if not tickers:
        return None
    t = tickers[0]
    return price_of(number(t.last), number(t.bid), number(t.ask), number(t.close))


def describe(request: OrderRequest) -> str:
    price = "" if request.limit_price is None else f" {request.limit_price:g}"
    return f"{request.side} {request.quantity:g} {request.symbol} {request.order_type}{price}"


class PreTrade:
    """The checks of one broker incarnation (see the module docstring)."""

    def __init__(
        self,
        book: RiskBook,
        status: BrokerStatus,
        market: MarketData,
        recorder: EventRecorder | None,
        timeout_s: float,
    ) -> None:
        self._book = book
        self._status = status
        self._market = market
        self._recorder = recorder
        self._timeout_s = timeout_s
        self._awaiting: dict[int, PlaceOrder] = {}  # orders awaiting a quote, by id()
        # Retries of an order whose quote is being fetched: answered after it, by key.
        self._fetching: dict[str, list[PlaceOrder]] = {}

    def passes(
        self,
        message: PlaceOrder,
        order_ref: str,
        client: Client,
        fetched: QuoteFetched | None = None,
    ) -> bool:
        """Judge a new order; False when it was refused (the caller is answered) or its
        quote is being fetched (it goes on with :class:`QuoteFetched`)."""
        request = message.request
        intent = OrderIntent(
            symbol=request.symbol,
            side=request.side,
            quantity=request.quantity,
            limit_price=request.limit_price,
        )
        symbol = request.symbol
        position = self._status.position(symbol) + self._status.working(symbol)
        if fetched is None:
            price = quote_price(self._market.quote(symbol))
            market_close = intent.limit_price is None and intent.reduces(position)
            if price is None and not market_close:
                self._fetch(message, order_ref, client)
                return False
        else:
            price = fetched.price
        inputs = RiskInputs(
            position=position,
            last_price=price,
            open_orders=self._status.open_orders(),
            orders_last_minute=self._book.orders_last_minute(),
        )
        verdict = check_order(intent, inputs, self._book.limits)
        if verdict.refused is not None:
            self._refuse(message, order_ref, verdict.refused, verdict.reason or "", inputs)
            return False
        for use in verdict.nearing:
            if self._book.first_today(use.limit):
                self._nearing(use, request, order_ref)
        self._book.placed()
        return True

    def _fetch(self, message: PlaceOrder, order_ref: str, client: Client) -> None:
        """Ask the gateway for a snapshot; the order goes on when it answers. A retry of
        an order whose quote is already being fetched waits for that order instead."""
        self._awaiting[id(message)] = message
        if order_ref in self._fetching:
            self._fetching[order_ref].append(message)
            return
        self._fetching[order_ref] = []
        epoch, tell = client.epoch, client.tell

        def done(future: concurrent.futures.Future[float | None]) -> None:  # loop thread
            error: str | None = None
            price: float | None = None
            if future.cancelled():
                error = "the connection closed"
            elif (exc := future.exception()) is not None:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                price = future.result()
            if error is not None:
                log.warning("broker_snapshot_failed", symbol=message.request.symbol, error=error)
            if not tell(QuoteFetched(epoch, message, order_ref, price)):
                _fail(message, BrokerConnectionError("the broker stopped meanwhile"))

        try:
            coro = snapshot_price(client.ib, message.request, self._timeout_s)
            client.loop.submit(coro).add_done_callback(done)
        except RuntimeError as exc:  # the loop stopped meanwhile
            self._awaiting.pop(id(message), None)
            self._fetching.pop(order_ref, None)
            _fail(message, exc)

    def arrived(self, message: PlaceOrder, order_ref: str) -> list[PlaceOrder]:
        """The quote of ``message`` arrived: it no longer waits. Returns the retries of
        the same order that waited for it (to be placed again once it was handled)."""
        self._awaiting.pop(id(message), None)
        retries = self._fetching.pop(order_ref, [])
        for retry in retries:
            self._awaiting.pop(id(retry), None)
        return retries

    def abandon(self, why: str) -> None:
        """The incarnation ends: orders still waiting for their quote are refused."""
        for message in self._awaiting.values():
            _fail(message, BrokerConnectionError(f"order not sent: {why}"))
        self._awaiting.clear()
        self._fetching.clear()

    def _refuse(
        self,
        message: PlaceOrder,
        order_ref: str,
        use: LimitUse,
        reason: str,
        inputs: RiskInputs,
    ) -> None:
        request = message.request
        text = f"order refused by risk limit {use.limit}: {reason} ({describe(request)})"
        context = {
            "event": "risk_refused",
            **self._use(use),
            "reason": reason,
            "order": request.event_fields(order_ref),
            "position": inputs.position,
            "last_price": inputs.last_price,
            "open_orders": inputs.open_orders,
            "orders_last_minute": inputs.orders_last_minute,
        }
        log.warning("broker_order_refused_by_risk", limit=use.limit, order=describe(request))
        self._write(text, context, order_ref, durable=True)
        message.reply.set_exception(
            RiskRefused(text, limit=use.limit, value=use.value, maximum=use.maximum)
        )

    def _nearing(self, use: LimitUse, request: OrderRequest, order_ref: str) -> None:
        share = f"{use.share:.0%}"
        text = f"risk limit {use.limit} nearing: {use.describe()} ({share}) by {describe(request)}"
        context = {
            "event": "risk_nearing",
            **self._use(use),
            "day": self._book.today().isoformat(),
            "order": request.event_fields(order_ref),
        }
        self._write(text, context, order_ref, durable=False)

    def _use(self, use: LimitUse) -> dict[str, Any]:
        return {
            "limit": use.limit,
            "value": round(use.value, 4),
            "maximum": use.maximum,
            "share": round(use.share, 4),
            "account": self._book.account,
        }

    def _write(self, text: str, context: dict[str, Any], order_ref: str, *, durable: bool) -> None:
        if self._recorder is None:
            return
        fields: dict[str, Any] = {
            "severity": Severity.WARNING,
            "source": RISK_SOURCE,
            "trade_id": order_ref,
            "context": context,
        }
        try:
            if durable:
                self._recorder.record_durable(RISK, text, **fields)
            else:
                self._recorder.record(RISK, text, **fields)
        except EventNotDurable as exc:  # the order is refused all the same
            log.error("risk_event_not_stored", error=str(exc), event=context["event"])


def _fail(message: PlaceOrder, error: BaseException) -> None:
    """Answer ``message`` with ``error`` unless it was answered already (the loop thread
    and an ending incarnation may both try)."""
    try:
        message.reply.set_exception(error)
    except concurrent.futures.InvalidStateError:
        log.info("broker_order_already_answered", order=describe(message.request))
