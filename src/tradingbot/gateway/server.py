"""The asyncio TCP server and its per-connection sessions.

``GatewaySimulator`` owns a ``Brokerage`` and a listening socket; each accepted
connection becomes a ``Session`` that performs the TWS handshake and then answers
requests. All of it runs on one event loop; use ``SimulatorThread`` to run it from
synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from . import messages as msg
from .brokerage import Brokerage, Execution, Rejection, SimOrder, StatusChange
from .calendar import contract_hours
from .orderwire import parse_place_order
from .protocol import (
    MAX_SERVER_VERSION,
    MIN_SERVER_VERSION,
    Field,
    ProtocolError,
    encode_fields,
    read_frame,
    read_greeting,
)
from .unsupported import (
    NOT_SUPPORTED,
    SILENT_CANCELS,
    UNSUPPORTED,
    not_supported_text,
    req_id_of,
)

__all__ = ["GatewaySimulator", "Session"]

log = logging.getLogger("tradingbot.gateway")

DUPLICATE_CLIENT_ID = 326
ORDER_CANCELLED = 202
CONNECTIVITY_LOST = 1100
CONNECTIVITY_RESTORED_DATA_LOST = 1101
CONNECTIVITY_RESTORED = 1102
NO_DEFINITION = "No security definition has been found for the request"
# What a real gateway says right after the handshake (ib_async logs them at INFO).
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


def _float(text: str) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return math.nan


def _int(text: str) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def _field(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def _execution_filter_time(text: str) -> datetime | None:
    """An execution filter's time: ``yyyymmdd-hh:mm:ss`` or ``yyyymmdd hh:mm:ss`` (UTC, an
    optional `` UTC`` suffix); empty or unreadable means no time filter (as TWS does)."""
    text = text.strip().removesuffix(" UTC").replace("-", " ", 1)
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y%m%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class Session:
    """One client connection: handshake, then request/response and pushed updates."""

    def __init__(
        self, sim: GatewaySimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.server_version = 0
        self.market_data: dict[int, str] = {}  # reqId -> symbol
        self.positions_subscribed = False
        self.account_subscriptions: set[str] = set()
        self.multi_subscriptions: dict[int, str] = {}  # reqId -> account
        self.market_data_type = 1  # 1 live, 2 frozen, 3 delayed, 4 delayed frozen
        self.closed = False

    # -- I/O ---------------------------------------------------------------------------

    def send(self, fields: list[Field]) -> None:
        """Queue one message to the client (dropped once the session is closed)."""
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(encode_fields(fields))

    def close(self) -> None:
        """Close the socket; the client sees the peer closing the connection."""
        self.closed = True
        if not self.writer.is_closing():
            self.writer.close()

    async def run(self) -> None:
        """Serve the connection until the client or the simulator closes it."""
        try:
            if await self._handshake():
                while not self.closed:
                    fields = await read_frame(self.reader)
                    await self.sim.wait_unfrozen()
                    if self.closed:
                        break
                    if fields:
                        self.dispatch(fields)
                        await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            log.debug("session %s ended: %r", self.client_id, exc)
        finally:
            self.close()
            self.sim.unregister(self)

    async def _handshake(self) -> bool:
        low, high = await read_greeting(self.reader)
        version = min(high, self.sim.max_server_version)
        if version < max(low, MIN_SERVER_VERSION):
            log.warning("no common server version with client range %s..%s", low, high)
            return False
        self.server_version = version
        now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
        self.send([version, now])
        fields = await read_frame(self.reader)
        if not fields or fields[0] != "71":
            raise ProtocolError(f"expected startApi, got {fields[:2]}")
        client_id = _int(_field(fields, 2))
        await self.sim.wait_unfrozen()
        if self.sim.client_in_use(client_id):
            self.send(
                msg.error(
                    -1,
                    DUPLICATE_CLIENT_ID,
                    "Unable to connect as the client id is already in use. "
                    "Retry with a unique client id.",
                )
            )
            await self.writer.drain()
            return False
        self.client_id = client_id
        self.sim.register(self)
        broker = self.sim.brokerage
        self.send(msg.managed_accounts(broker.account_ids))
        self.send(msg.next_valid_id(broker.next_order_id(client_id)))
        for code, text in FARM_NOTICES:
            self.send(msg.error(-1, code, text))
        await self.writer.drain()
        log.info("client %s connected at server version %s", client_id, version)
        return True

    # -- requests ----------------------------------------------------------------------

    def dispatch(self, f: list[str]) -> None:
        """Answer one request message."""
        msg_id = _int(f[0])
        handler = self._handlers.get(msg_id)
        if handler is None:
            self._unsupported(msg_id, f)
            return
        try:
            handler(self, f)
        except Exception:
            # A simulator bug must not kill the session silently: log it (tests fail on
            # ERROR records) and answer like the real gateway does for bad requests.
            log.exception("error handling request %s", f[:3])
            self.send(msg.error(-1, 321, f"Server error when validating request {f[0]}"))

    def _unsupported(self, msg_id: int, f: list[str]) -> None:
        """Answer a request the simulator does not implement with error 322 at once."""
        if msg_id in SILENT_CANCELS:
            return
        name, index = UNSUPPORTED.get(msg_id, (f"request {msg_id}", None))
        log.info("answering unsupported %s with error %s", name, NOT_SUPPORTED)
        self.send(msg.error(req_id_of(f, index), NOT_SUPPORTED, not_supported_text(f[0], name)))

    def _req_mkt_data(self, f: list[str]) -> None:
        req_id = _int(_field(f, 2))
        inst = self.sim.brokerage.lookup(
            symbol=_field(f, 4),
            con_id=_int(_field(f, 3)),
            exchange=_field(f, 10),
            currency=_field(f, 12),
        )
        if inst is None:
            self.send(msg.error(req_id, 200, NO_DEFINITION))
            return
        self.send(msg.market_data_type(req_id, self.market_data_type))
        # After the 12 contract fields: deltaNeutral flag (+3 fields if set), then
        # genericTickList, snapshot, regulatorySnapshot, mktDataOptions.
        index = 15 + (4 if _field(f, 15) == "1" else 1)
        snapshot = _field(f, index + 1) == "1"
        for tick in msg.tick_messages(req_id, self.sim.brokerage.prices.quote(inst.symbol)):
            self.send(tick)
        if snapshot:
            self.send(msg.tick_snapshot_end(req_id))
        else:
            self.market_data[req_id] = inst.symbol

    def _cancel_mkt_data(self, f: list[str]) -> None:
        self.market_data.pop(_int(_field(f, 2)), None)

    def _place_order(self, f: list[str]) -> None:
        req = parse_place_order(f, self.server_version)
        assert self.client_id is not None
        if req.what_if:
            preview = self.sim.brokerage.what_if(self.client_id, req)
            if isinstance(preview, Rejection):
                self.send(msg.error(req.order_id, preview.code, preview.message))
                return
            self.send(msg.open_order(preview.order, "PreSubmitted", self.server_version, preview))
            return
        result = self.sim.brokerage.place(self.client_id, req)
        if isinstance(result, Rejection):
            self.send(msg.error(req.order_id, result.code, result.message))
            return
        self.sim.publish_events(result.events)

    def _cancel_order(self, f: list[str]) -> None:
        order_id = _int(_field(f, 2))
        assert self.client_id is not None
        result = self.sim.brokerage.cancel(self.client_id, order_id)
        if isinstance(result, Rejection):
            self.send(msg.error(order_id, result.code, result.message))
            return
        self.sim.publish_events(list(result))

    def _req_global_cancel(self, f: list[str]) -> None:
        self.sim.publish_events(list(self.sim.brokerage.cancel_all()))

    def _req_market_data_type(self, f: list[str]) -> None:
        self.market_data_type = _int(_field(f, 2)) or 1

    def _send_open_orders(self, orders: list[SimOrder]) -> None:
        for order in orders:
            self.send(msg.open_order(order, order.status, self.server_version))
            self.send(msg.order_status(order))
        self.send(msg.open_order_end())

    def _req_open_orders(self, f: list[str]) -> None:
        self._send_open_orders(
            self.sim.brokerage.open_orders(None if self.client_id == 0 else self.client_id)
        )

    def _req_all_open_orders(self, f: list[str]) -> None:
        self._send_open_orders(self.sim.brokerage.open_orders(None))

    def _req_account_updates(self, f: list[str]) -> None:
        broker = self.sim.brokerage
        account = _field(f, 3) or broker.account_ids[0]
        if _field(f, 2) not in ("1", "true", "True"):
            self.account_subscriptions.discard(account)
            return
        if account not in broker.accounts:
            self.send(msg.error(-1, 321, f"Invalid account code {account}"))
            return
        self.account_subscriptions.add(account)
        self.send_account_snapshot(account)
        self.send(msg.account_time(datetime.now(UTC)))
        self.send(msg.account_download_end(account))

    def send_account_snapshot(self, account: str) -> None:
        """Account values and portfolio rows of one account."""
        broker = self.sim.brokerage
        for key, value, currency in broker.account_values(account):
            self.send(msg.account_value(key, value, currency, account))
        for pos in broker.account_positions(account):
            price = broker.prices.price(pos.instrument.symbol)
            self.send(msg.portfolio_value(pos, price))

    def _req_executions(self, f: list[str]) -> None:
        req_id = _int(_field(f, 2))
        client_filter = _int(_field(f, 3))
        account, symbol, side = _field(f, 4), _field(f, 6), _field(f, 9)
        since = _execution_filter_time(_field(f, 5))
        for ex in self.sim.brokerage.executions:
            if since is not None and ex.time < since:
                continue
            if client_filter and ex.order.client_id != client_filter:
                continue
            if account and ex.order.account_id != account:
                continue
            if symbol and ex.order.instrument.symbol != symbol.upper():
                continue
            if side and not ex.side.startswith(side[:1].upper()):
                continue
            self.send(msg.exec_details(req_id, ex, self.server_version))
            self.send(msg.commission_report(ex))
        self.send(msg.exec_details_end(req_id))

    def _req_ids(self, f: list[str]) -> None:
        assert self.client_id is not None
        self.send(msg.next_valid_id(self.sim.brokerage.next_order_id(self.client_id)))

    def _req_contract_details(self, f: list[str]) -> None:
        req_id = _int(_field(f, 2))
        inst = self.sim.brokerage.lookup(
            symbol=_field(f, 4),
            con_id=_int(_field(f, 3)),
            exchange=_field(f, 10),
            currency=_field(f, 12),
        )
        sec_type = _field(f, 5)
        if inst is None or sec_type not in ("STK", ""):
            self.send(msg.error(req_id, 200, NO_DEFINITION))
            return
        hours = contract_hours(self.sim.brokerage.book.calendar, self.sim.brokerage.now())
        self.send(msg.contract_details(req_id, inst, self.server_version, hours))
        self.send(msg.contract_details_end(req_id))

    def _req_managed_accounts(self, f: list[str]) -> None:
        self.send(msg.managed_accounts(self.sim.brokerage.account_ids))

    def _req_current_time(self, f: list[str]) -> None:
        self.send(msg.current_time(int(time.time())))

    def _req_positions(self, f: list[str]) -> None:
        self.positions_subscribed = True
        for pos in self.sim.brokerage.account_positions():
            self.send(msg.position(pos))
        self.send(msg.position_end())

    def _cancel_positions(self, f: list[str]) -> None:
        self.positions_subscribed = False

    def _req_account_summary(self, f: list[str]) -> None:
        req_id = _int(_field(f, 2))
        broker = self.sim.brokerage
        for account in broker.account_ids:
            for key, value, currency in broker.account_values(account):
                self.send(msg.account_summary(req_id, account, key, value, currency))
        self.send(msg.account_summary_end(req_id))

    def _req_account_updates_multi(self, f: list[str]) -> None:
        req_id = _int(_field(f, 2))
        broker = self.sim.brokerage
        account = _field(f, 3)
        accounts = [account] if account and account != "All" else broker.account_ids
        for acct in accounts:
            if acct not in broker.accounts:
                continue
            self.multi_subscriptions[req_id] = acct
            for key, value, currency in broker.account_values(acct):
                self.send(msg.account_update_multi(req_id, acct, key, value, currency))
        self.send(msg.account_update_multi_end(req_id))

    def _cancel_account_updates_multi(self, f: list[str]) -> None:
        self.multi_subscriptions.pop(_int(_field(f, 2)), None)

    def _req_completed_orders(self, f: list[str]) -> None:
        for order in self.sim.brokerage.completed_orders():
            self.send(msg.completed_order(order, self.server_version))
        self.send(msg.completed_orders_end())

    def _ignore(self, f: list[str]) -> None:
        """Requests that need no answer (auto-open orders, market data type)."""

    _handlers: dict[int, Callable[[Session, list[str]], None]] = {
        1: _req_mkt_data,
        2: _cancel_mkt_data,
        3: _place_order,
        4: _cancel_order,
        5: _req_open_orders,
        6: _req_account_updates,
        7: _req_executions,
        8: _req_ids,
        9: _req_contract_details,
        15: _ignore,  # reqAutoOpenOrders
        16: _req_all_open_orders,
        17: _req_managed_accounts,
        49: _req_current_time,
        58: _req_global_cancel,
        59: _req_market_data_type,
        61: _req_positions,
        62: _req_account_summary,
        63: _ignore,  # cancelAccountSummary
        64: _cancel_positions,
        76: _req_account_updates_multi,
        77: _cancel_account_updates_multi,
        99: _req_completed_orders,
    }

    # -- pushed updates ----------------------------------------------------------------

    def push_fill(self, ex: Execution) -> None:
        """The fill sequence ib_async accepts, for this session's own order (the
        Submitted openOrder and orderStatus went out as its status change)."""
        order = ex.order
        self.send(msg.exec_details(-1, ex, self.server_version))
        self.send(msg.open_order(order, order.status, self.server_version))
        self.send(msg.order_status(order))
        self.send(msg.commission_report(ex))

    def push_portfolio(self, ex: Execution) -> None:
        """Position / portfolio / account value updates after a fill."""
        broker = self.sim.brokerage
        account = ex.order.account_id
        pos = broker.positions.get((account, ex.order.instrument.con_id))
        if pos is None:
            return
        if self.positions_subscribed:
            self.send(msg.position(pos))
        if account in self.account_subscriptions:
            self.send_account_snapshot(account)
        for req_id, acct in self.multi_subscriptions.items():
            if acct == account:
                for key, value, currency in broker.account_values(acct):
                    self.send(msg.account_update_multi(req_id, acct, key, value, currency))

    def push_ticks(self) -> None:
        """One round of bid/ask/last ticks for every subscription."""
        quotes = self.sim.brokerage.prices
        for req_id, symbol in list(self.market_data.items()):
            for tick in msg.tick_messages(req_id, quotes.quote(symbol)):
                self.send(tick)


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
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._all_sessions: set[Session] = set()
        self._unfrozen = asyncio.Event()
        self._unfrozen.set()
        self._ticker: asyncio.Task[None] | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

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
        for task in (self._ticker, self._reopen):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._reopen = None
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

    async def _reopen_after(self, duration_s: float) -> None:
        await asyncio.sleep(duration_s)
        await self._listen(self.port)
        log.info("gateway simulator accepting connections again on port %s", self.port)
