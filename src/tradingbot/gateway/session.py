"""One client connection: the TWS handshake, then requests answered and updates pushed.

Each request id maps to a handler; requests the simulator does not implement are
answered at once with error 322 (``unsupported.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from . import messages as msg
from .brokerage import Execution, Rejection, SimOrder
from .calendar import contract_hours
from .marketdata import HANDLERS as MARKET_DATA_HANDLERS
from .marketdata import Streams, push_streams
from .orderwire import parse_place_order
from .protocol import (
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

if TYPE_CHECKING:
    from .server import GatewaySimulator

__all__ = ["ORDER_CANCELLED", "Session"]

log = logging.getLogger("tradingbot.gateway")

DUPLICATE_CLIENT_ID = 326
ORDER_CANCELLED = 202
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
        self.day_range: dict[int, list[float]] = {}  # reqId -> [high, low] sent
        self.streams = Streams()
        self.closed = False

    # -- I/O ---------------------------------------------------------------------------

    def send(self, fields: list[Field], tail: bytes = b"") -> None:
        """Queue one message to the client (dropped once the session is closed);
        ``tail``: more fields, already encoded (see ``encode_fields``)."""
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(encode_fields(fields, tail))

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
        self.sim.requests_received[msg_id] += 1
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
        self._send_day(req_id, inst.symbol)
        if snapshot:
            self.send(msg.tick_snapshot_end(req_id))
        else:
            self.market_data[req_id] = inst.symbol

    def _send_day(self, req_id: int, symbol: str) -> None:
        """Open, high, low of the current session and the previous session's close."""
        broker = self.sim.brokerage
        cal, now = broker.calendar, broker.now()
        today = cal.session_at_or_after(now)
        before = cal.sessions(today.day - timedelta(days=14), today.day - timedelta(days=1))
        day = broker.history.day_bar(symbol, today) if today.open <= now else None
        if before:
            prior = broker.history.day_bar(symbol, before[-1])
            if prior is not None:
                self.send(msg.tick_price(req_id, 9, prior.close))
        if day is not None:
            self.send(msg.tick_price(req_id, 14, day.open))
            self.send(msg.tick_price(req_id, 6, day.high))
            self.send(msg.tick_price(req_id, 7, day.low))
            self.day_range[req_id] = [day.high, day.low]

    def _cancel_mkt_data(self, f: list[str]) -> None:
        self.market_data.pop(_int(_field(f, 2)), None)
        self.day_range.pop(_int(_field(f, 2)), None)

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
        **MARKET_DATA_HANDLERS,
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
            quote = quotes.quote(symbol)
            for tick in msg.tick_messages(req_id, quote):
                self.send(tick)
            day = self.day_range.get(req_id)
            if day is not None and quote.last > day[0]:
                day[0] = quote.last
                self.send(msg.tick_price(req_id, 6, quote.last))
            if day is not None and quote.last < day[1]:
                day[1] = quote.last
                self.send(msg.tick_price(req_id, 7, quote.last))
        push_streams(self)
