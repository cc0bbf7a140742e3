"""The reports API: ``GET /api/reports/daily?date=`` and ``/api/reports/pnl?from=&to=&by=``.

The same JSON as ``trading-bot report ... --json``. Parameters are validated first (a
bad one answers 400 problem+json naming it); the report is computed on a worker thread.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web

from tradingbot.reports import BY_CHOICES
from tradingbot.reports.daily import MIN_DATE, daily_report, max_date
from tradingbot.reports.pnl import MAX_SPAN_DAYS, pnl_report
from tradingbot.scheduler import EXCHANGE_TZ, nyse
from tradingbot.storage import StorageUnavailable
from tradingbot.web.params import InvalidParams, QueryReader
from tradingbot.web.problems import problem
from tradingbot.web.services import ACCOUNT, DATABASE

log = structlog.get_logger(__name__)

DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _read_date(reader: QueryReader, name: str) -> date | None:
    value = reader.one(name)
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:
        reader.fail(name, f"expected a date like 2026-03-10, got {value!r}")
        return None
    if not MIN_DATE <= day <= max_date():
        reader.fail(name, f"must be between {MIN_DATE.isoformat()} and {max_date().isoformat()}")
        return None
    return day


def _json(body: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def add_report_routes(app: web.Application) -> None:
    """Register the two report endpoints."""

    async def compute(request: web.Request, call: Any) -> web.Response:
        database = request.app[DATABASE]()
        if database is None:
            return problem(503, "database unavailable: the runtime is not running")
        try:
            body = await asyncio.to_thread(call, database, request.app[ACCOUNT])
        except StorageUnavailable as exc:
            log.warning("reports_api_database_unavailable", path=request.path, error=str(exc))
            return problem(503, "database unavailable: retry later")
        return _json(body)

    async def daily(request: web.Request) -> web.Response:
        """``GET /api/reports/daily``: the daily summary of ``date`` (default: today, ET)."""
        reader = QueryReader(request.query, ("date",))
        day = _read_date(reader, "date")
        try:
            reader.check()
        except InvalidParams as exc:
            return exc.response()
        day = day or datetime.now(UTC).astimezone(EXCHANGE_TZ).date()
        return await compute(
            request,
            lambda db, account: daily_report(db, day, nyse(), account=account),
        )

    async def pnl(request: web.Request) -> web.Response:
        """``GET /api/reports/pnl``: realized P&L from ``from`` to ``to``, ``by`` period."""
        reader = QueryReader(request.query, ("from", "to", "by"))
        first = _read_date(reader, "from")
        last = _read_date(reader, "to")
        by = reader.one("by") or "day"
        if by not in BY_CHOICES:
            reader.fail("by", f"expected one of {', '.join(BY_CHOICES)}, got {by!r}")
        for name, value in (("from", first), ("to", last)):
            if value is None and not reader.failed(name):
                reader.fail(name, "required: a date like 2026-03-10")
        if first is not None and last is not None:
            if last < first:
                reader.fail("to", f"is before from ({first.isoformat()})")
            elif (last - first).days > MAX_SPAN_DAYS:
                reader.fail("to", f"from..to spans more than {MAX_SPAN_DAYS} days")
        try:
            reader.check()
        except InvalidParams as exc:
            return exc.response()
        assert first is not None
        assert last is not None
        return await compute(request, lambda db, account: pnl_report(db, first, last, by))

    app.router.add_get("/api/reports/daily", daily)
    app.router.add_get("/api/reports/pnl", pnl)
