"""`SyntheticMattingSet`'s samples with their strands' pixels: the same numbers, plus `strands`.

The synthetic set draws hair-like strands over its subject but keeps only the final alpha. This module
repeats its steps call for call (same generator draws, same order, so `src`, `bgr`, `pha`, `fgr` are
equal bit for bit; tests/test_strand_data.py holds it to that) and also keeps the subject's alpha
before the strands, so a pixel belongs to the strands where they raise alpha by `STRAND_GAIN` or more.
It gives the bundled sample (seed 0, 360x640) and the held-out set (seed 777) a strand ground truth.
"""
from typing import Dict

import torch

from .background_shot import background_shot, cast_shadow, sensor_noise, uniform
from .strands import STRAND_GAIN
from .synthetic import SyntheticMattingSet, hair_strands, motion_blur, photo_crop, procedural_texture, soft_edge, \
    star_shape


def subject_layers(gen: torch.Generator, h: int, w: int):
    """`synthetic.subject`, step for step, returning (alpha, colour, alpha without strands)."""
    field = star_shape(gen, h, w, size=uniform(gen, 0.15, 0.35))
    for _ in range(int(torch.randint(0, 3, (), generator=gen))):
        field = torch.maximum(field, star_shape(gen, h, w, size=uniform(gen, 0.08, 0.2)))
    alpha = soft_edge(field, uniform(gen, 1.0, 8.0))
    if uniform(gen, 0, 1) < 0.5:
        hole = soft_edge(star_shape(gen, h, w, size=uniform(gen, 0.03, 0.08)), uniform(gen, 1.0, 3.0))
        alpha = alpha * (1 - hole)
    count = int(torch.randint(0, 40, (), generator=gen))
    plain = alpha[None]
    alpha = torch.maximum(alpha, hair_strands(gen, h, w, alpha, count))[None]
    colour = photo_crop(gen, h, w) if uniform(gen, 0, 1) < 0.6 else procedural_texture(gen, h, w)
    if uniform(gen, 0, 1) < 0.25:
        length = int(torch.randint(2, 8, (), generator=gen))
        replay = torch.Generator().set_state(gen.get_state())  # the same blur direction for the plain alpha
        blurred_alpha = motion_blur(alpha, gen, length)
        colour = (motion_blur(colour * alpha, gen, length) / blurred_alpha.clamp(min=1e-4)).clamp(0, 1)
        alpha = blurred_alpha.clamp(0, 1)
        plain = motion_blur(plain, replay, length).clamp(0, 1)
    return alpha, colour, plain


class SyntheticWithStrands(SyntheticMattingSet):
    """`SyntheticMattingSet` whose samples also carry `strands` (1 where strands raise alpha by 0.1+)."""

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        h, w = self.height, self.width
        background = photo_crop(gen, h, w) if uniform(gen, 0, 1) < 0.7 else procedural_texture(gen, h, w)
        alpha, colour, plain = subject_layers(gen, h, w)
        behind = cast_shadow(background, alpha, gen)
        src = alpha * colour + (1 - alpha) * behind
        src = sensor_noise(src, gen, uniform(gen, 0.0, 0.02))
        return {"src": src, "bgr": background_shot(background, gen), "pha": alpha, "fgr": colour,
                "strands": (alpha - plain >= STRAND_GAIN).float()}
