"""The broker actor: one ``ib_async.IB`` connection to TWS / IB Gateway (or the simulator).

The client lives on a dedicated asyncio loop thread (:class:`~tradingbot.broker.LoopThread`)
created in :meth:`BrokerActor.setup` and stopped in teardown and after a crash, with
``ib.disconnect()`` before the loop closes. The actor touches the client only by
submitting coroutines to that loop, uses only ``*Async`` requests and never
``util.startLoop()``. Client callbacks (disconnect, errors, order status, commission
reports) run on the loop thread and only *tell* the actor plain messages.

Connection states (``disconnected → connecting → synced``, ``degraded`` on error 1100
or a missed heartbeat probe) are written to a shared :class:`~tradingbot.broker.BrokerStatus`
(read by the health check), published in the tree snapshot, and turned into SYSTEM
events. There is no reconnect loop here: a failed connect, and a lost connection
(``disconnectedEvent``, or ``max_probe_misses`` probes in a row without an answer),
crash the actor; the supervisor's backoff restarts it, and the new incarnation
connects again.

Orders: :func:`place_order` and :func:`cancel_order` (any thread) refuse at once with
:class:`~tradingbot.broker.BrokerNotReady` unless synced; otherwise the actor records a
durable ORDER event, then sends the order with ``orderRef`` = our order id, and returns
that id (``TB-<client_order_id>`` when the caller gave an idempotency key: a known key
returns the known order and sends nothing). Each fill's commission report becomes one
durable TRADE event (its id derived from the execution id: stored once). A lost connection
or a crash marks every order not known to be final ``Unresolved`` until the gateway
reports it again after the reconnect (by ``orderRef``). At every sync the orders with a
``TB-`` reference the gateway reports are adopted, so keys hold across process restarts.
While reconciliation has not passed (``BrokerStatus.trading_blocked``) new orders are
refused with :class:`~tradingbot.broker.TradingBlocked`.

Queries (:func:`positions`, :func:`account_values`, :func:`executions`,
:func:`open_orders`, :func:`completed_orders`) are fresh gateway requests run on the
loop with a timeout, never answered empty on failure; market data
(:func:`subscribe_market_data`) is told to subscribers as :class:`Quote` objects and
requested again after every reconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import pykka
import structlog
from ib_async import IB, LimitOrder, MarketOrder, Stock, Ticker

from tradingbot.broker import (
    BrokerNotReady,
    BrokerStatus,
    ConnectionState,
    LoopThread,
    TradingBlocked,
    UnknownOrder,
)
from tradingbot.broker.iblog import correct_ib_log_levels
from tradingbot.broker.market import MarketData, Quote, QuoteSink
from tradingbot.broker.queries import (
    AccountValue,
    Execution,
    GatewayOrder,
    Position,
    cached_account_values,
    fetch_completed_orders,
    fetch_executions,
    fetch_open_orders,
    fetch_positions,
    number,
    side_of,
)
from tradingbot.broker.status import TERMINAL_STATUSES, UNRESOLVED, OrderRecord
from tradingbot.events import ORDER, SYSTEM, TRADE, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.supervision import SupervisedActor, tell_if_alive

log = structlog.get_logger(__name__)

CONNECTIVITY_LOST = 1100
CONNECTIVITY_RESTORED_DATA_LOST = 1101
CONNECTIVITY_RESTORED = 1102
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9 ._-]{0,19}")
ORDER_REF_PREFIX = "TB-"  # every order this bot places; adopted again after a restart
TRADE_EVENT_NAMESPACE = uuid.UUID("5f0c3f9e-8a4b-4c1d-9a57-2b1e0d6c7a10")


def trade_event_id(exec_id: str) -> uuid.UUID:
    """The TRADE event's id for one execution: the same on every report, in every run.

    The events table keeps one row per id, so a fill reported again (after a reconnect,
    a restart or by reconciliation) is stored once.
    """
    return uuid.uuid5(TRADE_EVENT_NAMESPACE, exec_id)


class UnknownSymbol(LookupError):
    """The gateway has no contract for this symbol."""


class BrokerConnectionError(ConnectionError):
    """The gateway could not be reached or synced, or the connection was lost."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Where the gateway is and how closely the connection is watched."""

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 1
    account: str | None = None
    connect_timeout_s: float = 10.0
    probe_interval_s: float = 5.0
    probe_timeout_s: float = 5.0
    max_probe_misses: int = 3
    request_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order a strategy asks for: ``side`` BUY/SELL, ``order_type`` MKT/LMT.

    ``client_order_id`` is an optional idempotency key chosen by the caller: the order's
    id (its ``orderRef``) becomes ``TB-<client_order_id>``, and placing again with a key
    whose order is already known returns that order's id without sending anything.
    """

    symbol: str
    side: str
    quantity: float
    order_type: str = "MKT"
    limit_price: float | None = None
    exchange: str = "SMART"
    currency: str = "USD"
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("symbol: required")
        if self.side not in ("BUY", "SELL"):
            raise ValueError(f"side: expected BUY or SELL, got {self.side!r}")
        if not self.quantity > 0:
            raise ValueError(f"quantity: must be > 0, got {self.quantity!r}")
        if self.order_type not in ("MKT", "LMT"):
            raise ValueError(f"order_type: expected MKT or LMT, got {self.order_type!r}")
        if self.order_type == "LMT" and not (self.limit_price and self.limit_price > 0):
            raise ValueError("limit_price: a LMT order needs a positive limit price")
        if self.client_order_id is not None and not CLIENT_ORDER_ID.fullmatch(self.client_order_id):
            raise ValueError("client_order_id: 1-40 characters from letters, digits and _ . : -")


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Command: place ``request``; ``reply`` resolves to our order id or a refusal."""

    request: OrderRequest
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Command: cancel our order ``order_ref``; ``reply`` resolves to it or a refusal."""

    order_ref: str
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


QUERIES = ("positions", "account_values", "executions", "open_orders", "completed_orders")


@dataclass(frozen=True, slots=True)
class Query:
    """Command: ask the gateway ``what`` (one of :data:`QUERIES`); ``reply`` gets the list."""

    what: str
    reply: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    since: datetime | None = None  # executions: only those at or after this moment


@dataclass(frozen=True, slots=True, eq=False)
class Subscribe:
    """Command: tell ``sink`` every new :class:`Quote` of ``symbol``."""

    symbol: str
    sink: QuoteSink
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True, eq=False)
class Unsubscribe:
    """Command: stop telling ``sink`` quotes of ``symbol``."""

    symbol: str
    sink: QuoteSink
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class QuotesArrived:
    """New quotes from the client's ``pendingTickersEvent`` (one network batch)."""

    epoch: str
    quotes: tuple[Quote, ...]


@dataclass(frozen=True, slots=True)
class SendFailed:
    """An order's send failed on the loop thread: publish its ``Unresolved`` status."""

    order_ref: str


@dataclass(frozen=True, slots=True)
class Probe:
    """Timer: send a heartbeat request (``reqCurrentTime``) to the gateway."""


# Connection messages carry the ``epoch`` of the incarnation they are about: messages
# left in a crashed incarnation's inbox reach its replacement, which ignores them.


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """Setup could not connect: crash, so that the supervisor's backoff retries."""

    epoch: str
    error: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The probe's outcome (from the loop thread): round trip in ms, or the error."""

    epoch: str
    roundtrip_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The client's ``disconnectedEvent`` fired (not during our own disconnect)."""

    epoch: str


@dataclass(frozen=True, slots=True)
class GatewayNotice:
    """Error 1100, 1101 or 1102 from the gateway."""

    epoch: str
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class OrderStatusChanged:
    """An order status report. When ``applied`` (on the loop thread, already in the
    status), ``resolved`` says it settled an unresolved order and ``final`` that it
    made the order final."""

    order_ref: str
    status: str
    filled: float
    avg_fill_price: float
    order_id: int
    perm_id: int
    applied: bool = False
    resolved: bool = False
    final: bool = False


@dataclass(frozen=True, slots=True)
class FillReported:
    """A commission report arrived for an execution of one of our orders."""

    order_ref: str
    symbol: str
    side: str
    quantity: float
    price: float
    commission: float | None
    currency: str
    realized_pnl: float | None
    order_id: int
    perm_id: int
    exec_id: str
    time: float | None = None  # execution time (epoch seconds), when the gateway sent it
    reconciled: bool = False  # found at (re)connect, not reported live


class Sink(Protocol):
    def tell(self, message: Any) -> None: ...


def _request(broker: Sink, status: BrokerStatus, message: Any, what: str, timeout_s: float) -> Any:
    """Tell the actor ``message`` unless the broker is not synced; wait for its reply."""
    state = status.view().state
    if state != ConnectionState.SYNCED:
        raise BrokerNotReady(f"{what} refused: the broker is {state.value}, not synced")
    broker.tell(message)
    # Not reply.result(timeout): a TimeoutError *answered* by the actor (the gateway did
    # not answer a query) must not be mistaken for the actor not answering.
    done, _ = concurrent.futures.wait([message.reply], timeout_s)
    if not done:
        raise TimeoutError(f"the broker did not answer within {timeout_s:g} s")
    return message.reply.result()


def place_order(
    broker: Sink, status: BrokerStatus, request: OrderRequest, timeout_s: float = 30.0
) -> str:
    """Place an order through the broker actor; return our order id (its ``orderRef``).

    Raises :class:`BrokerNotReady` at once when the broker is not synced (nothing is
    queued), :class:`TradingBlocked` for a new order while reconciliation has not passed
    (a retry of a known key still returns its order), ``EventNotDurable`` when the ORDER
    event could not be stored (nothing is sent), ``TimeoutError`` when the actor did not
    answer in time (the outcome is then unknown; look the order up by reference before
    retrying).
    """
    blocked = status.trading_blocked()
    key = request.client_order_id
    if blocked is not None and (key is None or status.order(f"TB-{key}") is None):
        raise TradingBlocked(f"order refused: trading is blocked ({blocked})")
    result: str = _request(broker, status, PlaceOrder(request), "order", timeout_s)
    return result


def cancel_order(broker: Sink, status: BrokerStatus, order_id: str, timeout_s: float = 30.0) -> str:
    """Cancel one of our orders by its id (``orderRef``); return the id once the cancel is sent.

    Raises :class:`BrokerNotReady` at once when the broker is not synced,
    :class:`UnknownOrder` when no order with this id was placed through this broker,
    ``ValueError`` when the order is final (filled, cancelled) or not open at the gateway,
    ``EventNotDurable`` when the cancel's ORDER event could not be stored (nothing is
    sent), ``TimeoutError`` when the actor did not answer in time. The outcome arrives as
    an order status (``Cancelled``) in ``status.order(order_id)``.
    """
    state = status.view().state
    if state != ConnectionState.SYNCED:
        raise BrokerNotReady(f"cancel refused: the broker is {state.value}, not synced")
    if status.order(order_id) is None:
        raise UnknownOrder(f"unknown order id {order_id!r}")
    result: str = _request(broker, status, CancelOrder(order_id), "cancel", timeout_s)
    return result


def positions(broker: Sink, status: BrokerStatus, timeout_s: float = 30.0) -> list[Position]:
    """Every position at the gateway (of the configured account), freshly requested.

    Raises :class:`BrokerNotReady` when not synced and ``TimeoutError`` (or the
    gateway's error) when the query fails: a failed query is never an empty answer.
    """
    result: list[Position] = _request(broker, status, Query("positions"), "positions", timeout_s)
    return result


def account_values(
    broker: Sink, status: BrokerStatus, timeout_s: float = 30.0
) -> list[AccountValue]:
    """The account's values (``NetLiquidation``, ``TotalCashValue``, ...) as streamed."""
    what = "account_values"
    result: list[AccountValue] = _request(broker, status, Query(what), what, timeout_s)
    return result


def executions(
    broker: Sink, status: BrokerStatus, timeout_s: float = 30.0, since: datetime | None = None
) -> list[Execution]:
    """The executions the gateway reports (it keeps them across sessions for the day);
    only those executed at or after ``since`` (to the second) when given."""
    what = "executions"
    query = Query(what, since=since)
    result: list[Execution] = _request(broker, status, query, what, timeout_s)
    return result


def open_orders(broker: Sink, status: BrokerStatus, timeout_s: float = 30.0) -> list[GatewayOrder]:
    """Every open order at the gateway, ours and anyone else's (by ``order_ref``)."""
    what = "open_orders"
    result: list[GatewayOrder] = _request(broker, status, Query(what), what, timeout_s)
    return result


def completed_orders(
    broker: Sink, status: BrokerStatus, timeout_s: float = 30.0
) -> list[GatewayOrder]:
    """Orders the gateway completed (filled, cancelled, inactive): where reconciliation
    looks an order up individually before declaring it missing."""
    what = "completed_orders"
    result: list[GatewayOrder] = _request(broker, status, Query(what), what, timeout_s)
    return result


def subscribe_market_data(
    broker: Sink, status: BrokerStatus, symbol: str, sink: QuoteSink, timeout_s: float = 30.0
) -> str:
    """Tell ``sink`` a :class:`Quote` on every price or size change of ``symbol``.

    The subscription survives reconnects (the broker subscribes again after each one).
    Raises ``ValueError`` for a malformed symbol, :class:`UnknownSymbol` when the
    gateway has no such contract, :class:`BrokerNotReady` when not synced.
    """
    if not SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol: 1-20 upper-case letters, digits and ' ._-', got {symbol!r}")
    result: str = _request(broker, status, Subscribe(symbol, sink), "subscribe", timeout_s)
    return result


def unsubscribe_market_data(
    broker: Sink, status: BrokerStatus, symbol: str, sink: QuoteSink, timeout_s: float = 30.0
) -> str:
    """Stop telling ``sink`` quotes of ``symbol`` (the last one out cancels the stream)."""
    result: str = _request(broker, status, Unsubscribe(symbol, sink), "unsubscribe", timeout_s)
    return result


def _fill_reported(
    order_ref: str, fill: Any, report: Any, *, reconciled: bool = False
) -> FillReported:
    """Plain data from an ib_async fill and its commission report (on the loop thread)."""
    execution = fill.execution
    when = getattr(fill, "time", None)
    return FillReported(
        order_ref=order_ref or execution.orderRef or "",
        symbol=fill.contract.symbol,
        side=side_of(execution.side),
        quantity=float(execution.shares),
        price=float(execution.price),
        commission=number(report.commission),
        currency=report.currency or "",
        realized_pnl=number(report.realizedPNL),
        order_id=int(execution.orderId),
        perm_id=int(execution.permId),
        exec_id=execution.execId,
        time=when.timestamp() if isinstance(when, datetime) else None,
        reconciled=reconciled,
    )


def _quote(ticker: Ticker, now: float) -> Quote:
    """Plain data from an ib_async ticker (on the loop thread)."""
    return Quote(
        symbol=ticker.contract.symbol if ticker.contract is not None else "",
        bid=number(ticker.bid),
        ask=number(ticker.ask),
        last=number(ticker.last),
        bid_size=number(ticker.bidSize),
        ask_size=number(ticker.askSize),
        last_size=number(ticker.lastSize),
        volume=number(ticker.volume),
        received_at=now,
        ticks=len(ticker.ticks),
    )


def _order_status(trade: Any) -> OrderStatusChanged:
    """Plain data from an ib_async trade's order status (on the loop thread)."""
    order, st = trade.order, trade.orderStatus
    return OrderStatusChanged(
        order_ref=order.orderRef,
        status=st.status,
        filled=float(st.filled),
        avg_fill_price=float(st.avgFillPrice),
        order_id=int(order.orderId),
        perm_id=int(order.permId),
    )


def _synced_state(ib: IB) -> list[OrderRecord | OrderStatusChanged | FillReported]:
    """After a (re)connect: our orders, their statuses and every fill with its commission.

    Orders are matched by ``orderRef`` (old Trade objects are orphaned by a reconnect);
    each of our orders (``TB-`` prefix) comes first as an :class:`OrderRecord`, so that
    an order placed by an earlier run of the bot is known again (its idempotency key
    still holds). A fill that happened while we were away is reported here; its TRADE
    event id is derived from the execution id, so it is stored once however often seen.
    """
    trades = [t for t in ib.trades() if t.order.orderRef.startswith(ORDER_REF_PREFIX)]
    found: list[OrderRecord | OrderStatusChanged | FillReported] = []
    for trade in trades:
        order, contract, st = trade.order, trade.contract, trade.orderStatus
        ref = order.orderRef
        # Adopted with the gateway's status as it is now: an order that ended while the
        # bot was away is not an end seen live (reconciliation reports and records it).
        found.append(
            OrderRecord(
                order_ref=ref,
                symbol=contract.symbol,
                side=order.action,
                quantity=float(order.totalQuantity),
                order_type=order.orderType,
                limit_price=number(order.lmtPrice) if order.orderType == "LMT" else None,
                status=st.status or "PendingSubmit",
                filled=float(st.filled),
                avg_fill_price=float(st.avgFillPrice),
                order_id=int(order.orderId),
                perm_id=int(order.permId),
                client_order_id=ref.removeprefix(ORDER_REF_PREFIX),
            )
        )
    found.extend(_order_status(trade) for trade in trades)
    for fill in ib.fills():
        report = fill.commissionReport
        if report is not None and report.execId:
            found.append(_fill_reported("", fill, report, reconciled=True))
    return found


class BrokerActor(SupervisedActor):
    """Owns the gateway connection; crashes (and is restarted with backoff) when it is lost."""

    def __init__(
        self,
        settings: BrokerSettings,
        status: BrokerStatus,
        recorder: EventRecorder | None = None,
        market: MarketData | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._status = status
        self._market = market if market is not None else MarketData()
        self._contracts: dict[str, Any] = {}  # symbol -> subscribed contract (loop thread only)
        self._recorder = recorder.bind(source="broker") if recorder is not None else None
        self._loop: LoopThread | None = None
        self._ib: IB | None = None
        self._closing = False
        self._probe_in_flight = False
        self._misses = 0
        self._upstream_lost = False
        self._epoch = uuid.uuid4().hex

    # -- lifecycle --------------------------------------------------------------------------

    def setup(self) -> None:
        correct_ib_log_levels()  # gateway notices the broker handles are not ERRORs
        s = self._settings
        self._set_state(
            ConnectionState.CONNECTING,
            host=s.host,
            port=s.port,
            client_id=s.client_id,
        )
        loop = self._loop = LoopThread(name=f"ib-loop-{s.client_id}")
        loop.start()
        try:
            self._ib = loop.run(self._connect(), s.connect_timeout_s + 5.0)
        except (OSError, RuntimeError, ValueError) as exc:  # TimeoutError is an OSError
            error = f"connect to {s.host}:{s.port} failed: {type(exc).__name__}: {exc}"
            self._set_state(ConnectionState.DISCONNECTED, last_error=error)
            self._shutdown_client()
            log.warning("broker_connect_failed", error=error)
            # Not raised here: a failed start would abort the whole tree at boot (the
            # gateway's nightly restart window must not stop the bot from starting).
            # Crashing on the first message hands the retry to the supervisor's backoff.
            self.actor_ref.tell(ConnectFailed(self._epoch, error))
            return
        view = self._set_state(
            ConnectionState.SYNCED,
            last_ok=self._status.now(),
            last_error=None,
            connects=self._status.view().connects + 1,
        )
        self._system(Severity.INFO, f"broker synced with the gateway at {s.host}:{s.port}")
        log.info("broker_synced", host=s.host, port=s.port, connects=view.connects)
        ib = self._ib
        adopted = 0
        for fact in loop.call(lambda: _synced_state(ib), s.request_timeout_s):
            if isinstance(fact, OrderRecord):
                if self._status.order(fact.order_ref) is None:
                    self._status.put_order(fact)  # placed by an earlier run of the bot
                    adopted += 1
            elif self._status.order(fact.order_ref) is not None:
                # Only our own orders' fills: anyone else's are reconciliation's business.
                self.actor_ref.tell(fact)
        if adopted:
            log.info("broker_orders_adopted", count=adopted)
        self._resubscribe()
        self.every(s.probe_interval_s, Probe())

    def _resubscribe(self) -> None:
        """After a (re)connect: request market data again for every subscribed symbol."""
        for symbol in self._market.symbols():
            try:
                self._start_stream(symbol)
            except (OSError, RuntimeError, LookupError) as exc:
                log.warning("broker_resubscribe_failed", symbol=symbol, error=str(exc))

    async def _connect(self) -> IB:
        s = self._settings
        ib = IB()
        ref, epoch = self.actor_ref, self._epoch
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

        def tell(message: Any) -> None:
            tell_if_alive(ref, message)

        def on_disconnected() -> None:
            if not self._closing:
                tell(ConnectionLost(epoch))

        def on_error(req_id: int, code: int, text: str, contract: Any) -> None:
            if code in (CONNECTIVITY_LOST, CONNECTIVITY_RESTORED, CONNECTIVITY_RESTORED_DATA_LOST):
                tell(GatewayNotice(epoch, code, text))

        def on_status(trade: Any) -> None:
            if trade.order.orderRef:
                # Applied here, on the loop thread: a caller waiting for the outcome
                # wakes now; the actor only logs and publishes.
                report = _order_status(trade)
                resolved, final = self._apply(report)
                tell(replace(report, applied=True, resolved=resolved, final=final))

        def on_commission(trade: Any, fill: Any, report: Any) -> None:
            tell(_fill_reported(trade.order.orderRef, fill, report))

        def on_tickers(tickers: set[Ticker]) -> None:
            now = time.monotonic()
            tell(QuotesArrived(epoch, tuple(_quote(t, now) for t in tickers)))

        ib.disconnectedEvent += on_disconnected
        ib.pendingTickersEvent += on_tickers
        ib.errorEvent += on_error
        ib.orderStatusEvent += on_status
        ib.commissionReportEvent += on_commission
        return ib

    def teardown(self, reason: str) -> None:
        self._shutdown_client()
        self._set_state(ConnectionState.DISCONNECTED, last_error=f"stopped ({reason})")

    def on_crash(self, failure: Any) -> None:
        self._shutdown_client()
        self._mark_unresolved("the broker actor crashed")

    def _mark_unresolved(self, why: str) -> None:
        """Orders sent but not known to be final stay unresolved until the gateway answers."""
        refs = self._status.mark_unresolved()
        if refs:
            log.warning("broker_orders_unresolved", order_refs=refs, why=why)

    def _shutdown_client(self) -> None:
        """Disconnect the client on its loop, then stop and join the loop (idempotent)."""
        self._closing = True
        loop, ib = self._loop, self._ib
        self._loop = self._ib = None
        if loop is None:
            return
        loop.stop(before=None if ib is None else ib.disconnect)

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        stale = isinstance(
            message, ConnectFailed | ProbeResult | ConnectionLost | GatewayNotice | QuotesArrived
        )
        if stale and message.epoch != self._epoch:
            return None  # about an earlier incarnation's connection
        match message:
            case ConnectFailed():
                raise BrokerConnectionError(message.error)
            case Probe():
                return self._probe()
            case ProbeResult():
                return self._probe_done(message)
            case ConnectionLost():
                return self._lost("the gateway closed the connection")
            case GatewayNotice():
                return self._notice(message)
            case PlaceOrder():
                return self._place(message)
            case CancelOrder():
                return self._cancel(message)
            case OrderStatusChanged():
                return self._order_status(message)
            case FillReported():
                return self._fill(message)
            case SendFailed():
                return self._publish()
            case QuotesArrived():
                return self._quotes(message)
            case Query():
                return self._query(message)
            case Subscribe():
                return self._subscribe(message)
            case Unsubscribe():
                return self._unsubscribe(message)
            case _:
                return super().on_receive(message)

    def _probe(self) -> None:
        if self._probe_in_flight or self._loop is None or self._ib is None:
            return
        self._probe_in_flight = True
        ib, timeout_s, ref = self._ib, self._settings.probe_timeout_s, self.actor_ref
        epoch = self._epoch

        async def probe() -> float:
            started = time.perf_counter()
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), timeout_s)
            return (time.perf_counter() - started) * 1000

        def done(future: concurrent.futures.Future[float]) -> None:
            if future.cancelled():
                result = ProbeResult(epoch, None, "cancelled")
            elif (exc := future.exception()) is not None:
                result = ProbeResult(epoch, None, f"{type(exc).__name__}: {exc}".rstrip(": "))
            else:
                result = ProbeResult(epoch, round(future.result(), 3), None)
            tell_if_alive(ref, result)

        self._loop.submit(probe()).add_done_callback(done)

    def _probe_done(self, result: ProbeResult) -> None:
        self._probe_in_flight = False
        state = self._status.view().state
        if result.roundtrip_ms is not None:
            self._misses = 0
            changes: dict[str, Any] = {
                "last_ok": self._status.now(),
                "last_roundtrip_ms": result.roundtrip_ms,
            }
            if state == ConnectionState.DEGRADED and not self._upstream_lost:
                self._set_state(ConnectionState.SYNCED, last_error=None, **changes)
                self._system(Severity.INFO, "broker synced again: the gateway answers")
            else:
                self._status.update(**changes)
                self._publish()
            return
        self._misses += 1
        error = f"heartbeat probe {self._misses} failed: {result.error or 'no answer'}"
        log.warning("broker_probe_failed", misses=self._misses, error=error)
        if self._misses >= self._settings.max_probe_misses:
            self._lost(f"the gateway did not answer {self._misses} heartbeat probes")
        if state == ConnectionState.SYNCED:
            self._set_state(ConnectionState.DEGRADED, last_error=error)
            self._system(Severity.WARNING, f"broker degraded: {error}")
        else:
            self._status.update(last_error=error)
            self._publish()

    def _lost(self, why: str) -> None:
        self._mark_unresolved(why)
        self._set_state(ConnectionState.DISCONNECTED, last_error=why)
        self._system(Severity.WARNING, f"broker connection lost: {why}")
        raise BrokerConnectionError(why)

    def _notice(self, notice: GatewayNotice) -> None:
        state = self._status.view().state
        if notice.code == CONNECTIVITY_LOST:
            self._upstream_lost = True
            if state == ConnectionState.SYNCED:
                self._set_state(
                    ConnectionState.DEGRADED, last_error=f"{notice.code}: {notice.text}"
                )
                self._system(Severity.WARNING, f"broker degraded: {notice.text}")
            return
        self._upstream_lost = False
        if notice.code == CONNECTIVITY_RESTORED_DATA_LOST and self._loop is not None:
            ib = self._ib
            if ib is not None:

                async def resync() -> None:
                    await ib.reqExecutionsAsync()

                self._loop.submit(resync())
        if state == ConnectionState.DEGRADED and self._misses == 0:
            self._set_state(ConnectionState.SYNCED, last_error=None)
            self._system(Severity.INFO, f"broker synced again: {notice.text}")

    def _refused_unless_synced(self, reply: concurrent.futures.Future[str], what: str) -> bool:
        """Answer ``reply`` with BrokerNotReady (and return True) unless the broker is synced."""
        state = self._status.view().state
        if state == ConnectionState.SYNCED and self._loop is not None and self._ib is not None:
            return False
        reply.set_exception(
            BrokerNotReady(f"{what} refused: the broker is {state.value}, not synced")
        )
        return True

    def _place(self, message: PlaceOrder) -> None:
        reply, request = message.reply, message.request
        if self._refused_unless_synced(reply, "order"):
            return
        blocked = self._status.trading_blocked()
        key = request.client_order_id
        if blocked is not None and (key is None or self._status.order(f"TB-{key}") is None):
            reply.set_exception(TradingBlocked(f"order refused: trading is blocked ({blocked})"))
            return
        assert self._loop is not None
        assert self._ib is not None
        key = request.client_order_id
        order_ref = f"TB-{key}" if key is not None else f"TB-{uuid.uuid4().hex[:16]}"
        known = self._status.order(order_ref)
        if known is not None:  # a retry: the order exists (live, unresolved or final)
            log.info("broker_order_known", order_ref=order_ref, status=known.status)
            reply.set_result(order_ref)
            return
        price = "" if request.limit_price is None else f" {request.limit_price:g}"
        text = f"{request.side} {request.quantity:g} {request.symbol} {request.order_type}{price}"
        context = {
            "order_ref": order_ref,
            "symbol": request.symbol,
            "side": request.side,
            "quantity": request.quantity,
            "order_type": request.order_type,
            "limit_price": request.limit_price,
            "client_order_id": key,
            "action": "place",
            "account": self._settings.account or "",
        }
        try:
            if self._recorder is not None:
                self._recorder.record_durable(ORDER, text, trade_id=order_ref, context=context)
        except EventNotDurable as exc:
            reply.set_exception(exc)
            return
        self._status.put_order(
            OrderRecord(
                order_ref=order_ref,
                symbol=request.symbol,
                side=request.side,
                quantity=request.quantity,
                order_type=request.order_type,
                limit_price=request.limit_price,
                client_order_id=key,
            )
        )
        ib, account = self._ib, self._settings.account or ""

        async def send() -> int:
            contract = Stock(request.symbol, request.exchange, request.currency)
            order: Any
            if request.order_type == "LMT":
                order = LimitOrder(request.side, request.quantity, request.limit_price or 0.0)
            else:
                order = MarketOrder(request.side, request.quantity)
            order.orderRef = order_ref
            order.account = account
            trade = ib.placeOrder(contract, order)
            return int(trade.order.orderId)

        status, ref = self._status, self.actor_ref

        def sent(future: concurrent.futures.Future[int]) -> None:
            # On the loop thread, right after placeOrder: the caller gets its answer
            # without waiting for the actor (which is free for the next message).
            error: BaseException | None = (
                BrokerConnectionError("the connection closed while sending")
                if future.cancelled()
                else future.exception()
            )
            if error is None:
                order_id = future.result()
                status.update_order(order_ref, order_id=order_id)
                log.info("broker_order_sent", order_ref=order_ref, order_id=order_id, order=text)
                reply.set_result(order_ref)
                return
            self._send_failed(order_ref, error)
            tell_if_alive(ref, SendFailed(order_ref))
            reply.set_exception(error)

        try:
            self._loop.submit(send()).add_done_callback(sent)
        except RuntimeError as exc:  # the loop stopped meanwhile: outcome unknown
            self._send_failed(order_ref, exc)
            self._publish()
            reply.set_exception(exc)

    def _send_failed(self, order_ref: str, error: BaseException) -> None:
        """The send raised or was cut off: whether the gateway got the order is unknown."""
        log.warning("broker_order_send_failed", order_ref=order_ref, error=str(error))
        self._status.update_order(order_ref, status=UNRESOLVED)

    def _cancel(self, message: CancelOrder) -> None:
        reply, order_ref = message.reply, message.order_ref
        if self._refused_unless_synced(reply, "cancel"):
            return
        assert self._loop is not None
        assert self._ib is not None
        record = self._status.order(order_ref)
        if record is None:
            reply.set_exception(UnknownOrder(f"unknown order id {order_ref!r}"))
            return
        if record.status in TERMINAL_STATUSES:
            reply.set_exception(ValueError(f"order {order_ref} is {record.status}: not open"))
            return
        ib = self._ib

        def open_order() -> Any:
            for trade in ib.openTrades():
                if trade.order.orderRef == order_ref:
                    return trade.order
            return None

        try:
            order = self._loop.call(open_order, self._settings.request_timeout_s)
        except (OSError, RuntimeError) as exc:
            reply.set_exception(exc)
            return
        if order is None:
            reply.set_exception(ValueError(f"order {order_ref} is not open at the gateway"))
            return
        text = f"CANCEL {record.side} {record.quantity:g} {record.symbol} ({order_ref})"
        context = {"order_ref": order_ref, "action": "cancel", "order_id": int(order.orderId)}
        try:
            if self._recorder is not None:
                self._recorder.record_durable(ORDER, text, trade_id=order_ref, context=context)
        except EventNotDurable as exc:
            reply.set_exception(exc)
            return
        try:
            self._loop.call(lambda: ib.cancelOrder(order), self._settings.request_timeout_s)
        except (OSError, RuntimeError) as exc:
            log.warning("broker_cancel_send_failed", order_ref=order_ref, error=str(exc))
            reply.set_exception(exc)
            return
        log.info("broker_cancel_sent", order_ref=order_ref)
        reply.set_result(order_ref)

    def _apply(self, report: OrderStatusChanged) -> tuple[bool, bool]:
        """Apply a status report to the shared status: (settled an unresolved order,
        made the order final)."""
        change = self._status.apply_order_status(
            report.order_ref,
            report.status,
            report.filled,
            avg_fill_price=report.avg_fill_price,
            order_id=report.order_id,
            perm_id=report.perm_id,
        )
        if change is None:
            return False, False
        before, after = change
        final = after.status in TERMINAL_STATUSES and before.status not in TERMINAL_STATUSES
        return before.unresolved and not after.unresolved, final

    def _order_status(self, message: OrderStatusChanged) -> None:
        resolved, final = (
            (message.resolved, message.final) if message.applied else self._apply(message)
        )
        if resolved:
            log.info("broker_order_resolved", order_ref=message.order_ref, status=message.status)
            self._publish()
        if final and self._recorder is not None:
            # The order's end in our books: reconciliation knows from it that the order
            # is no longer open (a fill alone does not say so for a partial fill).
            self._recorder.record(
                ORDER,
                f"order {message.order_ref} {message.status}",
                trade_id=message.order_ref,
                context={
                    "order_ref": message.order_ref,
                    "action": "final",
                    "status": message.status,
                    "filled": message.filled,
                    "avg_fill_price": message.avg_fill_price,
                    "account": self._settings.account or "",
                },
            )

    def _fill(self, fill: FillReported) -> None:
        if not self._status.first_fill(fill.exec_id):
            return
        text = f"{fill.side} {fill.quantity:g} {fill.symbol} @ {fill.price:g}"
        context = {
            "symbol": fill.symbol,
            "side": fill.side,
            "quantity": fill.quantity,
            "price": fill.price,
            "commission": fill.commission,
            "currency": fill.currency,
            "realized_pnl": fill.realized_pnl,
            "order_ref": fill.order_ref,
            "order_id": fill.order_id,
            "perm_id": fill.perm_id,
            "exec_id": fill.exec_id,
            "account": self._settings.account or "",
        }
        if fill.time is not None:
            context["exec_time"] = fill.time
        if fill.reconciled:
            context["reconciled"] = True
        if self._recorder is None:
            return
        try:
            self._recorder.record_durable(
                TRADE,
                text,
                trade_id=fill.order_ref or None,
                context=context,
                event_id=trade_event_id(fill.exec_id),
            )
        except EventNotDurable as exc:
            log.error("broker_fill_not_recorded", exec_id=fill.exec_id, error=str(exc))

    # -- queries and market data -----------------------------------------------------------

    def _query(self, message: Query) -> None:
        """Run the query on the loop without blocking the actor; the reply gets the answer."""
        reply = message.reply
        if message.what not in QUERIES:
            reply.set_exception(ValueError(f"unknown query {message.what!r}"))
            return
        if self._refused_unless_synced(reply, message.what):
            return
        assert self._loop is not None
        assert self._ib is not None
        ib, account, timeout_s = self._ib, self._settings.account, self._settings.request_timeout_s
        what, since = message.what, message.since

        async def ask() -> Any:
            if what == "positions":
                return await fetch_positions(ib, account)
            if what == "executions":
                return await fetch_executions(ib, account, since)
            if what == "open_orders":
                return await fetch_open_orders(ib, account)
            if what == "completed_orders":
                return await fetch_completed_orders(ib, account)
            return cached_account_values(ib, account)

        async def ask_in_time() -> Any:
            try:
                return await asyncio.wait_for(ask(), timeout_s)
            except TimeoutError:
                raise TimeoutError(
                    f"{what}: no answer from the gateway within {timeout_s:g} s"
                ) from None

        def done(future: concurrent.futures.Future[Any]) -> None:
            if reply.done():
                return
            if future.cancelled():
                reply.set_exception(BrokerConnectionError(f"{what}: the connection closed"))
            elif (exc := future.exception()) is not None:
                reply.set_exception(exc)
            else:
                reply.set_result(future.result())

        try:
            self._loop.submit(ask_in_time()).add_done_callback(done)
        except RuntimeError as exc:  # the loop stopped meanwhile
            reply.set_exception(BrokerConnectionError(f"{what}: {exc}"))

    def _subscribe(self, message: Subscribe) -> None:
        reply, symbol = message.reply, message.symbol
        if self._refused_unless_synced(reply, "subscribe"):
            return
        first = self._market.add(symbol, message.sink)
        if first:
            try:
                self._start_stream(symbol)
            except (OSError, RuntimeError, LookupError) as exc:
                self._market.remove(symbol, message.sink)
                reply.set_exception(exc)
                return
            log.info("broker_market_data_subscribed", symbol=symbol)
        reply.set_result(symbol)
        self._publish()

    def _unsubscribe(self, message: Unsubscribe) -> None:
        reply, symbol = message.reply, message.symbol
        if self._market.remove(symbol, message.sink) and self._loop is not None:
            contracts = self._contracts
            ib = self._ib

            def cancel() -> None:
                contract = contracts.pop(symbol, None)
                if contract is not None and ib is not None and ib.isConnected():
                    ib.cancelMktData(contract)

            try:
                self._loop.call(cancel, self._settings.request_timeout_s)
            except (OSError, RuntimeError) as exc:  # the stream ends with the connection
                log.warning("broker_market_data_cancel_failed", symbol=symbol, error=str(exc))
            log.info("broker_market_data_unsubscribed", symbol=symbol)
        reply.set_result(symbol)
        self._publish()

    def _start_stream(self, symbol: str) -> None:
        """Qualify ``symbol`` at the gateway and start its market data (blocking, bounded)."""
        assert self._loop is not None
        assert self._ib is not None
        ib, contracts, timeout_s = self._ib, self._contracts, self._settings.request_timeout_s

        async def start() -> None:
            contract = Stock(symbol, "SMART", "USD")
            qualified = await ib.qualifyContractsAsync(contract)
            if not qualified or qualified[0] is None or not contract.conId:
                raise UnknownSymbol(f"unknown symbol {symbol!r}: the gateway has no such contract")
            contracts[symbol] = contract
            ib.reqMktData(contract)

        self._loop.run(start(), timeout_s)

    def _quotes(self, message: QuotesArrived) -> None:
        for quote, sinks in self._market.update(message.quotes):
            for sink in sinks:
                try:
                    sink.tell(quote)
                except pykka.ActorDeadError as exc:  # a dead subscriber must not stop others
                    log.warning("broker_quote_not_delivered", symbol=quote.symbol, error=str(exc))
                    self._market.remove(quote.symbol, sink)

    # -- helpers ----------------------------------------------------------------------------

    def _set_state(self, state: ConnectionState, **changes: Any) -> Any:
        view = self._status.update(state=state, **changes)
        self._publish()
        return view

    def _publish(self) -> None:
        view = self._status.view()
        details = view.details(self._status.now())
        details["probe_misses"] = self._misses
        details["unresolved_orders"] = self._status.unresolved_orders()
        details["market_data_symbols"] = self._market.symbols()
        self.publish_details(**details)

    def _system(self, severity: Severity, message: str) -> None:
        if self._recorder is None:
            return
        view = self._status.view()
        self._recorder.record(
            SYSTEM,
            message,
            severity=severity,
            context={"state": view.state.value, "host": view.host, "port": view.port},
        )
