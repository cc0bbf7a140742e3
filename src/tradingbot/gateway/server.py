"""The asyncio TCP server: listening socket, session registry, ticks and faults.

``GatewaySimulator`` owns a ``Brokerage`` and a listening socket; each accepted
connection becomes a ``Session`` (``session.py``). All of it runs on one event loop;
use ``SimulatorThread`` to run it from synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from . import messages as msg
from .brokerage import Brokerage, Execution, SimOrder, StatusChange
from .calendar import is_open
from .protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION
from .session import ORDER_CANCELLED, Session

__all__ = ["GatewaySimulator", "Session", "seconds_until"]

log = logging.getLogger("tradingbot.gateway")

CONNECTIVITY_LOST = 1100
CONNECTIVITY_RESTORED_DATA_LOST = 1101
CONNECTIVITY_RESTORED = 1102


def seconds_until(at: dt_time, zone: ZoneInfo, now: datetime) -> float:
    """Seconds from ``now`` to the next ``at`` in ``zone`` (DST-correct)."""
    local = now.astimezone(zone)
    target = datetime.combine(local.date(), at, zone)
    if target <= local:
        target = datetime.combine(local.date() + timedelta(days=1), at, zone)
    return (target.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


class GatewaySimulator:
    """A TWS-protocol gateway on loopback backed by a simulated ``Brokerage``."""

    def __init__(
        self,
        brokerage: Brokerage | None = None,
        *,
        max_server_version: int = MAX_SERVER_VERSION,
        tick_interval_s: float = 0.2,
    ) -> None:
        if not MIN_SERVER_VERSION <= max_server_version <= MAX_SERVER_VERSION:
            raise ValueError(
                f"max_server_version must be in {MIN_SERVER_VERSION}..{MAX_SERVER_VERSION}"
            )
        self.brokerage = brokerage or Brokerage()
        self.max_server_version = max_server_version
        self.tick_interval_s = tick_interval_s
        self.realtime_bar_s = 5.0  # reqRealTimeBars bar length (5 s, as IB)
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._all_sessions: set[Session] = set()
        self._unfrozen = asyncio.Event()
        self._unfrozen.set()
        self._ticker: asyncio.Task[None] | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._restarts: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # Request messages received, by TWS message id (7 reqExecutions, 5 reqOpenOrders,
        # 1 reqMktData, ...): lets a test see what a client asked for, not only the answers.
        self.requests_received: Counter[int] = Counter()
        # Called after every fill was sent (the embedded simulator saves its account).
        self.on_fill: Callable[[Execution], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        self.host = host
        await self._listen(port)
        self._ticker = asyncio.create_task(self._tick_loop(), name="gateway-sim-ticks")
        log.info("gateway simulator listening on %s:%s", host, self.port)
        return self.port

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, close every connection and the background tasks."""
        for task in (self._ticker, self._reopen, self._restarts):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._reopen = self._restarts = None
        await self._close_listener()
        self._unfrozen.set()
        self.close_all_connections()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2.0)

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self._all_sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await session.run()
        except asyncio.CancelledError:
            # The loop is shutting down; end the handler quietly (asyncio's stream
            # callback would otherwise log the cancellation as an error).
            session.close()
        finally:
            self._all_sessions.discard(session)
            if task is not None:
                self._handlers.discard(task)

    # -- session registry ------------------------------------------------------------------

    def client_in_use(self, client_id: int) -> bool:
        """Is ``client_id`` held by a live session?"""
        return any(s.client_id == client_id and not s.closed for s in self._sessions)

    def register(self, session: Session) -> None:
        """A session completed its handshake."""
        self._sessions.add(session)

    def unregister(self, session: Session) -> None:
        """A session ended."""
        self._sessions.discard(session)

    @property
    def connected_client_ids(self) -> list[int]:
        """Client ids of the live sessions."""
        return sorted(s.client_id for s in self._sessions if s.client_id is not None)

    def loop_time(self) -> float:
        """The event loop's monotonic clock (for real-time bar lengths)."""
        return asyncio.get_running_loop().time()

    async def wait_unfrozen(self) -> None:
        """Return when the simulator is not frozen."""
        if not self._unfrozen.is_set():
            await self._unfrozen.wait()

    # -- publishing --------------------------------------------------------------------------

    def _owner(self, order: SimOrder) -> list[Session]:
        return [s for s in self._sessions if s.client_id == order.client_id and not s.closed]

    def publish_events(self, events: list[Execution | StatusChange]) -> None:
        """Tell owners about status changes and fills, in the order they happened."""
        for event in events:
            if isinstance(event, Execution):
                self.publish_fill(event)
                continue
            order = event.order
            for s in self._owner(order):
                if event.status == "Cancelled":
                    s.send(msg.order_status(order, "Cancelled"))
                    s.send(msg.error(order.order_id, ORDER_CANCELLED, "Order Canceled - reason:"))
                else:
                    s.send(msg.open_order(order, event.status, s.server_version))
                    s.send(msg.order_status(order, event.status))

    def publish_fill(self, ex: Execution) -> None:
        """Send a fill to its owner and the portfolio updates to every subscriber."""
        for s in self._owner(ex.order):
            s.push_fill(ex)
        for s in list(self._sessions):
            s.push_portfolio(ex)
        if self.on_fill is not None:
            self.on_fill(ex)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_s)
            if not self._unfrozen.is_set():
                continue
            self.tick()

    def tick(self) -> None:
        """Advance subscribed and resting-order prices one step, fill, stream ticks."""
        broker = self.brokerage
        symbols = {sym for s in self._sessions for sym in s.market_data.values()}
        symbols |= {o.instrument.symbol for o in broker.open_orders()}
        symbols |= {sym for s in self._sessions for sym in s.streams.symbols()}
        if is_open(broker.calendar, broker.now()):  # no trading outside the session
            for symbol in sorted(symbols):
                broker.prices.step(symbol)
        self.publish_events(broker.match_resting())
        for s in list(self._sessions):
            s.push_ticks()

    # -- fault injection -------------------------------------------------------------------

    def close_all_connections(self) -> None:
        """Fault: close every client socket (the client sees "Peer closed connection")."""
        for s in list(self._all_sessions):
            s.close()

    def freeze(self) -> None:
        """Fault: keep sockets open but stop answering and streaming until ``unfreeze``."""
        self._unfrozen.clear()

    def unfreeze(self) -> None:
        """End a freeze; requests received meanwhile are answered now."""
        self._unfrozen.set()

    @property
    def frozen(self) -> bool:
        """Is the simulator frozen?"""
        return not self._unfrozen.is_set()

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """Fault: the next new order is rejected with error 201."""
        self.brokerage.reject_next_order(reason)

    def broadcast_error(self, code: int, message: str) -> None:
        """Send a non-request error/notice (reqId -1) to every client."""
        for s in list(self._sessions):
            s.send(msg.error(-1, code, message))

    def connectivity_lost(self) -> None:
        """Fault: error 1100, the gateway lost its connection to IB."""
        self.broadcast_error(
            CONNECTIVITY_LOST, "Connectivity between IB and Trader Workstation has been lost."
        )

    def connectivity_restored(self, *, data_lost: bool = False) -> None:
        """Error 1102 (data maintained) or 1101 (data lost)."""
        if data_lost:
            self.broadcast_error(
                CONNECTIVITY_RESTORED_DATA_LOST,
                "Connectivity between IB and Trader Workstation has been restored - data lost.",
            )
        else:
            self.broadcast_error(
                CONNECTIVITY_RESTORED,
                "Connectivity between IB and Trader Workstation has been restored - "
                "data maintained.",
            )

    async def refuse_connections(self, duration_s: float) -> None:
        """Fault: the nightly restart window; close everything and refuse connections.

        Returns once the listener is closed; it reopens on the same port after
        ``duration_s`` seconds in the background.
        """
        if self._reopen is not None:
            self._reopen.cancel()
        await self._close_listener()
        self.close_all_connections()
        self._reopen = asyncio.create_task(self._reopen_after(duration_s))

    def schedule_daily_restart(self, at: dt_time, zone: ZoneInfo, window_s: float) -> None:
        """Fault: every day at ``at`` (``zone`` local time, on the simulator's clock) drop
        all clients and refuse connections for ``window_s`` seconds, as IB Gateway's
        daily restart does; orders, positions and executions are kept."""
        if self._restarts is not None:
            self._restarts.cancel()
        self._restarts = asyncio.create_task(
            self._daily_restarts(at, zone, window_s), name="gateway-sim-restarts"
        )

    async def _daily_restarts(self, at: dt_time, zone: ZoneInfo, window_s: float) -> None:
        while True:
            await asyncio.sleep(seconds_until(at, zone, self.brokerage.now()))
            log.info("gateway simulator daily restart: refusing connections for %ss", window_s)
            await self.refuse_connections(window_s)
            await asyncio.sleep(window_s + 1.0)

    async def _reopen_after(self, duration_s: float) -> None:
        await asyncio.sleep(duration_s)
        await self._listen(self.port)
        log.info("gateway simulator accepting connections again on port %s", self.port)
