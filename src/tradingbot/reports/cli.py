"""``trading-bot report daily|pnl``: the reports in the terminal (a table, or ``--json``)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from typing import Any, TextIO

from tradingbot import exitcodes
from tradingbot.config import Config
from tradingbot.reports import BY_CHOICES


def _date(text: str) -> date:
    from tradingbot.reports.daily import MIN_DATE, max_date

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-03-10, got {text!r}") from None
    if not MIN_DATE <= day <= max_date():
        raise argparse.ArgumentTypeError(
            f"{text}: must be between {MIN_DATE.isoformat()} and {max_date().isoformat()}"
        )
    return day


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``report`` sub-commands."""
    reports = parser.add_subparsers(dest="report", metavar="REPORT", required=True)
    daily = reports.add_parser("daily", help="the daily summary of a trading date")
    daily.add_argument("--date", type=_date, default=None, help="YYYY-MM-DD (default: today, ET)")
    daily.add_argument("--json", action="store_true", help="print JSON")
    pnl = reports.add_parser("pnl", help="realized P&L over a period")
    pnl.add_argument("--from", dest="first", type=_date, required=True, metavar="YYYY-MM-DD")
    pnl.add_argument("--to", dest="last", type=_date, required=True, metavar="YYYY-MM-DD")
    pnl.add_argument("--by", choices=BY_CHOICES, default="day")
    pnl.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace, config: Config, out: TextIO | None = None) -> int:
    from tradingbot.reports.daily import daily_report
    from tradingbot.reports.pnl import pnl_report
    from tradingbot.scheduler import EXCHANGE_TZ, nyse
    from tradingbot.storage import Database, StorageError

    try:
        with Database.open(config.database_url) as database:
            database.require_current_schema()
            if args.report == "daily":
                day = args.date or datetime.now(UTC).astimezone(EXCHANGE_TZ).date()
                data = daily_report(database, day, nyse(), account=config.ib_account or "")
                text = render_daily(data)
            else:
                data = pnl_report(database, args.first, args.last, args.by)
                text = render_pnl(data)
    except StorageError as exc:
        print(f"trading-bot: database error: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    except ValueError as exc:
        print(f"trading-bot: report: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    print(json.dumps(data, indent=2) if args.json else text, file=out or sys.stdout)
    return exitcodes.OK


def _money(value: Any, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _local(iso: str) -> str:
    """An ISO instant as New York wall-clock time (HH:MM:SS)."""
    from tradingbot.scheduler import EXCHANGE_TZ

    return datetime.fromisoformat(iso).astimezone(EXCHANGE_TZ).strftime("%H:%M:%S")


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def render_daily(d: dict[str, Any]) -> str:
    """The daily summary as a terminal table."""
    rt = d["round_trips"]
    lines = [
        f"Daily summary {d['date']}"
        + ("" if d["session"] else "  (not a trading session)")
        + ("  (early close)" if d["early_close"] else ""),
        "",
        f"Realized P&L    {_money(d['realized_pnl']):>14} {d['currency']}",
        f"Commissions     {_money(d['commissions'], False):>14} {d['currency']}",
        f"Unrealized P&L  {_money(d['unrealized_pnl']):>14} {d['currency']}",
        *_equity_lines(d),
        f"Round trips     {rt['closed']} closed, {rt['wins']} won, "
        f"win rate {_rate(rt['win_rate'])}",
        "",
        f"Trades ({len(d['trades'])}, New York time)",
    ]
    for t in d["trades"]:
        lines.append(
            f"  {_local(t['time'])}  {t['side']:<3} {t['quantity']:>8g} {t['symbol']:<8}"
            f" @ {t['price']:>10,.2f}  P&L {_money(t['realized_pnl']):>10}"
        )
    lines += ["", *_position_lines(d)]
    c = d["counts"]
    lines += [
        "",
        f"Signals {c['signals']}, orders {c['orders']}, rejections {c['rejections']}, "
        f"alerts {c['alerts']}",
    ]
    if d["incidents"]:
        lines += ["", f"Incidents ({len(d['incidents'])})"]
        lines += [
            f"  {_local(i['time'])}  {i['severity']:<8} {i['message']}" for i in d["incidents"]
        ]
    lines += ["", "Tomorrow's watchlist"]
    lines += [f"  {w['symbol']:<8} score {w['score']:g}" for w in d["watchlist"]] or ["  none"]
    return "\n".join(lines)


def _equity_lines(d: dict[str, Any]) -> list[str]:
    """Net liquidation, its change since the last recorded one, the broker's P&L."""
    equity = d.get("equity")
    recorded = d.get("broker", {}).get("recorded", False)
    lines = [
        f"Net liquidation {_money(equity, False):>14} {d['currency']}"
        if equity is not None
        else f"Net liquidation {'not recorded' if not recorded else '-':>14}"
    ]
    if d.get("equity_change") is not None:
        pct = d.get("equity_change_pct")
        lines.append(
            f"Equity change   {_money(d['equity_change']):>14} {d['currency']}"
            + ("" if pct is None else f" ({pct:+.2f}%)")
            + f" since {d['equity_previous']['date']}"
        )
    if (pnl := d.get("broker_pnl")) is not None:
        lines.append(
            f"Broker's P&L    {_money(pnl['daily']):>14} {d['currency']} today"
            f" (realized {_money(pnl['realized'])}, unrealized {_money(pnl['unrealized'])})"
        )
    return lines


def _position_lines(d: dict[str, Any]) -> list[str]:
    """The open positions, saying whose they are (the broker's recorded ones or ours)."""
    broker = d.get("broker", {})
    if d.get("positions_source") == "broker":
        source = f"at the broker, marks as of {_local(broker['as_of'])} New York time"
    else:
        source = "from our books"
    lines = [f"Open positions ({len(d['positions'])}, {source})"]
    if broker.get("note"):
        lines.append(f"  ({broker['note']})")
    for diff in d.get("position_differences", []):
        lines.append(
            f"  ! our books differ: {diff['symbol']} broker {diff['broker']:g},"
            f" books {diff['books']:g}"
        )
    for p in d["positions"]:
        price = p.get("market_price")
        lines.append(
            f"  {p['symbol']:<8} {p['quantity']:>8g} @ {p['avg_cost']:>10,.4f}"
            f"  market {'-' if price is None else f'{price:,.2f}':>10}"
            f"  unrealized {_money(p['unrealized_pnl'])}"
        )
    return lines


def render_pnl(d: dict[str, Any]) -> str:
    """The P&L report as a terminal table."""
    header = (
        f"{'period':<10} {'realized':>12} {'commissions':>12} {'fills':>6} {'trips':>6} {'win':>5}"
    )
    lines = [f"P&L {d['from']} .. {d['to']} by {d['by']}", "", header]
    for r in [*d["periods"], {"period": "total", **d["total"]}]:
        lines.append(
            f"{r['period']:<10} {_money(r['realized_pnl']):>12}"
            f" {_money(r['commissions'], False):>12} {r['fills']:>6}"
            f" {r['round_trips']:>6} {_rate(r['win_rate']):>5}"
        )
    return "\n".join(lines)
