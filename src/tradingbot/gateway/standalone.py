"""``trading-bot gateway-sim``: run the simulator in the foreground until interrupted.

``cli.py`` wires it with ``add_arguments(subparser)`` and ``run_command(args)``;
``main(argv)`` is the same thing as a standalone entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import sys
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

from .brokerage import Brokerage
from .calendar import calendar
from .faults import start_control_server
from .prices import PriceModel
from .protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION
from .server import GatewaySimulator

__all__ = ["add_arguments", "build_simulator", "main", "parse_restart", "run_command", "serve"]

log = logging.getLogger("tradingbot.gateway")

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


def build_simulator(
    *,
    seed: int = 0,
    seed_file: Path | None = None,
    max_server_version: int = MAX_SERVER_VERSION,
    tick_interval_s: float = 0.2,
    account: str | None = None,
    calendar_name: str = "always-open",
    volatility: float = 0.02,
    step_bps: float = 5.0,
    max_fill_shares: float | None = None,
) -> GatewaySimulator:
    """A simulator with a seeded price model and, optionally, a JSON seed file;
    ``account`` names its one account (else the default paper account);
    ``calendar_name`` is ``always-open`` (the default) or an exchange such as ``XNYS``;
    ``volatility`` is the synthetic history's daily volatility, ``step_bps`` the
    largest move of one live price step; ``max_fill_shares`` (default: whole fills)
    fills larger orders in several executions of at most that many shares."""
    brokerage = Brokerage(
        prices=PriceModel(seed, step_bps=step_bps),
        accounts=None if not account else {account: 1e6},
        calendar=calendar(calendar_name),
        max_fill_shares=max_fill_shares,
    )
    brokerage.history.daily_vol = volatility
    if seed_file is not None:
        brokerage.load_seed(seed_file)
    return GatewaySimulator(
        brokerage, max_server_version=max_server_version, tick_interval_s=tick_interval_s
    )


def _positive(text: str) -> float:
    """An argparse type: a number greater than zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"want a number of shares above 0, got {text!r}")
    return value


def parse_restart(text: str) -> tuple[dt_time, ZoneInfo]:
    """``HH:MM[:SS] [Zone]`` (zone default America/New_York) for the daily restart."""
    parts = text.split()
    try:
        at = dt_time.fromisoformat(parts[0])
        zone = ZoneInfo(parts[1] if len(parts) > 1 else "America/New_York")
    except (IndexError, ValueError, KeyError) as exc:
        raise ValueError(f"bad --restart-at {text!r} (want HH:MM[:SS] [Zone])") from exc
    return at, zone


async def serve(
    simulator: GatewaySimulator,
    host: str,
    port: int,
    control_path: Path | None = None,
    restart: tuple[dt_time, ZoneInfo, float] | None = None,
) -> None:
    """Start ``simulator``, print the bound address and serve until SIGINT/SIGTERM.

    With ``control_path``, fault commands (see ``tradingbot.gateway.faults``) are
    accepted on that UNIX socket.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    bound = await simulator.start(host, port)
    if restart is not None:
        simulator.schedule_daily_restart(*restart)
    control = None
    try:
        if control_path is not None:
            control = await start_control_server(simulator, control_path)
        print(f"gateway simulator listening on {host}:{bound}", flush=True)
        await stop.wait()
    finally:
        if control is not None and control_path is not None:
            control.close()
            await control.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                control_path.unlink()
        await simulator.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``trading-bot gateway-sim``."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=4002, help="listen port (4002; 0 = any)")
    parser.add_argument("--seed", type=int, default=0, help="price model seed (0)")
    parser.add_argument("--seed-file", type=Path, help="JSON accounts, positions and prices")
    parser.add_argument(
        "--account",
        metavar="ID",
        help="the one account served (default DU1234567, a paper account); e.g. U1234567 "
        "to rehearse a live account (a seed file's accounts replace it)",
    )
    parser.add_argument(
        "--server-version",
        type=int,
        default=MAX_SERVER_VERSION,
        choices=range(MIN_SERVER_VERSION, MAX_SERVER_VERSION + 1),
        metavar=f"{{{MIN_SERVER_VERSION}..{MAX_SERVER_VERSION}}}",
        help=f"highest server version to negotiate ({MAX_SERVER_VERSION})",
    )
    parser.add_argument(
        "--tick-interval", type=float, default=0.2, help="seconds between market data ticks"
    )
    parser.add_argument(
        "--calendar",
        default="always-open",
        metavar="NAME",
        help="trading sessions: always-open (default: trade any time) or an exchange "
        "calendar such as XNYS (regular hours, holidays, early closes)",
    )
    parser.add_argument(
        "--volatility",
        type=float,
        default=0.02,
        help="daily volatility of the synthetic price history (0.02 = 2 %%)",
    )
    parser.add_argument(
        "--step-bps",
        type=float,
        default=5.0,
        help="largest move of one live price step, in basis points (5)",
    )
    parser.add_argument(
        "--max-fill-shares",
        type=_positive,
        metavar="SHARES",
        help="partial fills: fill larger orders in several executions of at most SHARES "
        "shares, one per tick (default: every order fills whole)",
    )
    parser.add_argument(
        "--restart-at",
        metavar="'HH:MM[:SS] [ZONE]'",
        help="daily restart fault: drop all clients at this local time "
        "(zone default America/New_York)",
    )
    parser.add_argument(
        "--restart-window",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long connections are refused at the daily restart (60)",
    )
    parser.add_argument(
        "--control",
        type=Path,
        metavar="SOCKET",
        help="UNIX socket for fault commands (close, freeze, unfreeze, reject-next, lost, "
        "restored, restart SECONDS, status)",
    )


def run_command(args: argparse.Namespace) -> int:
    """Run the simulator from parsed arguments; returns the exit code."""
    try:
        calendar(args.calendar)
    except ValueError as exc:
        print(f"trading-bot gateway-sim: bad --calendar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sim = build_simulator(
            seed=args.seed,
            seed_file=args.seed_file,
            account=args.account,
            max_server_version=args.server_version,
            tick_interval_s=args.tick_interval,
            calendar_name=args.calendar,
            volatility=args.volatility,
            step_bps=args.step_bps,
            max_fill_shares=args.max_fill_shares,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # json.JSONDecodeError is a ValueError; a missing key is a KeyError.
        print(f"trading-bot gateway-sim: bad --seed-file: {exc!r}", file=sys.stderr)
        return EXIT_USAGE
    restart = None
    if args.restart_at:
        try:
            at, zone = parse_restart(args.restart_at)
        except ValueError as exc:
            print(f"trading-bot gateway-sim: {exc}", file=sys.stderr)
            return EXIT_USAGE
        restart = (at, zone, args.restart_window)
    try:
        asyncio.run(serve(sim, args.host, args.port, args.control, restart))
    except OSError as exc:
        print(f"trading-bot gateway-sim: cannot listen: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (same options as ``trading-bot gateway-sim``)."""
    parser = argparse.ArgumentParser(prog="trading-bot gateway-sim")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    return run_command(args)
