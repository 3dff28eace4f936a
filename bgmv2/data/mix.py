"""A training mix: samples drawn from several generated sets, cut around their fine detail.

Sample i picks its source set with probability proportional to the set's weight (the choice depends
only on (seed, i)), asks that set for a sample at `crop_scale` times the crop size (the synthetic set
at the crop size: its strands are costly to draw larger) and cuts the crop with `crops.detail_crop`.
With `reuse` n, each generated sample gives n crops (every other one mirrored), `SPREAD` indices
apart so that they fall in different batches; the last samples are kept in memory, which saves n-1
of n generations (the result never depends on the cache). Sources: `synthetic` (SyntheticMattingSet
with its strands marked), `strands` (StrandMattingSet, mixed recipe) and `flyaways` (its flyaways
recipe). Every sample carries `src`, `bgr`, `pha`, `fgr` and `strands`.
"""
import math
from collections import OrderedDict
from typing import Dict

import torch

from .crops import detail_crop, scaled
from .strands import StrandMattingSet
from .synthetic_strands import SyntheticWithStrands

SOURCES = ("synthetic", "strands", "flyaways")
SALT = 3 << 40
SPREAD = 8  # indices between two crops of one generated sample


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
                 crop_scale: float = 1.25, focus: float = 0.8, reuse: int = 1):
        self.weights = parse_mix(mix)
        if not 1.0 <= crop_scale <= 4.0:
            raise ValueError(f"crop_scale={crop_scale}: give a number from 1 to 4")
        if reuse < 1:
            raise ValueError(f"reuse={reuse}: give 1 or more")
        self.length, self.height, self.width, self.seed, self.focus = length, height, width, seed, focus
        self.reuse, self.cache = reuse, OrderedDict()
        ch, cw = scaled((height, width), crop_scale)
        # the synthetic set's own strands cost 4x-supersampled canvases: it is made at the crop size
        self.sources = {name: source_set(name, length, *((height, width) if name == "synthetic" else (ch, cw)), seed)
                        for name in self.weights}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        block, place = divmod(index, SPREAD * self.reuse)
        copy, made = place // SPREAD, block * SPREAD + place % SPREAD
        gen = torch.Generator().manual_seed(SALT + self.seed * 1_000_003 + made)
        sample = self.generated(made, gen)
        if copy:
            gen = torch.Generator().manual_seed(SALT + self.seed * 1_000_003 + made + copy * (1 << 32))
            if copy % 2:
                sample = {k: v.flip(-1) for k, v in sample.items()}
        return detail_crop(sample, self.height, self.width, gen, self.focus)

    def generated(self, made: int, gen: torch.Generator) -> Dict[str, torch.Tensor]:
        """Generated sample `made` (its source drawn from `gen`), from the cache when it is there."""
        names = list(self.weights)
        weights = torch.tensor([self.weights[n] for n in names])
        name = names[int(torch.multinomial(weights, 1, generator=gen))]
        if made not in self.cache:
            self.cache[made] = self.sources[name][made]
            while len(self.cache) > SPREAD + 1:
                self.cache.popitem(last=False)
        return self.cache[made]
