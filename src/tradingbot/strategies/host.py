"""The strategies' place in the process: their supervisors, their events, their give-up.

The tree gets one ``strategies`` supervisor (one_for_one) under the root, with one
supervisor per strategy (``strategy-<id>-sup``, restart *temporary*) around its worker
(``strategy-<id>``). A crashing strategy is restarted by its own supervisor; one that
crashes more than ``TRADINGBOT_STRATEGY_MAX_RESTARTS`` times within
``TRADINGBOT_STRATEGY_RESTART_PERIOD_S`` makes that supervisor give up, and being
temporary it is not restarted: that strategy is stopped alone (a SYSTEM ERROR event with
its ``strategy_id``, and the escalation's CRITICAL alert, say so) while the rest of the
bot, the other strategies included, keeps running.

The host also routes the stored TRADE and final ORDER events of each strategy's orders
to that strategy (by the strategy id inside the order reference), so fills reach it
only once they are durable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import structlog

from tradingbot.broker import BrokerStatus, MarketData
from tradingbot.broker.ids import strategy_of
from tradingbot.config import Config
from tradingbot.events import ORDER, SYSTEM, TRADE, Event, Severity
from tradingbot.events.hub import EventHub, Listener
from tradingbot.events.recorder import EventRecorder
from tradingbot.storage import Database
from tradingbot.strategies.actor import StrategyActor, StrategyEvents, StrategyServices
from tradingbot.strategies.loader import LoadedStrategy, load_strategies
from tradingbot.supervision import (
    ActorGaveUp,
    ActorHandle,
    ChildSpec,
    Restart,
    Strategy,
    SupervisedActor,
    SupervisionEvent,
    SupervisionTree,
    supervisor,
    worker,
)
from tradingbot.tellable import Tellable

log = structlog.get_logger("tradingbot.strategies")

SUPERVISOR_ID = "strategies"
STOP_S = 5.0  # a strategy's on_stop must finish within this


def no_start_gate() -> str | None:
    """The default start gate: strategies may start (once reconciliation passed)."""
    return None


class StrategyHost:
    """Builds the strategies' subtree and serves it (see the module docstring)."""

    def __init__(
        self,
        strategies: Sequence[LoadedStrategy],
        services: StrategyServices,
        *,
        max_restarts: int,
        period_s: float,
        watchlist: Sequence[str] = (),
    ) -> None:
        self.strategies = tuple(strategies)
        self._watchlist = tuple(watchlist)
        self._services = services
        self._max_restarts = max_restarts
        self._period_s = period_s
        self._handle: Callable[[str], ActorHandle] | None = None
        self._by_supervisor = {_supervisor_id(s): s for s in self.strategies}

    @classmethod
    def from_config(
        cls,
        config: Config,
        database: Database,
        *,
        broker: Callable[[], Tellable],
        status: BrokerStatus,
        market: MarketData,
        recorder: Callable[[], EventRecorder | None],
        start_gate: Callable[[], str | None] = no_start_gate,
    ) -> StrategyHost:
        """The configured strategies (``load_strategies``: ConfigError when misconfigured)."""
        services = StrategyServices(
            broker=broker,
            status=status,
            market=market,
            recorder=recorder,
            database=database,
            start_gate=start_gate,
            request_timeout_s=config.ib_request_timeout_s + 5.0,
            warned=set(),
        )
        return cls(
            load_strategies(config),
            services,
            max_restarts=config.strategy_max_restarts,
            period_s=config.strategy_restart_period_s,
            watchlist=config.watchlist,
        )

    def symbols(self) -> tuple[str, ...]:
        """Every watched symbol: ``TRADINGBOT_WATCHLIST`` and each strategy's own list
        (for the daily bar update)."""
        lists = [self._watchlist, *(s.watchlist for s in self.strategies)]
        return tuple(dict.fromkeys(symbol for symbols in lists for symbol in symbols))

    def spec(self) -> ChildSpec | None:
        """The ``strategies`` supervisor for the root, None when no strategy is configured."""
        if not self.strategies:
            return None
        return supervisor(
            SUPERVISOR_ID,
            [self._strategy_spec(s) for s in self.strategies],
            strategy=Strategy.ONE_FOR_ONE,
            # Its children are temporary: it never restarts one, so never exceeds this.
            intensity=len(self.strategies),
            period_s=self._period_s,
            shutdown_s=STOP_S * len(self.strategies) + 5.0,
            critical=False,
        )

    def _strategy_spec(self, loaded: LoadedStrategy) -> ChildSpec:
        services = self._services

        def factory() -> SupervisedActor:
            return StrategyActor(loaded, services)

        return supervisor(
            _supervisor_id(loaded),
            [
                worker(
                    loaded.actor_id,
                    factory,
                    shutdown_s=STOP_S,
                    # A user's strategy stuck in a callback is reported, but must not
                    # withhold the systemd watchdog from the rest of the bot.
                    critical=False,
                )
            ],
            strategy=Strategy.ONE_FOR_ONE,
            intensity=self._max_restarts,
            period_s=self._period_s,
            restart=Restart.TEMPORARY,
            shutdown_s=STOP_S + 2.0,
            critical=False,
        )

    def attach(self, tree: SupervisionTree, hub: EventHub) -> Listener:
        """Listen to ``tree`` (give-ups) and ``hub`` (stored events, routed to the
        strategies by name); close the returned listener at the end of the run."""
        self._handle = tree.handle
        tree.add_listener(self.on_supervision_event)
        return hub.listen(self.route)

    def route(self, events: Sequence[Event]) -> None:
        """Hub listener (event logger thread): hand each strategy its stored TRADE and
        final ORDER events. Quick and non-blocking: a tell per strategy and batch."""
        handle = self._handle
        if handle is None or not self.strategies:
            return
        batches: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            if event.type == TRADE or (
                event.type == ORDER and event.context.get("action") == "final"
            ):
                owner = strategy_of(str(event.context.get("order_ref") or event.trade_id or ""))
                if owner is not None:
                    batches[owner].append(event)
        for owner, batch in batches.items():
            loaded = next((s for s in self.strategies if s.id == owner), None)
            if loaded is None:
                continue  # an order of a strategy that is not configured in this run
            target = handle(loaded.actor_id)
            if not target.closed:  # stopped for good: nobody to tell
                target.tell(StrategyEvents(tuple(batch)))

    def on_supervision_event(self, event: SupervisionEvent) -> None:
        """Tree listener: a strategy's supervisor gave up — say which strategy stopped."""
        if not isinstance(event, ActorGaveUp) or event.supervisor != SUPERVISOR_ID:
            return
        loaded = self._by_supervisor.get(event.actor)
        recorder = self._services.recorder()
        if loaded is None or recorder is None:
            return
        others = [s.id for s in self.strategies if s is not loaded]
        recorder.record(
            SYSTEM,
            f"strategy {loaded.id} stopped for good: it crashed more than "
            f"{self._max_restarts} times in {self._period_s:g} s; "
            f"the rest of the bot keeps running",
            severity=Severity.ERROR,
            source=SUPERVISOR_ID,
            strategy_id=loaded.id,
            context={
                "event": "strategy_stopped",
                "strategy_id": loaded.id,
                "actor": loaded.actor_id,
                "reason": event.reason,
                "other_strategies": others,
            },
        )


def _supervisor_id(loaded: LoadedStrategy) -> str:
    return f"{loaded.actor_id}-sup"
