"""Supervision overhead, each figure against a bare pykka anchor measured in the same run.

Three measurements, anchor and subject rounds interleaved so they share the machine's
noise (these boxes are shared):

1. ask round trip by name (``tree.handle(id).ask`` and ``tree.ask``) vs ``ref.ask``;
2. crash to replacement answering (``tree.crash`` or a tell that raises, until an ask by
   name is answered by the new incarnation) vs bare pykka stop + start + first ask;
3. tell throughput by name with 1 and 4 producer threads vs ``ref.tell``.

Run: ``.venv/bin/python benchmarks/bench_supervision.py [--quick] [--json PATH]``.
Latencies are per operation, in microseconds; ratios are subject/anchor of the p50s
(for throughput: subject time per message / anchor time per message, so > 1 is slower).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pykka

from benchlib import fmt_met, machine, percentile, rotated
from tradingbot.supervision import (
    ActorRestarted,
    SupervisedActor,
    SupervisionEvent,
    SupervisionTree,
    supervisor,
    worker,
)

ASK_GOAL_RATIO = 1.15
CRASH_GOAL_RATIO = 2.0
CRASH_GOAL_P99_US = 5_000.0
TIMEOUT_S = 5.0

# -- messages and actors ------------------------------------------------------------------


class Whoami:
    """Ask: answer with the incarnation's urn (proves the replacement answered)."""

    __slots__ = ()


class Boom:
    """Tell: raise inside the actor (an ordinary crash, not the operator drill)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Arm:
    """Ask: start counting; set ``done`` once ``target`` ticks have arrived."""

    target: int
    done: threading.Event


TICK = object()
PING = "ping"
WHOAMI = Whoami()
BOOM = Boom()


class _Behaviour:
    """The same handler for the supervised and the bare actors."""

    actor_urn: str
    _count: int
    _target: int
    _done: threading.Event | None

    def _reset(self) -> None:
        self._count = 0
        self._target = -1
        self._done = None

    def on_receive(self, message: Any) -> Any:
        if message is TICK:
            self._count += 1
            if self._count == self._target and self._done is not None:
                self._done.set()
            return None
        if message is PING:
            return message
        if type(message) is Whoami:
            return self.actor_urn
        if type(message) is Arm:
            self._count = 0
            self._target = message.target
            self._done = message.done
            return None
        if type(message) is Boom:
            raise RuntimeError("benchmark crash")
        raise ValueError(f"unexpected message {message!r}")


class SupervisedEcho(_Behaviour, SupervisedActor):
    def __init__(self) -> None:
        super().__init__()
        self._reset()


class BareEcho(_Behaviour, pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self._reset()


# -- statistics ---------------------------------------------------------------------------


@dataclass(slots=True)
class LatencyRow:
    bench: str
    subject: str
    anchor: str
    n: int
    anchor_p50_us: float
    anchor_p99_us: float
    p50_us: float
    p99_us: float
    ratio: float
    goal: str
    met: bool | None


@dataclass(slots=True)
class ThroughputRow:
    bench: str
    subject: str
    anchor: str
    producers: int
    messages: int
    rounds: int
    anchor_msgs_per_s: float
    msgs_per_s: float
    ratio: float
    rounds_msgs_per_s: list[float] = field(default_factory=list)
    anchor_rounds_msgs_per_s: list[float] = field(default_factory=list)


def latency_row(
    bench: str,
    subject: str,
    anchor: str,
    samples: list[float],
    anchor_samples: list[float],
    goal: str,
    met: Callable[[float, float], bool] | None,
    round_size: int,
) -> LatencyRow:
    """p50/p99 over all samples; the ratio is paired: the median over rounds of
    (subject round median / anchor round median). Each round runs the variants back to
    back, so the machine's slow phases (seen here: ask latency flipping between ~27 and
    ~48 µs for whole rounds) cancel instead of landing in one variant's pooled p50."""
    s, a = sorted(samples), sorted(anchor_samples)
    p50, p99 = percentile(s, 0.50), percentile(s, 0.99)
    a50, a99 = percentile(a, 0.50), percentile(a, 0.99)
    pairs = [
        statistics.median(samples[i : i + round_size])
        / statistics.median(anchor_samples[i : i + round_size])
        for i in range(0, min(len(samples), len(anchor_samples)), round_size)
    ]
    ratio = statistics.median(pairs)
    return LatencyRow(
        bench=bench,
        subject=subject,
        anchor=anchor,
        n=len(s),
        anchor_p50_us=round(a50, 2),
        anchor_p99_us=round(a99, 2),
        p50_us=round(p50, 2),
        p99_us=round(p99, 2),
        ratio=round(ratio, 3),
        goal=goal,
        met=None if met is None else met(ratio, p99),
    )


# -- the setup ----------------------------------------------------------------------------


class RestartCounter:
    """A quick listener (the default one writes a log line per event)."""

    def __init__(self) -> None:
        self.restarts = 0
        self.events = 0

    def __call__(self, event: SupervisionEvent) -> None:
        self.events += 1
        if type(event) is ActorRestarted:
            self.restarts += 1


def start_tree(counter: RestartCounter) -> SupervisionTree:
    root = supervisor(
        "root",
        [worker("echo", SupervisedEcho), worker("sink", SupervisedEcho)],
        intensity=1_000_000,
        period_s=1,
    )
    tree = SupervisionTree(root, listeners=[counter])
    tree.start()
    return tree


def ns_to_us(ns: int) -> float:
    return ns / 1000.0


# -- 1. ask round trip --------------------------------------------------------------------


def bench_ask(tree: SupervisionTree, rounds: int, per_round: int, warmup: int) -> list[LatencyRow]:
    bare = BareEcho.start()
    try:
        handle = tree.handle("echo")
        ref_ask = bare.ask
        handle_ask = handle.ask
        tree_ask = tree.ask
        clock = time.perf_counter_ns

        def run_anchor(n: int, out: list[float]) -> None:
            for _ in range(n):
                t0 = clock()
                ref_ask(PING)
                out.append(ns_to_us(clock() - t0))

        def run_anchor_timeout(n: int, out: list[float]) -> None:
            for _ in range(n):
                t0 = clock()
                ref_ask(PING, timeout=TIMEOUT_S)
                out.append(ns_to_us(clock() - t0))

        def run_handle(n: int, out: list[float]) -> None:
            for _ in range(n):
                t0 = clock()
                handle_ask(PING, TIMEOUT_S)
                out.append(ns_to_us(clock() - t0))

        def run_tree(n: int, out: list[float]) -> None:
            for _ in range(n):
                t0 = clock()
                tree_ask("echo", PING, TIMEOUT_S)
                out.append(ns_to_us(clock() - t0))

        runners = {
            "anchor": run_anchor,
            "anchor_timeout": run_anchor_timeout,
            "handle": run_handle,
            "tree": run_tree,
        }
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():
            run(warmup, [])
        names = list(runners)
        for r in range(rounds):
            gc.collect()
            for name in rotated(names, r):
                runners[name](per_round, samples[name])
    finally:
        bare.stop()

    def ask_goal(ratio: float, _p99: float) -> bool:
        return ratio <= ASK_GOAL_RATIO

    anchor = "pykka ref.ask(msg)"
    goal = f"ratio <= {ASK_GOAL_RATIO}"
    return [
        latency_row(
            "ask",
            'tree.handle("echo").ask(msg, 5)',
            anchor,
            samples["handle"],
            samples["anchor"],
            goal,
            ask_goal,
            per_round,
        ),
        latency_row(
            "ask",
            'tree.ask("echo", msg, 5)',
            anchor,
            samples["tree"],
            samples["anchor"],
            goal,
            ask_goal,
            per_round,
        ),
        latency_row(
            "ask",
            "pykka ref.ask(msg, timeout=5) (info)",
            anchor,
            samples["anchor_timeout"],
            samples["anchor"],
            "-",
            None,
            per_round,
        ),
    ]


# -- 2. crash to replacement answering -----------------------------------------------------


def bench_crash(
    tree: SupervisionTree, counter: RestartCounter, rounds: int, per_round: int, warmup: int
) -> list[LatencyRow]:
    clock = time.perf_counter_ns
    bare: list[pykka.ActorRef[Any]] = [BareEcho.start()]
    failures = 0

    def run_anchor(n: int, out: list[float]) -> None:
        for _ in range(n):
            t0 = clock()
            bare[0].stop()
            bare[0] = BareEcho.start()
            bare[0].ask(WHOAMI)
            out.append(ns_to_us(clock() - t0))

    def run_subject(n: int, out: list[float], crash: Callable[[], None]) -> None:
        nonlocal failures
        for _ in range(n):
            old = tree.ask("echo", WHOAMI, TIMEOUT_S)
            t0 = clock()
            crash()
            new = tree.ask("echo", WHOAMI, TIMEOUT_S)
            elapsed = clock() - t0
            if new == old:
                failures += 1  # answered by the old incarnation: not a restart
            else:
                out.append(ns_to_us(elapsed))

    def run_drill(n: int, out: list[float]) -> None:
        run_subject(n, out, lambda: tree.crash("echo"))

    def run_boom(n: int, out: list[float]) -> None:
        run_subject(n, out, lambda: tree.tell("echo", BOOM))

    runners = {"anchor": run_anchor, "drill": run_drill, "boom": run_boom}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    restarts_before = counter.restarts
    try:
        for run in runners.values():
            run(warmup, [])
        names = list(runners)
        for r in range(rounds):
            gc.collect()
            for name in rotated(names, r):
                runners[name](per_round, samples[name])
    finally:
        bare[0].stop()
    expected = 2 * (warmup + rounds * per_round)
    restarted = counter.restarts - restarts_before
    if failures or restarted != expected:
        raise SystemExit(
            f"crash bench invalid: {failures} asks answered by the old incarnation, "
            f"{restarted} ActorRestarted events for {expected} crashes"
        )

    def crash_goal(ratio: float, p99: float) -> bool:
        return ratio <= CRASH_GOAL_RATIO and p99 < CRASH_GOAL_P99_US

    anchor = "pykka stop + start + first ask"
    goal = f"ratio <= {CRASH_GOAL_RATIO:g} and p99 < {CRASH_GOAL_P99_US / 1000:g} ms"
    return [
        latency_row(
            "crash",
            'tree.crash("echo") -> ask by name answered',
            anchor,
            samples["drill"],
            samples["anchor"],
            goal,
            crash_goal,
            per_round,
        ),
        latency_row(
            "crash",
            'tree.tell("echo", raising msg) -> ask answered',
            anchor,
            samples["boom"],
            samples["anchor"],
            goal,
            crash_goal,
            per_round,
        ),
    ]


# -- 3. tell throughput -------------------------------------------------------------------


def timed_tells(
    send: Callable[[object], None],
    arm: Callable[[Arm], Any],
    producers: int,
    messages: int,
) -> float:
    """Seconds from releasing the producers until the consumer counted ``messages``."""
    done = threading.Event()
    arm(Arm(target=messages, done=done))
    share = messages // producers
    gate = threading.Barrier(producers + 1)

    def produce() -> None:
        gate.wait()
        for _ in range(share):
            send(TICK)

    threads = [threading.Thread(target=produce, daemon=True) for _ in range(producers)]
    for thread in threads:
        thread.start()
    gate.wait()
    t0 = time.perf_counter()
    if not done.wait(60):
        raise SystemExit("tell bench: the consumer never counted every message")
    elapsed = time.perf_counter() - t0
    for thread in threads:
        thread.join()
    return elapsed


def bench_tell(
    tree: SupervisionTree, rounds: int, messages: int, warmup: int
) -> list[ThroughputRow]:
    bare = BareEcho.start()
    handle = tree.handle("sink")
    rows: list[ThroughputRow] = []
    try:
        senders: dict[str, tuple[Callable[[object], None], Callable[[Arm], Any]]] = {
            "anchor": (bare.tell, lambda m: bare.ask(m, timeout=TIMEOUT_S)),
            "tree": (
                lambda m: tree.tell("sink", m),
                lambda m: tree.ask("sink", m, TIMEOUT_S),
            ),
            "handle": (handle.tell, lambda m: handle.ask(m, TIMEOUT_S)),
        }
        names = list(senders)
        for producers in (1, 4):
            n = messages - messages % producers
            for send, arm in senders.values():
                timed_tells(send, arm, producers, warmup - warmup % producers)
            rates: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                gc.collect()
                for name in rotated(names, r):
                    send, arm = senders[name]
                    rates[name].append(n / timed_tells(send, arm, producers, n))
            anchor_rate = statistics.median(rates["anchor"])
            for name, label in (
                ("tree", 'tree.tell("sink", msg)'),
                ("handle", 'tree.handle("sink").tell(msg)'),
            ):
                rate = statistics.median(rates[name])
                rows.append(
                    ThroughputRow(
                        bench="tell",
                        subject=label,
                        anchor="pykka ref.tell(msg)",
                        producers=producers,
                        messages=n,
                        rounds=rounds,
                        anchor_msgs_per_s=round(anchor_rate),
                        msgs_per_s=round(rate),
                        ratio=round(anchor_rate / rate, 3),
                        rounds_msgs_per_s=[round(x) for x in rates[name]],
                        anchor_rounds_msgs_per_s=[round(x) for x in rates["anchor"]],
                    )
                )
    finally:
        bare.stop()
    return rows


# -- output -------------------------------------------------------------------------------


def print_tables(latency: list[LatencyRow], throughput: list[ThroughputRow]) -> None:
    head = (
        f"{'bench':<6} {'subject':<48} {'n':>6} {'anchor p50':>10} {'anchor p99':>10} "
        f"{'p50':>9} {'p99':>9} {'ratio':>6}  goal met"
    )
    print("Latency (microseconds; ratio = subject p50 / anchor p50)")
    print(head)
    print("-" * len(head))
    for row in latency:
        print(
            f"{row.bench:<6} {row.subject:<48} {row.n:>6} {row.anchor_p50_us:>10.1f} "
            f"{row.anchor_p99_us:>10.1f} {row.p50_us:>9.1f} {row.p99_us:>9.1f} "
            f"{row.ratio:>6.2f}  {fmt_met(row.met)} ({row.goal})"
        )
    print()
    head = (
        f"{'bench':<6} {'subject':<32} {'producers':>9} {'messages':>9} "
        f"{'anchor msg/s':>12} {'msg/s':>10} {'ratio':>6}"
    )
    print("Tell throughput (median of rounds; ratio = anchor msg/s / subject msg/s)")
    print(head)
    print("-" * len(head))
    for t in throughput:
        print(
            f"{t.bench:<6} {t.subject:<32} {t.producers:>9} {t.messages:>9} "
            f"{t.anchor_msgs_per_s:>12,.0f} {t.msgs_per_s:>10,.0f} {t.ratio:>6.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    # pykka logs every crash with its traceback; keep the records (their cost is real)
    # but do not print them (logging's last-resort handler would write to stderr).
    logging.basicConfig(handlers=[logging.NullHandler()], level=logging.INFO, force=True)
    # As in production (tradingbot.logconfig): supervision events replace pykka's own log.
    logging.getLogger("pykka").setLevel(logging.CRITICAL)

    if args.quick:
        ask_cfg = {"rounds": 50, "per_round": 50, "warmup": 500}
        crash_cfg = {"rounds": 5, "per_round": 20, "warmup": 20}
        tell_cfg = {"rounds": 3, "messages": 20_000, "warmup": 4_000}
    else:
        ask_cfg = {"rounds": 600, "per_round": 100, "warmup": 5_000}
        crash_cfg = {"rounds": 30, "per_round": 100, "warmup": 100}
        tell_cfg = {"rounds": 9, "messages": 200_000, "warmup": 20_000}

    counter = RestartCounter()
    tree = start_tree(counter)
    started = time.perf_counter()
    try:
        latency = bench_ask(tree, **ask_cfg)
        latency += bench_crash(tree, counter, **crash_cfg)
        throughput = bench_tell(tree, **tell_cfg)
    finally:
        tree.stop()
    duration_s = time.perf_counter() - started

    info = machine(
        "pykka",
        implementation=platform.python_implementation(),
        sched_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    )
    print(
        f"bench_supervision  {info['date']}  nproc={info['nproc']}  "
        f"python={info['python']}  pykka={info['pykka']}  "
        f"mode={'quick' if args.quick else 'full'}  {duration_s:.0f} s"
    )
    print()
    print_tables(latency, throughput)
    goals = [row.met for row in latency if row.met is not None]
    print()
    print(f"goals met: {sum(goals)}/{len(goals)}")

    if args.json:
        payload = {
            "benchmark": "supervision",
            "command": " ".join(
                [".venv/bin/python", "benchmarks/bench_supervision.py", *sys.argv[1:]]
            ),
            "mode": "quick" if args.quick else "full",
            "machine": info,
            "duration_s": round(duration_s, 1),
            "config": {"ask": ask_cfg, "crash": crash_cfg, "tell": tell_cfg},
            "latency": [asdict(row) for row in latency],
            "throughput": [asdict(t) for t in throughput],
            "goals_met": all(goals),
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
