"""The command registry of the control socket: ``@command`` and the dispatcher.

Command modules (:mod:`~tradingbot.control.commands`,
:mod:`~tradingbot.control.trading_commands`) register their functions with
:func:`command`; :class:`RuntimeCommands` serves them on a live process. A command sees
the named services of :class:`ControlServices` (built by
:mod:`tradingbot.control.wiring`), never the Runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tradingbot.broker.riskbook import RiskBook
from tradingbot.broker.status import BrokerStatus
from tradingbot.control.server import CommandError, CommandResult
from tradingbot.events.recorder import EventRecorder
from tradingbot.notify import Notifier
from tradingbot.scheduler.status import SchedulerStatus
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree
from tradingbot.trading import KillSwitch

Command = Callable[["RuntimeCommands", list[str]], Awaitable[CommandResult]]
Mutates = Callable[[Sequence[str]], bool]
COMMANDS: dict[str, tuple[str, str, Command]] = {}
# Commands that change something, so a retry must not run them twice (idempotency keys).
_MUTATING: dict[str, Mutates] = {}


def command(
    name: str, usage: str, summary: str, *, mutating: bool | Mutates = False
) -> Callable[[Command], Command]:
    """Register a command; ``mutating`` (or a test of its arguments) marks a change."""

    def register(fn: Command) -> Command:
        COMMANDS[name] = (usage, summary, fn)
        if mutating is True:
            _MUTATING[name] = lambda args: True
        elif callable(mutating):
            _MUTATING[name] = mutating
        return fn

    return register


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlServices:
    """What the commands use. A getter answers ``None`` until the runtime started it."""

    account: str  # the IB account ("" when not configured)
    broker_status: BrokerStatus
    scheduler_status: SchedulerStatus
    database: Callable[[], Database | None]
    tree: Callable[[], SupervisionTree | None]
    recorder: Callable[[], EventRecorder | None]
    kill_switch: Callable[[], KillSwitch | None]
    notifier: Callable[[], Notifier | None]
    risk_book: Callable[[], RiskBook | None] = lambda: None


class RuntimeCommands:
    """The :class:`~tradingbot.control.server.CommandHandler` of ``trading-bot run``.

    Commands read its named services; one not running yet is a :class:`CommandError`.
    """

    def __init__(self, services: ControlServices) -> None:
        self._services = services

    async def __call__(self, command: str, args: list[str]) -> CommandResult:
        entry = COMMANDS.get(command)
        if entry is None:
            raise CommandError(f"unknown command {command!r}; try 'help'")
        return await entry[2](self, args)

    @staticmethod
    def mutates(command: str, args: Sequence[str]) -> bool:
        """Whether ``command ARGS`` changes something (a retry must not run it twice)."""
        test = _MUTATING.get(command)
        return test is not None and test(args)

    @property
    def account(self) -> str:
        return self._services.account

    @property
    def broker_status(self) -> BrokerStatus:
        return self._services.broker_status

    @property
    def scheduler_status(self) -> SchedulerStatus:
        return self._services.scheduler_status

    @property
    def recorder(self) -> EventRecorder:
        recorder = self._services.recorder()
        if recorder is None:
            raise CommandError("the event logger is not running")
        return recorder

    @property
    def database(self) -> Database:
        database = self._services.database()
        if database is None:
            raise CommandError("the database is not open")
        return database

    @property
    def tree(self) -> SupervisionTree:
        tree = self._services.tree()
        if tree is None:
            raise CommandError("the supervision tree is not running")
        return tree

    @property
    def kill_switch(self) -> KillSwitch:
        switch = self._services.kill_switch()
        if switch is None:
            raise CommandError("the kill switch is not running")
        return switch

    @property
    def risk_book(self) -> RiskBook | None:
        """The risk limits and today's memory of them (``None`` while starting)."""
        return self._services.risk_book()

    @property
    def notifier(self) -> Notifier:
        notifier = self._services.notifier()
        if notifier is None:
            raise CommandError("the notifier is not running")
        return notifier

    def actor_arg(self, args: list[str], name: str) -> str:
        usage = COMMANDS[name][0]
        if len(args) != 1:
            raise CommandError(f"usage: {usage}")
        actor_id = args[0]
        if actor_id not in self.tree.actor_ids():
            known = ", ".join(self.tree.actor_ids())
            raise CommandError(f"unknown actor {actor_id!r}; actors: {known}")
        return actor_id

    def drill_target(self, args: list[str], name: str) -> str:
        """The actor of a failure drill: never the root (its failure ends the process)."""
        actor_id = self.actor_arg(args, name)
        if actor_id == self.tree.root_spec.id:
            raise CommandError(
                f"the root supervisor cannot be used for a {name} drill: its failure ends "
                "the process; stop the process to test a full restart"
            )
        return actor_id


def usage_of(name: str) -> str:
    """The usage line of a registered command."""
    return COMMANDS[name][0]
