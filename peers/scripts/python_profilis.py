"""What a call costs with Python profilis's `profile_function` decorator and its collector, on an
empty function, against a bare call and two `time.perf_counter_ns()` reads around it.

Run by `peers/scripts/python_profilis.sh`, which installs profilis from PyPI into a virtual
environment first. Prints one Markdown table of ns per call (the median of ROUNDS rounds).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from importlib.metadata import version

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.decorators.profile import profile_function
from profilis.exporters.prometheus import PrometheusExporter

CALLS = int(os.environ.get("CALLS", "100000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def discard(batch: list[object]) -> None:
    """A collector sink that drops every batch: the cost of the decorator and the queue alone."""


def empty() -> None:
    pass


def timed_by_hand() -> None:
    start = time.perf_counter_ns()
    empty()
    time.perf_counter_ns() - start


def per_call_ns(fn) -> float:
    """Median over ROUNDS rounds of CALLS calls of `fn`, in ns per call."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            fn()
        rounds.append((time.perf_counter_ns() - start) / CALLS)
    return statistics.median(rounds)


def profiled_with(sink) -> tuple[float, AsyncCollector]:
    """ns per call of `empty` decorated with `profile_function`, its events going to `sink`
    through an AsyncCollector with the default settings."""
    collector = AsyncCollector(sink)
    emitter = Emitter(collector)
    fn = profile_function(emitter)(empty)
    ns = per_call_ns(fn)
    collector.close()
    return ns, collector


def main() -> None:
    print(
        f"Python {platform.python_version()} ({sys.implementation.name}), "
        f"profilis {version('profilis')}, prometheus_client {version('prometheus_client')}; "
        f"{CALLS} calls a round, median of {ROUNDS} rounds"
    )
    rows = [
        ("bare call", per_call_ns(empty), None),
        ("two `time.perf_counter_ns()` around it (reference)", per_call_ns(timed_by_hand), None),
    ]
    ns, collector = profiled_with(discard)
    rows.append(("`@profile_function`, collector with a discarding sink", ns, collector))
    ns, collector = profiled_with(PrometheusExporter(service="bench", instance="localhost", worker="1"))
    rows.append(("`@profile_function`, collector with `PrometheusExporter`", ns, collector))
    print()
    print("| case | ns/call | events queued | events dropped (queue full) |")
    print("|---|---:|---:|---:|")
    for label, ns, collector in rows:
        if collector is None:
            print(f"| {label} | {ns:.0f} | | |")
        else:
            print(f"| {label} | {ns:.0f} | {collector.enqueued} | {collector.dropped_oldest} |")


if __name__ == "__main__":
    main()
