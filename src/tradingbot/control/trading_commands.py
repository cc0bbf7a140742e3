"""Shell commands of the kill switch: ``trading``, ``pause REASON...``, ``resume [REASON...]``.

The shell is the operator's own channel (its socket admits only the owner's uid), so it
needs no token; the change is recorded as made by ``shell uid N``.
"""

from __future__ import annotations

import asyncio
import os

from tradingbot.broker.status import KILL_SWITCH_GATE, RECONCILIATION_GATE
from tradingbot.control.registry import RuntimeCommands, command, usage_of
from tradingbot.control.server import CommandError, CommandResult
from tradingbot.storage import StorageError
from tradingbot.trading import KillSwitch, SwitchResult, TradingState


def _switch(ctx: RuntimeCommands) -> KillSwitch:
    switch = ctx.runtime.kill_switch
    if switch is None:
        raise CommandError("the kill switch is not running")
    return switch


def _describe(state: TradingState) -> str:
    if state.trading:
        return "trading: running (new orders allowed by the kill switch)"
    since = "" if state.since is None else f" since {state.since.isoformat(timespec='seconds')}"
    stored = "" if state.durable else " (NOT STORED: a restart would not remember it)"
    return f"trading: {state.mode.value} by {state.changed_by}{since}: {state.reason}{stored}"


def _result(ctx: RuntimeCommands, switch: KillSwitch, result: SwitchResult | None) -> CommandResult:
    state = switch.state()
    status = ctx.runtime.broker_status
    gates = {
        KILL_SWITCH_GATE: status.trading_blocked(KILL_SWITCH_GATE),
        RECONCILIATION_GATE: status.trading_blocked(RECONCILIATION_GATE),
    }
    lines = [_describe(state)]
    if result is not None and not result.changed:
        lines.insert(0, f"unchanged: already {state.mode.value}")
    if result is not None and result.warning:
        lines.append(f"warning: {result.warning}")
    if gates[RECONCILIATION_GATE] is not None:
        lines.append(f"orders are also blocked by reconciliation: {gates[RECONCILIATION_GATE]}")
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


@command("trading", "trading", "show the kill switch and whether new orders may go out")
async def _trading(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    if args:
        raise CommandError(f"usage: {usage_of('trading')}")
    return _result(ctx, _switch(ctx), None)


@command(
    "pause",
    "pause REASON...",
    "stop new orders (open orders stay); durable and mailed",
    mutating=True,
)
async def _pause(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    reason = " ".join(args).strip()
    if not reason:
        raise CommandError(f"usage: {usage_of('pause')} (say why: it is mailed and recorded)")
    switch = _switch(ctx)
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
    switch = _switch(ctx)
    try:
        result = await asyncio.to_thread(lambda: switch.resume(by=_by(), reason=reason))
    except StorageError as exc:
        raise CommandError(f"not resumed, trading stays stopped: {exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return _result(ctx, switch, result)
