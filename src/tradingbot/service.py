"""The main job (``trading-bot run``): runtime, HTTP server, control socket and systemd.

Order of events: the aiohttp runner starts the runtime (database, run record, tree) in
its cleanup context, the port is bound, the control socket opens, then ``READY=1``.
``WATCHDOG=1`` is sent from the event loop every half ``WATCHDOG_USEC`` only while no
critical actor is unresponsive, so a hung tree makes systemd restart the process.
SIGTERM/SIGINT, or the tree giving up, start the shutdown: ``STOPPING=1``, stop
accepting, stop the tree in reverse order; a hard deadline ends the process anyway.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from tradingbot import exitcodes, systemd
from tradingbot.config import Config
from tradingbot.control import ControlServer, ControlServerError
from tradingbot.control.wiring import runtime_commands
from tradingbot.recovery import AlreadyRunning
from tradingbot.runtime import Runtime
from tradingbot.storage import StorageError
from tradingbot.supervision import StartupError, TreeExit
from tradingbot.web import create_app
from tradingbot.web.connections import (
    ConnectionGuard,
    GuardedSite,
    connection_cap,
    throttle_accept_errors,
)
from tradingbot.web.metrics import METRICS_REGISTRY

log = structlog.get_logger("tradingbot.service")


@dataclass(slots=True)
class _Stop:
    """Why the service is stopping: a signal, or the tree ending on its own."""

    signal: str | None = None
    tree_exit: TreeExit | None = None
    lock_taken: bool = False


def run_service(config: Config) -> int:
    """Run until a signal or a tree failure; return the process exit code."""
    return asyncio.run(_serve(config))


async def _serve(config: Config) -> int:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    why = _Stop()

    def on_signal(name: str) -> None:
        if why.signal is None and why.tree_exit is None:
            log.info("shutdown_requested", signal=name)
        why.signal = why.signal or name
        stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    throttle_accept_errors(loop)

    runtime = Runtime(config)

    def on_lock_taken() -> None:  # monitor thread: another process runs on our database
        why.lock_taken = True
        loop.call_soon_threadsafe(stop_requested.set)

    runtime.on_run_lock_taken = on_lock_taken
    app = create_app(runtime)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    commands = runtime_commands(runtime)
    control = ControlServer(
        config.control_socket_path,
        commands,
        max_connections=config.control_max_connections,
        idle_timeout_s=config.control_idle_timeout_s,
        mutates=commands.mutates,
    )
    try:
        try:
            await runner.setup()  # starts the runtime (cleanup context)
        except AlreadyRunning as exc:
            log.critical("already_running", error=str(exc), exit_code=exitcodes.ALREADY_RUNNING)
            print(f"trading-bot: {exc}", file=sys.stderr)
            return exitcodes.ALREADY_RUNNING
        except (StartupError, StorageError) as exc:
            return _startup_failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - one line on stderr, the traceback in the log
            return _startup_failed(_one_line(exc), exc_info=True)
        tree = runtime.tree
        assert tree is not None

        def on_tree_exit(result: TreeExit) -> None:
            if not result.clean:
                why.tree_exit = result
                loop.call_soon_threadsafe(stop_requested.set)

        tree.on_exit(on_tree_exit)
        guard = _connection_guard(config)
        app[METRICS_REGISTRY].register(guard)  # tradingbot_http_connections_* on /metrics
        try:
            site = GuardedSite(runner, config.http_host, config.http_port, guard=guard)
            await site.start()
        except OSError as exc:
            return _startup_failed(
                _one_line(exc),
                problem=f"cannot listen on {config.http_host}:{config.http_port} "
                "(TRADINGBOT_HTTP_HOST, TRADINGBOT_HTTP_PORT): " + _os_reason(exc),
            )
        try:
            await control.start()
        except (OSError, ControlServerError) as exc:
            return _startup_failed(_one_line(exc))
        port = _bound_port(runner) or config.http_port
        log.info(
            "service_ready",
            http=f"http://{config.http_host}:{port}",
            control_socket=str(config.control_socket_path),
            run_id=runtime.run_id,
            pid=os.getpid(),
        )
        _notify(systemd.ready, f"serving on {config.http_host}:{port}")
        watchdog = asyncio.create_task(_watchdog(runtime))
        await stop_requested.wait()
        watchdog.cancel()
    finally:
        _notify(systemd.stopping)
        deadline = _arm_deadline(config.shutdown_timeout_s)
        try:
            await control.close()
            await runner.cleanup()  # stop accepting, then stop the tree in reverse order
        finally:
            deadline.cancel()
    if why.lock_taken:
        log.critical("run_lock_taken", exit_code=exitcodes.ALREADY_RUNNING)
        return exitcodes.ALREADY_RUNNING
    if why.tree_exit is not None:
        log.critical("tree_gave_up", reason=why.tree_exit.reason, exit_code=exitcodes.TREE_FAILED)
        return exitcodes.TREE_FAILED
    if runtime.clean_stop_recorded is False:
        log.critical(
            "service_stopped_unclean",
            signal=why.signal,
            run_id=runtime.run_id,
            reason="the clean stop could not be stored: the next start reports a crash",
            exit_code=exitcodes.UNCLEAN_STOP,
        )
        return exitcodes.UNCLEAN_STOP
    log.info("service_stopped", signal=why.signal, run_id=runtime.run_id)
    return exitcodes.OK


def _connection_guard(config: Config) -> ConnectionGuard:
    """The HTTP connection cap and header timeout; a lowered cap is said once at start."""
    cap = connection_cap(
        config.http_max_connections,
        backlog=GuardedSite.BACKLOG,
        other_connections=config.control_max_connections,
    )
    if cap < config.http_max_connections:
        log.warning(
            "http_connection_cap_lowered",
            configured=config.http_max_connections,
            effective=cap,
            reason="the open-file limit (LimitNOFILE) leaves room for fewer connections",
        )
    return ConnectionGuard(max_connections=cap, header_timeout_s=config.http_header_timeout_s)


async def _watchdog(runtime: Runtime) -> None:
    interval = systemd.watchdog_interval_s()
    if interval is None:
        return
    withheld = False
    while True:
        tree = runtime.tree
        if tree is not None and tree.healthy():
            _notify(systemd.watchdog_ping)
            if withheld:
                log.warning("watchdog_resumed")
            withheld = False
        elif not withheld:
            stuck = [] if tree is None else tree.unresponsive()
            log.error("watchdog_withheld", unresponsive=stuck)
            withheld = True
        await asyncio.sleep(interval)


def _notify(send: Callable[..., bool], *args: str) -> None:
    """Tell systemd; a broken NOTIFY_SOCKET is logged, never fatal to the bot."""
    try:
        send(*args)
    except OSError as exc:
        log.warning("systemd_notify_failed", error=str(exc), notify=send.__name__)


def _arm_deadline(timeout_s: float) -> threading.Timer:
    """Exit the process if an orderly shutdown hangs (threads cannot be killed)."""

    def expire() -> None:
        log.critical("shutdown_deadline_exceeded", timeout_s=timeout_s)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exitcodes.SHUTDOWN_DEADLINE)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    return timer


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


def _startup_failed(error: str, *, problem: str | None = None, exc_info: bool = False) -> int:
    """Log the failed start and say it on stderr in one line; the exit code."""
    log.critical("startup_failed", error=error, exc_info=exc_info)
    said = problem or error
    prefix = "startup failed: "
    print(f"trading-bot: {prefix}{said.removeprefix(prefix)}", file=sys.stderr)
    return exitcodes.FAILURE


def _os_reason(exc: OSError) -> str:
    """``address already in use``: the OS's words, without asyncio's wrapping."""
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return (exc.strerror or _one_line(exc)).lower()  # socket.gaierror: negative codes


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text
