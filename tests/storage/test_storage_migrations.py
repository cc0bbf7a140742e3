"""Schema migrations: idempotent upgrade, revision checks, concurrency, model agreement."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import tradingbot.storage
from tradingbot.storage import Database, SchemaOutOfDate
from tradingbot.storage.engine import create_engine_for
from tradingbot.storage.models import Base
from tradingbot.storage.schema import (
    MIGRATIONS_DIR,
    alembic_config,
    head_revision,
    known_revisions,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_upgrade_applies_migrations_once(database_url: str) -> None:
    """A first upgrade applies every migration up to head; a second one applies nothing."""
    db = Database.open(database_url)
    try:
        first = db.upgrade()
        second = db.upgrade()
        assert first[0] == "0001"
        assert first[-1] == head_revision()
        assert second == []
        assert db.current_revision() == head_revision()
    finally:
        db.dispose()


def test_current_revision_is_none_before_the_first_upgrade(database_url: str) -> None:
    """A database that was never upgraded reports no revision."""
    db = Database.open(database_url)
    try:
        assert db.current_revision() is None
    finally:
        db.dispose()


def test_require_current_schema_tells_the_operator_to_upgrade(database_url: str) -> None:
    """On a fresh database the schema check fails and says to run `trading-bot db upgrade`."""
    db = Database.open(database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="trading-bot db upgrade"):
            db.require_current_schema()
        db.upgrade()
        db.require_current_schema()
    finally:
        db.dispose()


def test_repository_on_a_fresh_database_raises_schema_out_of_date(database_url: str) -> None:
    """Using a table before the schema exists raises SchemaOutOfDate, not a driver error."""
    db = Database.open(database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="trading-bot db upgrade"):
            db.system_state.latest()
    finally:
        db.dispose()


def test_database_from_a_newer_version_is_refused(database: Database, database_url: str) -> None:
    """A revision this version does not know makes both the check and the upgrade fail."""
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="does not know"):
        database.require_current_schema()
    with pytest.raises(SchemaOutOfDate, match="newer version"):
        database.upgrade()


def test_concurrent_upgrades_both_succeed(database_url: str) -> None:
    """Two processes upgrading the same fresh database at once both succeed; one applies all."""
    barrier = threading.Barrier(2, timeout=30)
    results: list[list[str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def upgrade() -> None:
        db = Database.open(database_url)
        try:
            db.ping(5.0)  # connect first, so both upgrades start as close together as possible
            barrier.wait()
            applied = db.upgrade()
            with lock:
                results.append(applied)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(error)
        finally:
            db.dispose()

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(results) == [[], sorted(known_revisions())]


def test_models_match_migrations(database: Database, database_url: str) -> None:
    """After upgrading, the database schema is exactly what the models describe."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migration_files_are_shipped_as_package_data() -> None:
    """Every migration file matches a package-data glob, so installed copies can upgrade."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["tradingbot"]
    package_root = Path(tradingbot.storage.__file__).parent.parent
    shipped = [
        path
        for path in MIGRATIONS_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert {p.name for p in shipped} >= {
        "env.py",
        "script.py.mako",
        "0001_system_state.py",
        "0002_events.py",
        "0003_outbox.py",
        "0004_recovery.py",
        "0005_reconciliations.py",
        "0006_outbox_claims_and_events.py",
        "0007_outbox_one_mail_per_event.py",
        "0008_trading_state.py",
        "0009_job_runs.py",
        "0010_bars.py",
        "0011_books_snapshots.py",
        "0012_equity_marks.py",
    }
    for path in shipped:
        relative = path.relative_to(package_root)
        assert any(relative.match(pattern) for pattern in globs), f"{relative} is not shipped"


def test_upgrade_keeps_mails_an_older_version_doubled_and_unlinks_the_later_one(
    database_url: str,
) -> None:
    """Migration 0007 on a database holding two mails of one event: both mails stay (nothing
    is deleted), the later one no longer names the event, and the index can be built."""
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0006")
            for row_id, message_id, kind in (
                (1, "<a@desk-a.example>", "alert"),
                (2, "<a@desk-b.example>", "alert"),
                (3, "<t@desk-a.example>", "trade_execution"),
            ):
                connection.execute(
                    sqlalchemy.text(
                        "INSERT INTO outbox (id, message_id, kind, severity, subject, sender,"
                        " recipients, context, status, attempts, next_attempt_at, created_at,"
                        " coalesced, event_id) VALUES (:id, :mid, :kind, 40, 's', 'b@x',"
                        " '[\"o@x\"]', '{}', 'pending', 0, :at, :at, 1, 'ev-1')"
                    ),
                    {"id": row_id, "mid": message_id, "kind": kind, "at": "2025-01-06 14:30:00"},
                )
            command.upgrade(alembic_config(connection), "head")
            rows = connection.execute(
                sqlalchemy.text("SELECT id, event_id FROM outbox ORDER BY id")
            ).all()
        assert [tuple(row) for row in rows] == [(1, "ev-1"), (2, None), (3, "ev-1")]
    finally:
        engine.dispose()
