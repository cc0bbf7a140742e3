"""The events table: idempotent batched writes, filtered keyset pages, summary, retention."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy

from support.ports import free_port
from tradingbot.events import Event, EventValidationError, Severity
from tradingbot.storage import (
    Database,
    EventPage,
    EventQuery,
    EventRepository,
    EventSummary,
    InvalidQuery,
    SchemaOutOfDate,
    StorageError,
    StorageUnavailable,
)
from tradingbot.storage.engine import create_engine_for
from tradingbot.storage.event_table import MAX_RANGES
from tradingbot.storage.transactions import Transactions

T0 = datetime(2025, 3, 7, 14, 30, 0, 123456, tzinfo=UTC)
TYPES = ("TRADE", "ORDER", "SIGNAL", "RISK", "SYSTEM", "MY_SIGNAL")
STRATEGIES = ("mean-revert", "momentum", None)
# Enough absent types that (type, severity) pairs exceed the query's range limit.
UNUSED_TYPES = tuple(f"UNUSED_{i}" for i in range(MAX_RANGES // 2 + 1))


def event(seconds: float = 0, **fields: Any) -> Event:
    """An INFO SIGNAL event ``seconds`` after T0, with ``fields`` overridden."""
    fields.setdefault("type", "SIGNAL")
    fields.setdefault("message", "z-score crossed 2.0")
    return Event(timestamp=T0 + timedelta(seconds=seconds), **fields)


def walk(repo: EventRepository, query: EventQuery) -> list[Event]:
    """Every event of ``query``, following next_cursor to the last page."""
    events: list[Event] = []
    page = repo.query(query)
    events += page.events
    while page.next_cursor is not None:
        page = repo.query(dataclasses.replace(query, cursor=page.next_cursor))
        events += page.events
    return events


def newest_first(events: list[Event], stored: list[Event]) -> list[Event]:
    """``events`` in the repository's order: newest first, later insert first on ties."""
    position = {e.id: i for i, e in enumerate(stored)}
    return sorted(events, key=lambda e: (e.timestamp, position[e.id]), reverse=True)


@pytest.fixture
def events(database: Database) -> EventRepository:
    """The events repository of an empty, upgraded database."""
    return database.events


@pytest.fixture
def stored(events: EventRepository) -> list[Event]:
    """400 varied events over ~7 hours, stored in shuffled batches (seq order != ts order)."""
    rnd = random.Random(20250307)
    made = [
        event(
            rnd.randrange(25_000) + rnd.choice((0, 0.5)),
            type=rnd.choice(TYPES),
            severity=rnd.choice(list(Severity)),
            strategy_id=rnd.choice(STRATEGIES),
            trade_id=rnd.choice((None, None, "T-1", "T-2", "T-3")),
            source=rnd.choice(("strategy", "broker")),
            context={"n": i},
        )
        for i in range(400)
    ]
    rnd.shuffle(made)
    for start in range(0, len(made), 90):
        assert events.insert_many(made[start : start + 90]) == len(made[start : start + 90])
    return made


# -- writing ------------------------------------------------------------------------------


def test_round_trip_preserves_every_field(events: EventRepository) -> None:
    """An event comes back equal: UUID, aware UTC timestamp, severity, ids and nested context."""
    original = Event(
        type="MY_SIGNAL",
        message="Überkauft — ордер 注文 🚀",
        severity=Severity.CRITICAL,
        source="strategy:mean-revert",
        strategy_id="mean-revert",
        trade_id="T-42",
        user_id="ops@example.com",
        context={
            "price": 101.25,
            "qty": -3,
            "flags": [True, False, None],
            "nested": {"ünïcödé": ["日本", {"deep": {"deeper": [1, 2.5, "x"]}}]},
            "empty": {},
        },
        timestamp=datetime(2025, 7, 1, 9, 30, 0, 654321, tzinfo=ZoneInfo("America/New_York")),
    )
    assert events.insert_many([original]) == 1
    loaded = events.get(original.id)
    assert loaded == original
    assert loaded is not None
    assert loaded.timestamp.tzinfo is UTC
    assert loaded.timestamp == datetime(2025, 7, 1, 13, 30, 0, 654321, tzinfo=UTC)
    assert isinstance(loaded.severity, Severity)
    assert events.get(uuid.uuid4()) is None


def test_database_stamps_the_insert_time(events: EventRepository, database_url: str) -> None:
    """recorded_at is set by the database at insert, in UTC, independent of the event's time."""
    events.insert_many([event(type="TRADE")])  # T0 is in 2025
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            raw = connection.execute(sqlalchemy.text("SELECT recorded_at FROM events")).scalar_one()
    finally:
        engine.dispose()
    recorded = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    recorded = recorded if recorded.tzinfo else recorded.replace(tzinfo=UTC)
    assert abs(recorded - datetime.now(UTC)) < timedelta(minutes=2)


def test_reinserting_stores_each_event_once(events: EventRepository) -> None:
    """A batch stored twice, or with repeats inside it, is stored once; only new ones count."""
    batch = [event(i, context={"i": i}) for i in range(50)]
    assert events.insert_many(batch) == 50
    assert events.insert_many(batch) == 0
    fresh = [event(100 + i) for i in range(5)]
    mixed = [*fresh, *batch[:10], fresh[0], fresh[0], *fresh]
    assert events.insert_many(mixed) == 5
    assert events.count() == 55
    assert events.insert_many([]) == 0
    assert sorted(e.id for e in walk(events, EventQuery(limit=1000))) == sorted(
        e.id for e in batch + fresh
    )


def test_first_occurrence_of_a_repeated_id_wins(events: EventRepository) -> None:
    """When one id is stored twice with different content, the stored version is kept."""
    first = event(1, message="first")
    assert events.insert_many([first, dataclasses.replace(first, message="second")]) == 1
    assert events.insert_many([dataclasses.replace(first, message="third")]) == 0
    stored = events.get(first.id)
    assert stored is not None
    assert stored.message == "first"


def test_two_databases_in_one_process_each_store_only_their_own_events(
    database: Database, tmp_path: Path
) -> None:
    """Events inserted alternately into two open databases land each in its own, counted right."""
    other = Database.open(f"sqlite:///{tmp_path / 'other' / 'trading-bot.db'}")
    try:
        other.upgrade()
        mine, theirs = [event(i) for i in range(3)], [event(10 + i) for i in range(2)]
        for a, b in zip(mine, theirs, strict=False):
            assert database.events.insert_many([a]) == 1
            assert other.events.insert_many([b]) == 1
        assert database.events.insert_many(mine) == 1  # the third; the first two are stored
        assert {e.id for e in walk(database.events, EventQuery())} == {e.id for e in mine}
        assert {e.id for e in walk(other.events, EventQuery())} == {e.id for e in theirs}
    finally:
        other.dispose()


def test_a_batch_is_one_transaction(database_url: str, database: Database) -> None:
    """insert_many of 1,000 events commits exactly once, never once per event."""
    engine = create_engine_for(database_url)
    commits: list[object] = []
    sqlalchemy.event.listen(engine, "commit", commits.append)
    repo = EventRepository(Transactions(engine, database_url))
    try:
        assert repo.insert_many([event(i) for i in range(1000)]) == 1000
    finally:
        engine.dispose()
    assert len(commits) == 1
    assert database.events.count() == 1000


def test_text_the_database_cannot_hold_is_stored_alike_on_both(events: EventRepository) -> None:
    """NUL characters (refused by PostgreSQL) become U+FFFD in text and context, everywhere."""
    original = event(message="a\x00b", source="s\x00", context={"k\x00": ["v\x00", {"x": "\x00"}]})
    assert events.insert_many([original]) == 1
    stored = events.get(original.id)
    assert stored is not None
    assert (stored.message, stored.source) == ("a\ufffdb", "s\ufffd")
    assert stored.context == {"k\ufffd": ["v\ufffd", {"x": "\ufffd"}]}


def test_unserialisable_context_is_refused_before_writing(events: EventRepository) -> None:
    """A context orjson cannot encode raises EventValidationError naming it; nothing is stored."""
    good = event(1)
    bad = event(2)
    bad.context["handle"] = object()  # Event checks at creation; its dict stays mutable
    with pytest.raises(EventValidationError, match=rf"^context: event {bad.id}"):
        events.insert_many([good, bad])
    assert events.count() == 0


# -- querying -----------------------------------------------------------------------------


def test_empty_table_gives_an_empty_last_page(events: EventRepository) -> None:
    """Querying no events returns an empty page without a cursor."""
    assert events.query(EventQuery()) == EventPage(events=[], next_cursor=None)


FILTERS: dict[str, tuple[dict[str, Any], Callable[[Event], bool]]] = {
    "none": ({}, lambda e: True),
    "one type": ({"types": ("RISK",)}, lambda e: e.type == "RISK"),
    "two types": ({"types": ("TRADE", "ORDER")}, lambda e: e.type in ("TRADE", "ORDER")),
    "min severity": (
        {"min_severity": Severity.WARNING},
        lambda e: e.severity >= Severity.WARNING,
    ),
    "min severity DEBUG": ({"min_severity": Severity.DEBUG}, lambda e: True),
    "strategy": ({"strategy_id": "momentum"}, lambda e: e.strategy_id == "momentum"),
    "trade": ({"trade_id": "T-2"}, lambda e: e.trade_id == "T-2"),
    "since": ({"since": T0 + timedelta(hours=3)}, lambda e: e.timestamp >= T0 + timedelta(hours=3)),
    "until": ({"until": T0 + timedelta(hours=2)}, lambda e: e.timestamp < T0 + timedelta(hours=2)),
    "since and until": (
        {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=5)},
        lambda e: T0 + timedelta(hours=1) <= e.timestamp < T0 + timedelta(hours=5),
    ),
    "types and severity": (
        {"types": ("SIGNAL", "RISK"), "min_severity": Severity.ERROR},
        lambda e: e.type in ("SIGNAL", "RISK") and e.severity >= Severity.ERROR,
    ),
    "strategy, type and severity": (
        {"strategy_id": "mean-revert", "types": ("TRADE",), "min_severity": Severity.INFO},
        lambda e: (
            e.strategy_id == "mean-revert" and e.type == "TRADE" and e.severity >= Severity.INFO
        ),
    ),
    "trade, types and severity": (
        {"trade_id": "T-1", "types": ("ORDER", "TRADE"), "min_severity": Severity.WARNING},
        lambda e: (
            e.trade_id == "T-1" and e.type in ("ORDER", "TRADE") and e.severity >= Severity.WARNING
        ),
    ),
    "many types": (
        {"types": (*TYPES, *UNUSED_TYPES)},
        lambda e: True,
    ),
    "many types and severity": (
        {"types": (*TYPES[2:], *UNUSED_TYPES), "min_severity": "ERROR"},
        lambda e: e.type in TYPES[2:] and e.severity >= Severity.ERROR,
    ),
    "everything": (
        {
            "types": ("SIGNAL", "SYSTEM", "ORDER"),
            "min_severity": Severity.INFO,
            "strategy_id": "momentum",
            "since": T0 + timedelta(hours=1),
            "until": T0 + timedelta(hours=6),
        },
        lambda e: (
            e.type in ("SIGNAL", "SYSTEM", "ORDER")
            and e.severity >= Severity.INFO
            and e.strategy_id == "momentum"
            and T0 + timedelta(hours=1) <= e.timestamp < T0 + timedelta(hours=6)
        ),
    ),
}


@pytest.mark.parametrize("name", FILTERS)
def test_filters_return_exactly_the_matching_events_newest_first(
    events: EventRepository, stored: list[Event], name: str
) -> None:
    """Each filter, alone or combined, returns exactly the matching events, newest first."""
    arguments, matches = FILTERS[name]
    expected = newest_first([e for e in stored if matches(e)], stored)
    assert expected  # the data set exercises the filter
    assert walk(events, EventQuery(limit=7, **arguments)) == expected
    first = events.query(EventQuery(limit=1000, **arguments))
    assert (first.events, first.next_cursor) == (expected, None)


def test_severity_is_a_threshold(events: EventRepository) -> None:
    """min_severity returns that severity and every one above it, and accepts a name."""
    events.insert_many([event(i, severity=s) for i, s in enumerate(Severity)])
    for threshold in Severity:
        page = events.query(EventQuery(min_severity=threshold))
        assert sorted(e.severity for e in page.events) == [s for s in Severity if s >= threshold]
    by_name = events.query(EventQuery(min_severity="error"))  # type: ignore[arg-type]
    assert [e.severity for e in by_name.events] == [Severity.CRITICAL, Severity.ERROR]


def test_since_is_inclusive_and_until_exclusive(events: EventRepository) -> None:
    """An event exactly at since is returned, one exactly at until is not (to the microsecond)."""
    micro = timedelta(microseconds=1)
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    at = {
        "before since": event(60 - 1e-6),
        "at since": event(60),
        "inside": event(90),
        "before until": event(120 - 1e-6),
        "at until": event(120),
    }
    assert at["before since"].timestamp == since - micro
    events.insert_many(list(at.values()))
    page = events.query(EventQuery(since=since, until=until))
    assert [e.id for e in page.events] == [at[k].id for k in ("before until", "inside", "at since")]
    new_york = EventQuery(since=since.astimezone(ZoneInfo("America/New_York")))
    assert len(events.query(new_york).events) == 4


# -- pagination ---------------------------------------------------------------------------


def test_pages_walk_every_event_once_in_order(events: EventRepository) -> None:
    """1,000 events read 37 at a time come back exactly once, newest first, in full pages."""
    rnd = random.Random(7)
    made = [event(rnd.randrange(3600 * 24), context={"i": i}) for i in range(1000)]
    for start in range(0, 1000, 250):
        events.insert_many(made[start : start + 250])
    sizes: list[int] = []
    seen: list[Event] = []
    page = events.query(EventQuery(limit=37))
    while True:
        sizes.append(len(page.events))
        seen += page.events
        if page.next_cursor is None:
            break
        page = events.query(EventQuery(limit=37, cursor=page.next_cursor))
    assert seen == newest_first(made, made)
    assert sizes == [37] * 27 + [1]


def test_exact_multiple_of_the_limit_ends_without_an_empty_page(events: EventRepository) -> None:
    """With exactly 2 x limit events, the second page is the last and says so."""
    events.insert_many([event(i) for i in range(20)])
    first = events.query(EventQuery(limit=10))
    assert first.next_cursor is not None
    second = events.query(EventQuery(limit=10, cursor=first.next_cursor))
    assert (len(second.events), second.next_cursor) == (10, None)


def test_equal_timestamps_paginate_by_insertion_order(events: EventRepository) -> None:
    """300 events sharing one timestamp are paged exactly once each, the latest stored first."""
    same = [event(10, context={"i": i}) for i in range(300)]
    around = [event(5), event(15)]
    events.insert_many(same[:150])
    events.insert_many(around)
    events.insert_many(same[150:])
    walked = walk(events, EventQuery(limit=11))
    assert walked == [around[1], *reversed(same), around[0]]
    signals = walk(events, EventQuery(limit=11, types=("SIGNAL",), min_severity=Severity.INFO))
    assert signals == walked


def test_new_events_never_disturb_a_walk(events: EventRepository) -> None:
    """Events stored during a walk, newer or backdated, appear only on a fresh first page."""
    original = [event(i * 10, context={"i": i}) for i in range(100)]
    events.insert_many(original)
    query = EventQuery(limit=9)
    page = events.query(query)
    walked = list(page.events)
    late: list[Event] = []
    step = 0
    while page.next_cursor is not None:
        step += 1
        newer = event(10_000 + step)  # newest of all
        backdated = event(step * 37 + 0.5)  # in the middle of what is still to be walked
        same_ts = event(walked[-1].timestamp.timestamp() - T0.timestamp())  # at the cursor
        late += [newer, backdated, same_ts]
        assert events.insert_many([newer, backdated, same_ts]) == 3
        page = events.query(dataclasses.replace(query, cursor=page.next_cursor))
        walked += page.events
    assert walked == newest_first(original, original)
    assert len({e.id for e in walked}) == 100
    fresh = walk(events, EventQuery(limit=50))
    assert {e.id for e in fresh} == {e.id for e in original + late}


def test_a_cursor_keeps_working_after_other_writes(events: EventRepository) -> None:
    """A cursor is plain data: reused later, it returns the same next page."""
    events.insert_many([event(i) for i in range(30)])
    first = events.query(EventQuery(limit=10))
    assert first.next_cursor is not None
    again = EventQuery(limit=10, cursor=first.next_cursor)
    before = events.query(again)
    events.insert_many([event(1000), event(-1000)])
    assert events.query(again) == before


def test_tampered_or_garbage_cursors_are_refused(events: EventRepository) -> None:
    """A cursor that was altered, truncated or made up raises InvalidQuery naming cursor."""
    events.insert_many([event(i) for i in range(5)])
    cursor = events.query(EventQuery(limit=2)).next_cursor
    assert cursor is not None
    flipped = [
        cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1 :] for i in (0, 20, -1)
    ]
    bad = [
        *flipped,
        cursor[:-1],
        cursor + "A",
        cursor[:-4],
        "garbage",
        "x" * len(cursor),
        "%%%%" + cursor[4:],
        cursor.upper(),
        " ",
        "",
    ]
    for token in bad:
        with pytest.raises(InvalidQuery, match=r"^cursor: "):
            events.query(EventQuery(limit=2, cursor=token))
    assert len(events.query(EventQuery(limit=2, cursor=cursor)).events) == 2


# -- validation ---------------------------------------------------------------------------

NAIVE = datetime(2025, 3, 7, 14, 30)

INVALID: list[tuple[str, dict[str, Any]]] = [
    ("limit", {"limit": 0}),
    ("limit", {"limit": 1001}),
    ("limit", {"limit": -5}),
    ("limit", {"limit": True}),
    ("limit", {"limit": "10"}),
    ("since", {"since": NAIVE}),
    ("since", {"since": "yesterday"}),
    ("until", {"until": NAIVE}),
    ("since", {"since": T0, "until": T0}),
    ("since", {"since": T0 + timedelta(seconds=1), "until": T0}),
    ("types", {"types": ("",)}),
    ("types", {"types": ("TRADE", "")}),
    ("types", {"types": "TRADE"}),
    ("types", {"types": ("trade",)}),
    ("types", {"types": (None,)}),
    ("types", {"types": tuple(f"T{i}" for i in range(33))}),
    ("min_severity", {"min_severity": "LOUD"}),
    ("min_severity", {"min_severity": 25}),
    ("min_severity", {"min_severity": ""}),
    ("strategy_id", {"strategy_id": ""}),
    ("strategy_id", {"strategy_id": "   "}),
    ("strategy_id", {"strategy_id": "x" * 129}),
    ("trade_id", {"trade_id": ""}),
    ("trade_id", {"trade_id": 42}),
    ("cursor", {"cursor": ""}),
    ("cursor", {"cursor": "not-a-cursor"}),
]


@pytest.mark.parametrize(("name", "arguments"), INVALID, ids=[str(a) for _, a in INVALID])
def test_invalid_parameters_are_named(name: str, arguments: dict[str, Any]) -> None:
    """Every invalid query parameter raises InvalidQuery whose message starts with its name."""
    with pytest.raises(InvalidQuery) as caught:
        EventQuery(**arguments)
    assert str(caught.value).startswith(f"{name}: ")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, StorageError)


def test_limit_message_names_the_range() -> None:
    """The limit error says the allowed range and the value given."""
    with pytest.raises(InvalidQuery, match=r"^limit: expected 1\.\.1000, got 0$"):
        EventQuery(limit=0)


def test_valid_parameters_are_normalised() -> None:
    """Aware datetimes become UTC, severities may be names, a list of types becomes a tuple."""
    query = EventQuery(
        types=["TRADE", "ORDER", "TRADE"],  # type: ignore[arg-type]
        min_severity="warning",  # type: ignore[arg-type]
        since=datetime(2025, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
        limit=1000,
    )
    assert query.types == ("TRADE", "ORDER")
    assert query.min_severity is Severity.WARNING
    assert query.since == datetime(2025, 1, 1, 14, 30, tzinfo=UTC)
    assert query.since is not None
    assert query.since.tzinfo is UTC


# -- summary ------------------------------------------------------------------------------


def test_summary_counts_by_type_and_severity(events: EventRepository, stored: list[Event]) -> None:
    """summary counts the events of [since, until) by type and by severity name."""
    since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    inside = [e for e in stored if since <= e.timestamp < until]
    summary = events.summary(since, until)
    assert summary.total == len(inside)
    assert summary.by_type == {
        t: n for t in sorted(TYPES) if (n := sum(e.type == t for e in inside))
    }
    assert summary.by_severity == {s.name: sum(e.severity == s for e in inside) for s in Severity}
    everything = events.summary()
    assert everything.total == len(stored) == events.count()
    assert sum(everything.by_severity.values()) == len(stored)
    assert events.summary(since=T0 + timedelta(days=30)) == EventSummary(
        total=0, by_type={}, by_severity={s.name: 0 for s in Severity}
    )


def test_summary_validates_its_range(events: EventRepository) -> None:
    """summary refuses naive datetimes and an empty or inverted range, naming the parameter."""
    with pytest.raises(InvalidQuery, match=r"^since: "):
        events.summary(NAIVE)
    with pytest.raises(InvalidQuery, match=r"^until: "):
        events.summary(until=NAIVE)
    with pytest.raises(InvalidQuery, match=r"^since: "):
        events.summary(T0, T0)


# -- retention ----------------------------------------------------------------------------


@pytest.fixture
def aged(events: EventRepository) -> dict[str, list[Event]]:
    """Old (T0 - 40 days) and recent events of every type and severity, three of each."""
    old = [
        event(-40 * 86_400 + n, type=t, severity=s)
        for t in TYPES
        for s in Severity
        for n in range(3)
    ]
    recent = [event(n, type=t, severity=s) for t in TYPES for s in Severity for n in range(3)]
    events.insert_many(old + recent)
    return {"old": old, "recent": recent}


def remaining_ids(events: EventRepository) -> set[uuid.UUID]:
    """The ids of every stored event."""
    return {e.id for e in walk(events, EventQuery(limit=1000))}


def test_retention_deletes_only_old_debug_and_info(
    events: EventRepository, aged: dict[str, list[Event]]
) -> None:
    """By default only old DEBUG/INFO events that are neither TRADE nor ORDER are deleted."""
    cutoff = T0 - timedelta(days=30)
    doomed = {
        e.id
        for e in aged["old"]
        if e.severity <= Severity.INFO and e.type not in ("TRADE", "ORDER")
    }
    assert len(doomed) == 4 * 2 * 3
    assert events.delete_older_than(cutoff, batch_size=5) == len(doomed)
    assert remaining_ids(events) == {e.id for e in aged["old"] + aged["recent"]} - doomed
    assert events.delete_older_than(cutoff) == 0


def test_retention_never_deletes_trade_or_order(
    events: EventRepository, aged: dict[str, list[Event]]
) -> None:
    """Even asked for every severity with no kept types, TRADE and ORDER events stay."""
    deleted = events.delete_older_than(
        T0 - timedelta(days=30), max_severity=Severity.CRITICAL, keep_types=(), batch_size=7
    )
    kept_old = {e.id for e in aged["old"] if e.type in ("TRADE", "ORDER")}
    assert deleted == len(aged["old"]) - len(kept_old)
    assert remaining_ids(events) == kept_old | {e.id for e in aged["recent"]}


def test_retention_keeps_the_requested_types(
    events: EventRepository, aged: dict[str, list[Event]]
) -> None:
    """Types in keep_types are kept in addition to TRADE and ORDER."""
    events.delete_older_than(
        T0 - timedelta(days=30), max_severity=Severity.WARNING, keep_types={"RISK"}
    )
    left_old = {e.type for e in walk(events, EventQuery(until=T0 - timedelta(days=30)))}
    assert left_old == {"TRADE", "ORDER", "RISK", "SIGNAL", "SYSTEM", "MY_SIGNAL"}
    old_non_kept = events.query(
        EventQuery(types=("SIGNAL", "SYSTEM", "MY_SIGNAL"), until=T0 - timedelta(days=30))
    )
    assert {e.severity for e in old_non_kept.events} == {Severity.ERROR, Severity.CRITICAL}


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("before", {"before": NAIVE}),
        ("max_severity", {"before": T0, "max_severity": "LOUD"}),
        ("keep_types", {"before": T0, "keep_types": "RISK"}),
        ("keep_types", {"before": T0, "keep_types": ("risk",)}),
        ("batch_size", {"before": T0, "batch_size": 0}),
    ],
)
def test_retention_validates_its_parameters(
    events: EventRepository, name: str, arguments: dict[str, Any]
) -> None:
    """Invalid retention parameters raise InvalidQuery naming them and delete nothing."""
    events.insert_many([event(-86_400 * 100, severity=Severity.DEBUG)])
    with pytest.raises(InvalidQuery, match=rf"^{name}: "):
        events.delete_older_than(**arguments)
    assert events.count() == 1


# -- failures -----------------------------------------------------------------------------


@pytest.fixture
def unreachable() -> Iterator[Database]:
    """A PostgreSQL database on a loopback port nobody listens on."""
    db = Database.open(f"postgresql+psycopg2://trader:pw@127.0.0.1:{free_port()}/x")
    yield db
    db.dispose()


def test_unreachable_postgres_raises_storage_unavailable(unreachable: Database) -> None:
    """Every events operation against an unreachable server raises StorageUnavailable."""
    with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1"):
        unreachable.events.insert_many([event()])
    with pytest.raises(StorageUnavailable):
        unreachable.events.query(EventQuery())
    with pytest.raises(StorageUnavailable):
        unreachable.events.get(uuid.uuid4())
    with pytest.raises(StorageUnavailable):
        unreachable.events.summary()
    with pytest.raises(StorageUnavailable):
        unreachable.events.delete_older_than(T0)


def test_events_before_the_upgrade_raise_schema_out_of_date(database_url: str) -> None:
    """Using the events table before `trading-bot db upgrade` says to run it."""
    db = Database.open(database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="trading-bot db upgrade"):
            db.events.insert_many([event()])
        with pytest.raises(SchemaOutOfDate, match="trading-bot db upgrade"):
            db.events.query(EventQuery())
    finally:
        db.dispose()
