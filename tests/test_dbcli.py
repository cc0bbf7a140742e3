"""`trading-bot db backup / verify / restore` as an operator runs them (real processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from support.postgres import reset_postgres
from tradingbot import exitcodes
from tradingbot.recovery import acquire_run_lock
from tradingbot.storage import Database


def cli(home: Path, *args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "TRADINGBOT_HOME": str(home), "LANG": "C.UTF-8"}
    if database_url:
        env["TRADINGBOT_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "tradingbot.cli", *args],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backup_verify_restore_round_trip_and_other_accounts_lock(tmp_path: Path) -> None:
    """Backup, verify and restore work; a run of another account on the database blocks restore."""
    home = tmp_path / "home"
    assert cli(home, "db", "upgrade").returncode == 0
    made = cli(home, "db", "backup", "--keep", "3")
    assert made.returncode == 0, made.stderr
    [backup] = (home / "backups").glob("trading-bot-*.backup.tar")
    assert cli(home, "db", "verify", str(backup)).stdout.startswith("backup OK:")

    with Database.open(f"sqlite:///{home / 'trading-bot.db'}") as database:
        lock = acquire_run_lock(
            database, "U1234", pid=os.getpid(), host=socket.gethostname(), run_id="test"
        )
        try:
            refused = cli(home, "db", "restore", str(backup))
        finally:
            lock.release()
    assert refused.returncode == exitcodes.ALREADY_RUNNING
    assert refused.stderr.startswith("trading-bot: restore refused:")
    assert "another account" in refused.stderr

    restored = cli(home, "db", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "the replaced database was saved to" in restored.stdout
    assert restored.stderr == ""


def test_bad_backup_file_is_one_line(tmp_path: Path) -> None:
    """verify and restore of a file that is not a backup: exit 1 and one line on stderr."""
    stray = tmp_path / "notes.txt"
    stray.write_text("not a backup")
    for command in ("verify", "restore"):
        result = cli(tmp_path / "home", "db", command, str(stray))
        assert result.returncode == exitcodes.FAILURE
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "not a readable trading-bot backup" in result.stderr


@pytest.fixture
def admin(_postgres_session_engine: Engine) -> Engine:
    """An AUTOCOMMIT engine on the session database, with an empty ``public`` schema."""
    reset_postgres(_postgres_session_engine)
    return _postgres_session_engine


@pytest.mark.postgres
def test_postgres_schema_from_the_url_backup_and_restore(
    tmp_path: Path, postgres_url: str, admin: Engine
) -> None:
    """With `?options=-csearch_path%3Dtb` as DEPLOYMENT.md writes it, db upgrade, backup
    and restore work in schema tb; before tb exists, upgrade says so in one line."""
    schema = f"tb_{uuid.uuid4().hex[:8]}"
    joiner = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{joiner}options=-csearch_path%3D{schema}"
    home = tmp_path / "home"
    missing = cli(home, "db", "upgrade", database_url=url)
    assert missing.returncode == exitcodes.FAILURE
    assert missing.stderr.count("\n") == 1
    assert f"none of the search_path ({schema}) exists" in missing.stderr
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        assert cli(home, "db", "upgrade", database_url=url).returncode == 0
        made = cli(home, "db", "backup", str(tmp_path / "tb.backup.tar"), database_url=url)
        assert made.returncode == 0, made.stderr
        assert f"postgresql schema {schema}" in made.stdout
        restored = cli(home, "db", "restore", str(tmp_path / "tb.backup.tar"), database_url=url)
        assert restored.returncode == 0, restored.stderr
        assert "the replaced database was saved to" in restored.stdout
    finally:
        reset_postgres(admin)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
