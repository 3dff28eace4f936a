"""A training mix: samples drawn from several generated sets, cut around their fine detail.

Sample i picks its source set with probability proportional to the set's weight (the choice depends
only on (seed, i)), asks that set for its sample i at `crop_scale` times the crop size, and cuts the
crop with `crops.detail_crop`. Sources: `synthetic` (SyntheticMattingSet with its strands marked),
`strands` (StrandMattingSet, mixed recipe) and `flyaways` (its flyaways recipe). Every sample carries
`src`, `bgr`, `pha`, `fgr` and `strands`.
"""
import math
from typing import Dict

import torch

from .crops import detail_crop, scaled
from .strands import StrandMattingSet
from .synthetic_strands import SyntheticWithStrands

SOURCES = ("synthetic", "strands", "flyaways")
SALT = 3 << 40


def parse_mix(text: str) -> Dict[str, float]:
    """'synthetic=0.4,strands=0.5,flyaways=0.1' -> {name: weight}; ValueError with the rule otherwise."""
    weights = {}
    for part in str(text).split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value) if value else 1.0
        except ValueError:
            weight = -1.0
        if name not in SOURCES or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{text!r} is not a mix: give NAME=WEIGHT pairs separated by commas, NAME one of "
                             f"{', '.join(SOURCES)}, e.g. synthetic=0.4,strands=0.6")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ValueError(f"{text!r}: at least one weight must be above 0")
    return weights


def source_set(name: str, length: int, height: int, width: int, seed: int) -> torch.utils.data.Dataset:
    if name == "synthetic":
        return SyntheticWithStrands(length, height, width, seed)
    return StrandMattingSet(length, height, width, seed, "mixed" if name == "strands" else name)


class MattingMix(torch.utils.data.Dataset):
    def __init__(self, length: int, height: int, width: int, seed: int = 0, mix: str = "synthetic=0.4,strands=0.6",
                 crop_scale: float = 1.25, focus: float = 0.8):
        self.weights = parse_mix(mix)
        if not 1.0 <= crop_scale <= 4.0:
            raise ValueError(f"crop_scale={crop_scale}: give a number from 1 to 4")
        self.length, self.height, self.width, self.seed, self.focus = length, height, width, seed, focus
        ch, cw = scaled((height, width), crop_scale)
        self.sources = {name: source_set(name, length, ch, cw, seed) for name in self.weights}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(SALT + self.seed * 1_000_003 + index)
        names = list(self.weights)
        weights = torch.tensor([self.weights[n] for n in names])
        name = names[int(torch.multinomial(weights, 1, generator=gen))]
        return detail_crop(self.sources[name][index], self.height, self.width, gen, self.focus)
