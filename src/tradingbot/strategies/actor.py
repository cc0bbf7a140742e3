"""The strategy actor: one user strategy in its own supervised actor (its own thread).

Life of one incarnation:

1. ``setup`` only arms a poll: no user code runs there, so a broken strategy can never
   fail the tree's start.
2. It waits until the broker is synced, the start-up reconciliation has opened its gate,
   and the host's ``start_gate`` (live-account check) says yes.
3. It rebuilds from what is durable — its last signals from the events table; its open
   orders and positions are the broker's, read through the context — instantiates the
   user's class, subscribes the watchlist through the broker's shared streams (an
   unknown symbol is one WARNING event, then skipped), fetches warm-up bars, and calls
   ``on_start``. An outage meanwhile (broker not connected, a gateway or database not
   answering) is waited out at the next poll, not counted as a crash.
4. Then it hands each quote, bar, timer tick, fill and final order status to the
   strategy. An exception crashes this incarnation (OTP style): its supervisor starts a
   fresh one, which rebuilds again; never from memory.

``OrderRefused`` and ``BrokerNotReady`` escaping a callback are not crashes (a gate or
an outage, not a bug): the callback is abandoned with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from tradingbot.broker import (
    Bar,
    BarsUnavailable,
    BrokerConnectionError,
    BrokerNotReady,
    BrokerStatus,
    ConnectionState,
    MarketData,
    Quote,
    UnknownSymbol,
)
from tradingbot.broker import api as broker_api
from tradingbot.broker.bars import BAR_SIZES
from tradingbot.broker.status import RECONCILIATION_GATE
from tradingbot.events import ORDER, SIGNAL, SYSTEM, TRADE, Event, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.history.stored import STORED_SIZES, warmup_bars
from tradingbot.storage import Database, StorageError
from tradingbot.storage.event_query import EventQuery
from tradingbot.strategies.api import Fill, OrderRefused, OrderUpdate, Signal, Strategy
from tradingbot.strategies.context import StrategyContext
from tradingbot.strategies.loader import LoadedStrategy
from tradingbot.supervision import SupervisedActor, tell_incarnation
from tradingbot.tellable import Tellable

log = structlog.get_logger("tradingbot.strategies")

POLL_S = 0.25  # how often a waiting strategy checks whether it may start
SIGNALS_READ = 500  # newest SIGNAL events read back at a (re)start


@dataclass(frozen=True, slots=True)
class StrategyEvents:
    """Stored TRADE and final ORDER events of this strategy's orders (from the host)."""

    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class _Poll:
    """Timer: may the strategy start now?"""


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer from ``ctx.schedule``."""


class Inlet:
    """A strategy's market-data subscriber for the life of the process: it hands quotes
    and bars to the strategy's running incarnation, and drops them while there is none.

    Being the same object across restarts, a restarted strategy's subscriptions are
    no-ops at the broker (no second stream), and a crashed incarnation leaves nothing
    behind to prune.
    """

    def __init__(self) -> None:
        self._ref: pykka.ActorRef[Any] | None = None

    def attach(self, ref: pykka.ActorRef[Any]) -> None:
        self._ref = ref

    def tell(self, message: Any) -> None:
        ref = self._ref
        if ref is not None:
            tell_incarnation(ref, message)  # a stopped incarnation: dropped quietly


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyServices:
    """What every strategy actor shares, built once by the host."""

    broker: Callable[[], Tellable]  # the broker actor's handle (by name)
    status: BrokerStatus
    market: MarketData
    recorder: Callable[[], EventRecorder | None]
    database: Database
    start_gate: Callable[[], str | None]
    request_timeout_s: float
    warned: set[tuple[str, str]]  # (strategy, symbol) already reported unknown
    inlets: dict[str, Inlet] = field(default_factory=dict)  # by strategy id


class StrategyActor(SupervisedActor):
    """Runs one :class:`~tradingbot.strategies.loader.LoadedStrategy` (see the module)."""

    def __init__(self, loaded: LoadedStrategy, services: StrategyServices) -> None:
        super().__init__()
        self._loaded = loaded
        self._services = services
        self._strategy: Strategy | None = None
        self._sctx: StrategyContext | None = None
        self._waiting_for: str | None = None
        self._published: dict[str, int] = {}

    # -- lifecycle --------------------------------------------------------------------

    def setup(self) -> None:
        structlog.contextvars.bind_contextvars(strategy_id=self._loaded.id)
        self.publish_details(strategy_id=self._loaded.id, state="waiting", ref=self._loaded.ref)
        tell_incarnation(self.actor_ref, _Poll())
        self.every(POLL_S, _Poll())  # ignored once started

    def teardown(self, reason: str) -> None:
        """Orderly stop: ``on_stop``. Subscriptions stay (the inlet outlives incarnations)."""
        strategy, ctx = self._strategy, self._sctx
        if strategy is not None and ctx is not None:
            try:
                strategy.on_stop(ctx)
            except Exception:
                log.exception("strategy_on_stop_failed", strategy_id=self._loaded.id)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Quote():
                if self._sctx is not None and message.symbol in self._sctx.watchlist:
                    self._call("on_quote", message)
            case Bar():
                if self._sctx is not None and message.symbol in self._sctx.watchlist:
                    self._sctx.add_bar(message)
                    self._call("on_bar", message)
            case _Tick():
                if self._sctx is not None:
                    self._call("on_timer", datetime.now(UTC))
            case StrategyEvents(events=events):
                if self._sctx is not None:
                    self._deliver(events)
            case _Poll():
                if self._sctx is None:
                    self._poll()
            case _:
                return super().on_receive(message)
        return None

    # -- starting ---------------------------------------------------------------------

    def _why_not_yet(self) -> str | None:
        status = self._services.status
        state = status.view().state
        if state != ConnectionState.SYNCED:
            return f"the broker is {state.value}"
        blocked = status.trading_blocked(RECONCILIATION_GATE)
        if blocked is not None:
            return blocked
        return self._services.start_gate()

    def _poll(self) -> None:
        why = self._why_not_yet()
        if why is None:
            try:
                self._begin()
                return
            except (BrokerNotReady, BrokerConnectionError, TimeoutError, StorageError) as exc:
                # An outage or a slow gateway while starting: try again on the next poll.
                self._strategy = self._sctx = None
                self._cancel_timers()  # the failed attempt's ctx.schedule timers
                self.every(POLL_S, _Poll())
                why = f"{type(exc).__name__}: {exc}"
        if why != self._waiting_for:
            self._waiting_for = why
            log.info("strategy_waiting", strategy_id=self._loaded.id, reason=why)
            self.publish_details(state="waiting", waiting_for=why)

    def _begin(self) -> None:
        loaded, services = self._loaded, self._services
        recorder = services.recorder()
        if recorder is None:
            raise RuntimeError("the event recorder is not ready")
        inlet = services.inlets.setdefault(loaded.id, Inlet())
        inlet.attach(self.actor_ref)
        ctx = StrategyContext(
            strategy_id=loaded.id,
            # A copy per incarnation: what one incarnation did to a list never reaches
            # the next (its state comes from what is durable, never from memory).
            params=MappingProxyType(
                {k: list(v) if isinstance(v, list) else v for k, v in loaded.params.items()}
            ),
            broker=services.broker(),
            status=services.status,
            market=services.market,
            recorder=recorder,
            source=loaded.actor_id,
            timeout_s=services.request_timeout_s,
            schedule=lambda every_s: self.every(every_s, _Tick()),
            last_signals=last_signals(services.database, loaded.id),
        )
        strategy = loaded.cls()
        ctx.watchlist = self._subscribe(recorder, inlet)
        seconds = int(getattr(strategy, "bar_seconds", 0))
        if seconds:
            self._bars(ctx, inlet, seconds, int(getattr(strategy, "warmup_bars", 0)))
        self._strategy, self._sctx = strategy, ctx
        try:
            strategy.on_start(ctx)
        except OrderRefused as exc:  # started; the refused order is the strategy's to retry
            log.warning("strategy_callback_abandoned", callback="on_start", error=str(exc))
        self.publish_details(state="running", waiting_for=None, watchlist=list(ctx.watchlist))
        self._publish_activity()
        log.info("strategy_started", strategy_id=loaded.id, watchlist=list(ctx.watchlist))

    def _subscribe(self, recorder: EventRecorder, sink: Tellable) -> tuple[str, ...]:
        """Subscribe every watchlist symbol; an unknown one is reported once and skipped."""
        known = []
        for symbol in self._loaded.watchlist:
            try:
                broker_api.subscribe_market_data(
                    self._services.broker(),
                    self._services.status,
                    symbol,
                    sink,
                    self._services.request_timeout_s,
                )
            except (UnknownSymbol, ValueError) as exc:
                self._unknown_symbol(recorder, symbol, exc)
                continue
            known.append(symbol)
        return tuple(known)

    def _bars(self, ctx: StrategyContext, sink: Tellable, seconds: int, warmup: int) -> None:
        """Warm up with historical bars, then subscribe the live ones, per symbol."""
        services = self._services
        for symbol in ctx.watchlist:
            if warmup:
                for bar in self._history(symbol, seconds, warmup):
                    ctx.add_bar(bar)
            broker_api.subscribe_bars(
                services.broker(),
                services.status,
                symbol,
                sink,
                seconds=seconds,
                timeout_s=services.request_timeout_s,
            )

    def _history(self, symbol: str, seconds: int, count: int) -> list[Bar]:
        """The last ``count`` completed bars of ``seconds`` (none where the gateway has no
        such bar size: the strategy then warms up on live bars)."""
        size = next((name for name, s in BAR_SIZES.items() if s == seconds), None)
        if size is None:
            log.warning("strategy_warmup_skipped", symbol=symbol, reason=f"no {seconds} s bars")
            return []

        def fetch(span: int) -> list[Bar]:
            duration = f"{span} S" if span <= 86_400 else f"{math.ceil(span / 86_400)} D"
            return broker_api.historical_bars(
                self._services.broker(),
                self._services.status,
                symbol,
                bar_size=size,
                duration=duration,
                timeout_s=self._services.request_timeout_s,
            )

        now = datetime.now(UTC)  # the gateway's last bar may be the one still forming
        if size not in STORED_SIZES:  # the daily bar update stores 1 min and 1 day bars
            fetch_all = seconds * (count + 1)
            try:
                bars = fetch(fetch_all)
            except (BarsUnavailable, ValueError) as exc:
                log.warning("strategy_warmup_skipped", symbol=symbol, reason=str(exc))
                return []
            done = [b for b in bars if b.start + timedelta(seconds=b.seconds) <= now]
            return done[-count:]
        try:
            return warmup_bars(self._services.database, symbol, count, size, fetch, now)
        except (BarsUnavailable, ValueError) as exc:
            log.warning("strategy_warmup_skipped", symbol=symbol, reason=str(exc))
            return []

    def _unknown_symbol(self, recorder: EventRecorder, symbol: str, error: Exception) -> None:
        key = (self._loaded.id, symbol)
        if key in self._services.warned:
            return
        self._services.warned.add(key)
        recorder.record(
            SYSTEM,
            f"strategy {self._loaded.id}: symbol {symbol} skipped: {error}",
            severity=Severity.WARNING,
            source=self._loaded.actor_id,
            strategy_id=self._loaded.id,
            context={"event": "unknown_symbol", "symbol": symbol, "error": str(error)},
        )

    # -- running ----------------------------------------------------------------------

    def _call(self, callback: str, *args: Any) -> None:
        """Run one callback; refusals and outages abandon it, anything else crashes."""
        try:
            getattr(self._strategy, callback)(self._sctx, *args)
        except (OrderRefused, BrokerNotReady) as exc:
            log.warning(
                "strategy_callback_abandoned",
                strategy_id=self._loaded.id,
                callback=callback,
                error=str(exc),
            )
        finally:
            self._publish_activity()

    def _publish_activity(self) -> None:
        """Signals, orders and refusals of this incarnation, in the tree snapshot (when
        they changed)."""
        ctx = self._sctx
        if ctx is not None and ctx.activity != self._published:
            self._published = dict(ctx.activity)
            self.publish_details(**self._published)

    def _deliver(self, events: Iterable[Event]) -> None:
        status = self._services.status
        for event in events:
            context = event.context
            order_ref = str(context.get("order_ref") or event.trade_id or "")
            signal_id = context.get("signal_id")
            if event.type == TRADE:
                fill = Fill(
                    order_id=order_ref,
                    symbol=str(context.get("symbol", "")),
                    side=str(context.get("side", "")),
                    quantity=float(context.get("quantity") or 0.0),
                    price=float(context.get("price") or 0.0),
                    commission=context.get("commission"),
                    exec_id=str(context.get("exec_id", "")),
                    signal_id=signal_id,
                )
                self._call("on_fill", fill)
            elif event.type == ORDER and context.get("action") == "final":
                record = status.order(order_ref)
                update = OrderUpdate(
                    order_id=order_ref,
                    symbol="" if record is None else record.symbol,
                    side="" if record is None else record.side,
                    quantity=0.0 if record is None else record.quantity,
                    status=str(context.get("status", "")),
                    filled=float(context.get("filled") or 0.0),
                    avg_fill_price=float(context.get("avg_fill_price") or 0.0),
                    signal_id=signal_id or (None if record is None else record.signal_id),
                )
                self._call("on_order_status", update)


def last_signals(database: Database, strategy_id: str) -> Mapping[str, Signal]:
    """The newest stored signal per symbol of ``strategy_id`` (StorageError if unreadable)."""
    page = database.events.query(
        EventQuery(types=(SIGNAL,), strategy_id=strategy_id, limit=SIGNALS_READ)
    )
    found: dict[str, Signal] = {}
    for event in page.events:  # newest first
        context = event.context
        symbol = str(context.get("symbol", ""))
        if not symbol or symbol in found:
            continue
        found[symbol] = Signal(
            id=str(event.id),
            symbol=symbol,
            side=str(context.get("side", "")),
            strength=float(context.get("strength") or 0.0),
            reason=str(context.get("reason", "")),
            inputs=dict(context.get("inputs") or {}),
            at=event.timestamp,
        )
    return found
