"""Bar streams of one broker actor incarnation: subscribe, unsubscribe, deliver bars.

The same design as the quote streams (:mod:`tradingbot.broker.streams`): the first bar
subscriber of a symbol starts its stream — the contract is qualified and the gateway's
5-second real-time bars requested (``reqRealTimeBars``), on the client's loop, without
the actor waiting; later subscribers of a symbol whose stream is still starting wait for
the same outcome; the last one out cancels the stream. One gateway stream per symbol
serves every bar length: 5-second subscribers are told each bar as it comes, longer
lengths get the bars of an :class:`~tradingbot.broker.bars.Aggregator` when they
complete. After a reconnect the new incarnation starts a stream for every symbol in the
shared :class:`~tradingbot.broker.bars.BarSubscriptions`; after a 1101 notice (data
lost) every stream is requested again and the spans in progress are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka
import structlog
from ib_async import IB

from tradingbot.broker import stream_starts
from tradingbot.broker.bars import REALTIME_BAR_S, Aggregator, Bar, BarSubscriptions
from tradingbot.broker.messages import BarArrived, BarStreamStarted, SubscribeBars, UnsubscribeBars
from tradingbot.broker.parsing import realtime_bar
from tradingbot.broker.stream_starts import StreamEvents, StreamStarts
from tradingbot.broker.streams import qualify

if TYPE_CHECKING:
    from tradingbot.broker.client import Client, Tell

log = structlog.get_logger(__name__)

EVENTS = StreamEvents(
    subscribed="broker_bars_subscribed",
    resubscribe_failed="broker_bars_resubscribe_failed",
    request_failed="broker_bars_request_failed",
    requested_again="broker_bars_requested_again",
    cancel_failed="broker_bars_cancel_failed",
    unsubscribed="broker_bars_unsubscribed",
)

KEEP_BARS = 64  # real-time bars kept in the client's list (it would grow all day)


def request_bars(
    ib: IB, lists: dict[str, Any], symbol: str, contract: Any, tell: Tell, epoch: str
) -> None:
    """Request ``symbol``'s real-time bars; each new one is told as :class:`BarArrived`
    (on the loop thread)."""
    bars = ib.reqRealTimeBars(contract, REALTIME_BAR_S, "TRADES", False)

    def on_update(updated: Any, has_new_bar: bool) -> None:
        if has_new_bar and updated:
            tell(BarArrived(epoch, realtime_bar(symbol, updated[-1])))
            if len(updated) > KEEP_BARS:
                del updated[:-1]

    bars.updateEvent += on_update
    lists[symbol] = bars


async def start_bar_stream(
    client: Client, lists: dict[str, Any], subs: BarSubscriptions, symbol: str, timeout_s: float
) -> None:
    """Qualify ``symbol`` at the gateway and request its real-time bars (on the loop)."""
    contract = await qualify(client.ib, symbol, timeout_s)
    if not subs.lengths(symbol):
        return  # the last subscriber left while the contract was qualified
    request_bars(client.ib, lists, symbol, contract, client.tell, client.epoch)


class BarStreams:
    """Bar streams of one incarnation (see the module docstring)."""

    def __init__(self, subscriptions: BarSubscriptions, request_timeout_s: float) -> None:
        self._subs = subscriptions
        self._lists: dict[str, Any] = {}  # symbol -> RealTimeBarList (loop thread only)
        self._starts: StreamStarts[SubscribeBars] = StreamStarts(
            lambda symbol, client: start_bar_stream(
                client, self._lists, subscriptions, symbol, request_timeout_s
            ),
            BarStreamStarted,
            lambda symbol, sub: subscriptions.remove(symbol, sub.seconds, sub.sink),
            EVENTS,
        )
        self._aggregators: dict[tuple[str, int], Aggregator] = {}

    def streams(self) -> list[str]:
        """``SYMBOL/seconds`` of every subscription (for the snapshot)."""
        return self._subs.streams()

    def subscribe(self, message: SubscribeBars, client: Client) -> bool:
        """Handle :class:`SubscribeBars`; True when the snapshot changed (publish it)."""
        first = self._subs.add(message.symbol, message.seconds, message.sink)
        return self._starts.subscribe(message, first, client)

    def start_all(self, client: Client) -> bool:
        """After a (re)connect: start the stream of every subscribed symbol again."""
        return self._starts.start_all(self._subs.symbols(), client)

    def started(self, message: BarStreamStarted) -> bool:
        """Handle :class:`BarStreamStarted` of this incarnation; True: publish the snapshot."""
        return self._starts.started(message)

    def request_again(self, client: Client) -> None:
        """After 1101 (data lost): cancel and request again every running bar stream; the
        spans being aggregated may miss bars, so they are dropped."""
        self._aggregators.clear()
        ib, lists, tell, epoch = client.ib, self._lists, client.tell, client.epoch

        async def again() -> list[str]:
            for symbol, bars in list(lists.items()):
                ib.cancelRealTimeBars(bars)
                request_bars(ib, lists, symbol, bars.contract, tell, epoch)
            return sorted(lists)

        stream_starts.request_again(client, again(), EVENTS)

    def unsubscribe(self, message: UnsubscribeBars, client: Client | None) -> bool:
        """Handle :class:`UnsubscribeBars`; the last subscriber of a symbol cancels its stream."""
        reply, symbol, seconds = message.reply, message.symbol, message.seconds
        last = self._subs.remove(symbol, seconds, message.sink)
        if not self._subs.sinks(symbol, seconds):
            self._aggregators.pop((symbol, seconds), None)
        if not last or client is None:
            reply.set_result(symbol)
            return True
        lists, ib = self._lists, client.ib

        async def stop() -> None:
            bars = lists.pop(symbol, None)
            if bars is not None and ib.isConnected():
                ib.cancelRealTimeBars(bars)

        stream_starts.cancel(client, stop(), symbol, reply, EVENTS)
        return True

    def arrived(self, message: BarArrived) -> None:
        """Handle :class:`BarArrived`: tell each length's subscribers the bars it completes."""
        bar = message.bar
        for seconds in self._subs.lengths(bar.symbol):
            if seconds == bar.seconds:
                self._deliver(bar)
                continue
            key = (bar.symbol, seconds)
            aggregator = self._aggregators.get(key)
            if aggregator is None:
                aggregator = self._aggregators[key] = Aggregator(bar.symbol, seconds)
            for completed in aggregator.add(bar):
                self._deliver(completed)

    def _deliver(self, bar: Bar) -> None:
        for sink in self._subs.sinks(bar.symbol, bar.seconds):
            try:
                sink.tell(bar)
            except pykka.ActorDeadError as exc:  # a dead subscriber must not stop others
                log.warning("broker_bar_not_delivered", symbol=bar.symbol, error=str(exc))
                self._subs.remove(bar.symbol, bar.seconds, sink)

    def abandon(self, why: str) -> None:
        """The incarnation ends: subscribers still waiting for a start are refused."""
        self._starts.abandon(why)
