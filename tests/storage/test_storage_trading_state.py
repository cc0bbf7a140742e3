"""The kill switch's table: one row per account, written only over the version read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradingbot.storage import Database, StaleTradingState

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def test_an_account_never_switched_has_no_state(database: Database) -> None:
    """Before the first pause there is nothing stored: the bot is running."""
    assert database.trading_state.get("DU1") is None


def test_a_change_is_stored_and_read_back_per_account(database: Database) -> None:
    """A pause is stored with who, why and when, and belongs to its account alone."""
    stored = database.trading_state.change(
        "DU1",
        mode="paused",
        reason="news",
        changed_by="shell uid 0",
        since=NOW,
        expected_version=0,
    )
    assert stored.version == 1
    read = database.trading_state.get("DU1")
    assert read == stored
    assert read is not None
    assert read.since == NOW
    assert database.trading_state.get("DU2") is None


def test_a_change_over_a_stale_version_is_refused(database: Database) -> None:
    """Two writers that read the same version: the second one's change is refused, unseen
    overwrites are impossible."""
    database.trading_state.change(
        "DU1", mode="paused", reason="a", changed_by="x", since=NOW, expected_version=0
    )
    with pytest.raises(StaleTradingState):
        database.trading_state.change(
            "DU1", mode="running", reason="b", changed_by="y", since=NOW, expected_version=0
        )
    database.trading_state.change(
        "DU1",
        mode="running",
        reason="b",
        changed_by="y",
        since=NOW + timedelta(seconds=1),
        expected_version=1,
    )
    with pytest.raises(StaleTradingState):
        database.trading_state.change(
            "DU1", mode="paused", reason="c", changed_by="z", since=NOW, expected_version=1
        )
    read = database.trading_state.get("DU1")
    assert read is not None
    assert (read.mode, read.version) == ("running", 2)


def test_an_unknown_mode_is_refused(database: Database) -> None:
    """Only running, paused and tripped exist."""
    with pytest.raises(ValueError, match="mode must be one of"):
        database.trading_state.change(
            "DU1", mode="halted", reason="", changed_by="x", since=NOW, expected_version=0
        )
