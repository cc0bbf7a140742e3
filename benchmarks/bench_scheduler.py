"""How late the scheduler fires: real lag between a slot's time and the job's actor
receiving its message.

A tree runs a probe actor and the scheduler with minute jobs (``Every(1 min)``, every
day) on a fast clock: scheduler time runs ``--speed`` times real time, so a minute slot
comes due every ``60 / speed`` real seconds. For each slot, the lag is the real time
between the moment the slot came due and the moment the probe received its message (at
most one tick, ``TRADINGBOT_SCHEDULER_TICK_S``, plus the claim in the database and the
hand-over). The anchor, in the same run, is a bare thread sleeping until each due time.

Goal: p99 lag < 1 s. Run: ``.venv/bin/python benchmarks/bench_scheduler.py [--quick]
[--slots N] [--speed X] [--tick S] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import fmt_met, machine, percentile
from tradingbot.logconfig import configure_logging
from tradingbot.scheduler import EVERY_DAY, Every, Job, Slot, nyse
from tradingbot.scheduler.actor import SchedulerActor, SchedulerSettings
from tradingbot.scheduler.status import SchedulerStatus
from tradingbot.storage import Database
from tradingbot.supervision import SupervisedActor, SupervisionTree, supervisor, worker

GOAL_S = 1.0
START = datetime(2026, 3, 10, 14, 0, 30, tzinfo=UTC)  # 30 s before a minute boundary


class FastClock:
    """Scheduler time: ``START`` plus real elapsed time times ``speed``."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.t0 = time.perf_counter()

    def __call__(self) -> datetime:
        return START + timedelta(seconds=(time.perf_counter() - self.t0) * self.speed)

    def real_due(self, at: datetime) -> float:
        return self.t0 + (at - START).total_seconds() / self.speed


class Probe(SupervisedActor):
    def __init__(self, seen: list[tuple[Slot, float]], done: threading.Event, want: int) -> None:
        super().__init__()
        self._seen, self._done, self._want = seen, done, want

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Slot):
            self._seen.append((message, time.perf_counter()))
            if len(self._seen) > self._want:
                self._done.set()
            return "ok"
        return super().on_receive(message)


def scheduler_lags(slots: int, speed: float, tick_s: float) -> list[float]:
    seen: list[tuple[Slot, float]] = []
    done = threading.Event()
    job = Job(
        name="minute",
        rule=Every(timedelta(minutes=1)),
        days=EVERY_DAY,
        actor="probe",
        message=lambda slot: slot,
        grace=timedelta(minutes=5),
    )
    with tempfile.TemporaryDirectory() as tmp:
        database = Database.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        database.upgrade()
        clock = FastClock(speed)
        tree = SupervisionTree(
            supervisor(
                "root",
                [
                    worker("probe", lambda: Probe(seen, done, slots)),
                    worker(
                        "scheduler",
                        lambda: SchedulerActor(
                            [job],
                            database,
                            nyse(),
                            SchedulerStatus(),
                            SchedulerSettings(owner=str(uuid.uuid4()), tick_s=tick_s),
                            now=clock,
                        ),
                    ),
                ],
            ),
            listeners=(),
        )
        tree.start()
        done.wait(slots * 60 / speed + 60)
        tree.stop()
        database.dispose()
    # The slot already due at start runs as a missed run: not a firing on time.
    fired = [(slot, received) for slot, received in seen if slot.at > START]
    return [received - clock.real_due(slot.at) for slot, received in fired[:slots]]


def sleep_lags(slots: int, speed: float) -> list[float]:
    """The anchor: a thread sleeping until each due time, as late as the OS wakes it."""
    t0 = time.perf_counter() + 30 / speed
    lags = []
    for index in range(slots):
        due = t0 + index * 60 / speed
        time.sleep(max(0.0, due - time.perf_counter()))
        lags.append(time.perf_counter() - due)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--slots", type=int, default=120)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--tick", type=float, default=0.25)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    slots = 10 if args.quick else args.slots
    configure_logging(level="WARNING")  # a line per run would be the benchmark's noise
    facts = machine(slots=slots, speed=args.speed, tick_s=args.tick)
    anchor_thread_lags: list[float] = []
    anchor = threading.Thread(
        target=lambda: anchor_thread_lags.extend(sleep_lags(slots, args.speed))
    )
    anchor.start()  # interleaved: both run over the same minutes
    lags = scheduler_lags(slots, args.speed, args.tick)
    anchor.join()
    rows = []
    for name, values in (("sleep until due (anchor)", anchor_thread_lags), ("scheduler", lags)):
        values = sorted(values)
        rows.append(
            {
                "benchmark": name,
                "samples": len(values),
                "p50_s": round(percentile(values, 0.5), 4),
                "p99_s": round(percentile(values, 0.99), 4),
                "max_s": round(values[-1], 4),
                "met": None if "anchor" in name else percentile(values, 0.99) < GOAL_S,
            }
        )
    print(json.dumps(facts))
    print("| Benchmark | Samples | p50 lag (s) | p99 lag (s) | max (s) | Goal p99 < 1 s |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['benchmark']} | {r['samples']} | {r['p50_s']} | {r['p99_s']} | {r['max_s']} |"
            f" {fmt_met(r['met'])} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
