"""The probes every "same alpha" check runs on (`bgmv2 parity`'s defaults, `convert`'s check, the fast
runtime's first judgement): synthetic composites that look like real use.

Built-in probes are `bgmv2.data.synthetic.SyntheticMattingSet` samples: a subject with soft
edges (1-8 px), holes and hair-like strands, coloured from photographs or texture, over a
photographic or textured background, with a shadow, sensor noise and a background shot that is
shifted, rotated, re-exposed and re-noised a little, as a real clean plate is. Deterministic by seed.
The shipped model was trained on this distribution, so its alpha on them is a real matte (soft
edges, thin strands), not the all-zero alpha a model gives on inputs it does not understand.

Every input is float32 NCHW in [0, 1]; the built-in sizes are multiples of 4. Users' own pictures
(`bgmv2.parity_tests.probes.picture_probe`) become probes of the same kind.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

# (height, width, batch, seed): the fast tier, several sizes, non-square and square.
DEFAULT_SIZES: Tuple[Tuple[int, int, int, int], ...] = ((192, 256, 2, 11), (224, 224, 1, 12))
# Larger sizes for the slow tier and the command's --size presets.
SLOW_SIZES: Tuple[Tuple[int, int, int, int], ...] = ((288, 512, 1, 13), (480, 640, 1, 14), (720, 1280, 1, 15))


@dataclass
class Probe:
    name: str
    src: np.ndarray  # (B, 3, H, W) float32
    bgr: np.ndarray
    builtin: bool = False  # a built-in synthetic probe (may be replaced by a larger one a file needs)
    seed: int = 0

    @property
    def batch(self) -> int:
        return int(self.src.shape[0])

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.src.shape[2]), int(self.src.shape[3])

    def describe(self) -> str:
        h, w = self.size
        return f"{self.name} ({self.batch}x3x{h}x{w})"


def synthetic_probe(height: int, width: int, batch: int = 1, seed: int = 0, builtin: bool = True) -> Probe:
    """`batch` composites from `SyntheticMattingSet(batch, height, width, seed)`."""
    if height < 4 or width < 4:
        raise ValueError(f"probe sizes must be at least 4x4; got {height}x{width}")
    import hashlib
    from importlib import metadata

    from bgmv2.data import synthetic

    from .reference_cache import cached, source_hash

    def make():
        data = synthetic.SyntheticMattingSet(batch, height, width, seed=seed)
        items = [data[i] for i in range(batch)]
        src = np.stack([item["src"].numpy() for item in items]).astype(np.float32)
        bgr = np.stack([item["bgr"].numpy() for item in items]).astype(np.float32)
        return {"src": np.clip(src, 0, 1), "bgr": np.clip(bgr, 0, 1)}

    try:
        photos = metadata.version("scikit-image")  # its sample photographs are the textures
    except metadata.PackageNotFoundError:
        photos = "none"
    text = f"probe|{height}|{width}|{batch}|{seed}|{source_hash(synthetic)}|{photos}"
    found = cached(hashlib.sha256(text.encode()).hexdigest(), make)  # the photographs take seconds to decode
    return Probe(f"synthetic {height}x{width} seed {seed}", found["src"], found["bgr"], builtin, seed)


def default_probes(sizes: Sequence[Tuple[int, int, int, int]] = DEFAULT_SIZES) -> List[Probe]:
    return [synthetic_probe(h, w, b, s) for h, w, b, s in sizes]
