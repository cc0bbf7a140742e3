"""Starting and stopping a real process: signals, a taken port, a kill -9 and a restart."""

from __future__ import annotations

import signal
import socket

import pytest
from e2e_support import Bot, BotFactory, free_port, read_run, wait_ready

from tradingbot import exitcodes

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_process_cleanly_and_records_it(bot: Bot, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT exits 0 and this run's system_state row says clean_stop with stopped_at."""
    run_id = bot.run_id
    assert read_run(bot.database_url, run_id).clean_stop is False

    bot.signal(sig)
    assert bot.wait() == exitcodes.OK, bot.diagnostics()

    run = read_run(bot.database_url, run_id)
    assert run.clean_stop is True
    assert run.stopped_at is not None
    assert run.stopped_at >= run.started_at
    assert not bot.control_socket.exists()
    stopped = [e for e in bot.log_events() if e.get("event") == "service_stopped"]
    assert stopped
    assert stopped[-1]["signal"] == sig.name


def test_port_in_use_fails_with_a_clear_log_line_and_no_socket_left(
    bot_factory: BotFactory,
) -> None:
    """When the HTTP port is taken, run exits 1 saying so and leaves no control socket behind."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        bot = bot_factory(extra_env={"TRADINGBOT_HTTP_PORT": str(port)}, ready=False)
        assert bot.wait() == exitcodes.FAILURE, bot.diagnostics()

    failed = [e for e in bot.log_events() if e.get("event") == "startup_failed"]
    assert len(failed) == 1, bot.stdout()
    assert failed[0]["level"] == "critical"
    assert "address already in use" in failed[0]["error"]
    assert str(port) in failed[0]["error"]
    assert "Traceback" not in bot.stdout() + bot.stderr()
    assert bot.stderr().strip() == (
        f"trading-bot: startup failed: cannot listen on 127.0.0.1:{port} "
        "(TRADINGBOT_HTTP_HOST, TRADINGBOT_HTTP_PORT): address already in use"
    )
    assert not bot.control_socket.exists()


def test_after_kill_9_the_shell_says_nothing_runs_and_a_new_run_starts(
    bot_factory: BotFactory,
) -> None:
    """After kill -9 the shell reports a stale socket, and the next run replaces it and serves."""
    first = bot_factory()
    first_run = first.run_id
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert first.control_socket.exists()  # nobody removed it

    result = first.shell("tree")
    assert result.returncode == 1
    assert "no trading-bot process is running" in result.stderr
    assert "stale" in result.stderr

    second = bot_factory(home=first.home)
    assert second.run_id != first_run
    result = second.shell("tree")
    assert result.returncode == 0, result.stderr
    assert "heartbeat" in result.stdout
    crashed = read_run(second.database_url, first_run)
    assert crashed.clean_stop is False
    assert crashed.stopped_at is None


def test_second_process_on_the_same_home_is_refused(bot_factory: BotFactory) -> None:
    """A second run on the same state folder exits 5 (run lock) and the first keeps its socket."""
    first = bot_factory()
    second = bot_factory(home=first.home, ready=False)
    assert second.wait() == exitcodes.ALREADY_RUNNING, second.diagnostics()
    refused = [e for e in second.log_events() if e.get("event") == "already_running"]
    assert refused, second.stdout()
    assert "already running" in refused[0]["error"]

    wait_ready(first)
    result = first.shell("tree")
    assert result.returncode == 0, result.stderr
