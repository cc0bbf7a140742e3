"""Gateway simulator: historical data rate against the client's decode rate; streaming load.

The simulator runs in its own process (``trading-bot gateway-sim``, always-open calendar);
the real ib_async client requests from this process.

1. Historical data: 1 year of daily bars and 1 day of 1-minute bars, for 50 symbols
   (``reqHistoricalDataAsync``). Anchor, measured in the
   same run: the client's own decode rate, i.e. ib_async's ``Client._onSocketHasData``
   (framing, field split, ``Decoder``, ``Wrapper``) turning the very same historicalData
   messages (the bytes recorded as they arrived) into ``BarData``, with no socket, the
   decoded bars kept until the pass ends as a real request keeps them (freeing them at
   once would spare the decoder the garbage collector's work a real client pays).
   Figure: bars/s end to end / bars/s decoded (the median of 3 decode passes), the
   median of 5 rounds: both sides measured alike on a noisy shared machine. Goal >= 0.5.
   Cold rounds each ask a fresh set of symbols (the simulator draws their history);
   warm rounds repeat the first set.
2. Streaming: 100 symbols at 4 tick rounds per second for 60 s. Backlog growth would
   show as the price ticks received per second falling behind the ticks offered, and as
   a growing round trip of ``reqCurrentTime`` (its answer queues behind the ticks). The
   figures compare the first and the last 10 seconds.

Run: ``.venv/bin/python benchmarks/bench_gateway.py [--quick] [--history-only] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import time
from pathlib import Path
from typing import Any

from ib_async import IB, Stock

from benchlib import gateway_process, machine, percentile

SYMBOLS = [f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(26 * 26)]


async def _qualified(ib: IB, symbols: list[str]) -> list[Stock]:
    contracts = await ib.qualifyContractsAsync(*[Stock(s, "SMART", "USD") for s in symbols])
    return [c for c in contracts if c is not None]  # type: ignore[misc]


async def _round(
    ib: IB, contracts: list[Stock], duration: str, size: str, recorded: list[bytes]
) -> tuple[int, float, float]:
    """One round: (bars, end-to-end bars/s, the client's decode bars/s on its messages)."""
    recorded.clear()
    start = time.perf_counter()
    answers = await asyncio.gather(
        *[ib.reqHistoricalDataAsync(c, "", duration, size, "TRADES", False) for c in contracts]
    )
    wall = time.perf_counter() - start
    bars = sum(len(a) for a in answers)
    return bars, bars / wall, _decode_rate(ib, _historical_messages(b"".join(recorded)))


async def history(port: int, n_symbols: int, rounds: int = 5) -> list[dict[str, Any]]:
    """Bars/s end to end vs the decoder's bars/s on the same messages, median of
    ``rounds``: cold rounds each on a fresh set of symbols, warm rounds repeat one set."""
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=11, timeout=10)
    ib.client.MaxRequests = 0  # measure the simulator, not the client's 45/s pacing
    recorded: list[bytes] = []  # raw chunks: recording must not load the measured path
    ib.client.conn.hasData += recorded.append
    rows = []
    sizes = (("1 Y daily", "1 Y", "1 day"), ("1 D 1-min", "1 D", "1 min"))
    try:
        sets = [
            await _qualified(ib, SYMBOLS[k * n_symbols : (k + 1) * n_symbols])
            for k in range(len(sizes) * rounds)
        ]
        for i, (label, duration, size) in enumerate(sizes):
            own = sets[i * rounds : (i + 1) * rounds]
            for temperature in ("cold", "warm"):
                results = [
                    await _round(
                        ib, own[r] if temperature == "cold" else own[0], duration, size, recorded
                    )
                    for r in range(rounds)
                ]
                ratios = sorted(rate / decode for _, rate, decode in results)
                ratio = ratios[len(ratios) // 2]
                rows.append(
                    {
                        "what": f"{label} x {len(own[0])}, {temperature}",
                        "bars": results[0][0],
                        "end_to_end_bars_per_s": round(statistics.median(r[1] for r in results)),
                        "decode_bars_per_s": round(statistics.median(r[2] for r in results)),
                        "ratio": round(ratio, 3),
                        "ratios": [round(x, 3) for x in ratios],
                        "goal_met": ratio >= 0.5,
                    }
                )
    finally:
        ib.client.conn.hasData -= recorded.append
        ib.disconnect()
    return rows


def _historical_messages(stream: bytes) -> list[tuple[int, int, bytes]]:
    """(reqId, bar count, framed message) of each historicalData (17) in ``stream``."""
    out = []
    at = 0
    while at + 4 <= len(stream):
        (length,) = struct.unpack(">I", stream[at : at + 4])
        frame = stream[at : at + 4 + length]
        at += 4 + length
        fields = frame[4:].split(b"\0", 5)
        if fields[0] == b"17":
            out.append((int(fields[1]), int(fields[4]), frame))
    return out


def _decode_rate(ib: IB, framed: list[tuple[int, int, bytes]]) -> float:
    """Bars per second the client turns these messages into, bytes in (median of 3
    passes, as the end-to-end figure is a median of rounds)."""
    client, wrapper = ib.client, ib.wrapper
    rates = []
    for _ in range(3):
        bars = 0
        kept = []  # the decoded bars live on, as the answers of a real request do
        start = time.perf_counter()
        for req_id, n, data in framed:
            wrapper._results[req_id] = kept_bars = []  # what startReq prepares
            client._onSocketHasData(data)
            bars += n
            kept.append(kept_bars)
            wrapper._results.pop(req_id, None)
        rates.append(bars / (time.perf_counter() - start))
        del kept
    return statistics.median(rates)


async def streaming(port: int, n_symbols: int, seconds: float) -> dict[str, Any]:
    """Ticks received per second and reqCurrentTime round trips, first vs last 10 s."""
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=12, timeout=10)
    try:
        contracts = await _qualified(ib, SYMBOLS[:n_symbols])
        counts: list[tuple[float, int]] = []
        ib.pendingTickersEvent += lambda tickers: counts.append(
            (time.perf_counter(), sum(len(t.ticks) for t in tickers))
        )
        for c in contracts:
            ib.reqMktData(c)
        start = time.perf_counter()
        rtts: list[tuple[float, float]] = []
        while (now := time.perf_counter()) - start < seconds:
            sent = time.perf_counter()
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), 10)
            rtts.append((now - start, (time.perf_counter() - sent) * 1000))
            await asyncio.sleep(0.25)
        window = min(10.0, seconds / 3)

        def rate(lo: float, hi: float) -> float:
            ticks = sum(n for t, n in counts if lo <= t - start < hi)
            return ticks / (hi - lo)

        def rtt(lo: float, hi: float) -> list[float]:
            values = sorted(ms for t, ms in rtts if lo <= t < hi)
            return [round(percentile(values, 0.5), 2), round(percentile(values, 0.99), 2)]

        offered = n_symbols * 4 * 4  # bid, ask, last, volume per symbol per round, 4/s
        first, last = rate(1.0, 1.0 + window), rate(seconds - window, seconds)
        return {
            "symbols": n_symbols,
            "seconds": seconds,
            "offered_ticks_per_s": offered,
            "received_first_window_per_s": round(first),
            "received_last_window_per_s": round(last),
            "rtt_ms_first_p50_p99": rtt(1.0, 1.0 + window),
            "rtt_ms_last_p50_p99": rtt(seconds - window, seconds),
            "no_backlog_growth": last >= 0.9 * first,
        }
    finally:
        ib.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 symbols, 10 s of streaming")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--history-only", action="store_true", help="skip the streaming part")
    args = parser.parse_args()
    n_hist, n_stream, seconds = (10, 20, 10.0) if args.quick else (50, 100, 60.0)
    with gateway_process({}, 0.25) as port:
        hist = asyncio.run(history(port, n_hist))
    stream: dict[str, Any] = {}
    if not args.history_only:
        with gateway_process({}, 0.25) as port:
            stream = asyncio.run(streaming(port, n_stream, seconds))
    result = {"machine": machine("ib_async"), "history": hist, "streaming": stream}
    print(
        "| request | bars | end to end bars/s | client decode bars/s | ratio (median; 5 rounds)"
        " | goal >= 0.5 |"
    )
    print("|---|---|---|---|---|---|")
    for r in hist:
        met = "yes" if r["goal_met"] else "NO"
        print(
            f"| {r['what']} | {r['bars']} | {r['end_to_end_bars_per_s']} | "
            f"{r['decode_bars_per_s']} | {r['ratio']} ({', '.join(map(str, r['ratios']))}) "
            f"| {met} |"
        )
    if stream:
        print()
        print(json.dumps(stream, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
