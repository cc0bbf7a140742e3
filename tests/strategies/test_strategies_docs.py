"""The first strategy of docs/strategies.md, run as written against the simulator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.bot_config import bot_config
from support.waiting import wait_until
from tradingbot.events import ORDER, SIGNAL, TRADE
from tradingbot.runtime import Runtime
from tradingbot.storage.event_query import EventQuery

DOC = Path(__file__).resolve().parents[2] / "docs" / "strategies.md"
MARKER = "<!-- tested: first_strategy.py -->"


def documented_module() -> str:
    """The Python block right after the marker in docs/strategies.md."""
    text = DOC.read_text()
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```\n", text, re.S)
    assert found is not None, f"no python block after {MARKER} in {DOC}"
    return found.group(1) + "\n"


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime running the documented strategy from a module on the import path."""
    (tmp_path / "first_strategy.py").write_text(documented_module())
    monkeypatch.syspath_prepend(str(tmp_path))
    runtime = Runtime(
        bot_config(tmp_path, STRATEGIES="first_strategy:Momentum", WATCHLIST="AAPL,MSFT")
    )
    runtime.start()
    yield runtime
    runtime.stop()


def test_the_documented_first_strategy_signals_and_trades(bot: Runtime) -> None:
    """The docs' example module loads, records a signal and gets its order filled."""
    assert bot.database is not None
    database = bot.database

    def stored(kind: str) -> list[object]:
        query = EventQuery(types=(kind,), strategy_id="momentum", limit=10)
        return list(database.events.query(query).events)

    wait_until(lambda: stored(TRADE), 60, "a fill of the documented strategy")
    assert stored(SIGNAL)
    assert stored(ORDER)
