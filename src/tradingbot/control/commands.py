"""The commands the control socket serves on a live process (``trading-bot shell``).

Each command is a small async function of the tree; blocking tree operations (a
restart waits for the replacement to confirm its start) run on a worker thread so the
event loop stays responsive. User mistakes raise :class:`CommandError` with one line.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import orjson

from tradingbot.control import (
    jobs,
    order_commands,  # noqa: F401  (registers its commands)
    trading_commands,  # noqa: F401  (registers its commands)
)
from tradingbot.control.registry import COMMANDS, ControlServices, RuntimeCommands, command
from tradingbot.control.server import CommandError, CommandResult
from tradingbot.events import SYSTEM, EventValidationError, Severity, check_type
from tradingbot.events.recorder import EventNotDurable
from tradingbot.notify.actor import DeliverNow
from tradingbot.recovery.reconciler import Accept, ReconcileFailed, ReconcileResult, RunNow
from tradingbot.storage import EventQuery, StorageError
from tradingbot.supervision import (
    ActorSnapshot,
    SupervisionError,
    render_tree,
)

# The dispatcher and the registry, importable from here with every command registered.
__all__ = [
    "COMMANDS",
    "MAX_EVENTS_SHOWN",
    "MAX_NOTE_CHARS",
    "ControlServices",
    "RuntimeCommands",
    "command",
]

#: Largest id a row can have (a signed 64-bit integer in both databases).
MAX_ROW_ID = 2**63 - 1


def _positive_int(text: str, name: str, maximum: int) -> int:
    """``text`` as an integer from 1 to ``maximum``; CommandError naming ``name`` otherwise.

    Only ASCII digits count: ``str.isdigit()`` also accepts ``²``, which ``int()`` refuses.
    """
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise CommandError(f"{name} must be a whole number from 1 to {maximum}, got {text!r}")
    return int(text)


def _no_args(args: list[str], name: str) -> None:
    if args:
        raise CommandError(f"usage: {COMMANDS[name][0]}")


@command("help", "help [COMMAND]", "list the commands, or say what one does")
async def _help(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    if len(args) > 1:
        raise CommandError("usage: help [COMMAND]")
    names = args or list(COMMANDS)
    unknown = [name for name in names if name not in COMMANDS]
    if unknown:
        raise CommandError(f"unknown command {unknown[0]!r}; 'help' lists them")
    rows = [{"usage": COMMANDS[n][0], "summary": COMMANDS[n][1]} for n in names]
    width = max(len(r["usage"]) for r in rows)
    text = "\n".join(f"{r['usage']:<{width}}  {r['summary']}" for r in rows)
    return CommandResult(result=rows, text=text)


@command("tree", "tree", "show the supervision tree")
async def _tree(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    _no_args(args, "tree")
    snapshot = ctx.tree.snapshot()
    return CommandResult(result=snapshot.to_dict(), text=render_tree(snapshot))


@command("watch", "watch tree", "redraw the tree on every change until Ctrl-C (in the shell)")
async def _watch(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    # trading-bot shell redraws (control/follow.py); a plain client gets the tree once.
    if args != ["tree"]:
        raise CommandError("usage: watch tree")
    snapshot = ctx.tree.snapshot()
    return CommandResult(result=snapshot.to_dict(), text=render_tree(snapshot))


@command("state", "state ACTOR", "show one actor's state, last failure and details")
async def _state(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    actor_id = ctx.actor_arg(args, "state")
    node = ctx.tree.snapshot().find(actor_id)
    assert node is not None
    data = node.to_dict()
    data["children"] = [child.id for child in node.children]
    return CommandResult(result=data, text=_render_state(node))


@command(
    "crash", "crash ACTOR", "failure drill: make ACTOR raise inside its own thread", mutating=True
)
async def _crash(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    actor_id = ctx.drill_target(args, "crash")
    try:
        ctx.tree.crash(actor_id)
    except SupervisionError as exc:
        raise CommandError(str(exc)) from None
    return CommandResult(
        result={"actor": actor_id, "crash_requested": True},
        text=f"crash requested: {actor_id} will raise CrashDrill in its own thread",
    )


MAX_NOTE_CHARS = 2000
MAX_EVENTS_SHOWN = 1000


@command(
    "note",
    "note MESSAGE...",
    "record an operator note (a SYSTEM WARNING event, durable)",
    mutating=True,
)
async def _note(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    message = " ".join(args).strip()
    if not message:
        raise CommandError(f"usage: {COMMANDS['note'][0]}")
    if len(message) > MAX_NOTE_CHARS:
        raise CommandError(f"a note is at most {MAX_NOTE_CHARS} characters, got {len(message)}")
    recorder = ctx.recorder.bind(source="operator")
    try:
        event = await asyncio.to_thread(
            recorder.record_durable, SYSTEM, message, severity=Severity.WARNING
        )
    except EventNotDurable as exc:
        raise CommandError(str(exc)) from None
    return CommandResult(result=event.to_dict(), text=f"recorded note {event.id} (stored durably)")


@command(
    "events",
    "events [LIMIT|--follow] [TYPE...]",
    "show the latest stored events (default 20); --follow prints new ones until Ctrl-C",
)
async def _events(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    if "--follow" in args:  # trading-bot shell polls for it (control/follow.py)
        raise CommandError("events --follow runs in trading-bot shell, which polls until Ctrl-C")
    limit = 20
    if args and (args[0].isdigit() or args[0].lstrip("+-").isdecimal()):
        limit = _positive_int(args.pop(0), "LIMIT", MAX_EVENTS_SHOWN)
    try:
        types = tuple(check_type(value.upper()) for value in args)
    except EventValidationError as exc:
        raise CommandError(str(exc)) from None
    database = ctx.database
    try:
        page = await asyncio.to_thread(database.events.query, EventQuery(types=types, limit=limit))
    except StorageError as exc:
        raise CommandError(f"cannot read events: {exc}") from None
    rows = [event.to_dict() for event in page.events]
    text = "\n".join(
        f"{e.timestamp.isoformat(timespec='seconds')} {e.severity.name:<8} {e.type:<7} "
        f"{e.source or '-'}: {e.message}"
        for e in page.events
    )
    return CommandResult(result=rows, text=text or "no events")


MAX_HANG_S = 3600.0


@command(
    "mail",
    "mail [retry ID]",
    "show pending and failed e-mail; retry a failed one",
    mutating=lambda args: bool(args) and args[0] == "retry",
)
async def _mail(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    notifier = ctx.notifier
    if args and args[0] == "retry":
        if len(args) != 2:
            raise CommandError(f"usage: {COMMANDS['mail'][0]}")
        row_id = _positive_int(args[1], "ID", MAX_ROW_ID)
        try:
            retried = await asyncio.to_thread(
                notifier.repository.retry_failed, row_id, datetime.now(UTC)
            )
        except StorageError as exc:
            raise CommandError(f"cannot read the outbox: {exc}") from None
        if not retried:
            raise CommandError(f"no failed mail {row_id} in the outbox")
        ctx.tree.handle("notifier").tell(DeliverNow())
        return CommandResult(result={"retried": row_id}, text=f"mail {row_id} is pending again")
    if args:
        raise CommandError(f"usage: {COMMANDS['mail'][0]}")
    repository = notifier.repository
    try:
        pending = await asyncio.to_thread(repository.rows, status="pending", limit=50)
        failed = await asyncio.to_thread(repository.rows, status="failed", limit=50)
    except StorageError as exc:
        raise CommandError(f"cannot read the outbox: {exc}") from None
    rows = [
        {
            "id": r.id,
            "status": r.status,
            "kind": r.kind,
            "attempts": r.attempts,
            "next_attempt_at": r.next_attempt_at.isoformat(),
            "subject": r.subject,
            "message_id": r.message_id,
            "last_error": r.last_error,
        }
        for r in [*pending, *failed]
    ]
    status = notifier.status.snapshot()
    lines = [
        f"{status['mode']} {notifier.transport.name}: server {status['server']}, "
        f"{status['outbox_depth']} pending, {status['failed']} failed"
    ]
    for row in rows:
        lines.append(
            f"  {row['id']:>6} {row['status']:<7} x{row['attempts']:<3} {row['subject']}"
            + (f"\n         {row['last_error']}" if row["last_error"] else "")
        )
    return CommandResult(result={"status": status, "mail": rows}, text="\n".join(lines))


@command(
    "hang", "hang ACTOR SECONDS", "liveness drill: block ACTOR's thread for SECONDS", mutating=True
)
async def _hang(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    usage = COMMANDS["hang"][0]
    if len(args) != 2:
        raise CommandError(f"usage: {usage}")
    ctx.actor_arg(args[:1], "state")  # an unknown actor is named before a bad number
    try:
        seconds = float(args[1])
    except ValueError:
        raise CommandError(f"SECONDS must be a number, got {args[1]!r}") from None
    if not 0 < seconds <= MAX_HANG_S:
        raise CommandError(f"SECONDS must be > 0 and <= {MAX_HANG_S:g}, got {args[1]!r}")
    actor_id = ctx.drill_target(args[:1], "hang")
    try:
        ctx.tree.hang(actor_id, seconds)
    except SupervisionError as exc:
        raise CommandError(str(exc)) from None
    return CommandResult(
        result={"actor": actor_id, "hang_s": seconds},
        text=f"hang requested: {actor_id} will block its thread for {seconds:g} s",
    )


@command("restart", "restart ACTOR", "stop ACTOR and start a replacement", mutating=True)
async def _restart(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    actor_id = ctx.actor_arg(args, "restart")
    tree = ctx.tree
    try:
        result = await asyncio.to_thread(tree.restart, actor_id)
    except SupervisionError as exc:
        raise CommandError(str(exc)) from None
    return CommandResult(
        result=result, text=f"restarted {actor_id} (restarts: {result.get('restarts')})"
    )


def _render_state(node: ActorSnapshot) -> str:
    lines = [
        f"id:         {node.id}",
        f"kind:       {node.kind}",
        f"status:     {node.status}",
        f"restarts:   {node.restarts}",
        f"restart:    {node.restart_type}",
        f"started_at: {node.started_at}",
        f"mailbox:    {node.mailbox}",
    ]
    if node.dropped_messages:
        lines.append(f"dropped:    {node.dropped_messages}")
    if node.children:
        lines.append("children:   " + ", ".join(child.id for child in node.children))
    for key, value in sorted(node.details.items()):
        lines.append(f"{key + ':':<11} {_plain(value)}")
    if node.last_failure is not None:
        lines.append(f"last failure: {node.last_failure.summary()}")
        lines.extend("  " + line for line in node.last_failure.traceback.rstrip().splitlines())
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


RECONCILE_TIMEOUT_S = 120.0


@command(
    "reconcile",
    "reconcile [run|accept]",
    "show the latest reconciliations; run one now; accept the open discrepancies",
    mutating=lambda args: bool(args),
)
async def _reconcile(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    usage = COMMANDS["reconcile"][0]
    if len(args) > 1 or (args and args[0] not in ("run", "accept")):
        raise CommandError(f"usage: {usage}")
    if not args:
        return await _reconcile_show(ctx)
    if "reconciler" not in ctx.tree.actor_ids():
        raise CommandError("the reconciler is not running")
    handle = ctx.tree.handle("reconciler")
    message: RunNow | Accept = (
        RunNow() if args[0] == "run" else Accept(by=f"operator (shell, uid {os.getuid()})")
    )
    handle.tell(message)
    try:
        summary = await asyncio.wait_for(asyncio.wrap_future(message.reply), RECONCILE_TIMEOUT_S)
    except TimeoutError:
        raise CommandError(
            f"no answer from the reconciler within {RECONCILE_TIMEOUT_S:g} s"
        ) from None
    except (ValueError, ReconcileFailed, StorageError) as exc:
        raise CommandError(str(exc)) from None
    return CommandResult(result=summary, text=_render_reconciliation(summary))


async def _reconcile_show(ctx: RuntimeCommands) -> CommandResult:
    database, account = ctx.database, ctx.account
    try:
        records = await asyncio.to_thread(database.reconciliations.latest, account, 5)
    except StorageError as exc:
        raise CommandError(f"cannot read reconciliations: {exc}") from None
    blocked = ctx.broker_status.trading_blocked()
    rows = [
        ReconcileResult(record=r, trigger=r.trigger, imported=0, closed=0).summary()
        for r in records
    ]
    gate = "trading: open" if blocked is None else f"trading: blocked ({blocked})"
    text = "\n\n".join([gate, *(_render_reconciliation(row) for row in rows)])
    return CommandResult(result={"trading_blocked": blocked, "latest": rows}, text=text)


def _render_reconciliation(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['as_of']}  {summary['status']:<13} ({summary['trigger']}, "
        f"{summary['duration_s']:g} s)  id {summary['id']}"
    ]
    if summary.get("error"):
        lines.append(f"  error: {summary['error']}")
    for item in summary["discrepancies"]:
        mark = "!" if item.get("blocking") else "-"
        lines.append(f"  {mark} {item['kind']}: {item['detail']}")
    return "\n".join(lines)


# The scheduler's commands live in their own module.
command("jobs", jobs.JOBS_USAGE, "list the scheduled jobs: schedule, last run, next run")(jobs.jobs)
command(
    "run", jobs.RUN_USAGE, "run a job now for a date (once per date: idempotent)", mutating=True
)(jobs.run)
