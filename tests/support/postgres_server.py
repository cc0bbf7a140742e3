"""The real local PostgreSQL server, stopped and started with ``pg_ctlcluster``.

A fault test takes the ``postgres_server`` fixture (import ``postgres_server_fixture``
into the test module): the cluster behind ``postgres_url`` that the test may stop and
start, and that is always running again (and awaited) at teardown, whatever happened.
Without such a cluster the test is skipped with the reason — except under ``CI=true``,
where it fails: these are the strongest durability tests and CI must not pass without them.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

PG_ETC = Path("/etc/postgresql")
PG_CLUSTER = "main"
START_WAIT_S = 60.0


def _pg_ready() -> bool:
    result = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def _wait_ready(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _pg_ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for pg_isready")
        time.sleep(0.05)


def _drop_dead_pooled_connections() -> None:
    """Dispose of this process's PostgreSQL pools: the restart killed their connections.

    The session fixtures' admin engine pools connections without a pre-ping, so its
    teardown (dropping the session database) would otherwise pick a dead one and fail.
    """
    for candidate in gc.get_objects():
        if isinstance(candidate, sqlalchemy.engine.Engine) and (
            candidate.dialect.name == "postgresql"
        ):
            candidate.dispose()


@dataclass
class PostgresServer:
    """The local PostgreSQL cluster, stopped and started for real."""

    version: str

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, PG_CLUSTER, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> None:
        result = self._ctl("stop", "-m", "fast")
        assert result.returncode == 0, f"cannot stop PostgreSQL: {result.stderr}"
        assert not _pg_ready(), "PostgreSQL still answers after stop"

    def start(self) -> None:
        result = self._ctl("start")
        if result.returncode != 0 and not _pg_ready():
            raise AssertionError(f"cannot start PostgreSQL: {result.stderr}")
        _wait_ready(START_WAIT_S)
        _drop_dead_pooled_connections()

    def ensure_running(self) -> None:
        if not _pg_ready():
            self.start()


def unusable_reason(
    ctl: str | None, versions: list[str], host: str | None, port: int | None
) -> str | None:
    """Why this cluster cannot be stopped and started by the tests, or ``None``."""
    if ctl is None:
        return "pg_ctlcluster is not installed"
    if len(versions) != 1:
        found = ", ".join(versions) or "none"
        return f"expected one cluster named {PG_CLUSTER!r} under {PG_ETC}, found: {found}"
    if host not in ("127.0.0.1", "localhost") or (port or 5432) != 5432:
        return f"the test database is on {host}:{port or 5432}, not the local cluster"
    return None


def unavailable(reason: str) -> NoReturn:
    """Skip — or, under ``CI=true``, fail: CI must never pass by skipping fault tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"the PostgreSQL fault tests are required when CI=true: {reason}", pytrace=False
        )
    pytest.skip(reason)


@pytest.fixture(name="postgres_server")
def postgres_server_fixture(postgres_url: str) -> Iterator[PostgresServer]:
    """The local cluster behind ``postgres_url``; always running again at teardown."""
    url = make_url(postgres_url)
    versions = sorted({p.parent.name for p in PG_ETC.glob(f"*/{PG_CLUSTER}")})
    problem = unusable_reason(shutil.which("pg_ctlcluster"), versions, url.host, url.port)
    if problem is not None:
        unavailable(f"needs the local pg_ctlcluster-managed server on 127.0.0.1:5432: {problem}")
    server = PostgresServer(versions[0])
    try:
        yield server
    finally:
        server.ensure_running()
