"""The ``trading-bot`` command line.

Exit codes (:mod:`tradingbot.exitcodes`): 0 ok, 2 bad usage or configuration (one line
on stderr naming the setting, never a traceback), other non-zero for runtime failures.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tradingbot import __version__, exitcodes
from tradingbot.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from tradingbot.recovery import watchdog


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trading-bot",
        description="Operations core of an Interactive Brokers trading bot.",
    )
    parser.add_argument("--version", action="version", version=f"trading-bot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("run", help="run the bot: supervision tree, HTTP server, control socket")
    check = commands.add_parser("check", help="validate the configuration and print it")
    check.add_argument("--json", action="store_true", help="print the configuration as JSON")
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    db_commands.add_parser("upgrade", help="apply the database migrations (idempotent)")
    backup = db_commands.add_parser("backup", help="write a compressed backup while the bot runs")
    backup.add_argument("file", nargs="?", type=Path, metavar="FILE", help="default: HOME/backups/")
    backup.add_argument(
        "--keep", type=_positive_int, metavar="N", help="then keep only the N newest in its folder"
    )
    verify = db_commands.add_parser("verify", help="check a backup file completely")
    verify.add_argument("file", type=Path, metavar="FILE")
    restore = db_commands.add_parser("restore", help="replace the database with a backup")
    restore.add_argument("file", type=Path, metavar="FILE")
    from tradingbot.gateway import add_arguments as add_gateway_arguments

    add_gateway_arguments(
        commands.add_parser("gateway-sim", help="run the TWS-protocol gateway simulator")
    )
    watchdog = commands.add_parser(
        "watchdog-check",
        help="check from outside that the bot is alive (for a systemd timer)",
    )
    watchdog.add_argument(
        "--max-age",
        dest="max_age_s",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="a heartbeat older than this is stale (default: TRADINGBOT_CRASH_TIMEOUT_S)",
    )
    from tradingbot.reports.cli import add_arguments as add_report_arguments

    add_report_arguments(commands.add_parser("report", help="the daily summary and P&L reports"))
    shell = commands.add_parser("shell", help="talk to the running process (control socket)")
    shell.add_argument("-c", dest="shell_command", metavar="COMMAND", help="run one command")
    shell.add_argument("--json", action="store_true", help="print results as JSON")
    shell.add_argument(
        "--key",
        metavar="KEY",
        help="idempotency key of the -c command: sent again with the same key, it runs once",
    )
    shell.add_argument(
        "--timeout",
        dest="timeout_s",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for each answer (default 10)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "gateway-sim":  # needs no bot configuration
        return _gateway_sim(args)
    try:
        config = load_config(prepare_home=args.command != "shell")
        if args.command in ("run", "check"):  # the strategies' classes and parameters too
            from tradingbot.strategies.loader import load_strategies

            load_strategies(config)
    except ConfigError as exc:
        print(f"trading-bot: configuration error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    match args.command:
        case "run":
            return _run(config)
        case "check":
            return _check(config, as_json=args.json)
        case "db" if args.db_command == "upgrade":
            return _db_upgrade(config)
        case "db":
            from tradingbot import dbcli

            if args.db_command == "backup":
                return dbcli.backup(config, args.file, args.keep)
            if args.db_command == "verify":
                return dbcli.verify(args.file)
            return dbcli.restore(config, args.file)
        case "watchdog-check":
            return _watchdog_check(config, args.max_age_s)
        case "report":
            from tradingbot.reports import cli as report_cli

            return report_cli.run(args, config)
        case "shell":
            from tradingbot.control import run_shell

            _interruptible()
            return run_shell(
                config.control_socket_path,
                args.shell_command,
                as_json=args.json,
                stdin=sys.stdin,
                stdout=sys.stdout,
                stderr=sys.stderr,
                key=args.key,
                timeout_s=args.timeout_s,
                history_path=config.home / "shell_history",
                secrets=config.secrets(),
            )
    raise AssertionError(args.command)  # argparse allows nothing else


def _interruptible() -> None:
    """Ctrl-C drops the line or stops a follow even when the shell was started with SIGINT
    ignored (from a background job or a script's ``&``): Python then installs no handler,
    and the ignored signal is inherited."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _gateway_sim(args: argparse.Namespace) -> int:
    from tradingbot.gateway import run_command
    from tradingbot.logconfig import configure_logging

    configure_logging(level="INFO")
    return run_command(args)


def _run(config: Config) -> int:
    from tradingbot.logconfig import configure_logging
    from tradingbot.service import run_service

    configure_logging(level=config.log_level, log_dir=config.log_dir, secrets=config.secrets())
    return run_service(config)


def _check(config: Config, *, as_json: bool) -> int:
    data = config.redacted()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        width = max(len(key) for key in data)
        for key, value in data.items():
            print(f"{key:<{width}}  {'' if value is None else value}")
    print("configuration OK", file=sys.stderr)
    return exitcodes.OK


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _watchdog_check(config: Config, max_age_s: float | None) -> int:
    """One line on stdout; 0 alive or stopped, WATCHDOG_DEAD / WATCHDOG_HUNG otherwise."""
    from datetime import UTC, datetime

    from tradingbot.recovery import watchdog
    from tradingbot.storage import Database, StorageError

    try:
        with Database.open(config.database_url) as database:
            database.require_current_schema()
            verdict = watchdog.check(
                database,
                account=config.ib_account or "",
                max_age_s=config.crash_timeout_s if max_age_s is None else max_age_s,
                now=datetime.now(UTC),
            )
    except StorageError as exc:
        print(f"trading-bot: watchdog-check: database error: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    print(verdict.line)
    if verdict.alert:
        _watchdog_alert(config, verdict)
    return verdict.exit_code


def _watchdog_alert(config: Config, verdict: watchdog.Verdict) -> None:
    """E-mail a dead or hung bot through the outbox, and deliver it now.

    One mail per dead (or hung) run however often the timer fires: its Message-ID derives
    from the run and the verdict. Mail that cannot be delivered now stays pending in the
    outbox and goes out with the next check or when the bot runs again. The non-zero
    exit code is the alert for systemd either way.
    """
    from tradingbot.events import Severity
    from tradingbot.logconfig import configure_logging
    from tradingbot.notify import ALERT, Notifier, NotifySettings
    from tradingbot.storage import Database, StorageError

    # stdout is the verdict's one line: the notifier's log lines go to stderr and the log
    # file, warnings and errors only.
    configure_logging(level="WARNING", log_dir=config.log_dir, stream=sys.stderr)

    run = verdict.run
    details: dict[str, object] = {"verdict": verdict.state}
    if run is not None:
        details.update(
            run_id=run.run_id,
            pid=run.pid,
            host=run.host,
            version=run.version,
            last_heartbeat=run.last_heartbeat.isoformat(),
        )
    if verdict.holder is not None:
        details["lock_holder"] = verdict.holder.describe()
    context = {
        "severity": "CRITICAL",
        "category": "SYSTEM",
        "source": "watchdog-check",
        "message": verdict.line,
        "timestamp": datetime.now(UTC).isoformat(),
        "details": details,
    }
    token = f"watchdog:{verdict.state}:{run.run_id if run is not None else '-'}"
    try:
        with Database.open(config.database_url) as database:
            notifier = Notifier(database, NotifySettings.from_config(config))
            notifier.enqueue(ALERT, context, severity=Severity.CRITICAL, token=token)
            report = notifier.deliver_due()
    except (StorageError, ValueError, OSError) as exc:
        print(f"trading-bot: the alert e-mail could not be queued: {exc}", file=sys.stderr)
        return
    if report.failed or report.retried:
        print("trading-bot: the alert e-mail is queued; delivery will be retried", file=sys.stderr)


def _db_upgrade(config: Config) -> int:
    from tradingbot.storage import Database, StorageError

    try:
        with Database.open(config.database_url) as database:
            applied = database.upgrade()
            revision = database.current_revision()
    except StorageError as exc:
        print(f"trading-bot: database error: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}; now at {revision}")
    else:
        print(f"database already up to date at {revision}")
    return exitcodes.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
