"""The stream bookkeeping quote and bar streams share: start once for all who wait, request
again, cancel.

The first subscriber of a symbol starts its stream on the client's loop; the actor does not
wait for that round trip. Later subscribers of a symbol whose stream is still starting wait
for the same outcome, which comes back to the actor as a started message of the
incarnation (:class:`~tradingbot.broker.messages.StreamStarted` for quotes,
:class:`~tradingbot.broker.messages.BarStreamStarted` for bars): on success every waiter
is answered, on failure every waiter is removed and refused with the error. When the
incarnation ends, whoever still waits is refused. :mod:`tradingbot.broker.streams` and
:mod:`tradingbot.broker.barstreams` each hold one :class:`StreamStarts` and supply what
differs: how a stream starts, how a waiter is removed, and the names of the log events
(:class:`StreamEvents`). :func:`request_again` (after a 1101 notice) and :func:`cancel`
(the last subscriber left) run their kind's coroutine on the client's loop and log the
outcome.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import structlog

from tradingbot.broker.errors import BrokerConnectionError

if TYPE_CHECKING:
    from tradingbot.broker.client import Client

log = structlog.get_logger(__name__)


class Waiter(Protocol):
    """A subscribe command: it names a symbol and is answered through ``reply``."""

    @property
    def symbol(self) -> str: ...

    @property
    def reply(self) -> concurrent.futures.Future[str]: ...


class Started(Protocol):
    """A stream's start finished on the loop: ``error`` is None on success."""

    @property
    def symbol(self) -> str: ...

    @property
    def error(self) -> BaseException | None: ...


W = TypeVar("W", bound=Waiter)


@dataclass(frozen=True, slots=True)
class StreamEvents:
    """The log event names of one kind of stream (spelled out, so that a grep finds them)."""

    subscribed: str  # a stream started for its waiting subscribers
    resubscribe_failed: str  # a restart after a reconnect failed
    request_failed: str  # requesting again after a 1101 failed
    requested_again: str
    cancel_failed: str
    unsubscribed: str


StartStream = Callable[[str, "Client"], Coroutine[Any, Any, None]]  # (symbol, client)
Report = Callable[[str, str, BaseException | None], Started]  # (epoch, symbol, error)


class StreamStarts(Generic[W]):
    """The streams of one incarnation that are starting, and who waits for each."""

    def __init__(
        self,
        start: StartStream,
        report: Report,
        drop: Callable[[str, W], object],
        events: StreamEvents,
    ) -> None:
        self._start_stream = start  # the coroutine that starts a symbol's stream on the loop
        self._report = report  # the started message told to the incarnation
        self._drop = drop  # remove a refused waiter's subscription
        self._events = events
        self._starting: dict[str, list[W]] = {}  # symbol -> who waits for its start

    def subscribe(self, message: W, first: bool, client: Client) -> bool:
        """A subscription was added (``first``: its symbol had none); True: publish the snapshot."""
        symbol = message.symbol
        if symbol in self._starting:  # its stream is starting: wait for the outcome
            self._starting[symbol].append(message)
            return False
        if not first:
            message.reply.set_result(symbol)
            return True
        self._starting[symbol] = [message]
        return self._start(symbol, client)

    def start_all(self, symbols: Iterable[str], client: Client) -> bool:
        """After a (re)connect: start the stream of every subscribed symbol again."""
        changed = False
        for symbol in symbols:
            if symbol not in self._starting:
                self._starting[symbol] = []
                changed = self._start(symbol, client) or changed
        return changed

    def _start(self, symbol: str, client: Client) -> bool:
        coro = self._start_stream(symbol, client)
        epoch, tell, report = client.epoch, client.tell, self._report

        def done(future: concurrent.futures.Future[None]) -> None:  # loop thread
            error = (
                BrokerConnectionError(f"{symbol}: the connection closed")
                if future.cancelled()
                else future.exception()
            )
            tell(report(epoch, symbol, error))

        try:
            client.loop.submit(coro).add_done_callback(done)
        except RuntimeError as exc:  # the loop stopped meanwhile
            return self.started(report(epoch, symbol, exc))
        return False

    def started(self, message: Started) -> bool:
        """Handle the started message of this incarnation; True: publish the snapshot."""
        symbol, error = message.symbol, message.error
        waiting = self._starting.pop(symbol, [])
        if error is None:
            if waiting:
                log.info(self._events.subscribed, symbol=symbol)
            for subscribe in waiting:
                subscribe.reply.set_result(symbol)
            return True
        if not waiting:
            log.warning(self._events.resubscribe_failed, symbol=symbol, error=str(error))
        for subscribe in waiting:
            self._drop(symbol, subscribe)
            subscribe.reply.set_exception(error)
        return True

    def abandon(self, why: str) -> None:
        """The incarnation ends: subscribers still waiting for a start are refused."""
        for symbol, waiting in self._starting.items():
            for subscribe in waiting:
                self._drop(symbol, subscribe)
                subscribe.reply.set_exception(BrokerConnectionError(f"{symbol}: {why}"))
        self._starting.clear()


def _error(future: concurrent.futures.Future[Any]) -> str | None:
    """Why a finished future failed (None when it succeeded)."""
    if future.cancelled():
        return "cancelled"
    error = future.exception()
    return None if error is None else str(error)


def request_again(
    client: Client, again: Coroutine[Any, Any, list[str]], events: StreamEvents
) -> None:
    """Run ``again`` (cancel and request every running stream; it returns their symbols)
    on the client's loop and log the outcome; if the loop stopped, the reconnect starts them."""

    def done(future: concurrent.futures.Future[list[str]]) -> None:  # loop thread
        error = _error(future)
        if error is not None:
            log.warning(events.request_failed, error=error)
        elif future.result():
            log.info(events.requested_again, symbols=future.result())

    try:
        client.loop.submit(again).add_done_callback(done)
    except RuntimeError as exc:  # the loop stopped meanwhile: the reconnect starts them
        log.warning(events.request_failed, error=str(exc))


def cancel(
    client: Client,
    stop: Coroutine[Any, Any, None],
    symbol: str,
    reply: concurrent.futures.Future[str],
    events: StreamEvents,
) -> None:
    """Run ``stop`` (cancel ``symbol``'s stream at the gateway) on the client's loop, log
    the outcome, then answer ``reply``; if the loop stopped, the stream ended with it."""

    def done(future: concurrent.futures.Future[None]) -> None:  # loop thread
        error = _error(future)
        if error is not None:
            log.warning(events.cancel_failed, symbol=symbol, error=error)
        log.info(events.unsubscribed, symbol=symbol)
        reply.set_result(symbol)

    try:
        client.loop.submit(stop).add_done_callback(done)
    except RuntimeError as exc:  # the stream ends with the connection
        log.warning(events.cancel_failed, symbol=symbol, error=str(exc))
        log.info(events.unsubscribed, symbol=symbol)
        reply.set_result(symbol)
