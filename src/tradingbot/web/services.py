"""The services the HTTP handlers use: one typed ``web.AppKey`` each.

The wiring (:func:`tradingbot.web.app.create_app`) fills these keys from the
:class:`~tradingbot.runtime.Runtime`; a handler module imports only the keys it reads and
never sees the Runtime (``tests/test_service_keys.py`` checks it). What exists only once
the runtime started (the database, the supervision tree) is a getter that answers
``None`` until then: handlers call it at request time, never at setup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from aiohttp import web

from tradingbot.broker.status import BrokerStatus
from tradingbot.config import Config
from tradingbot.events.hub import EventHub
from tradingbot.health import HealthState
from tradingbot.scheduler.status import SchedulerStatus
from tradingbot.storage import Database
from tradingbot.strategies.host import StrategyHost
from tradingbot.supervision import SupervisionTree

CONFIG: Final = web.AppKey("config", Config)
RUN_ID: Final = web.AppKey("run_id", str)  # this run's id: the health bodies' serviceId
STARTED_AT: Final = web.AppKey("started_at", datetime)  # when this process's runtime began
ACCOUNT: Final = web.AppKey("account", str)  # the IB account ("" when not configured)
DATABASE: Final = web.AppKey[Callable[[], Database | None]]("database")
TREE: Final = web.AppKey[Callable[[], SupervisionTree | None]]("tree")
EVENT_HUB: Final = web.AppKey("event_hub", EventHub)
HEALTH: Final = web.AppKey("health", HealthState)  # the health actor's cached report
BROKER_STATUS: Final = web.AppKey("broker_status", BrokerStatus)
SCHEDULER_STATUS: Final = web.AppKey("scheduler_status", SchedulerStatus)
STRATEGIES: Final = web.AppKey[Callable[[], StrategyHost | None]]("strategies")  # the host
