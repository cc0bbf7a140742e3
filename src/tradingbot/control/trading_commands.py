"""Shell commands of the kill switch: ``trading``, ``pause REASON...``, ``resume [REASON...]``,
``cancel-all REASON...`` and ``flatten REASON...``.

The shell is the operator's own channel (its socket admits only the owner's uid), so it
needs no token; the change is recorded as made by ``shell uid N``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol, TypeVar

from tradingbot.broker import BrokerNotReady, cancel_all, flatten
from tradingbot.broker.flatten import cancel_all_dict, describe_cancel_all, describe_flatten
from tradingbot.broker.status import KILL_SWITCH_GATE, BrokerStatus
from tradingbot.control.registry import RuntimeCommands, command, usage_of
from tradingbot.control.server import CommandError, CommandResult
from tradingbot.events.recorder import EventNotDurable
from tradingbot.storage import StorageError
from tradingbot.tellable import Tellable
from tradingbot.trading import KillSwitch, SwitchResult, TradingState


def _describe(state: TradingState) -> str:
    if state.trading:
        return "trading: running (new orders allowed by the kill switch)"
    since = "" if state.since is None else f" since {state.since.isoformat(timespec='seconds')}"
    stored = "" if state.durable else " (NOT STORED: a restart would not remember it)"
    return f"trading: {state.mode.value} by {state.changed_by}{since}: {state.reason}{stored}"


def _result(ctx: RuntimeCommands, switch: KillSwitch, result: SwitchResult | None) -> CommandResult:
    state = switch.state()
    status = ctx.broker_status
    gates = status.gates()
    lines = [_describe(state)]
    if result is not None and not result.changed:
        lines.insert(0, f"unchanged: already {state.mode.value}")
    if result is not None and result.warning:
        lines.append(f"warning: {result.warning}")
    for gate, reason in gates.items():
        if gate != KILL_SWITCH_GATE and reason is not None:
            lines.append(f"orders are also blocked by {gate.replace('_', ' ')}: {reason}")
    data = {
        "kill_switch": state.as_dict(),
        "gates": gates,
        "orders_allowed": status.trading_blocked() is None,
    }
    if result is not None:
        data["changed"] = result.changed
        data["warning"] = result.warning
    return CommandResult(result=data, text="\n".join(lines))


def _by() -> str:
    return f"shell uid {os.getuid()}"


def _reason(args: list[str], name: str) -> str:
    """The REASON words of a command that must say why (it is mailed and recorded)."""
    reason = " ".join(args).strip()
    if not reason:
        raise CommandError(f"usage: {usage_of(name)} (say why: it is mailed and recorded)")
    return reason


@command("trading", "trading", "show the kill switch and whether new orders may go out")
async def _trading(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    if args:
        raise CommandError(f"usage: {usage_of('trading')}")
    return _result(ctx, ctx.kill_switch, None)


@command(
    "pause",
    "pause REASON...",
    "stop new orders (open orders stay); durable and mailed",
    mutating=True,
)
async def _pause(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    reason = _reason(args, "pause")
    switch = ctx.kill_switch
    try:
        result = await asyncio.to_thread(lambda: switch.pause(by=_by(), reason=reason))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return _result(ctx, switch, result)


@command(
    "resume", "resume [REASON...]", "let new orders flow again; durable and mailed", mutating=True
)
async def _resume(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    reason = " ".join(args).strip()
    switch = ctx.kill_switch
    try:
        result = await asyncio.to_thread(lambda: switch.resume(by=_by(), reason=reason))
    except StorageError as exc:
        raise CommandError(f"not resumed, trading stays stopped: {exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return _result(ctx, switch, result)


R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# Within the shell's default 10 s answer timeout (``trading-bot shell --timeout``).
EXIT_TIMEOUT_S = 8.0


class _Exit(Protocol[R_co]):
    """``cancel_all`` or ``flatten`` of :mod:`tradingbot.broker`."""

    def __call__(
        self, broker: Tellable, status: BrokerStatus, *, by: str, reason: str, timeout_s: float
    ) -> R_co: ...


async def _exit(ctx: RuntimeCommands, name: str, args: list[str], run: _Exit[R]) -> tuple[str, R]:
    """Run a cancel-all or flatten for the reason in ``args`` on a worker thread; its
    refusals as one clear line. Returns who ran it and the result."""
    reason, by = _reason(args, name), _by()
    handle = ctx.tree.handle("broker")
    status = ctx.broker_status
    try:
        result = await asyncio.to_thread(
            lambda: run(handle, status, by=by, reason=reason, timeout_s=EXIT_TIMEOUT_S)
        )
    except BrokerNotReady as exc:
        raise CommandError(f"{name}: {exc}; nothing was sent") from None
    except EventNotDurable as exc:
        raise CommandError(f"{name} refused, nothing was sent: {exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except TimeoutError as exc:
        raise CommandError(f"{name}: {exc}; look at 'trading' and the events") from None
    return f"{name} by {by}: {reason}", result


@command(
    "cancel-all",
    "cancel-all REASON...",
    "cancel every open order of the account (global cancel); recorded and mailed",
    mutating=True,
)
async def _cancel_all(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    header, result = await _exit(ctx, "cancel-all", args, cancel_all)
    text = [header, *describe_cancel_all(result)]
    return CommandResult(result=cancel_all_dict(result), text="\n".join(text))


@command(
    "flatten",
    "flatten REASON...",
    "cancel all orders, then close every position at market; idempotent, recorded, mailed",
    mutating=True,
)
async def _flatten(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    header, result = await _exit(ctx, "flatten", args, flatten)
    text = [header, *describe_flatten(result)]
    error = any(c.error is not None for c in result.closing)
    if error:
        text.append("some positions are still open: see above, then flatten again")
    return CommandResult(result=result.as_dict(), text="\n".join(text))
