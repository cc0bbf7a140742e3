"""PostgreSQL backups of a database whose tables live in a schema other than ``public``.

The schema is chosen the way an operator does it, in ``TRADINGBOT_DATABASE_URL``:
``?options=-csearch_path%3Dtb``. Real PostgreSQL, real ``pg_dump`` and ``psql``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine, make_url

from support.postgres import reset_postgres
from tradingbot.events import Event
from tradingbot.storage import (
    BackupError,
    Database,
    StorageError,
    backup_database,
    read_manifest,
    restore_database,
    verify_backup,
)
from tradingbot.storage.backup import MANIFEST

pytestmark = pytest.mark.postgres


def with_search_path(url: str, search_path: str) -> str:
    """``url`` with ``?options=-csearch_path=…`` (URL-encoded), as an operator writes it."""
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={search_path}"})
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def admin(_postgres_session_engine: Engine) -> Engine:
    """An AUTOCOMMIT engine on the session database, with an empty ``public`` schema."""
    reset_postgres(_postgres_session_engine)
    return _postgres_session_engine


@pytest.fixture
def other_schema(admin: Engine) -> Iterator[str]:
    """A fresh, empty schema in the session database."""
    name = f"tb_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    yield name
    reset_postgres(admin)  # ends the test's connections
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def tables_in(engine: Engine, schema: str) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                sqlalchemy.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                {"s": schema},
            ).scalars()
        )


def test_backup_and_restore_in_another_schema(
    postgres_url: str, other_schema: str, admin: Engine, tmp_path: Path
) -> None:
    """A bot kept in schema tb is backed up and restored there; public is never touched."""
    url = with_search_path(postgres_url, other_schema)
    with admin.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE public.other_app (id int)")
        connection.exec_driver_sql("INSERT INTO public.other_app VALUES (1)")
    target = tmp_path / "tb.backup.tar"
    with Database.open(url) as database:
        database.upgrade()
        assert "events" in tables_in(admin, other_schema)
        kept = Event(type="TRADE", message="bought before the backup")
        database.events.insert_many([kept])
        manifest = backup_database(database, target)
        assert manifest.postgres_schema == other_schema
        assert f"postgresql schema {other_schema}" in manifest.describe()
        assert verify_backup(target) == manifest
        later = Event(type="TRADE", message="after the backup")
        database.events.insert_many([later])

        result = restore_database(database, target)
        assert result.revision == database.head_revision()
        assert database.events.get(kept.id) is not None
        assert database.events.get(later.id) is None
    assert tables_in(admin, "public") == {"other_app"}
    with admin.connect() as connection:
        assert connection.exec_driver_sql("SELECT id FROM public.other_app").scalars().all() == [1]


def test_the_dump_holds_only_trading_bot_tables(
    postgres_url: str, other_schema: str, admin: Engine, tmp_path: Path
) -> None:
    """Another application's table, even in the bot's own schema, is not in the backup."""
    url = with_search_path(postgres_url, other_schema)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE TABLE "{other_schema}".not_ours (id int)')
    target = tmp_path / "b.backup.tar"
    with Database.open(url) as database:
        database.upgrade()
        backup_database(database, target)
        restore_database(database, target)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    subprocess.run(["tar", "-xf", str(target), "-C", str(folder)], check=True)
    sql = subprocess.run(
        ["gzip", "-dc", str(folder / "database.sql.gz")], capture_output=True, check=True
    ).stdout.decode()
    assert f"CREATE TABLE {other_schema}.events" in sql
    assert "not_ours" not in sql
    assert "CREATE SCHEMA" not in sql
    assert "not_ours" in tables_in(admin, other_schema)


def test_restore_into_another_schema_is_refused(
    postgres_url: str, other_schema: str, tmp_path: Path
) -> None:
    """A backup of schema tb is not restored into a database kept in public: one clear error."""
    target = tmp_path / "tb.backup.tar"
    with Database.open(with_search_path(postgres_url, other_schema)) as database:
        database.upgrade()
        backup_database(database, target)
    with Database.open(postgres_url) as database:
        database.upgrade()
        database.events.insert_many([Event(type="TRADE", message="kept in public")])
        refused = rf"holds the tables of schema {other_schema}.*public"
        with pytest.raises(BackupError, match=refused):
            restore_database(database, target)
        assert database.events.count() == 1


def test_manifest_of_public_stays_readable_by_older_versions(
    postgres_url: str, admin: Engine, tmp_path: Path
) -> None:
    """A default (public) backup's manifest has no new key, so an older trading-bot reads it."""
    target = tmp_path / "b.backup.tar"
    with Database.open(postgres_url) as database:
        database.upgrade()
        manifest = backup_database(database, target)
    assert manifest.postgres_schema == "public"
    assert read_manifest(target) == manifest
    subprocess.run(["tar", "-xf", str(target), "-C", str(tmp_path), MANIFEST], check=True)
    assert "postgres_schema" not in (tmp_path / MANIFEST).read_text()


def test_a_search_path_naming_no_schema_is_one_clear_error(
    postgres_url: str, other_schema: str, tmp_path: Path
) -> None:
    """An upgrade or backup where the search_path's schema does not exist says so, naming it."""
    url = with_search_path(postgres_url, f"{other_schema}_missing")
    with Database.open(url) as database:
        missing = rf"none of the search_path \({other_schema}_missing"
        with pytest.raises(StorageError, match=missing):
            database.upgrade()
        with pytest.raises(StorageError, match="CREATE SCHEMA"):
            backup_database(database, tmp_path / "b.backup.tar")
    assert not (tmp_path / "b.backup.tar").exists()


def test_a_database_without_tables_is_not_backed_up(
    postgres_url: str, other_schema: str, tmp_path: Path
) -> None:
    """Backing up a schema trading-bot never upgraded fails saying what to run first."""
    with (
        Database.open(with_search_path(postgres_url, other_schema)) as database,
        pytest.raises(BackupError, match=r"no trading-bot tables.*db upgrade"),
    ):
        backup_database(database, tmp_path / "b.backup.tar")
