"""Inputs for parity checks: built-in probes that look like real use, or the user's own pictures.

Built-in probes are `bgmv2.data.synthetic.SyntheticMattingSet` samples: a subject with soft
edges (1-8 px), holes and hair-like strands, coloured from photographs or texture, over a
photographic or textured background, with a shadow, sensor noise and a background shot that is
shifted, rotated, re-exposed and re-noised a little, as a real clean plate is. Deterministic by seed.
The shipped model was trained on this distribution, so its alpha on them is a real matte (soft
edges, thin strands), not the all-zero alpha a model gives on inputs it does not understand.

Every input is float32 NCHW in [0, 1] with height and width multiples of 4 (user pictures lose up
to 3 rows and columns at the bottom and right, so both runs see exactly the same pixels).
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
    if height % 4 or width % 4:
        raise ValueError(f"probe sizes must be multiples of 4; got {height}x{width}")
    import hashlib
    from bgmv2.data import synthetic
    from .reference_cache import cached, source_hash

    def make():
        data = synthetic.SyntheticMattingSet(batch, height, width, seed=seed)
        items = [data[i] for i in range(batch)]
        src = np.stack([item["src"].numpy() for item in items]).astype(np.float32)
        bgr = np.stack([item["bgr"].numpy() for item in items]).astype(np.float32)
        return {"src": np.clip(src, 0, 1), "bgr": np.clip(bgr, 0, 1)}

    from importlib import metadata
    try:
        photos = metadata.version("scikit-image")  # its sample photographs are the textures
    except metadata.PackageNotFoundError:
        photos = "none"
    text = f"probe|{height}|{width}|{batch}|{seed}|{source_hash(synthetic)}|{photos}"
    entry = hashlib.sha256(text.encode()).hexdigest()
    found = cached(entry, make)  # built once, then read back (the photographs take seconds to decode)
    return Probe(f"synthetic {height}x{width} seed {seed}", found["src"], found["bgr"], builtin, seed)


def default_probes(sizes: Sequence[Tuple[int, int, int, int]] = DEFAULT_SIZES) -> List[Probe]:
    return [synthetic_probe(h, w, b, s) for h, w, b, s in sizes]


def read_picture(path: str) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1] from an image file (EXIF orientation applied)."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ValueError("reading pictures needs Pillow: pip install Pillow") from None
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable picture ({error})") from None
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def crop_to_4(x: np.ndarray) -> np.ndarray:
    """(..., H, W) cut at the bottom and right to multiples of 4."""
    height, width = x.shape[-2] - x.shape[-2] % 4, x.shape[-1] - x.shape[-1] % 4
    return np.ascontiguousarray(x[..., :height, :width])


def picture_probe(src_path: str, bgr_path: str, max_side: Optional[int] = None) -> Probe:
    """A probe from the user's picture and background shot (same size; `max_side` shrinks both)."""
    src, bgr = read_picture(src_path), read_picture(bgr_path)
    if src.shape != bgr.shape:
        raise ValueError(f"{src_path} is {src.shape[2]}x{src.shape[1]} but {bgr_path} is {bgr.shape[2]}x{bgr.shape[1]}: "
                         "the background shot must have the picture's size")
    if max_side and max(src.shape[1:]) > max_side:
        src, bgr = shrink(src, max_side), shrink(bgr, max_side)
    if min(src.shape[1:]) < 16:
        raise ValueError(f"{src_path} is {src.shape[2]}x{src.shape[1]}: too small for the model (16 pixels at least)")
    import os
    return Probe(os.path.basename(src_path), crop_to_4(src)[None], crop_to_4(bgr)[None])


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    from PIL import Image
    height, width = image.shape[1:]
    scale = max_side / max(height, width)
    size = (max(4, round(width * scale)), max(4, round(height * scale)))
    picture = Image.fromarray((image.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)).resize(size, Image.BILINEAR)
    return np.asarray(picture, dtype=np.float32).transpose(2, 0, 1) / 255.0
