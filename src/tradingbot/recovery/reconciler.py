"""The reconciler actor: compares our books with the broker's before trading, and while trading.

At start the runtime blocks trading (``BrokerStatus.block_trading``); this actor opens
it only when a reconciliation passes, or when an operator accepts its discrepancies
(``reconcile accept`` in the shell, or ``TRADINGBOT_RECONCILE_ACCEPT=true``). Until then
health says ``blocked: reconciliation`` and why. It runs again every
``TRADINGBOT_RECONCILE_INTERVAL_S`` and after every reconnect of the broker; blocking
discrepancies found then block new orders again.

Each run asks the broker (through the broker actor, with timeouts) for positions, open
and completed orders and executions, rebuilds our books from the database (see
:mod:`tradingbot.recovery.reconcile`), imports missing fills as TRADE events marked
``reconciled`` (ids derived from execution ids: stored once), records the end of our
orders that ended meanwhile, and stores the result (``reconciliations``). A failed
query fails the run: nothing is read as flat, trading stays blocked, it is retried.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from tradingbot.broker import BrokerNotReady, BrokerStatus, ConnectionState
from tradingbot.broker.api import completed_orders, executions, open_orders, positions
from tradingbot.broker.ids import is_bot_order, trade_event_id
from tradingbot.broker.status import RECONCILIATION_GATE
from tradingbot.config import Config
from tradingbot.config.settings import default
from tradingbot.events import ORDER, RISK, SYSTEM, TRADE, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.recovery.reconcile import (
    Baseline,
    BrokerBooks,
    OurFill,
    OurOrder,
    Outcome,
    boundary_of,
    our_orders,
    reconcile,
    snapshot_cutoff,
)
from tradingbot.storage import Database, ReconciliationRecord, StorageError
from tradingbot.storage.reconciliations import ACCEPTED, CLEAN, DISCREPANCIES, FAILED
from tradingbot.supervision import SupervisedActor
from tradingbot.tellable import Tellable

log = structlog.get_logger(__name__)

ACCEPT_HINT = "accept with: trading-bot shell -c 'reconcile accept'"
LOOKBACK = timedelta(days=8)  # how far before the baseline our orders and fills are read
STABLE_ATTEMPTS = 3
FILL_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileSettings:
    """How and how often reconciliation runs."""

    account: str = ""
    interval_s: float = default("RECONCILE_INTERVAL_S")
    retry_min_s: float = 2.0
    retry_max_s: float = 60.0
    cost_tolerance: float = default("RECONCILE_COST_TOLERANCE")
    auto_accept: bool = default("RECONCILE_ACCEPT")
    query_timeout_s: float = 30.0
    tick_s: float = 1.0

    @classmethod
    def from_config(cls, config: Config) -> ReconcileSettings:
        """The settings of ``TRADINGBOT_RECONCILE_*``; a query may take the gateway's
        request timeout plus a margin for the actor round trip."""
        return cls(
            account=config.ib_account or "",
            interval_s=config.reconcile_interval_s,
            cost_tolerance=config.reconcile_cost_tolerance,
            auto_accept=config.reconcile_accept,
            query_timeout_s=config.ib_request_timeout_s + 5.0,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileResult:
    """One finished reconciliation: the stored record, and what was done about it."""

    record: ReconciliationRecord
    trigger: str
    imported: int
    closed: int

    def summary(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r.id,
            "trigger": self.trigger,
            "status": r.status,
            "as_of": r.as_of.isoformat(),
            "duration_s": round(r.duration_s, 3),
            "discrepancies": list(r.discrepancies),
            "blocking": sum(1 for d in r.discrepancies if d.get("blocking")),
            "imported_fills": self.imported,
            "closed_orders": self.closed,
            "error": r.error,
        }


class ReconcileFailed(RuntimeError):
    """A reconciliation could not finish (a broker query or the database failed)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Timer: run when due (start, retry, interval, or after a reconnect)."""


@dataclass(frozen=True, slots=True)
class RunNow:
    """Command: reconcile now; ``reply`` gets the summary (or the failure)."""

    reply: concurrent.futures.Future[dict[str, Any]] = field(
        default_factory=concurrent.futures.Future
    )


@dataclass(frozen=True, slots=True)
class Accept:
    """Command: accept the open discrepancies (``by`` names who); trading opens."""

    by: str
    reply: concurrent.futures.Future[dict[str, Any]] = field(
        default_factory=concurrent.futures.Future
    )


class ReconcilerActor(SupervisedActor):
    """Gates trading on reconciliation; see the module docstring."""

    def __init__(
        self,
        *,
        database: Database,
        broker: Tellable,
        status: BrokerStatus,
        recorder: EventRecorder | None,
        settings: ReconcileSettings,
        run_id: str,
        on_result: Callable[[ReconcileResult], None] | None = None,
    ) -> None:
        super().__init__()
        self._db = database
        self._broker = broker
        self._status = status
        self._recorder = recorder.bind(source="reconciler") if recorder is not None else None
        self._settings = settings
        self._run_id = run_id
        self._on_result = on_result
        self._next_due = 0.0  # monotonic; 0 = now
        self._retry_s = settings.retry_min_s
        self._seen_connects = -1
        # Discrepancies awaiting acceptance: the record and what it found.
        self._open: tuple[ReconciliationRecord, Outcome] | None = None
        self._passed_once = False
        self._failing = False
        self._last: dict[str, Any] = {}

    def setup(self) -> None:
        baseline_open = self._status.trading_blocked(RECONCILIATION_GATE) is None
        self._passed_once = baseline_open  # a restarted reconciler keeps an open gate open
        self.every(self._settings.tick_s, Tick())
        self._publish()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick():
                return self._tick()
            case RunNow():
                return self._run_now(message)
            case Accept():
                return self._accept(message)
            case _:
                return super().on_receive(message)

    # -- scheduling -----------------------------------------------------------------------

    def _tick(self) -> None:
        view = self._status.view()
        if view.state != ConnectionState.SYNCED:
            if not self._passed_once:
                self._block(f"reconciliation pending: the broker is {view.state.value}")
            return
        reconnected = self._seen_connects >= 0 and view.connects != self._seen_connects
        if reconnected or time.monotonic() >= self._next_due:
            self._attempt(
                "start" if not self._passed_once else "reconnect" if reconnected else "periodic"
            )

    def _run_now(self, message: RunNow) -> None:
        try:
            result = self._run("operator")
        except ReconcileFailed as exc:
            message.reply.set_exception(exc)
            return
        message.reply.set_result(result.summary())

    def _attempt(self, trigger: str) -> None:
        try:
            self._run(trigger)
        except ReconcileFailed as exc:
            self._next_due = time.monotonic() + self._retry_s
            self._retry_s = min(self._settings.retry_max_s, self._retry_s * 2)
            log.warning("reconciliation_failed", error=str(exc), retry_in_s=self._retry_s)

    # -- one reconciliation ---------------------------------------------------------------

    def _run(self, trigger: str) -> ReconcileResult:
        self._seen_connects = self._status.view().connects
        started = datetime.now(UTC)
        clock = time.perf_counter()
        try:
            outcome, as_of, boundary = self._compare(started)
        except (BrokerNotReady, TimeoutError, OSError, RuntimeError, StorageError) as exc:
            self._failed(trigger, started, time.perf_counter() - clock, exc)
            raise ReconcileFailed(f"reconciliation failed: {type(exc).__name__}: {exc}") from exc
        try:
            imported = self._import(outcome)
            closed = self._close(outcome)
        except EventNotDurable as exc:
            self._failed(trigger, started, time.perf_counter() - clock, exc)
            raise ReconcileFailed(f"reconciliation failed: {exc}") from exc
        try:
            record = self._db.reconciliations.record(
                run_id=self._run_id,
                account=self._settings.account,
                trigger=trigger,
                started_at=started,
                as_of=as_of,
                status=CLEAN if outcome.clean else DISCREPANCIES,
                positions=outcome.broker_positions,
                boundary_exec_ids=boundary,
                accepted_orders=outcome.carried_orders,
                discrepancies=[d.as_dict() for d in outcome.discrepancies],
                duration_s=time.perf_counter() - clock,
            )
            if record.status == DISCREPANCIES and self._settings.auto_accept:
                record = self._accepted(record, outcome, "TRADINGBOT_RECONCILE_ACCEPT")
        except (StorageError, EventNotDurable) as exc:
            self._failed(trigger, started, time.perf_counter() - clock, exc, store=False)
            raise ReconcileFailed(f"reconciliation not stored: {exc}") from exc
        result = ReconcileResult(record=record, trigger=trigger, imported=imported, closed=closed)
        self._finished(result, outcome)
        return result

    def _compare(self, started: datetime) -> tuple[Outcome, datetime, frozenset[str]]:
        """Gather our books and the broker's (a stable snapshot); compare them.

        Returns the outcome, the snapshot time and its boundary executions (for the
        record that may become the next baseline). Raises on any failure.
        """
        account = self._settings.account
        record = self._db.reconciliations.baseline(account)
        baseline = (
            Baseline()
            if record is None
            else Baseline(
                positions=dict(record.positions),
                cutoff=snapshot_cutoff(record.as_of.timestamp()),
                boundary=record.boundary_exec_ids,
                accepted_orders=record.accepted_orders,
            )
        )
        since = (started if record is None else record.as_of) - LOOKBACK
        orders = self._our_orders(since)
        # Orders this process is sending at this moment may reach the gateway only after
        # its snapshot: absent from it, they are in flight, not lost (the next run sees them).
        # So are orders it ended unsent whose end is not in our books yet (the broker
        # stores it, after a lost connection by its next incarnation).
        sending = {o.order_ref for o in orders if o.open and self._in_transit(o.order_ref)}
        # Executions the baseline may not contain: since just before its cutoff (the
        # gateway filters them); all of the day's without a baseline.
        window = None if record is None else datetime.fromtimestamp(baseline.cutoff - 1, UTC)
        as_of, books = self._broker_books(window, {o.order_ref for o in orders if o.open})
        # An order placed while the snapshot was taken (trading goes on during a reconnect
        # or periodic run) is open at the broker but was not in our books when they were
        # read; its ORDER event, stored before it was sent, is there now: ours, not unknown.
        placed_meanwhile = {o.order_ref for o in self._our_orders(since)} - {
            o.order_ref for o in orders
        }
        if placed_meanwhile:
            books = replace(
                books,
                open_orders=[o for o in books.open_orders if o.order_ref not in placed_meanwhile],
            )
        in_flight_orders = sending - {o.order_ref for o in books.open_orders}
        if in_flight_orders:
            orders = [o for o in orders if o.order_ref not in in_flight_orders]
        # Our fills are read after the snapshot: a fill the broker actor recorded before it
        # is seen as recorded; one it is still recording is "in flight", not imported twice.
        # Fills recorded before the executions window are inside the baseline already
        # (recorded is not executed: an hour's margin covers a late recording).
        fills_since = since if window is None else window - FILL_MARGIN
        fills = []
        for _, ctx, ts in self._db.events.contexts(TRADE, fills_since):
            if account and ctx.get("account", account) != account:
                continue
            fill = OurFill.from_context(ctx, ts.timestamp())
            if fill is not None:
                fills.append(fill)
        recorded = {f.exec_id for f in fills}
        in_flight = {
            e.exec_id
            for e in books.executions
            if e.exec_id not in recorded and self._status.fill_seen(e.exec_id)
        }
        outcome = reconcile(
            baseline=baseline,
            fills=fills,
            in_flight=in_flight,
            orders=orders,
            broker=books,
            cost_tolerance=self._settings.cost_tolerance,
        )
        return outcome, as_of, boundary_of(books.executions, as_of.timestamp())

    def _in_transit(self, order_ref: str) -> bool:
        record = self._status.order(order_ref)
        return record is not None and (record.sending or record.ended_unsent)

    def _our_orders(self, since: datetime) -> list[OurOrder]:
        """Our orders (placements and ends) from the ORDER events stored since ``since``."""
        account = self._settings.account
        return our_orders(
            (ref, ctx)
            for ref, ctx, _ in self._db.events.contexts(ORDER, since)
            if not account or ctx.get("account", account) == account
        )

    def _broker_books(
        self, window: datetime | None, our_open: set[str]
    ) -> tuple[datetime, BrokerBooks]:
        """Executions, then positions and orders, then the last seconds' executions again:
        the snapshot is stable only if no execution arrived meanwhile (else it is taken
        again). Completed orders are asked for only when an order open in our books is not
        open at the broker (to look it up before declaring it missing)."""
        broker, status, timeout = self._broker, self._status, self._settings.query_timeout_s
        for _ in range(STABLE_ATTEMPTS):
            as_of = datetime.now(UTC)
            recent = datetime.fromtimestamp(math.floor(as_of.timestamp()) - 2, UTC)
            before = executions(broker, status, timeout, since=window)
            held = positions(broker, status, timeout)
            open_now = open_orders(broker, status, timeout)
            missing = our_open - {o.order_ref for o in open_now}
            done = completed_orders(broker, status, timeout) if missing else []
            after = executions(broker, status, timeout, since=recent)
            seen = {e.exec_id for e in before if e.time is None or e.time >= recent}
            if {e.exec_id for e in after} <= seen:
                books = BrokerBooks(
                    positions=held, open_orders=open_now, completed_orders=done, executions=before
                )
                return as_of, books
        raise RuntimeError(f"executions kept arriving during {STABLE_ATTEMPTS} snapshots")

    def _import(self, outcome: Outcome) -> int:
        """Record each missing fill as a TRADE event (``reconciled``), stored once."""
        if self._recorder is None:
            return 0
        for e in outcome.to_import:
            ours = is_bot_order(e.order_ref)
            self._recorder.record_durable(
                TRADE,
                f"{e.side} {e.quantity:g} {e.symbol} @ {e.price:g} (reconciled)",
                trade_id=e.order_ref or None,
                event_id=trade_event_id(e.exec_id),
                context={
                    "symbol": e.symbol,
                    "side": e.side,
                    "quantity": e.quantity,
                    "price": e.price,
                    "commission": e.commission,
                    "currency": e.currency,
                    "realized_pnl": e.realized_pnl,
                    "order_ref": e.order_ref,
                    "order_id": e.order_id,
                    "perm_id": e.perm_id,
                    "exec_id": e.exec_id,
                    "exec_time": None if e.time is None else e.time.timestamp(),
                    "account": e.account,
                    "reconciled": True,
                    "external": not ours,
                },
            )
        self._status.known_fills({e.exec_id for e in outcome.to_import})
        return len(outcome.to_import)

    def _close(self, outcome: Outcome) -> int:
        """Record the end of our orders that ended at the broker while we were away."""
        for order in outcome.closed_orders:
            self._record_end(order.order_ref, order.status, "reconciled", filled=order.filled)
        return len(outcome.closed_orders)

    def _record_end(self, order_ref: str, status: str, why: str, **context: Any) -> None:
        """The ORDER event ``final`` that closes an order in our books (durable)."""
        if self._recorder is None:
            return
        self._recorder.record_durable(
            ORDER,
            f"order {order_ref} {status} ({why})",
            trade_id=order_ref,
            context={
                "order_ref": order_ref,
                "action": "final",
                "status": status,
                "account": self._settings.account,
                "reconciled": True,
                **context,
            },
        )

    # -- outcomes -------------------------------------------------------------------------

    def _finished(self, result: ReconcileResult, outcome: Outcome) -> None:
        record = result.record
        self._retry_s = self._settings.retry_min_s
        self._next_due = time.monotonic() + self._settings.interval_s
        self._failing = False
        blocking = outcome.blocking
        summary = result.summary()
        if record.status in (CLEAN, ACCEPTED):
            self._open = None
            self._passed_once = True
            self._status.allow_trading()
        else:
            self._open = (record, outcome)
            self._block(f"reconciliation found {len(blocking)} discrepancies; {ACCEPT_HINT}")
        details = "; ".join(d.detail for d in blocking[:5])
        if record.status == CLEAN:
            severity = Severity.WARNING if outcome.discrepancies else Severity.INFO
            message = f"reconciliation clean ({result.trigger})"
            if outcome.discrepancies:
                message += f": {len(outcome.discrepancies)} findings reported, none blocking"
            self._event(SYSTEM, severity, message, summary)
        elif record.status == ACCEPTED:
            self._event(
                RISK,
                Severity.WARNING,
                f"reconciliation found {len(blocking)} discrepancies, accepted by "
                f"TRADINGBOT_RECONCILE_ACCEPT: {details}",
                summary,
            )
        else:
            self._event(
                RISK,
                Severity.ERROR,
                f"reconciliation found {len(blocking)} discrepancies, trading blocked: {details}",
                summary,
            )
        log.info(
            "reconciliation_done", **{k: v for k, v in summary.items() if k != "discrepancies"}
        )
        self._last = summary
        self._publish()
        self._report(result)

    def _report(self, result: ReconcileResult) -> None:
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception as exc:  # noqa: BLE001  # a report failing must not fail the gate
                log.error("reconciliation_report_failed", error=str(exc))

    def _failed(
        self,
        trigger: str,
        started: datetime,
        duration_s: float,
        error: BaseException,
        *,
        store: bool = True,
    ) -> None:
        text = f"{type(error).__name__}: {error}"
        if not self._passed_once:
            self._block(f"reconciliation failed: {text}; retrying")
        if not self._failing and store:  # one row and one event per failure streak
            try:
                self._db.reconciliations.record(
                    run_id=self._run_id,
                    account=self._settings.account,
                    trigger=trigger,
                    started_at=started,
                    as_of=datetime.now(UTC),
                    status=FAILED,
                    positions={},
                    discrepancies=[],
                    duration_s=duration_s,
                    error=text,
                )
            except StorageError as exc:
                log.warning("reconciliation_failure_not_stored", error=str(exc))
            self._event(
                SYSTEM,
                Severity.WARNING,
                f"reconciliation failed ({trigger}): {text}",
                {"error": text, "trigger": trigger},
            )
        self._failing = True
        self._last = {"status": FAILED, "trigger": trigger, "error": text}
        self._publish()

    def _accept(self, message: Accept) -> None:
        if self._open is None:
            message.reply.set_exception(ValueError("no discrepancies await acceptance"))
            return
        try:
            record = self._accepted(*self._open, message.by)
        except (StorageError, ValueError, EventNotDurable) as exc:
            message.reply.set_exception(exc)
            return
        self._open = None
        self._passed_once = True
        self._status.allow_trading()
        self._next_due = time.monotonic() + self._settings.interval_s
        result = ReconcileResult(record=record, trigger="accept", imported=0, closed=0)
        summary = result.summary()
        self._event(
            RISK,
            Severity.WARNING,
            f"reconciliation discrepancies accepted by {message.by}: trading allowed",
            summary,
        )
        self._last = summary
        self._publish()
        self._report(result)
        message.reply.set_result(summary)

    def _accepted(
        self, record: ReconciliationRecord, outcome: Outcome, by: str
    ) -> ReconciliationRecord:
        """Accept ``record``: the broker's view becomes ours. Orders open in our books
        and unknown to the broker are closed in our books (``Orphaned``); open orders not
        ours are remembered, so they are not reported again while they stay open."""
        for d in outcome.discrepancies:
            if d.kind == "orphaned_order":
                self._record_end(d.order_ref, "Orphaned", f"accepted by {by}")
        return self._db.reconciliations.accept(record.id, by=by, orders=outcome.acceptable_orders())

    # -- helpers --------------------------------------------------------------------------

    def _block(self, reason: str) -> None:
        if self._status.trading_blocked(RECONCILIATION_GATE) != reason:
            self._status.block_trading(reason)
            log.warning("trading_blocked", reason=reason)
            self._publish()

    def _event(self, type_: str, severity: Severity, message: str, context: dict[str, Any]) -> None:
        if self._recorder is None:
            return
        try:
            self._recorder.record_durable(type_, message, severity=severity, context=context)
        except EventNotDurable as exc:
            log.error("reconciliation_event_not_stored", error=str(exc), message=message)

    def _publish(self) -> None:
        self.publish_details(
            trading_blocked=self._status.trading_blocked(),
            last=self._last,
            awaiting_acceptance=None if self._open is None else self._open[0].id,
        )
