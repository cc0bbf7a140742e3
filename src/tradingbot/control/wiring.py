"""The control layer's wiring: the command set of a :class:`~tradingbot.runtime.Runtime`.

The only control module that knows the Runtime (``tests/test_service_keys.py`` checks
it): it hands the commands the named services they use, with getters for what the
runtime creates only when it starts, so a command reads them when it runs.
"""

from __future__ import annotations

from tradingbot.control.commands import ControlServices, RuntimeCommands
from tradingbot.runtime import Runtime


def runtime_commands(runtime: Runtime) -> RuntimeCommands:
    """The control socket's command handler for ``runtime`` (every command registered)."""
    return RuntimeCommands(
        ControlServices(
            account=runtime.account,
            broker_status=runtime.broker_status,
            scheduler_status=runtime.scheduler_status,
            database=lambda: runtime.database,
            tree=lambda: runtime.tree,
            recorder=lambda: runtime.recorder,
            kill_switch=lambda: runtime.kill_switch,
            notifier=lambda: runtime.notifier,
            risk_book=lambda: runtime.risk_book,
        )
    )
