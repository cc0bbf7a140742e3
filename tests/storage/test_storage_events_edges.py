"""Events table edge cases the mutation check found untested: contexts, bounds, batches, cost."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from tradingbot.events import Event, Severity
from tradingbot.storage import Database, EventQuery, EventRepository, InvalidQuery
from tradingbot.storage.engine import create_engine_for
from tradingbot.storage.event_table import _C, _page
from tradingbot.storage.transactions import Transactions

T0 = datetime(2025, 3, 7, 14, 30, 0, 123456, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def event(seconds: float = 0, **fields: Any) -> Event:
    """An INFO SIGNAL event ``seconds`` after T0, with ``fields`` overridden."""
    fields.setdefault("type", "SIGNAL")
    fields.setdefault("message", "z-score crossed 2.0")
    return Event(timestamp=T0 + timedelta(seconds=seconds), **fields)


def walk(repo: EventRepository, query: EventQuery) -> list[Event]:
    """Every event of ``query``, following next_cursor to the last page."""
    page = repo.query(query)
    events = list(page.events)
    while page.next_cursor is not None:
        page = repo.query(dataclasses.replace(query, cursor=page.next_cursor))
        events += page.events
    return events


@pytest.fixture
def events(database: Database) -> EventRepository:
    """The events repository of an empty, upgraded database."""
    return database.events


@pytest.fixture
def own_engine(database: Database, database_url: str) -> Iterator[sqlalchemy.Engine]:
    """A second engine on the test's upgraded database, for listening to what it runs."""
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


def repository(engine: sqlalchemy.Engine) -> EventRepository:
    """An events repository working through ``engine``."""
    return EventRepository(Transactions(engine, str(engine.url)))


# -- writing ------------------------------------------------------------------------------


def test_a_repeated_id_inside_a_batch_does_not_drop_the_events_after_it(
    events: EventRepository,
) -> None:
    """A batch holding one event twice still stores every event that follows the repeat."""
    first, second, third = event(1), event(2), event(3)
    assert events.insert_many([first, first, second, first, third]) == 3
    assert {e.id for e in walk(events, EventQuery())} == {first.id, second.id, third.id}


def test_a_batch_holding_something_else_than_events_is_refused_naming_it(
    events: EventRepository,
) -> None:
    """insert_many of a non-Event says what it got, and stores nothing of the batch."""
    with pytest.raises(TypeError, match=r"^events: expected Event instances, got dict$"):
        events.insert_many([event(1), {"type": "SIGNAL"}])  # type: ignore[list-item]
    assert events.count() == 0


def test_get_accepts_an_id_as_text_and_refuses_one_that_is_not_a_uuid(
    events: EventRepository,
) -> None:
    """An event is found by its id as text in any case; a malformed id is named in the error."""
    stored = event(1)
    events.insert_many([stored])
    assert events.get(str(stored.id)) == stored  # type: ignore[arg-type]
    assert events.get(str(stored.id).upper()) == stored  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery, match=r"^event_id: expected a UUID, got 'nope'$"):
        events.get("nope")  # type: ignore[arg-type]


# -- contexts for reconciliation and the broker -----------------------------------------


def test_contexts_return_one_types_events_since_a_time_oldest_first(
    events: EventRepository,
) -> None:
    """contexts gives (trade_id, context, ts) of one type from `since` on, oldest first;
    events of one timestamp in the order they were stored."""
    since = T0 + timedelta(minutes=1)
    before = event(60 - 1e-6, type="ORDER", trade_id="T-0", context={"n": 0})
    at_since = event(60, type="ORDER", trade_id="T-1", context={"n": 1})
    later = event(90, type="ORDER", context={"n": 4, "nested": {"qty": 3}})
    # Same timestamp, stored in this order; the first has the higher severity so an
    # index on (type, severity, ts, seq) would list them the other way round.
    tie_first = event(75, type="ORDER", severity=Severity.CRITICAL, context={"n": 2})
    tie_second = event(75, type="ORDER", severity=Severity.INFO, context={"n": 3})
    other_type = event(80, type="TRADE", trade_id="T-1", context={"n": 99})
    events.insert_many([later, tie_first, before, other_type])
    events.insert_many([tie_second, at_since])
    got = events.contexts("ORDER", since)
    assert got == [
        ("T-1", {"n": 1}, since),
        (None, {"n": 2}, T0 + timedelta(seconds=75)),
        (None, {"n": 3}, T0 + timedelta(seconds=75)),
        (None, {"n": 4, "nested": {"qty": 3}}, T0 + timedelta(seconds=90)),
    ]
    assert [ts.tzinfo for _, _, ts in got] == [UTC] * 4
    assert events.contexts("TRADE", since) == [("T-1", {"n": 99}, T0 + timedelta(seconds=80))]
    assert events.contexts("ORDER", T0 + timedelta(days=1)) == []


def test_contexts_refuse_a_naive_since(events: EventRepository) -> None:
    """contexts refuses a time without a zone, naming `since`, rather than guessing one."""
    with pytest.raises(InvalidQuery, match=r"^since: naive datetime"):
        events.contexts("ORDER", datetime(2025, 3, 7, 14, 30))


def test_trade_exec_ids_are_the_recorded_fills_since_a_time(events: EventRepository) -> None:
    """trade_exec_ids lists the execution ids of TRADE events from `since` on, as text:
    not those of other types, of older fills, or of a TRADE event without one."""
    since = T0 + timedelta(hours=1)
    events.insert_many(
        [
            event(3600, type="TRADE", context={"exec_id": "0001f4e8.67a1.01.01", "qty": 5}),
            event(3700, type="TRADE", context={"exec_id": 4711}),
            event(3800, type="TRADE", context={"exec_id": ""}),
            event(3900, type="TRADE", context={"qty": 1}),
            event(3950, type="TRADE", context={"exec_id": "0001f4e8.67a1.01.01"}),
            event(3599, type="TRADE", context={"exec_id": "old"}),
            event(3650, type="ORDER", context={"exec_id": "not-a-fill"}),
        ]
    )
    assert events.trade_exec_ids(since) == {"0001f4e8.67a1.01.01", "4711"}
    assert events.trade_exec_ids(T0 + timedelta(days=1)) == set()


# -- summary and pages --------------------------------------------------------------------


def test_summary_counts_since_inclusively_and_until_exclusively(events: EventRepository) -> None:
    """An event exactly at `since` is counted by summary, one exactly at `until` is not."""
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    events.insert_many([event(60 - 1e-6), event(60), event(90), event(120 - 1e-6), event(120)])
    assert events.summary(since, until).total == 3
    assert events.summary(since).total == 4
    assert events.summary(until=until).total == 4


def test_equal_timestamps_across_types_page_by_insertion_order(events: EventRepository) -> None:
    """Events of two types sharing one timestamp, filtered by both types, are paged
    exactly once each, the latest stored first."""
    same = [
        event(
            10, type=("ORDER", "TRADE")[i % 2], severity=(Severity.INFO, Severity.ERROR)[i // 2 % 2]
        )
        for i in range(40)
    ]
    events.insert_many(same[:20])
    events.insert_many(same[20:])
    query = EventQuery(limit=3, types=("ORDER", "TRADE"))
    assert walk(events, query) == list(reversed(same))
    assert walk(events, dataclasses.replace(query, min_severity=Severity.INFO)) == list(
        reversed(same)
    )


def limits_of(statement: str) -> tuple[int, list[int]]:
    """How many SELECTs read the events table, and the LIMIT of each SELECT that has one."""
    return statement.count("FROM events"), [int(n) for n in re.findall(r"LIMIT (-?\d+)", statement)]


QUERIES: dict[str, dict[str, Any]] = {
    "no filter": {},
    "one type": {"types": ("SIGNAL",)},
    "two types and severity": {"types": ("SIGNAL", "ORDER"), "min_severity": Severity.INFO},
    "severity": {"min_severity": Severity.WARNING},
    "strategy": {"strategy_id": "s1", "types": ("SIGNAL",)},
}


@pytest.mark.parametrize("name", QUERIES)
def test_a_page_reads_at_most_one_more_row_than_it_shows_from_each_range(
    own_engine: sqlalchemy.Engine, name: str
) -> None:
    """Every page, first or later, asks each index range for at most limit + 1 rows, so a
    dashboard page costs the same on a year of events as on a day's."""
    repo = repository(own_engine)
    # Runs of equal timestamps, so a cursor often falls inside one (the SQLite seek
    # splits there into "the rest of this timestamp" and "older").
    stored = [
        event(
            i // 4,
            type=("SIGNAL", "ORDER")[i % 2],
            severity=(Severity.INFO, Severity.WARNING, Severity.ERROR)[i % 3],
            strategy_id="s1",
        )
        for i in range(60)
    ]
    repo.insert_many(stored)
    query = EventQuery(limit=5, **QUERIES[name])
    every = walk(repo, dataclasses.replace(query, limit=1000))
    assert every  # the data set exercises the query
    seen: list[str] = []

    def remember(connection: Any, element: Any, *args: Any) -> None:
        if isinstance(element, sqlalchemy.Select):
            compiled = element.compile(
                dialect=connection.dialect, compile_kwargs={"literal_binds": True}
            )
            seen.append(str(compiled))

    sqlalchemy.event.listen(own_engine, "before_execute", remember)
    assert walk(repo, query) == every
    pages = [limits_of(statement) for statement in seen if "max(" not in statement]
    assert pages
    for reads, limits in pages:
        assert len(limits) == reads, pages  # no read of the table without a LIMIT
        assert all(0 < limit <= 6 for limit in limits), pages


PLANS: dict[str, tuple[dict[str, Any], str, str | None]] = {
    "no filter: the (ts, seq) index": ({}, "ix_events_ts_seq", "ix_events_severity_ts_seq"),
    "one type: the type index": (
        {"types": ("SIGNAL",)},
        "ix_events_type_severity_ts_seq",
        None,
    ),
    "five types, every severity: 25 ranges of the type index": (
        {"types": ("A", "B", "C", "D", "E")},
        "ix_events_type_severity_ts_seq",
        None,
    ),
    "a trade's events of a type: the trade index": (
        {"types": ("ORDER",), "trade_id": "T-1"},
        "ix_events_trade_id_ts_seq",
        "ix_events_type_severity_ts_seq",
    ),
    # The strategies page and each strategy's restart read one strategy's SIGNALs: not
    # every SIGNAL of every strategy, which would grow with the table.
    "one strategy's events of a type: the strategy index": (
        {"types": ("SIGNAL",), "strategy_id": "ma_cross"},
        "ix_events_strategy_id_ts_seq",
        "ix_events_type_severity_ts_seq",
    ),
}


@pytest.mark.parametrize("name", PLANS)
def test_each_kind_of_page_is_read_through_its_index(tmp_path: Path, name: str) -> None:
    """Each kind of page is read through the index the module promises for it, not a scan
    that grows with the table (SQLite's plan; PostgreSQL's depends on its statistics)."""
    arguments, used, unused = PLANS[name]
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    database = Database.open(url)
    database.upgrade()
    database.dispose()
    statement = _page(EventQuery(limit=10, **arguments), [_C.seq <= 10**9], 11)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    finally:
        engine.dispose()
    details = " ".join(str(row[-1]) for row in plan)
    assert used in details, details
    if unused is not None:
        assert unused not in details, details


# -- retention ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [True, -1, 1.5, "5"])
def test_retention_refuses_a_batch_size_that_is_not_a_positive_integer(
    events: EventRepository, size: Any
) -> None:
    """A batch size of True, a negative number, a fraction or text is refused, naming it."""
    events.insert_many([event(-86_400 * 100, severity=Severity.DEBUG)])
    with pytest.raises(
        InvalidQuery, match=rf"^batch_size: expected a positive integer, got {size!r}$"
    ):
        events.delete_older_than(T0, batch_size=size)
    assert events.count() == 1


def test_retention_deletes_in_transactions_of_at_most_the_batch_size(
    own_engine: sqlalchemy.Engine,
) -> None:
    """Twelve old events with a batch size of 5 go in three transactions (5, 5, 2), so
    writers wait for one batch at most; a batch size of 1 deletes one at a time."""
    repo = repository(own_engine)
    repo.insert_many([event(-86_400 - i, severity=Severity.DEBUG) for i in range(15)])
    commits: list[object] = []
    sqlalchemy.event.listen(own_engine, "commit", commits.append)
    cutoff = T0 - timedelta(days=1, seconds=2)
    assert repo.delete_older_than(cutoff, batch_size=5) == 12
    assert len(commits) == 3
    commits.clear()
    assert repo.delete_older_than(T0, batch_size=1) == 3
    assert len(commits) == 4  # the last finds nothing left
    assert repo.count() == 0


def test_retention_interrupted_after_a_batch_has_deleted_the_oldest_events(
    own_engine: sqlalchemy.Engine,
) -> None:
    """If retention stops after its first batch, the events it deleted are the oldest
    ones, whatever order they were stored in: the table is a consistent, shorter history."""
    repo = repository(own_engine)
    old = [event(-86_400 - i, severity=Severity.DEBUG) for i in range(10)]  # newest first
    repo.insert_many(old)
    deletes: list[str] = []

    def stop_at_the_second_batch(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)
            if len(deletes) == 2:
                raise RuntimeError("interrupted")

    sqlalchemy.event.listen(own_engine, "before_cursor_execute", stop_at_the_second_batch)
    with pytest.raises(RuntimeError, match=r"^interrupted$"):
        repo.delete_older_than(T0, batch_size=4)
    sqlalchemy.event.remove(own_engine, "before_cursor_execute", stop_at_the_second_batch)
    left = {e.id for e in walk(repo, EventQuery(limit=1000))}
    oldest_four = {e.id for e in sorted(old, key=lambda e: e.timestamp)[:4]}
    assert left == {e.id for e in old} - oldest_four


def test_retention_keeps_an_event_exactly_at_the_cutoff(events: EventRepository) -> None:
    """delete_older_than deletes events strictly before the cutoff, to the microsecond."""
    cutoff = T0 - timedelta(days=30)
    at, just_before = event(-30 * 86_400), event(-30 * 86_400 - 1e-6)
    assert just_before.timestamp == cutoff - MICRO
    events.insert_many([at, just_before])
    assert events.delete_older_than(cutoff) == 1
    assert events.get(at.id) == at
