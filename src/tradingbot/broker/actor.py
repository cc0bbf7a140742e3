"""The broker actor: one ``ib_async.IB`` connection to TWS / IB Gateway (or the simulator).

The client lives on a dedicated asyncio loop thread (:class:`~tradingbot.broker.LoopThread`)
created in :meth:`BrokerActor.setup` and stopped in teardown and after a crash, with
``ib.disconnect()`` before the loop closes. The actor touches the client only by
submitting coroutines to that loop, uses only ``*Async`` requests and never
``util.startLoop()``. Client callbacks (:mod:`tradingbot.broker.client`) run on the loop
thread and only *tell* the actor plain messages (:mod:`tradingbot.broker.messages`).

**The rule on blocking.** A message handler never waits for the gateway: it submits
the request to the loop and returns. The answer reaches the caller's reply future from
the loop thread (orders sent, queries, cancels, unsubscriptions), or comes back to the
actor as a message when the actor has more to do with it (:class:`CancelChecked`: the
cancel's durable ORDER event is written before the cancel is sent; :class:`StreamStarted`).
So a frozen gateway never stalls the actor: heartbeat probes, status reports and other
callers' requests keep flowing. Handlers may block on the event store (a durable ORDER
event before an order or a cancel is sent: nothing leaves unrecorded). Only ``setup``
waits for the gateway — the connect and the first sync, each bounded by a timeout.

Connection states (``disconnected → connecting → synced``, ``degraded`` on error 1100
or a missed heartbeat probe) are written to a shared :class:`~tradingbot.broker.BrokerStatus`
(read by the health check), published in the tree snapshot, and turned into SYSTEM
events. There is no reconnect loop here: a failed connect, and a lost connection
(``disconnectedEvent``, or ``max_probe_misses`` probes in a row without an answer),
crash the actor; the supervisor's backoff restarts it, and the new incarnation
connects again. Error 1102 (connectivity restored, data kept) only ends ``degraded``;
1101 (restored, data lost) also asks the gateway again for open orders, executions,
account updates and market data, since it may have dropped them.

Orders are :mod:`tradingbot.broker.orders` (with the pre-trade risk checks of
:mod:`tradingbot.broker.pretrade` when a :class:`RiskBook` is given; cancel-all
:mod:`tradingbot.broker.flatten`), queries (historical bars too)
:mod:`tradingbot.broker.queries`, market data :mod:`tradingbot.broker.streams`, bar
streams :mod:`tradingbot.broker.barstreams`, the account's positions and P&L
:mod:`tradingbot.broker.account`; callers use :mod:`tradingbot.broker.api`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from typing import Any

import structlog

from tradingbot.broker.account import follow_account, renew_pnl
from tradingbot.broker.barstreams import BarStreams
from tradingbot.broker.client import (
    CONNECTIVITY_LOST,
    CONNECTIVITY_RESTORED_DATA_LOST,
    Client,
    connect,
    listen,
    request_lost_data,
)
from tradingbot.broker.errors import BrokerConnectionError, BrokerNotReady
from tradingbot.broker.flatten import send_cancel_all
from tradingbot.broker.iblog import correct_ib_log_levels
from tradingbot.broker.loop import LoopThread
from tradingbot.broker.market import MarketData
from tradingbot.broker.messages import (
    QUERIES,
    BarArrived,
    BarStreamStarted,
    CancelAll,
    CancelChecked,
    CancelOrder,
    ConnectFailed,
    ConnectionLost,
    FetchBars,
    FillReported,
    GatewayNotice,
    OrderStatusChanged,
    PlaceOrder,
    Probe,
    ProbeResult,
    Query,
    QuoteFetched,
    QuotesArrived,
    SendFailed,
    StreamStarted,
    Subscribe,
    SubscribeBars,
    Unsubscribe,
    UnsubscribeBars,
)
from tradingbot.broker.orders import Orders
from tradingbot.broker.parsing import synced_state
from tradingbot.broker.pretrade import PreTrade
from tradingbot.broker.queries import submit_fetch_bars, submit_query
from tradingbot.broker.riskbook import RiskBook
from tradingbot.broker.settings import BrokerSettings
from tradingbot.broker.status import BrokerStatus, ConnectionState, OrderRecord
from tradingbot.broker.streams import Streams
from tradingbot.events import SYSTEM, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.supervision import SupervisedActor, tell_if_alive
from tradingbot.tellable import Tellable

log = structlog.get_logger(__name__)

# Reports about one connection: ignored when they reach a later incarnation.
EPOCH_BOUND = (
    ConnectFailed
    | ProbeResult
    | ConnectionLost
    | GatewayNotice
    | QuotesArrived
    | BarArrived
    | QuoteFetched
)


class BrokerActor(SupervisedActor):
    """Owns the gateway connection; crashes (and is restarted with backoff) when it is lost."""

    def __init__(
        self,
        settings: BrokerSettings,
        status: BrokerStatus,
        recorder: EventRecorder | None = None,
        market: MarketData | None = None,
        risk: RiskBook | None = None,
        pnl_sink: Tellable | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._status = status
        self._recorder = recorder.bind(source="broker") if recorder is not None else None
        market = market if market is not None else MarketData()
        pretrade = (
            None
            if risk is None
            else PreTrade(risk, status, market, self._recorder, settings.request_timeout_s)
        )
        self._orders = Orders(settings, status, self._recorder, pretrade)
        self._streams = Streams(market, settings.request_timeout_s)
        self._bar_streams = BarStreams(market.bars, settings.request_timeout_s)
        self._bar_contracts: dict[str, Any] = {}  # qualified for history (loop thread only)
        self._pnl_sink = pnl_sink
        self._account = ""  # the account whose positions and P&L are followed
        self._loop: LoopThread | None = None
        self._client: Client | None = None
        self._closing = threading.Event()  # set before our own disconnect (loop thread reads)
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
        ref, epoch, status, closing = self.actor_ref, self._epoch, self._status, self._closing
        deliver = self.context.handle.tell

        def tell(message: Any) -> bool:
            return tell_if_alive(ref, message)

        async def connected() -> Client:
            ib = await connect(s)
            listen(ib, tell, epoch, status, closing)
            return Client(loop, ib, epoch, tell, deliver)

        try:
            client = self._client = loop.run(connected(), s.connect_timeout_s + 5.0)
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
        # The accounts before the state: whoever reacts to them (the live-account gate)
        # has done so before anyone sees the broker synced.
        accounts = loop.call(lambda: tuple(client.ib.managedAccounts()), s.request_timeout_s)
        self._status.update(accounts=accounts)
        view = self._set_state(
            ConnectionState.SYNCED,
            last_ok=self._status.now(),
            last_error=None,
            connects=self._status.view().connects + 1,
        )
        self._system(Severity.INFO, f"broker synced with the gateway at {s.host}:{s.port}")
        log.info("broker_synced", host=s.host, port=s.port, connects=view.connects)
        ib = client.ib
        adopted = 0
        for fact in loop.call(lambda: synced_state(ib), s.request_timeout_s):
            if isinstance(fact, OrderRecord):
                if self._status.order(fact.order_ref) is None:
                    self._status.put_order(fact)  # placed by an earlier run of the bot
                    adopted += 1
            elif self._status.order(fact.order_ref) is not None:
                # Only our own orders' fills: anyone else's are reconciliation's business.
                self.actor_ref.tell(fact)
        if adopted:
            log.info("broker_orders_adopted", count=adopted)
        status, sink = self._status, self._pnl_sink
        self._account = loop.call(
            lambda: follow_account(ib, s.account, status, sink), s.request_timeout_s
        )
        if self._streams.start_all(client) | self._bar_streams.start_all(client):
            self._publish()
        self.every(s.probe_interval_s, Probe())

    def teardown(self, reason: str) -> None:
        self._shutdown_client()
        self._streams.abandon(f"the broker stopped ({reason})")
        self._bar_streams.abandon(f"the broker stopped ({reason})")
        self._orders.abandon(f"the broker stopped ({reason})")
        self._set_state(ConnectionState.DISCONNECTED, last_error=f"stopped ({reason})")

    def on_crash(self, failure: Any) -> None:
        self._shutdown_client()
        self._streams.abandon("the broker actor crashed")
        self._bar_streams.abandon("the broker actor crashed")
        self._orders.abandon("the broker actor crashed")
        self._orders.mark_unresolved("the broker actor crashed")

    def _shutdown_client(self) -> None:
        """Disconnect the client on its loop, then stop and join the loop (idempotent)."""
        self._closing.set()
        loop, client = self._loop, self._client
        self._loop = self._client = None
        if loop is None:
            return
        loop.stop(before=None if client is None else client.ib.disconnect)

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, EPOCH_BOUND) and message.epoch != self._epoch:
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
                if (client := self._synced_client(message.reply, "order")) is not None:
                    self._publish_if(self._orders.place(message, client))
                return None
            case QuoteFetched():
                if (client := self._synced_client(message.place.reply, "order")) is not None:
                    self._publish_if(self._orders.quote_fetched(message, client))
                return None
            case CancelOrder():
                if (client := self._synced_client(message.reply, "cancel")) is not None:
                    self._orders.cancel(message, client)
                return None
            case CancelAll():
                if (client := self._synced_client(message.reply, "cancel-all")) is not None:
                    send_cancel_all(message, client, self._settings.account or "", self._recorder)
                return None
            case CancelChecked():
                return self._orders.cancel_checked(message, self._client)
            case OrderStatusChanged():
                return self._publish_if(self._orders.status_changed(message))
            case FillReported():
                return self._orders.fill(message)
            case SendFailed():
                return self._publish()
            case Query():
                return self._query(message)
            case Subscribe():
                if (client := self._synced_client(message.reply, "subscribe")) is not None:
                    self._publish_if(self._streams.subscribe(message, client))
                return None
            case Unsubscribe():
                return self._publish_if(self._streams.unsubscribe(message, self._client))
            case StreamStarted():
                if message.epoch == self._epoch:
                    self._publish_if(self._streams.started(message))
                return None
            case QuotesArrived():
                return self._streams.quotes(message)
            case FetchBars():
                if (client := self._synced_client(message.reply, "bars")) is not None:
                    submit_fetch_bars(client.loop, client.ib, message, self._bar_contracts)
                return None
            case SubscribeBars():
                if (client := self._synced_client(message.reply, "subscribe")) is not None:
                    self._publish_if(self._bar_streams.subscribe(message, client))
                return None
            case UnsubscribeBars():
                return self._publish_if(self._bar_streams.unsubscribe(message, self._client))
            case BarStreamStarted():
                if message.epoch == self._epoch:
                    self._publish_if(self._bar_streams.started(message))
                return None
            case BarArrived():
                return self._bar_streams.arrived(message)
            case _:
                return super().on_receive(message)

    def _synced_client(self, reply: concurrent.futures.Future[Any], what: str) -> Client | None:
        """The client when the broker is synced; else answer ``reply`` with BrokerNotReady."""
        state = self._status.view().state
        if state == ConnectionState.SYNCED and self._client is not None:
            return self._client
        reply.set_exception(
            BrokerNotReady(f"{what} refused: the broker is {state.value}, not synced")
        )
        return None

    def _query(self, message: Query) -> None:
        if message.what not in QUERIES:
            message.reply.set_exception(ValueError(f"unknown query {message.what!r}"))
            return
        if (client := self._synced_client(message.reply, message.what)) is not None:
            s = self._settings
            submit_query(client.loop, client.ib, s.account, message, s.request_timeout_s)

    # -- connection -------------------------------------------------------------------------

    def _probe(self) -> None:
        client = self._client
        if self._probe_in_flight or client is None:
            return
        self._probe_in_flight = True
        ib, timeout_s, epoch = client.ib, self._settings.probe_timeout_s, self._epoch

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
            client.tell(result)

        client.loop.submit(probe()).add_done_callback(done)

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
        self._orders.mark_unresolved(why)
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
        if notice.code == CONNECTIVITY_RESTORED_DATA_LOST and self._client is not None:
            self._request_lost_data(self._client)
        if state == ConnectionState.DEGRADED and self._misses == 0:
            self._set_state(ConnectionState.SYNCED, last_error=None)
            self._system(Severity.INFO, f"broker synced again: {notice.text}")

    def _request_lost_data(self, client: Client) -> None:
        """1101: the gateway may have dropped orders' updates, fills, account and market
        data; ask again (their answers arrive as the usual reports). 1102 needs none of it."""
        timeout_s = self._settings.request_timeout_s
        request = request_lost_data(client.ib, self._settings.account)

        def done(future: concurrent.futures.Future[tuple[int, int]]) -> None:  # loop thread
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else repr(future.exception())
                log.warning("broker_lost_data_request_failed", error=error)
                return
            orders, fills = future.result()
            log.info("broker_lost_data_requested", open_orders=orders, executions=fills)

        log.warning("broker_data_lost", what="requesting orders, executions and market data again")
        try:
            client.loop.submit(asyncio.wait_for(request, timeout_s)).add_done_callback(done)
        except RuntimeError as exc:  # the loop stopped meanwhile: the reconnect syncs anyway
            log.warning("broker_lost_data_request_failed", error=str(exc))
        self._streams.request_again(client)
        self._bar_streams.request_again(client)
        account = self._account
        try:
            client.loop.submit(_call(lambda: renew_pnl(client.ib, account)))
        except RuntimeError as exc:  # the loop stopped meanwhile: the reconnect subscribes
            log.warning("broker_pnl_request_failed", error=str(exc))

    # -- helpers ----------------------------------------------------------------------------

    def _set_state(self, state: ConnectionState, **changes: Any) -> Any:
        view = self._status.update(state=state, **changes)
        self._publish()
        return view

    def _publish_if(self, changed: bool) -> None:
        if changed:
            self._publish()

    def _publish(self) -> None:
        view = self._status.view()
        details = view.details(self._status.now())
        details["probe_misses"] = self._misses
        details["unresolved_orders"] = self._status.unresolved_orders()
        details["market_data_symbols"] = self._streams.symbols()
        details["bar_streams"] = self._bar_streams.streams()
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


async def _call(fn: Any) -> None:
    """Run ``fn`` on the loop (as a coroutine, for ``LoopThread.submit``)."""
    fn()
