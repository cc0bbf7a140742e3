"""Fixtures for end-to-end tests: real ``trading-bot run`` processes on real databases.

``bot`` runs once on SQLite (the default file in ``TRADINGBOT_HOME``) and once on
PostgreSQL (a fresh schema in the session database); ``sqlite_bot`` only on SQLite, for
behaviour that does not depend on the database. Every process is terminated (then
killed) at teardown, and its stdout/stderr are printed when the test failed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

import pytest
from e2e_support import Bot, BotFactory, start_bot, wait_ready


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private folder under /tmp: the control socket path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="tb-e2e-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bot_factory(request: pytest.FixtureRequest, short_tmp: Path) -> Iterator[BotFactory]:
    """Start bots: ``factory(database_url=None, extra_env=None, *, ready=True, home=None)``."""
    started: list[Bot] = []

    def factory(
        database_url: str | None = None,
        extra_env: Mapping[str, str | None] | None = None,
        *,
        ready: bool = True,
        home: Path | None = None,
    ) -> Bot:
        base = short_tmp / f"b{len(started)}"
        base.mkdir()
        bot = start_bot(base, database_url, extra_env, home=home)
        started.append(bot)
        if ready:
            wait_ready(bot)
        return bot

    yield factory
    for bot in reversed(started):
        bot.stop()
    if request.node.stash.get(_FAILED, False):
        for bot in started:
            print(bot.diagnostics())


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_kind(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: the database the bot under test uses."""
    return str(request.param)


@pytest.fixture
def bot_database_url(request: pytest.FixtureRequest, database_kind: str) -> str | None:
    """``None`` for SQLite (the default file in HOME), else a fresh PostgreSQL URL."""
    if database_kind == "sqlite":
        return None
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def bot(bot_factory: BotFactory, bot_database_url: str | None) -> Bot:
    """A running bot, answering ``/api/health/live``, on SQLite and on PostgreSQL."""
    return bot_factory(bot_database_url)


@pytest.fixture
def sqlite_bot(bot_factory: BotFactory) -> Bot:
    """A running bot on its default SQLite database."""
    return bot_factory()
