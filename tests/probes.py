"""Deterministic inputs that look like real use, shared by the tests: the converters' validation probe
(`bgmv2.converters.probe`: textured background, soft-edged foreground with hair-like strands and a hole, and
a background shot that differs as real ones do), with the tests' calling convention."""
from bgmv2.converters.probe import probe_pair as _probe_pair


def probe_pair(batch: int, height: int, width: int, seed: int = 0):
    """(src, bgr) float32 arrays (B, 3, H, W) in [0, 1]: composites and slightly different backgrounds."""
    return _probe_pair(batch, height, width, seed)
