"""Crops that centre on fine detail: strands first, then semi-transparent pixels, else anywhere.

Thin strands and soft edges are a sliver of a frame; a random crop mostly shows solid foreground and
plain background. `detail_crop` cuts a (height, width) window from a larger sample, centred (with
probability `focus`) on a random strand pixel when the sample marks strands, else on a random pixel
whose alpha is strictly between 0.02 and 0.98, so training sees the pixels that decide a matte's look.
"""
import math
from typing import Dict, Tuple

import torch

from .background_shot import uniform

SEMI_LOW, SEMI_HIGH = 0.02, 0.98
SALT = 5 << 40  # keeps the crops' draws apart from the samples'


def detail_pixels(sample: Dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 2) candidate centres: the strand pixels if any, else the semi-transparent ones (maybe none)."""
    if "strands" in sample and bool(sample["strands"].any()):
        return sample["strands"][0].nonzero()
    alpha = sample["pha"][0]
    return ((alpha > SEMI_LOW) & (alpha < SEMI_HIGH)).nonzero()


def detail_crop(sample: Dict[str, torch.Tensor], height: int, width: int, gen: torch.Generator,
                focus: float = 0.8) -> Dict[str, torch.Tensor]:
    """A (height, width) window of every picture in `sample` (all (C, H, W), H >= height, W >= width)."""
    _, h, w = sample["pha"].shape
    if h < height or w < width:
        raise ValueError(f"a {w}x{h} sample cannot give a {width}x{height} crop")
    centres = detail_pixels(sample) if uniform(gen, 0, 1) < focus else torch.zeros(0, 2)
    if len(centres):
        cy, cx = centres[int(torch.randint(len(centres), (), generator=gen))].tolist()
        top = min(max(0, cy - height // 2 + int(torch.randint(-height // 4, height // 4 + 1, (), generator=gen))), h - height)
        left = min(max(0, cx - width // 2 + int(torch.randint(-width // 4, width // 4 + 1, (), generator=gen))), w - width)
    else:
        top = int(torch.randint(h - height + 1, (), generator=gen))
        left = int(torch.randint(w - width + 1, (), generator=gen))
    return {k: v[:, top:top + height, left:left + width].contiguous() for k, v in sample.items()}


def scaled(size: Tuple[int, int], scale: float) -> Tuple[int, int]:
    """(height, width) times `scale`, rounded up to multiples of 4."""
    return tuple(int(math.ceil(s * scale / 4)) * 4 for s in size)


class DetailCrops(torch.utils.data.Dataset):
    """Another dataset's samples (larger than the crop), each cut by `detail_crop`; deterministic by (seed, i)."""

    def __init__(self, data: torch.utils.data.Dataset, height: int, width: int, seed: int = 0, focus: float = 0.8):
        self.data, self.height, self.width, self.seed, self.focus = data, height, width, seed, focus

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(SALT + self.seed * 1_000_003 + index)
        return detail_crop(self.data[index], self.height, self.width, gen, self.focus)
