"""The frame sizes a conversion can take, checked before anything heavy runs: a format's fixed size
(`--size`, TFLite) and the probe the source and the written file are run on (`--probe`).

- The refiner's exported selection (top-k with float32 tie-break keys, every graph format) is exact
  for fewer than `EXACT_INDEX_LIMIT` (2^24) cells of 4x4 pixels: frames under 2^28 pixels (16384 x
  16384). Larger ones are refused for every target.
- Memory: a conversion runs the model in the source's framework and the target's on the probe (and
  TensorFlow targets build and run the graph at a fixed size). Measured for a TFLite conversion of a
  MobileNetV2 model (PyTorch, Keras and LiteRT in one process, 256x144 against 1024x576): 0.57 KB of
  peak memory a pixel, on top of about 1.5 GB; PyTorch alone needs 0.5 KB a pixel in `full` refine
  mode. `BYTES_PER_PIXEL` (1 KB) times the probe's pixels must fit in the memory this machine (or its
  container) has available, so `--size 100000x100000` is one line, not minutes of allocator dumps and
  a crash.
"""
import os
from typing import Optional, Tuple

from .errors import ConversionError

BYTES_PER_PIXEL = 1024
CELL = 4  # pixels a side of a refined cell


def exact_index_limit() -> int:
    from bgmv2.pytorch_impl.refiner import EXACT_INDEX_LIMIT
    return EXACT_INDEX_LIMIT


def available_memory() -> Optional[int]:
    """Bytes this process could still use: MemAvailable, or the container's (cgroup) room when smaller;
    None where neither is known."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit) as f:
                text = f.read().strip()
            with open(usage) as f:
                used = int(f.read().strip())
            if text != "max" and int(text) < 1 << 60:
                found.append(max(int(text) - used, 0))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def check_frame(size, what: str, batch: int = 1) -> Tuple[int, int]:
    """(height, width) of a frame a conversion will build or run, or ConversionError saying why not and
    what to give instead. `what`: how the user gave it ("--size 1280x720", "the probe 512x288")."""
    try:
        height, width = (int(v) for v in size)
        if (height, width) != tuple(size) or height < 1 or width < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ConversionError(f"{what}: give a (height, width) pair of positive whole numbers, e.g. (288, 512)") \
            from None
    cells = -(-height // CELL) * -(-width // CELL)
    if cells >= exact_index_limit():
        raise ConversionError(f"{what}: {width}x{height} is {cells:,} cells of 4x4 pixels; the refiner's selection is "
                              f"exact for fewer than {exact_index_limit():,} (frames under 16384x16384); give a smaller "
                              "size")
    need = BYTES_PER_PIXEL * height * width * max(int(batch), 1)
    free = available_memory()
    if free is not None and need > free:
        raise ConversionError(f"{what}: running the model at {width}x{height} takes about {gigabytes(need)} of memory "
                              f"(about {BYTES_PER_PIXEL // 1024} KB a pixel) and this machine has {gigabytes(free)} "
                              "available; give a smaller size")
    return height, width


def gigabytes(count: int) -> str:
    return f"{count / (1 << 30):,.1f} GB"
