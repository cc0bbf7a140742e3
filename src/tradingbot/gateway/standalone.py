"""``trading-bot gateway-sim``: run the simulator in the foreground until interrupted.

``cli.py`` wires it with ``add_arguments(subparser)`` and ``run_command(args)``;
``main(argv)`` is the same thing as a standalone entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from .brokerage import Brokerage
from .faults import start_control_server
from .prices import PriceModel
from .protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION
from .server import GatewaySimulator

__all__ = ["add_arguments", "build_simulator", "main", "run_command", "serve"]

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
) -> GatewaySimulator:
    """A simulator with a seeded price model and, optionally, a JSON seed file;
    ``account`` names its one account (else the default paper account)."""
    brokerage = Brokerage(prices=PriceModel(seed), accounts=None if not account else {account: 1e6})
    if seed_file is not None:
        brokerage.load_seed(seed_file)
    return GatewaySimulator(
        brokerage, max_server_version=max_server_version, tick_interval_s=tick_interval_s
    )


async def serve(
    simulator: GatewaySimulator, host: str, port: int, control_path: Path | None = None
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
        "--control",
        type=Path,
        metavar="SOCKET",
        help="UNIX socket for fault commands (close, freeze, unfreeze, reject-next, lost, "
        "restored, restart SECONDS, status)",
    )


def run_command(args: argparse.Namespace) -> int:
    """Run the simulator from parsed arguments; returns the exit code."""
    try:
        sim = build_simulator(
            seed=args.seed,
            seed_file=args.seed_file,
            max_server_version=args.server_version,
            tick_interval_s=args.tick_interval,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # json.JSONDecodeError is a ValueError; a missing key is a KeyError.
        print(f"trading-bot gateway-sim: bad --seed-file: {exc!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(serve(sim, args.host, args.port, args.control))
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
