"""How an order is placed and cancelled, and how its reports become ORDER and TRADE events.

Placing: refuse while trading is blocked (a retry of a known key still gets its order),
answer a known key with its order and send nothing, pass the pre-trade risk checks
(:mod:`tradingbot.broker.pretrade`; a refusal is a RISK event and nothing is sent),
record a durable ORDER event, and only then send the order with ``orderRef`` = our id;
the caller's reply resolves on the loop thread the moment ``placeOrder`` returned. A
send that fails or is cut off once ``placeOrder`` was called leaves the order
``Unresolved`` (whether the gateway got it is unknown) until the gateway reports it
again; one stopped before it (a gate closed at the last moment, a lost connection
during a reduce-only order's position check) ends ``Cancelled``, never sent, and that
end is stored durably. Cancelling: look the order up in the
client (on the loop), record a durable ORDER event, send the cancel. Status reports
keep :class:`BrokerStatus` current; an order's end is an ORDER event; each fill's
commission report is one TRADE event with an id derived from the execution id (stored
once, however often reported).

Everything here runs on the actor's thread except :func:`applied` and the callbacks
named as such, which run on the client's loop thread.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from ib_async import LimitOrder, MarketOrder, Stock

from tradingbot.broker.errors import BrokerConnectionError, TradingBlocked, UnknownOrder
from tradingbot.broker.flatten import refuse_unless_reducing
from tradingbot.broker.ids import order_ref_for, trade_event_id
from tradingbot.broker.messages import (
    CancelChecked,
    CancelOrder,
    FillReported,
    OrderStatusChanged,
    PlaceOrder,
    QuoteFetched,
    SendFailed,
)
from tradingbot.broker.pretrade import PreTrade
from tradingbot.broker.settings import BrokerSettings
from tradingbot.broker.status import FINAL_STATUSES, UNRESOLVED, BrokerStatus, OrderRecord
from tradingbot.events import ORDER, TRADE
from tradingbot.events.recorder import EventNotDurable, EventRecorder

if TYPE_CHECKING:
    from tradingbot.broker.client import Client, Deliver

log = structlog.get_logger("tradingbot.broker")


def applied(status: BrokerStatus, report: OrderStatusChanged) -> OrderStatusChanged:
    """Apply a status report to the shared status (any thread); return it marked
    ``applied``, with whether it settled an unresolved order and made the order final."""
    change = status.apply_order_status(
        report.order_ref,
        report.status,
        report.filled,
        avg_fill_price=report.avg_fill_price,
        order_id=report.order_id,
        perm_id=report.perm_id,
    )
    if change is None:
        return replace(report, applied=True)
    before, after = change
    final = after.status in FINAL_STATUSES and before.status not in FINAL_STATUSES
    resolved = before.unresolved and not after.unresolved
    return replace(report, applied=True, resolved=resolved, final=final)


def send_failed(status: BrokerStatus, order_ref: str, error: BaseException) -> None:
    """The send raised or was cut off: whether the gateway got the order is unknown."""
    log.warning("broker_order_send_failed", order_ref=order_ref, error=str(error))
    status.update_order(order_ref, status=UNRESOLVED)


def never_sent(status: BrokerStatus, deliver: Deliver, order_ref: str, why: str) -> None:
    """The order never reached ``placeOrder`` (refused at the last moment, or cut off
    before it by a lost connection): it ends Cancelled in our books at once, and the
    broker stores that end durably -- this incarnation, or the next one when this one is
    ending -- so reconciliation never takes it for an open order the broker lost."""
    deliver(applied(status, OrderStatusChanged(order_ref, "Cancelled", 0, 0, 0, 0, never_sent=why)))


class Orders:
    """Our orders at the gateway, for one actor incarnation (see the module docstring)."""

    def __init__(
        self,
        settings: BrokerSettings,
        status: BrokerStatus,
        recorder: EventRecorder | None,
        pretrade: PreTrade | None = None,
    ) -> None:
        self._settings = settings
        self._status = status
        self._recorder = recorder
        self._pretrade = pretrade  # None: no risk limits (tests of the order path alone)

    def place(self, message: PlaceOrder, client: Client) -> bool:
        """Handle :class:`PlaceOrder`; True when the snapshot changed (publish it)."""
        return self._place(message, order_ref_for(message.request.client_order_id), client)

    def quote_fetched(self, message: QuoteFetched, client: Client) -> bool:
        """Handle :class:`QuoteFetched`: the order goes on (gates and checks again); then
        each retry of it that waited (a known order by now, or judged afresh)."""
        retries = []
        if self._pretrade is not None:
            retries = self._pretrade.arrived(message.place, message.order_ref)
        changed = self._place(message.place, message.order_ref, client, message)
        for retry in retries:
            changed = self._place(retry, message.order_ref, client) or changed
        return changed

    def abandon(self, why: str) -> None:
        """The incarnation ends: orders awaiting a quote for their risk check are refused."""
        if self._pretrade is not None:
            self._pretrade.abandon(why)

    def _place(
        self,
        message: PlaceOrder,
        order_ref: str,
        client: Client,
        fetched: QuoteFetched | None = None,
    ) -> bool:
        reply, request = message.reply, message.request
        key = request.client_order_id
        refusal = self._status.order_refusal(key, reduce_only=request.reduce_only)
        if refusal is not None:
            reply.set_exception(refusal)
            return False
        known = self._status.order(order_ref)
        if known is not None:  # a retry: the order exists (live, unresolved or final)
            log.info("broker_order_known", order_ref=order_ref, status=known.status)
            reply.set_result(order_ref)
            return False
        if self._pretrade is not None and not self._pretrade.passes(
            message, order_ref, client, fetched
        ):
            return False
        price = "" if request.limit_price is None else f" {request.limit_price:g}"
        text = f"{request.side} {request.quantity:g} {request.symbol} {request.order_type}{price}"
        context: dict[str, Any] = {
            **request.event_fields(order_ref),
            "action": "place",
            "account": self._settings.account or "",
            **_decided_by(request.strategy_id, request.signal_id),
        }
        if request.reduce_only:
            context["reduce_only"] = True
        if not self._record_order(text, order_ref, request.strategy_id, context, reply):
            return False
        self._status.put_order(
            OrderRecord(
                order_ref=order_ref,
                symbol=request.symbol,
                side=request.side,
                quantity=request.quantity,
                order_type=request.order_type,
                limit_price=request.limit_price,
                client_order_id=key,
                strategy_id=request.strategy_id,
                signal_id=request.signal_id,
            )
        )
        ib, status, tell, deliver = client.ib, self._status, client.tell, client.deliver
        account = self._settings.account or ""
        placing = [False]  # True from the moment placeOrder is called: sent, or maybe sent

        async def send() -> int:
            contract = Stock(request.symbol, request.exchange, request.currency)
            order: Any
            if request.order_type == "LMT":
                order = LimitOrder(request.side, request.quantity, request.limit_price or 0.0)
            else:
                order = MarketOrder(request.side, request.quantity)
            order.orderRef = order_ref
            order.account = account
            # The gates again, at the last moment: a pause acknowledged while the ORDER
            # event was being stored must stop this order too.
            blocked = status.order_gate(reduce_only=request.reduce_only)
            if blocked is not None:
                raise TradingBlocked(f"order refused: trading is blocked ({blocked})")
            if request.reduce_only:
                await refuse_unless_reducing(ib, account, request)
            if not ib.isConnected():  # placeOrder would refuse: nothing reaches the gateway
                raise BrokerConnectionError("the connection closed before the order was sent")
            placing[0] = True
            trade = ib.placeOrder(contract, order)
            return int(trade.order.orderId)

        def sent(future: concurrent.futures.Future[int]) -> None:
            # On the loop thread, right after placeOrder: the caller gets its answer
            # without waiting for the actor (which is free for the next message).
            error: BaseException | None = (
                BrokerConnectionError(
                    "the connection closed while sending"
                    if placing[0]
                    else "the connection closed before the order was sent"
                )
                if future.cancelled()
                else future.exception()
            )
            if error is None:
                order_id = future.result()
                status.update_order(order_ref, order_id=order_id)
                log.info("broker_order_sent", order_ref=order_ref, order_id=order_id, order=text)
                reply.set_result(order_ref)
                return
            if isinstance(error, TradingBlocked):
                log.warning("broker_order_refused_late", order_ref=order_ref, error=str(error))
                never_sent(status, deliver, order_ref, str(error))
            elif not placing[0]:  # cut off before placeOrder (its position check)
                log.warning("broker_order_not_sent", order_ref=order_ref, error=str(error))
                never_sent(status, deliver, order_ref, f"{type(error).__name__}: {error}")
            else:
                send_failed(status, order_ref, error)
                tell(SendFailed(order_ref))
            reply.set_exception(error)

        try:
            client.loop.submit(send()).add_done_callback(sent)
        except RuntimeError as exc:  # the loop stopped meanwhile: send() never ran
            log.warning("broker_order_not_sent", order_ref=order_ref, error=str(exc))
            never_sent(status, deliver, order_ref, f"{type(exc).__name__}: {exc}")
            reply.set_exception(exc)
            return True
        return False

    def cancel(self, message: CancelOrder, client: Client) -> None:
        """Handle :class:`CancelOrder`: refuse what cannot be cancelled, else look the
        order up in the client (on the loop); :meth:`cancel_checked` goes on from there."""
        reply, order_ref = message.reply, message.order_ref
        record = self._status.order(order_ref)
        if record is None:
            reply.set_exception(UnknownOrder(f"unknown order id {order_ref!r}"))
            return
        if record.status in FINAL_STATUSES:
            reply.set_exception(ValueError(f"order {order_ref} is {record.status}: not open"))
            return
        ib, epoch, tell = client.ib, client.epoch, client.tell

        async def look_up() -> CancelChecked:
            for trade in ib.openTrades():
                if trade.order.orderRef == order_ref:
                    return CancelChecked(epoch, message, True, int(trade.order.orderId))
            return CancelChecked(epoch, message, False)

        def checked(future: concurrent.futures.Future[CancelChecked]) -> None:  # loop thread
            if future.cancelled() or future.exception() is not None:
                error = future.exception() if not future.cancelled() else None
                reply.set_exception(error or BrokerConnectionError("the connection closed"))
            elif not tell(future.result()):
                reply.set_exception(BrokerConnectionError("the broker stopped meanwhile"))

        try:
            client.loop.submit(look_up()).add_done_callback(checked)
        except RuntimeError as exc:  # the loop stopped meanwhile
            reply.set_exception(exc)

    def cancel_checked(self, message: CancelChecked, client: Client | None) -> None:
        """Handle :class:`CancelChecked`: record the cancel durably, then send it."""
        reply, order_ref = message.cancel.reply, message.cancel.order_ref
        if client is None or client.epoch != message.epoch:
            reply.set_exception(BrokerConnectionError("the connection was lost meanwhile"))
            return
        record = self._status.order(order_ref)
        if not message.open or record is None:
            reply.set_exception(ValueError(f"order {order_ref} is not open at the gateway"))
            return
        text = f"CANCEL {record.side} {record.quantity:g} {record.symbol} ({order_ref})"
        context = {"order_ref": order_ref, "action": "cancel", "order_id": message.order_id}
        context.update(_decided_by_record(record))
        if not self._record_order(text, order_ref, record.strategy_id, context, reply):
            return
        ib = client.ib

        async def send() -> None:
            for trade in ib.openTrades():
                if trade.order.orderRef == order_ref:
                    ib.cancelOrder(trade.order)
                    return
            raise ValueError(f"order {order_ref} is not open at the gateway")

        def sent(future: concurrent.futures.Future[None]) -> None:  # loop thread
            error: BaseException | None = (
                BrokerConnectionError("the connection closed while sending")
                if future.cancelled()
                else future.exception()
            )
            if error is None:
                log.info("broker_cancel_sent", order_ref=order_ref)
                reply.set_result(order_ref)
                return
            log.warning("broker_cancel_send_failed", order_ref=order_ref, error=str(error))
            reply.set_exception(error)

        try:
            client.loop.submit(send()).add_done_callback(sent)
        except RuntimeError as exc:  # the loop stopped meanwhile
            log.warning("broker_cancel_send_failed", order_ref=order_ref, error=str(exc))
            reply.set_exception(exc)

    def _record_order(
        self,
        text: str,
        order_ref: str,
        strategy_id: str | None,
        context: dict[str, Any],
        reply: concurrent.futures.Future[Any],
    ) -> bool:
        """Store the ORDER event before anything is sent; False: not durable, ``reply``
        refused with the reason (nothing is sent)."""
        try:
            if self._recorder is not None:
                self._recorder.record_durable(
                    ORDER, text, trade_id=order_ref, strategy_id=strategy_id, context=context
                )
        except EventNotDurable as exc:
            reply.set_exception(exc)
            return False
        return True

    def status_changed(self, message: OrderStatusChanged) -> bool:
        """Handle :class:`OrderStatusChanged`; True when it settled an unresolved order."""
        if not message.applied:
            message = applied(self._status, message)
        if message.resolved:
            log.info("broker_order_resolved", order_ref=message.order_ref, status=message.status)
        if message.final and self._recorder is not None:
            self._record_final(self._recorder, message)
        return message.resolved

    def _record_final(self, recorder: EventRecorder, message: OrderStatusChanged) -> None:
        """The order's end in our books: reconciliation knows from it that the order is
        no longer open (a fill alone does not say so for a partial fill). An order the
        gateway never saw has no other trace of its end, so that one is stored durably:
        else a crash right after would leave it open in our books, unknown to the broker,
        and block trading at the next start (an ``orphaned_order``)."""
        decided = _decided_by_record(self._status.order(message.order_ref))
        text = f"order {message.order_ref} {message.status}"
        context: dict[str, Any] = {
            **decided,
            "order_ref": message.order_ref,
            "action": "final",
            "status": message.status,
            "filled": message.filled,
            "avg_fill_price": message.avg_fill_price,
            "account": self._settings.account or "",
        }
        fields: dict[str, Any] = {
            "trade_id": message.order_ref,
            "strategy_id": decided.get("strategy_id"),
        }
        if not message.never_sent:
            recorder.record(ORDER, text, context=context, **fields)
            return
        context["never_sent"] = message.never_sent
        try:
            recorder.record_durable(
                ORDER, f"{text} before sending ({message.never_sent})", context=context, **fields
            )
        except EventNotDurable as exc:  # reconciliation reports it as an orphaned order
            log.error("broker_order_end_not_recorded", order_ref=message.order_ref, error=str(exc))

    def fill(self, fill: FillReported) -> None:
        """Handle :class:`FillReported`: one durable TRADE event per execution id."""
        if not self._status.first_fill(fill.exec_id):
            return
        text = f"{fill.side} {fill.quantity:g} {fill.symbol} @ {fill.price:g}"
        context: dict[str, Any] = {
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
        decided = _decided_by_record(self._status.order(fill.order_ref))
        context.update(decided)
        if self._recorder is None:
            return
        try:
            self._recorder.record_durable(
                TRADE,
                text,
                trade_id=fill.order_ref or None,
                strategy_id=decided.get("strategy_id"),
                context=context,
                event_id=trade_event_id(fill.exec_id),
            )
        except EventNotDurable as exc:
            # Not stored: forget it, so the gateway's next report of this execution (after
            # a reconnect) or the reconciliation imports it instead of taking it for a
            # fill still being recorded.
            self._status.forget_fill(fill.exec_id)
            log.error("broker_fill_not_recorded", exec_id=fill.exec_id, error=str(exc))

    def mark_unresolved(self, why: str) -> None:
        """Orders sent but not known to be final stay unresolved until the gateway answers."""
        refs = self._status.mark_unresolved()
        if refs:
            log.warning("broker_orders_unresolved", order_refs=refs, why=why)


def _decided_by(strategy_id: str | None, signal_id: str | None) -> dict[str, str]:
    """The ``strategy_id``/``signal_id`` context entries of an order's events (when set)."""
    named = {"strategy_id": strategy_id, "signal_id": signal_id}
    return {key: value for key, value in named.items() if value is not None}


def _decided_by_record(record: OrderRecord | None) -> dict[str, str]:
    return {} if record is None else _decided_by(record.strategy_id, record.signal_id)
