"""Notifications: mails rendered and delivered per second, and template render time.

Two measurements against a local aiosmtpd server on loopback (a counting handler that
accepts every message), with anchor and subject rounds interleaved because these
machines are shared and noisy:

1. mails per second through the product path — ``Notifier.enqueue`` (outbox row
   committed) then ``Notifier.deliver_due`` passes until the outbox is empty (claim,
   render, freeze the MIME in the row, one SMTP connection per pass, mark each row sent
   in its own transaction) — vs the anchor: a bare ``smtplib.SMTP.sendmail`` of one
   prebuilt message, the same number of times over one connection to the same server.
   Ratio = median over rounds of subject mails/s ÷ anchor mails/s (< 1 is slower).
2. render time of each template kind (``Renderer.render`` + ``build_message`` +
   ``to_wire``: the three Jinja2 templates, the multipart/alternative MIME, quoted-
   printable), p50/p99 over single calls, in microseconds.

Run: ``.venv/bin/python benchmarks/bench_notify.py [--quick] [--json PATH]
[--mails N] [--rounds N] [--postgres-url URL]``. Without ``--postgres-url`` the outbox is
a SQLite file in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchlib import machine, percentile
from tradingbot.notify import Notifier, NotifySettings, Renderer, SmtpSettings, build_message
from tradingbot.notify.render import to_wire
from tradingbot.storage import Database, create_engine_for

TRADE = {
    "symbol": "AAPL",
    "side": "BUY",
    "quantity": 10.0,
    "price": 189.2,
    "commission": 1.0,
    "currency": "USD",
    "realized_pnl": 0.0,
    "order_ref": "TB-42",
    "order_id": 7,
    "exec_id": "0001f4e8.65.01.01",
    "timestamp": "2025-01-06T14:30:00+00:00",
}
CONTEXTS: dict[str, dict[str, Any]] = {
    "trade_execution": TRADE,
    "alert": {
        "category": "SYSTEM",
        "severity": "ERROR",
        "message": "actor_crashed broker: CrashDrill: failure drill requested by the operator",
        "source": "broker",
        "timestamp": "2025-01-06T14:30:00+00:00",
        "details": {"event": "actor_crashed", "restarts": 1},
    },
    "daily_summary": {
        "date": "2025-01-06",
        "account": "DU123456",
        "currency": "USD",
        "realized_pnl": 1234.5,
        "unrealized_pnl": -210.25,
        "equity": 101_024.25,
        "trades": [
            {
                "time": "2025-01-06T14:31:05+00:00",
                "side": "BUY" if n % 2 else "SELL",
                "quantity": 10,
                "symbol": "AAPL",
                "price": 189.2 + n,
                "realized_pnl": n * 1.5,
            }
            for n in range(20)
        ],
        "positions": [
            {
                "symbol": f"SYM{n}",
                "quantity": 5,
                "avg_cost": 100.0,
                "market_price": 101.0,
                "unrealized_pnl": 5.0,
            }
            for n in range(10)
        ],
        "events": {"TRADE": 20, "RISK": 1},
    },
    "recovery_report": {
        "reason": "a crash",
        "detected_at": "2025-01-06T15:02:00+00:00",
        "downtime_s": 3725,
        "previous_run": {"pid": 4242, "host": "bot-1", "version": "0.1.0"},
        "discrepancies": [
            {"kind": "position_quantity", "symbol": "AAPL", "ours": 10, "broker": 0}
            for _ in range(5)
        ],
    },
}


class Counting:
    """aiosmtpd handler: accepts everything and counts."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_postgres(url: str) -> tuple[str, str]:
    name = f"tb_bench_notify_{uuid.uuid4().hex[:8]}"
    engine = create_engine_for(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return str(make_url(url).set(database=name).render_as_string(hide_password=False)), name


def drop_postgres(url: str, name: str) -> None:
    engine = create_engine_for(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def product_round(notifier: Notifier, mails: int) -> float:
    """Enqueue ``mails`` trade mails and deliver them all; mails per second."""
    started = time.perf_counter()
    for n in range(mails):
        notifier.enqueue("trade_execution", {**TRADE, "order_id": n})
    sent = 0
    while sent < mails:
        report = notifier.deliver_due()
        if report.claimed == 0:
            raise RuntimeError(f"outbox drained with {sent} of {mails} sent")
        sent += report.sent
    return mails / (time.perf_counter() - started)


def anchor_round(port: int, message: bytes, mails: int) -> float:
    """Send one prebuilt message ``mails`` times over one bare smtplib connection."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        for _ in range(mails):
            smtp.sendmail("bot@example.com", ["ops@example.com"], message)
    return mails / (time.perf_counter() - started)


def render_times(kind: str, calls: int) -> list[float]:
    renderer = Renderer()
    context = {**CONTEXTS[kind], "count": 1, "message_id": "<x@example.com>"}
    renderer.render(kind, context)  # template compilation is a one-off cost
    times: list[float] = []
    when = datetime.now(UTC)
    for _ in range(calls):
        started = time.perf_counter()
        rendered = renderer.render(kind, context)
        to_wire(
            build_message(
                rendered,
                sender="Trading Bot <bot@example.com>",
                recipients=("ops@example.com",),
                message_id="<x@example.com>",
                date=when,
                kind=kind,
                severity="INFO",
            )
        )
        times.append((time.perf_counter() - started) * 1e6)
    return sorted(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--mails", type=int, default=300, help="mails per round")
    parser.add_argument("--rounds", type=int, default=8, help="anchor/subject round pairs")
    parser.add_argument("--postgres-url", help="outbox on PostgreSQL (a fresh database)")
    args = parser.parse_args(argv)
    mails = 50 if args.quick else args.mails
    rounds = 2 if args.quick else args.rounds
    render_calls = 200 if args.quick else 3000
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    handler = Counting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    pg_name = None
    if args.postgres_url:
        url, pg_name = fresh_postgres(args.postgres_url)
        backend = "postgresql"
    else:
        url, backend = f"sqlite:///{tmp / 'bench.db'}", "sqlite"
    database = Database.open(url)
    database.upgrade()
    results: dict[str, Any] = {
        "machine": machine("Jinja2", "aiosmtpd", "SQLAlchemy", backend=backend),
        "mails_per_round": mails,
        "rounds": rounds,
    }
    try:
        settings = NotifySettings(
            smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout_s=10.0),
            outbox_dir=tmp / "outbox",
            sender="Trading Bot <bot@example.com>",
            recipients=("ops@example.com",),
            rate_limit_per_hour=10_000_000,
            storm_window_s=0.0,
            batch_size=100,
        )
        notifier = Notifier(database, settings)
        prebuilt = Renderer().render("trade_execution", {**TRADE, "count": 1})
        message = to_wire(
            build_message(
                prebuilt,
                sender="bot@example.com",
                recipients=("ops@example.com",),
                message_id="<anchor@example.com>",
                date=datetime.now(UTC),
                kind="trade_execution",
                severity="INFO",
            )
        ).encode("ascii")
        product_round(notifier, 10)  # warm-up: connections, template cache
        anchor_round(port, message, 10)
        subject_rates, anchor_rates, ratios = [], [], []
        for index in range(rounds):
            if index % 2:
                a = anchor_round(port, message, mails)
                s = product_round(notifier, mails)
            else:
                s = product_round(notifier, mails)
                a = anchor_round(port, message, mails)
            subject_rates.append(s)
            anchor_rates.append(a)
            ratios.append(s / a)
        throughput = {
            "product_mails_per_s": round(statistics.median(subject_rates), 1),
            "anchor_mails_per_s": round(statistics.median(anchor_rates), 1),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3),
        }
        results["throughput"] = throughput
        print(f"Mails rendered and delivered per second ({backend} outbox, {mails} per round,")
        print(f"{rounds} interleaved rounds; ratio = product / bare smtplib, < 1 is slower)")
        print(
            f"  product {throughput['product_mails_per_s']:>8.1f}/s   "
            f"anchor {throughput['anchor_mails_per_s']:>8.1f}/s   "
            f"ratio {throughput['ratio_median']:.3f} "
            f"(min {throughput['ratio_min']:.3f}, max {throughput['ratio_max']:.3f})"
        )
        print()
        print("Render time per mail (templates + MIME; microseconds)")
        print(f"  {'kind':<16} {'p50':>8} {'p99':>8}")
        render: dict[str, dict[str, float]] = {}
        for kind in CONTEXTS:
            times = render_times(kind, render_calls)
            render[kind] = {
                "p50_us": round(percentile(times, 0.5), 1),
                "p99_us": round(percentile(times, 0.99), 1),
            }
            print(f"  {kind:<16} {render[kind]['p50_us']:>8.1f} {render[kind]['p99_us']:>8.1f}")
        results["render"] = render
        results["accepted_at_server"] = handler.count
    finally:
        database.dispose()
        controller.stop()
        if pg_name is not None and args.postgres_url:
            drop_postgres(args.postgres_url, pg_name)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
