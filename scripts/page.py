"""Measurement pages (docs/speed-*.md): what a benchmark printed, saved under one header that says
which command wrote it, when, on what machine and how busy the machine was. `bgmv2 bench --write PAGE`
and the scripts in benchmarks/ (`--write PAGE`) use it; nobody edits such a page by hand.

    with page.recording("docs/speed-pytorch.md", "PyTorch speed (CPU)", command):
        print(table)          # printed as usual, and kept for the page (written when the block ends)
"""
import contextlib
import datetime
import io
import os
import platform
import sys
from typing import Iterator, Optional

from bgmv2 import atomic

MARK = "do not edit by hand"


def machine() -> str:
    """The CPU's model name and the cores this process may use, e.g. 'AMD EPYC 7B13 (2 cores)'."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({len(os.sched_getaffinity(0))} cores)"


def load() -> str:
    """The 1-minute load average, as text."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def header(title: str, command: str, when: str, where: str, load_before: str, load_after: str) -> str:
    """The page's first lines: its title and who wrote it, when, where, at what load."""
    return (f"# {title}\n\nWritten by `{command}` on {when}, {where}, load average {load_before} before and "
            f"{load_after} after; {MARK}: rerun the command.\n")


class Tee(io.TextIOBase):
    """A text stream writing to two others."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def write(self, text: str) -> int:
        self.first.write(text)
        self.second.write(text)
        return len(text)

    def flush(self) -> None:
        self.first.flush()


@contextlib.contextmanager
def recording(path: Optional[str], title: str, command: str) -> Iterator[None]:
    """Keep what the block prints to stdout and, when it ends without an error, write it to `path`
    under `header` (nothing happens when `path` is None)."""
    if path is None:
        yield
        return
    before, kept, printed = load(), io.StringIO(), sys.stdout
    sys.stdout = Tee(printed, kept)
    try:
        yield
    finally:
        sys.stdout = printed
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = header(title, command, when, machine(), before, load()) + "\n" + kept.getvalue().strip() + "\n"
    atomic.write_text(path, text)
    print(f"wrote {path}", file=sys.stderr)
