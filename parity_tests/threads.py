"""How many CPU threads the runtimes of a parity run get. One where more only add contention: on two
cores or fewer, and on a machine whose load average is already at 3/4 of its cores, where PyTorch's
and ONNX Runtime's spinning thread pools wait on each other (the same frame measured 18 s with one
thread and 74 s with two on two busy cores). Elsewhere the runtimes' own defaults.
"""
import os
from typing import Optional, Tuple

BUSY_SHARE = 0.75  # load average at or above this share of the cores: the machine is busy


def load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy(cores: Optional[int] = None, load: Optional[float] = None) -> bool:
    """Whether other work already uses 3/4 of the cores (load average)."""
    cores = cores or os.cpu_count() or 1
    load = load_average() if load is None else load
    return load is not None and load >= BUSY_SHARE * cores


def choose(requested: Optional[int] = None, cores: Optional[int] = None,
           load: Optional[float] = None) -> Tuple[Optional[int], str]:
    """(threads for every runtime, None for their defaults; the reason, in words)."""
    if requested:
        return requested, f"{requested} (--threads)"
    cores = cores or os.cpu_count() or 1
    load = load_average() if load is None else load
    seen = f"{cores} cores, load average {load:.1f}" if load is not None else f"{cores} cores"
    if cores <= 2:
        return 1, f"1 ({seen}: more threads only contend)"
    if busy(cores, load):
        return 1, f"1 ({seen}: busy, more threads only contend)"
    return None, f"the runtimes' defaults ({seen})"


def apply(threads: Optional[int]) -> None:
    """Set `threads` for PyTorch now and for TensorFlow and OpenMP when they start."""
    if not threads:
        return
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch
    torch.set_num_threads(threads)
