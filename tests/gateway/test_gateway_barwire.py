"""The historicalData encoding: array-encoded bars read back exactly as the client reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tradingbot.gateway import Brokerage, PriceModel
from tradingbot.gateway.barwire import bars_payload, daily_payload
from tradingbot.gateway.calendar import NEW_YORK, calendar
from tradingbot.gateway.history import Bars

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # the day after the DST change


def _history() -> Brokerage:
    return Brokerage(prices=PriceModel(9), clock=lambda: NOW, calendar=calendar("XNYS"))


@pytest.mark.parametrize("minutes", [1, 60, 1440])
@pytest.mark.parametrize("format_date", [1, 2])
@pytest.mark.parametrize("midpoint", [False, True])
def test_encoded_bars_carry_the_exact_values_and_dates(
    minutes: int, format_date: int, midpoint: bool
) -> None:
    """Every bar's fields parse back to its exact prices, volume and date (New York time
    across the DST change, epoch seconds with formatDate=2, yyyymmdd for daily bars),
    whether many bars go through the arrays or a few through text."""
    broker = _history()
    end = NOW + timedelta(minutes=1)
    span = timedelta(days=5 if minutes < 1440 else 30)
    bars = broker.history.bars("IBM", end - span, end, minutes, False)
    assert len(bars) > 8
    columns = (bars.start, bars.open, bars.high, bars.low, bars.close, bars.volume)
    for part in (bars, Bars(*(c[:3] for c in columns))):
        fields = bars_payload(part, minutes, format_date, midpoint=midpoint).decode().split("\0")
        assert fields.pop() == ""  # each field ends with its NUL
        rows = [fields[i : i + 8] for i in range(0, len(fields), 8)]
        assert len(rows) == len(part)
        for i, row in enumerate(rows):
            start = datetime.fromtimestamp(int(part.start[i]), UTC)
            if minutes >= 1440:
                assert row[0] == start.strftime("%Y%m%d")
            elif format_date == 2:
                assert row[0] == str(int(part.start[i]))
            else:
                local = start.astimezone(NEW_YORK)
                assert row[0] == local.strftime("%Y%m%d %H:%M:%S US/Eastern")
            prices = [float(x) for x in row[1:5]]
            assert prices == [part.open[i], part.high[i], part.low[i], part.close[i]]
            wap = round((part.high[i] + part.low[i] + part.close[i]) / 3, 4)
            assert abs(float(row[6]) - wap) < 1e-9
            if midpoint:
                assert (row[5], row[7]) == ("-1", "-1")
            else:
                volume = int(part.volume[i])
                assert (int(row[5]), int(row[7])) == (volume, max(1, volume // 100))


def test_repeated_daily_answers_are_the_same_bytes() -> None:
    """A daily answer copied from the symbol's cached encoding is byte for byte what
    encoding the bars afresh gives, for shallow and deeper requests in any order."""
    broker = _history()
    end = NOW + timedelta(minutes=1)
    for days in (30, 365, 700, 365, 10):
        for rth in (True, False):
            bars = broker.history.bars("IBM", end - timedelta(days=days), end, 1440, rth)
            assert bars.final == len(bars) - 1  # all but the live session are final
            cached = daily_payload(broker.history, "IBM", bars, midpoint=False, rth=rth)
            assert cached == bars_payload(bars, 1440, 1, midpoint=False)
    assert np.all(np.diff(bars.start) > 0)
