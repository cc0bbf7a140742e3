"""The reconciliations table on SQLite and PostgreSQL: results, the baseline, acceptance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradingbot.storage import Database, RecordNotFound

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
RUN = "11111111-1111-4111-8111-111111111111"


def record(database: Database, status: str, at: datetime, account: str = "", **extra: object):  # type: ignore[no-untyped-def]
    return database.reconciliations.record(
        run_id=RUN,
        account=account,
        trigger="start",
        started_at=at,
        as_of=at + timedelta(seconds=1),
        status=status,
        positions=extra.pop("positions", {"AAPL": (10.0, 150.25)}),  # type: ignore[arg-type]
        discrepancies=extra.pop("discrepancies", []),  # type: ignore[arg-type]
        duration_s=0.5,
        **extra,  # type: ignore[arg-type]
    )


def test_a_result_reads_back_as_stored(database: Database) -> None:
    """A stored reconciliation result reads back unchanged, timestamps timezone-aware."""
    stored = record(
        database,
        "discrepancies",
        T0,
        discrepancies=[{"kind": "external_position", "symbol": "NVDA", "blocking": True}],
        boundary_exec_ids={"e2", "e1"},
        accepted_orders={7},
    )
    [back] = database.reconciliations.latest("")
    assert back == stored
    assert back.positions == {"AAPL": (10.0, 150.25)}
    assert back.boundary_exec_ids == {"e1", "e2"}
    assert back.accepted_orders == {7}
    assert back.discrepancies[0]["symbol"] == "NVDA"
    assert back.as_of == T0 + timedelta(seconds=1)
    assert back.as_of.tzinfo is not None
    assert database.reconciliations.get(stored.id) == stored


def test_the_baseline_is_the_latest_clean_or_accepted_of_the_account(database: Database) -> None:
    """The baseline is the account's latest clean or accepted result; failed and open ones never
    become it."""
    assert database.reconciliations.baseline("") is None
    clean = record(database, "clean", T0)
    record(database, "failed", T0 + timedelta(minutes=1), positions={})
    open_ = record(database, "discrepancies", T0 + timedelta(minutes=2))
    record(database, "clean", T0 + timedelta(minutes=3), account="U2")
    baseline = database.reconciliations.baseline("")
    assert baseline is not None
    assert baseline.id == clean.id
    accepted = database.reconciliations.accept(open_.id, by="ops", orders=[3, 4])
    assert (accepted.status, accepted.accepted_by) == ("accepted", "ops")
    assert accepted.accepted_orders == {3, 4}
    baseline = database.reconciliations.baseline("")
    assert baseline is not None
    assert baseline.id == open_.id
    other = database.reconciliations.baseline("U2")
    assert other is not None
    assert other.account == "U2"


def test_only_open_discrepancies_can_be_accepted(database: Database) -> None:
    """Accepting a clean or unknown result is refused with a clear error."""
    clean = record(database, "clean", T0)
    with pytest.raises(ValueError, match="is clean, not open"):
        database.reconciliations.accept(clean.id, by="ops")
    with pytest.raises(RecordNotFound):
        database.reconciliations.accept("22222222-2222-4222-8222-222222222222", by="ops")


def test_bad_values_are_refused(database: Database) -> None:
    """A result with an unknown status or a naive timestamp is refused and nothing is stored."""
    with pytest.raises(ValueError, match="status must be one of"):
        record(database, "fine", T0)
    with pytest.raises(ValueError, match="started_at"):
        record(database, "clean", T0.replace(tzinfo=None))
    assert database.reconciliations.latest("") == []
