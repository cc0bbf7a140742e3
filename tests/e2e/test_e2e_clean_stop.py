"""SIGTERM records the clean stop, or says in the exit code that it could not (issue #11, 6).

The faults are real: the heartbeat actor's thread is blocked with the ``hang`` drill, or
the PostgreSQL link is cut with a TCP proxy. Before the fix both exited 0 without a
clean stop, so the next start reported a crash and mailed a recovery report.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from e2e_support import Bot, BotFactory, read_run, wait_until
from sqlalchemy.engine import make_url

from support.tcp_proxy import TcpProxy
from tradingbot import exitcodes

pytestmark = pytest.mark.slow

SHUTDOWN_ENV = {"TRADINGBOT_SHUTDOWN_TIMEOUT_S": "5"}


def _logged(bot: Bot, event: str) -> list[dict[str, object]]:
    return [e for e in bot.log_events() if e.get("event") == event]


def test_sigterm_with_the_heartbeat_hung_still_records_a_clean_stop(sqlite_bot: Bot) -> None:
    """With the heartbeat actor hung, SIGTERM exits 0 and the run is recorded as cleanly
    stopped: the next start finds no crash."""
    bot = sqlite_bot
    run_id = bot.run_id
    hang = bot.shell("hang heartbeat 60")
    assert hang.returncode == 0, hang.stderr
    wait_until(
        lambda: bot.node("heartbeat")["status"] == "unresponsive",
        message="the heartbeat to be unresponsive",
    )
    bot.signal(signal.SIGTERM)
    assert bot.wait(30) == exitcodes.OK, bot.diagnostics()
    run = read_run(bot.database_url, run_id)
    assert (run.clean_stop, run.stopped_at is not None) == (True, True)


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(fresh_postgres_url)
    link = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield link
    link.close()


def _bot_behind(bot_factory: BotFactory, url: str, proxy: TcpProxy) -> Bot:
    through = make_url(url).set(host="127.0.0.1", port=proxy.port)
    return bot_factory(through.render_as_string(hide_password=False), SHUTDOWN_ENV)


@pytest.mark.postgres
def test_sigterm_during_a_database_outage_that_ends_in_time_records_the_clean_stop(
    bot_factory: BotFactory, fresh_postgres_url: str, proxy: TcpProxy
) -> None:
    """SIGTERM while the database is down: the shutdown retries the clean stop, and when the
    database returns before the deadline it is stored and the exit code is 0."""
    bot = _bot_behind(bot_factory, fresh_postgres_url, proxy)
    run_id = bot.run_id
    proxy.cut()
    bot.signal(signal.SIGTERM)
    wait_until(lambda: _logged(bot, "clean_stop_retrying"), message="the shutdown to retry")
    proxy.restore()
    assert bot.wait(30) == exitcodes.OK, bot.diagnostics()
    run = read_run(fresh_postgres_url, run_id)
    assert run.clean_stop is True
    assert _logged(bot, "clean_stop_recorded")


@pytest.mark.postgres
def test_sigterm_during_a_database_outage_that_lasts_exits_with_unclean_stop(
    bot_factory: BotFactory, fresh_postgres_url: str, proxy: TcpProxy
) -> None:
    """SIGTERM while the database stays down: the process exits 8 (not 0), saying the clean
    stop could not be stored, and the run is (truthfully) left as a crash."""
    bot = _bot_behind(bot_factory, fresh_postgres_url, proxy)
    run_id = bot.run_id
    proxy.cut()
    bot.signal(signal.SIGTERM)
    assert bot.wait(30) == exitcodes.UNCLEAN_STOP, bot.diagnostics()
    [said] = _logged(bot, "service_stopped_unclean")
    assert said["level"] == "critical"
    assert read_run(fresh_postgres_url, run_id).clean_stop is False
