"""Round-robin timing: every runner timed once per round, all rounds alike, so a change in the
machine's load hits every row equally (timing rows one after another lets one row take all of it).

Each round starts at the next row (a rotation), so no row is always first after the others'
allocations. Per row: the median ms over the rounds, and the median of its per-round ratio to the
baseline row (timed in the same round, so the ratio survives a load that drifts between rounds).
"""
import statistics
import time
from typing import Callable, Dict, List, Sequence


def interleaved(calls: Sequence[Callable[[], object]], rounds: int, baseline: int = 0,
                warmup: int = 2) -> List[Dict[str, float]]:
    """Per call: {"ms": median ms, "ratio": median of ms / baseline's ms in the same round, "spread":
    (max - min) / median}; `warmup` untimed calls each first (graph optimisation, allocation)."""
    for call in calls:
        for _ in range(warmup):
            call()
    times = [[0.0] * rounds for _ in calls]
    for r in range(rounds):
        for step in range(len(calls)):
            i = (r + step) % len(calls)
            started = time.perf_counter()
            calls[i]()
            times[i][r] = 1000 * (time.perf_counter() - started)
    result = []
    for i, series in enumerate(times):
        median = statistics.median(series)
        ratios = [t / b for t, b in zip(series, times[baseline])]
        result.append({"ms": median, "ratio": statistics.median(ratios),
                       "spread": (max(series) - min(series)) / median if median else 0.0})
    return result
