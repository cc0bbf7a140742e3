"""History, real-time bars and P&L through the real ib_async client, consistent with the
streamed prices; and the exchange-calendar session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ib_async import IB, LimitOrder, MarketOrder, Stock
from simharness import IbErrorGuard, connected, run, running_simulator, wait_for

from tradingbot.gateway import Brokerage, PriceModel
from tradingbot.gateway.calendar import calendar


async def _aapl(ib: IB) -> Stock:
    [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert contract is not None
    return contract  # type: ignore[no-any-return]


def test_a_year_of_daily_bars_ends_at_the_current_price_and_is_deterministic() -> None:
    """1 Y of daily TRADES bars: one per session, the same for the same seed, the last
    close is the price being streamed, and each day's range holds its minute bars."""

    async def scenario() -> None:
        closes = []
        for _ in range(2):
            async with running_simulator(seed=4) as sim, connected(sim) as ib:
                aapl = await _aapl(ib)
                daily = await ib.reqHistoricalDataAsync(aapl, "", "1 Y", "1 day", "TRADES", True)
                assert len(daily) >= 365
                assert daily[-1].close == sim.brokerage.prices.price("AAPL")
                minutes = await ib.reqHistoricalDataAsync(
                    aapl, "", "1 D", "1 min", "MIDPOINT", True
                )
                today = [b for b in minutes if b.date.date() == minutes[-1].date.date()]
                assert max(b.high for b in today) <= daily[-1].high
                assert min(b.low for b in today) >= daily[-1].low
                assert minutes[-1].close == daily[-1].close
                closes.append([b.close for b in daily[:-2]])
        assert closes[0] == closes[1]

    run(scenario(), timeout_s=60)


def test_keep_up_to_date_streams_the_last_bar_and_head_timestamp() -> None:
    """keepUpToDate bars update with the live price; reqHeadTimeStamp names the start of
    the history (about two years back)."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            aapl = await _aapl(ib)
            bars = await ib.reqHistoricalDataAsync(
                aapl, "", "3600 S", "5 mins", "TRADES", False, keepUpToDate=True
            )
            updates: list[float] = []
            bars.updateEvent += lambda bars, new: updates.append(bars[-1].close)
            await wait_for(lambda: len(updates) >= 3)
            assert bars[-1].close == sim.brokerage.prices.price("AAPL")
            ib.cancelHistoricalData(bars)
            head = await ib.reqHeadTimeStampAsync(aapl, "TRADES", True, 2)
            assert head < datetime.now(UTC) - timedelta(days=700)

    run(scenario())


def test_real_time_bars_follow_the_streamed_prices() -> None:
    """reqRealTimeBars delivers bars whose range holds the prices streamed meanwhile."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            sim.realtime_bar_s = 0.2
            aapl = await _aapl(ib)
            bars = ib.reqRealTimeBars(aapl, 5, "TRADES", False)
            await wait_for(lambda: len(bars) >= 2)
            assert all(b.low <= b.close <= b.high for b in bars)
            ib.cancelRealTimeBars(bars)

    run(scenario())


def test_pnl_and_pnl_single_follow_fills_and_prices() -> None:
    """reqPnL and reqPnLSingle stream unrealized P&L that matches position and price."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            aapl = await _aapl(ib)
            account = ib.managedAccounts()[0]
            trade = ib.placeOrder(aapl, MarketOrder("BUY", 100))
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            pnl = ib.reqPnL(account)
            single = ib.reqPnLSingle(account, "", aapl.conId)
            sim.brokerage.prices.set_price("AAPL", trade.orderStatus.avgFillPrice + 1.0)
            await wait_for(lambda: single.position == 100 and single.unrealizedPnL > 50)
            pos = sim.brokerage.account_positions()[0]
            price = sim.brokerage.prices.price("AAPL")
            await wait_for(lambda: abs(pnl.unrealizedPnL - 100 * (price - pos.avg_cost)) < 2)
            assert abs(single.dailyPnL - (100 * (price - trade.orderStatus.avgFillPrice) - 1)) < 2
            values = {v.tag: v.value for v in ib.accountValues() if v.currency in ("USD", "")}
            for tag in (
                "EquityWithLoanValue",
                "InitMarginReq",
                "MaintMarginReq",
                "ExcessLiquidity",
                "Cushion",
                "DayTradesRemaining",
                "UnrealizedPnL",
            ):
                assert tag in values
            assert float(values["InitMarginReq"]) > 0  # the position needs margin
            ib.cancelPnL(account)
            ib.cancelPnLSingle(account, "", aapl.conId)

    run(scenario())


def test_exchange_calendar_holds_market_orders_until_the_open() -> None:
    """With the XNYS calendar a market order placed on a Saturday rests until Monday's
    open; contract details show the weekend closed, the extended trading hours and the
    regular liquid hours; daily bars skip Thanksgiving."""
    now = [datetime(2026, 11, 28, 15, 0, tzinfo=UTC)]  # Saturday
    brokerage = Brokerage(prices=PriceModel(2), clock=lambda: now[0], calendar=calendar("XNYS"))

    async def scenario() -> None:
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            aapl = await _aapl(ib)
            [details] = await ib.reqContractDetailsAsync(aapl)
            assert "20261128:CLOSED" in details.tradingHours
            assert "20261130:0400-20261130:2000" in details.tradingHours
            assert "20261130:0930-20261130:1600" in details.liquidHours
            daily = await ib.reqHistoricalDataAsync(aapl, "", "1 M", "1 day", "TRADES", True)
            days = [b.date for b in daily]
            assert datetime(2026, 11, 26).date() not in days  # Thanksgiving
            assert datetime(2026, 11, 27).date() in days  # early close
            trade = ib.placeOrder(aapl, MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            sim.tick()
            assert not trade.fills
            now[0] = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 New York
            await wait_for(lambda: trade.orderStatus.status == "Filled")

    run(scenario())


def test_day_order_expires_at_the_close_and_gtc_stays(ib_errors: IbErrorGuard) -> None:
    """With the XNYS calendar a resting DAY order is cancelled at the session close while
    a GTC order keeps working into the next session."""
    ib_errors.allow(r"Error 202, reqId \d+: Order Canceled")
    now = [datetime(2026, 11, 30, 20, 0, tzinfo=UTC)]  # Monday 15:00 New York
    brokerage = Brokerage(prices=PriceModel(2), clock=lambda: now[0], calendar=calendar("XNYS"))

    async def scenario() -> None:
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            aapl = await _aapl(ib)
            day = ib.placeOrder(aapl, LimitOrder("BUY", 1, 1.0, tif="DAY"))
            gtc = ib.placeOrder(aapl, LimitOrder("BUY", 1, 1.0, tif="GTC"))
            await wait_for(lambda: gtc.orderStatus.status == "Submitted")
            now[0] = datetime(2026, 11, 30, 21, 0, 1, tzinfo=UTC)  # 16:00:01, closed
            await wait_for(lambda: day.orderStatus.status == "Cancelled")
            assert gtc.orderStatus.status == "Submitted"

    run(scenario())


def test_daily_pnl_resets_at_the_session_boundary() -> None:
    """Daily P&L counts the day's move; at the next session it starts again from zero."""
    now = [datetime(2026, 11, 30, 15, 0, tzinfo=UTC)]
    broker = Brokerage(prices=PriceModel(1), clock=lambda: now[0], calendar=calendar("XNYS"))
    broker.prices.set_price("IBM", 100.0)
    broker.seed_position(broker.account_ids[0], "IBM", 10, 90.0)
    [pos] = broker.account_positions()
    assert broker.position_pnl(pos)[:2] == (0.0, 100.0)  # daily 0, unrealized 10 x 10
    broker.prices.set_price("IBM", 101.0)
    assert broker.position_pnl(pos)[0] == 10.0
    now[0] = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # the next session
    assert broker.position_pnl(pos)[0] == 0.0
    broker.prices.set_price("IBM", 99.0)
    assert broker.pnl(broker.account_ids[0])[0] == -20.0


def test_use_rth_0_serves_pre_market_and_after_hours_bars() -> None:
    """With the XNYS calendar, useRTH=0 adds the extended hours: hourly bars from 04:00
    to 20:00 New York instead of 09:30 to 16:00, daily bars whose range and volume include
    them and whose close is the regular close; the head timestamp is at 04:00."""
    now = [datetime(2026, 12, 2, 22, 0, tzinfo=UTC)]  # Wednesday 17:00 New York
    brokerage = Brokerage(prices=PriceModel(5), clock=lambda: now[0], calendar=calendar("XNYS"))

    async def scenario() -> None:
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            aapl = await _aapl(ib)
            end = "20261201 20:00:00 America/New_York"  # Tuesday 1 December, whole
            rth = await ib.reqHistoricalDataAsync(aapl, end, "1 D", "1 hour", "TRADES", True)
            ext = await ib.reqHistoricalDataAsync(aapl, end, "1 D", "1 hour", "TRADES", False)
            assert [b.date.strftime("%H:%M") for b in rth] == [
                "09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"
            ]  # fmt: skip
            assert [b.date.hour for b in ext] == list(range(4, 20))
            assert [b.date.minute for b in ext] == [0] * 16
            regular = {b.date.hour: b for b in rth}
            assert ext[10].close == regular[14].close  # 14:00 bars agree
            days_rth = await ib.reqHistoricalDataAsync(aapl, end, "5 D", "1 day", "TRADES", True)
            days_ext = await ib.reqHistoricalDataAsync(aapl, end, "5 D", "1 day", "TRADES", False)
            assert [b.date for b in days_rth] == [b.date for b in days_ext]
            for r, e in zip(days_rth, days_ext, strict=True):
                assert e.high >= r.high
                assert e.low <= r.low
                assert e.volume > r.volume
                assert (e.open, e.close) == (r.open, r.close)
            assert days_ext[-1].high == max(b.high for b in ext)
            assert days_ext[-1].volume == sum(b.volume for b in ext)
            head = await ib.reqHeadTimeStampAsync(aapl, "TRADES", False, 1)
            assert (head.hour, head.minute) == (4, 0)

    run(scenario())


def test_use_rth_makes_no_difference_with_the_always_open_calendar() -> None:
    """The default always-open calendar has no extended hours: useRTH=0 and useRTH=1
    give the same bars."""

    async def scenario() -> None:
        async with running_simulator(seed=6) as sim, connected(sim) as ib:
            aapl = await _aapl(ib)
            rth = await ib.reqHistoricalDataAsync(aapl, "", "1 M", "1 day", "TRADES", True)
            ext = await ib.reqHistoricalDataAsync(aapl, "", "1 M", "1 day", "TRADES", False)
            assert [(b.date, b.close, b.volume) for b in rth[:-1]] == [
                (b.date, b.close, b.volume) for b in ext[:-1]
            ]

    run(scenario())


def test_history_is_the_same_however_deep_and_in_whatever_order_it_is_asked() -> None:
    """A year of daily bars asked first and two years asked later give the same bars as
    two years asked at once (same seed and anchor), and the minutes of a synthetic day
    add up to its daily bar, with and without the extended hours."""
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    end = now + timedelta(minutes=1)

    def brokerage() -> Brokerage:
        return Brokerage(prices=PriceModel(3), clock=lambda: now, calendar=calendar("XNYS"))

    for rth in (True, False):
        stepwise, at_once = brokerage().history, brokerage().history
        year = stepwise.bars("IBM", end - timedelta(days=365), end, 1440, rth)
        two = stepwise.bars("IBM", end - timedelta(days=700), end, 1440, rth)
        fresh = at_once.bars("IBM", end - timedelta(days=700), end, 1440, rth)
        assert two.close.tolist() == fresh.close.tolist()
        assert two.high.tolist() == fresh.high.tolist()
        assert year.volume.tolist() == fresh.volume[-len(year) :].tolist()
        old = two.bar(-400)
        [session] = stepwise.calendar.sessions(old.start.date(), old.start.date())
        first, last = session.bounds(rth)
        minutes = stepwise.bars("IBM", first, last, 1, rth)
        assert minutes.open[0] == old.open
        assert minutes.close[-1] == old.close
        assert (minutes.high.max(), minutes.low.min()) == (old.high, old.low)
        assert minutes.volume.sum() == old.volume
