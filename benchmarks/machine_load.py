"""How busy the machine is, from /proc: the load average and the CPU other processes use.

`Sampler` measures, over an interval, the cores the whole machine kept busy (from /proc/stat) minus
those this process used (its own user + system time): what other jobs took while it ran. A timing
table is only as good as that number; the load average alone lags by a minute and counts our own
threads.
"""
import os
import time
from dataclasses import dataclass
from typing import Optional, Tuple

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_seconds() -> Optional[float]:
    """CPU seconds all cores have spent busy since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS  # user nice system idle iowait irq softirq steal


def own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def load_average() -> Tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


@dataclass
class Sample:
    seconds: float
    others: Optional[float]  # cores used by other processes on average (None: unknown)
    ours: float  # cores this process used on average


class Sampler:
    """with Sampler() as s: ...; s.result: what others used meanwhile (cores, averaged)."""

    def __enter__(self):
        self.start = (time.perf_counter(), busy_seconds(), own_seconds())
        return self

    def __exit__(self, *exc):
        wall, busy, own = time.perf_counter(), busy_seconds(), own_seconds()
        seconds = wall - self.start[0]
        ours = (own - self.start[2]) / seconds if seconds else 0.0
        others = None
        if busy is not None and self.start[1] is not None and seconds:
            others = max(0.0, (busy - self.start[1]) / seconds - ours)
        self.result = Sample(seconds, others, ours)
        return False


def idle_cores(seconds: float = 5.0) -> Optional[float]:
    """Cores other processes use now, measured over `seconds` while this process sleeps."""
    with Sampler() as sampler:
        time.sleep(seconds)
    return sampler.result.others


def wait_for_quiet(limit: float, timeout: float, say=print, probe_seconds: float = 5.0) -> Optional[float]:
    """Wait (up to `timeout` seconds) until other processes use at most `limit` cores; the last
    measurement (cores used by others), quiet or not."""
    deadline = time.monotonic() + timeout
    while True:
        others = idle_cores(probe_seconds)
        if others is None or others <= limit or time.monotonic() >= deadline:
            return others
        say(f"machine busy: other processes use {others:.2f} cores (limit {limit}); waiting, load average "
            + " / ".join(f"{v:.1f}" for v in load_average()))
        time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
