"""Dashboard: server time to render its pages with many events stored, and page weight.

The product app and runtime serve on a real loopback port (aiohttp client, no token) over
a SQLite database holding ``--events`` events (default 1,000,000, loaded with
bench_events' generator). Each page is measured against an anchor in the same run: a bare
aiohttp handler on the same server returning a fixed HTML body of the overview's size;
anchor and page rounds are interleaved (these machines are shared and noisy). The
runtime starts with the notifier catching up on the loaded events (mails written as
files), which may overlap the first rounds: it loads the subject and the anchor alike.
Goal (issue #16): p99 < 50 ms for the overview and the events page. Then the first-load
transfer size of each page: the HTML plus every asset it references (stylesheet,
scripts), uncompressed; goal: under 300 KB for the dashboard pages (``/docs`` carries
Swagger UI and is reported apart).

Run: ``.venv/bin/python benchmarks/bench_dashboard.py [--quick] [--events N] [--json PATH]``.
Ratio = page p50 / anchor p50 (> 1 is slower). Two reference rows time ``GET /api/events``
with the same filters and page size, so the page's own cost (template) shows apart from
the database query both share.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench_events import LoopThread, load_events, runtime_config
from benchlib import fmt_met, machine, percentile, rotated
from tradingbot.runtime import Runtime
from tradingbot.web import create_app

GOAL_P99_MS = 50.0
GOAL_BYTES = 300 * 1024
ANCHOR = "anchor"
PAGES = {
    "overview": "/",
    "tree": "/tree",
    "events": "/events",
    "events filtered": "/events?type=TRADE&severity=WARNING",
    "events page 2": None,  # the "Older events" link of the first page
    "mail": "/mail",
    "strategies": "/strategies",  # one SIGNAL query per strategy (the example: one)
    # References: the JSON API's same queries (100 events a page), to tell the page's own
    # cost from the database's.
    "api events (ref)": "/api/events?limit=50",
    "api filtered (ref)": "/api/events?type=TRADE&severity=WARNING&limit=50",
    "api strategies (ref)": "/api/strategies",
}
ASSET = re.compile(r'(?:href|src)="(/(?:static|docs/assets)/[^"]+\.(?:css|js))"')


def summary(samples: list[float], anchor: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    base = sorted(anchor)
    p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
    return {
        "n": len(ordered),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "ratio_p50": round(p50 / percentile(base, 0.5), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 events, fewer rounds")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    stored = args.events or (100_000 if args.quick else 1_000_000)
    rounds, per_round, warmup = (5, 20, 10) if args.quick else (10, 40, 20)

    tmp = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    info = load_events("sqlite", url, stored)
    print(f"loaded {info.events:,} events in {info.seconds} s", file=sys.stderr)
    runtime = Runtime(runtime_config(tmp / "home", url))
    app = create_app(runtime)
    anchor_body: list[bytes] = [b""]

    async def bare(_request: web.Request) -> web.Response:
        return web.Response(body=anchor_body[0], content_type="text/html")

    app.router.add_get("/bench/bare", bare)
    runner = web.AppRunner(app, access_log=None)
    loop = LoopThread()

    async def start() -> tuple[str, aiohttp.ClientSession]:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}", aiohttp.ClientSession()

    base, session = loop.run(start())

    async def get(path: str) -> tuple[float, int, bytes]:
        t0 = time.perf_counter_ns()
        async with session.get(base + path) as response:
            body = await response.read()
        return (time.perf_counter_ns() - t0) / 1e6, response.status, body

    def fetch(path: str) -> bytes:
        _, status, body = loop.run(get(path))
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:200]!r}")
        return body

    try:
        deadline = time.monotonic() + 60
        while runtime.health.latest() is None:  # the overview shows the first health report
            if time.monotonic() > deadline:
                raise SystemExit("no health report within 60 s")
            time.sleep(0.05)
        overview = fetch("/")
        anchor_body[0] = overview
        first = fetch("/events").decode()
        older = re.search(r'href="(/events\?[^"]*cursor=[^"]+)"', first)
        if older is None:
            raise SystemExit("the events page has no 'Older events' link")
        paths = {name: path or older.group(1).replace("&amp;", "&") for name, path in PAGES.items()}
        if fetch(paths["events"]).count(b"<time ") != 50:
            raise SystemExit("the events page does not show a full page of 50 events")

        async def run(path: str, n: int, out: list[float]) -> None:
            for _ in range(n):
                elapsed, status, body = await get(path)
                if status != 200:
                    raise SystemExit(f"GET {path} answered {status}: {body[:200]!r}")
                out.append(elapsed)

        names = [ANCHOR, *paths]
        samples: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            loop.run(run("/bench/bare" if name == ANCHOR else paths[name], warmup, []))
        for r in range(rounds):
            gc.collect()
            for name in rotated(names, r):
                path = "/bench/bare" if name == ANCHOR else paths[name]
                loop.run(run(path, per_round, samples[name]))

        sizes: dict[str, dict[str, int]] = {}
        for name, path in (
            *((n, paths[n]) for n in ("overview", "events", "mail")),
            ("docs", "/docs"),
        ):
            html = fetch(path)
            assets = sorted(set(ASSET.findall(html.decode())))
            sizes[name] = {"html": len(html), **{a: len(fetch(a)) for a in assets}}
    finally:
        loop.run(session.close())
        loop.run(runner.cleanup())
        loop.close()

    results = {
        "machine": machine("aiohttp", "Jinja2", "SQLAlchemy", events=stored),
        "anchor": f"bare aiohttp handler, fixed {len(anchor_body[0]):,}-byte HTML body",
        "latency": {
            name: summary(samples[name], samples[ANCHOR]) for name in names if name != ANCHOR
        },
        "anchor_ms": summary(samples[ANCHOR], samples[ANCHOR]),
        "sizes": sizes,
    }
    print(f"\nServer time per page, {stored:,} events stored (ms); {results['anchor']}")
    print(f"{'page':<18}{'p50':>8}{'p99':>8}{'ratio':>8}  goal p99<{GOAL_P99_MS:g} ms")
    anchor = results["anchor_ms"]
    print(f"{'anchor':<18}{anchor['p50_ms']:>8}{anchor['p99_ms']:>8}{'1.00':>8}")
    for name, row in results["latency"].items():
        met = row["p99_ms"] < GOAL_P99_MS
        print(
            f"{name:<18}{row['p50_ms']:>8}{row['p99_ms']:>8}{row['ratio_p50']:>8}  {fmt_met(met)}"
        )
    print("\nFirst-load transfer size (bytes, uncompressed)")
    for name, parts in sizes.items():
        total = sum(parts.values())
        met = None if name == "docs" else total < GOAL_BYTES
        detail = ", ".join(f"{k} {v:,}" for k, v in parts.items())
        print(f"{name:<10}{total:>12,}  goal<300 KB: {fmt_met(met)}  ({detail})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
