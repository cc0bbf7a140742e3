"""Fixtures of the notifier tests: a real aiosmtpd server, a hand-driven wall clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.notify_support import WallClock, notify_settings, smtp_settings
from support.smtp_server import SmtpServer, self_signed_cert
from tradingbot.notify import Notifier
from tradingbot.storage import Database


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture
def smtp_notifier(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> Notifier:
    """A notifier on either database, sending to the plain aiosmtpd server."""
    return Notifier(database, notify_settings(tmp_path, smtp_settings(smtp_server)), now=wall)
