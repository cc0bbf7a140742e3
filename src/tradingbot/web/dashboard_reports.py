"""The dashboard's P&L and jobs pages: their data, from the reports and the scheduler.

``/pnl`` shows realized P&L by day, week or month for a chosen range (the body of
``GET /api/reports/pnl``) as a table and a server-drawn SVG bar chart (no script, no
chart library: each bar is a ``<rect>``, its value in a ``<title>`` and in the table).
``/jobs`` lists the scheduler's jobs with their last and next runs (the data of the
shell's ``jobs``), refreshed live like the other pages.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from multidict import MultiDict

from tradingbot.reports import BY_CHOICES
from tradingbot.reports.pnl import MAX_SPAN_DAYS, pnl_report
from tradingbot.scheduler import EXCHANGE_TZ
from tradingbot.scheduler.status import SchedulerStatus
from tradingbot.storage import Database, StorageError, StorageUnavailable
from tradingbot.web.params import InvalidParams, QueryReader
from tradingbot.web.reports import _read_date

DEFAULT_DAYS: Final = 30
CHART_HEIGHT: Final = 120
BAR_WIDTH: Final = 10


def _filled(query: Any) -> MultiDict[str]:
    return MultiDict((k, v) for k, v in query.items() if v.strip())


def _chart(periods: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of realized P&L around a zero line, in SVG user units."""
    peak = max((abs(p["realized_pnl"]) for p in periods), default=0.0) or 1.0
    half = CHART_HEIGHT / 2
    bars = []
    for index, period in enumerate(periods):
        value = period["realized_pnl"]
        height = round(abs(value) / peak * (half - 2), 2)
        bars.append(
            {
                "x": index * BAR_WIDTH + 1,
                "y": round(half - height, 2) if value >= 0 else half,
                "height": max(height, 0.5),
                "width": BAR_WIDTH - 2,
                "sign": "gain" if value > 0 else "loss" if value < 0 else "flat",
                "label": f"{period['period']}: {value:+,.2f}",
            }
        )
    return {"bars": bars, "width": max(len(periods), 1) * BAR_WIDTH, "height": CHART_HEIGHT}


async def pnl_page(database: Database | None, query: Any) -> dict[str, Any]:
    """The P&L page's data: the range form, the report, or one message naming the problem."""
    today = datetime.now(UTC).astimezone(EXCHANGE_TZ).date()
    values = _filled(query)
    reader = QueryReader(values, ("from", "to", "by"))
    first = _read_date(reader, "from")
    last = _read_date(reader, "to")
    by = values.get("by", "day")
    if by not in BY_CHOICES:
        reader.fail("by", f"expected one of {', '.join(BY_CHOICES)}, got {by!r}")
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        reader.fail("to", f"is before from ({first.isoformat()})")
    elif (last - first).days > MAX_SPAN_DAYS:
        reader.fail("to", f"from..to spans more than {MAX_SPAN_DAYS} days")
    context: dict[str, Any] = {
        "title": "P&L",
        "form": {"from": first.isoformat(), "to": last.isoformat(), "by": by},
        "choices": BY_CHOICES,
        "report": None,
        "chart": None,
        "error": "",
    }
    try:
        reader.check()
    except InvalidParams as exc:
        context["error"] = str(exc)
        return context
    if database is None:
        context["error"] = "the bot is not running"
        return context
    try:
        report = await asyncio.to_thread(pnl_report, database, first, last, by)
    except StorageUnavailable:
        context["error"] = "database unavailable: retry later"
        return context
    except (StorageError, ValueError) as exc:
        context["error"] = f"cannot compute the report: {exc}"
        return context
    context["report"] = report
    context["chart"] = _chart(report["periods"])
    return context


def jobs_page(scheduler_status: SchedulerStatus) -> dict[str, Any]:
    """The jobs page's data: each job's schedule, last run and next run."""
    return {
        "title": "Jobs",
        "jobs": [state.to_dict() for state in scheduler_status.snapshot()],
    }
