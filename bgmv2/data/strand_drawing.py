"""Thin strands (hair, fur, threads) drawn with their exact coverage, composited one over another.

A strand is a smooth curve given as points 0.25 px apart, with a width (0.5 to 3 px) and an opacity
per point. Its coverage of a pixel is the overlap of the pixel's 1-px box with the strand's cross
section (width w at distance d from the pixel centre: min(d + w/2, 1/2) - max(d - w/2, -1/2)), the
largest over the strand's points, times the opacity; an `aliased` strand covers the pixels its
points fall in, fully (a 1-px chain, as a line drawn without antialiasing). Strands are composited
with `over`, so crossing strands add up as real ones do. Work is proportional to the strands'
length, not to the frame: fast enough to draw dozens per training sample on one core.
"""
import math
from dataclasses import dataclass
from typing import List, Tuple

import torch

from .background_shot import uniform

SPACING = 0.25  # px between the points of a strand


@dataclass
class Strand:
    points: torch.Tensor  # (N, 2) y, x in pixel units (pixel (i, j) covers [i, i+1) x [j, j+1))
    width: torch.Tensor  # (N,) px
    opacity: torch.Tensor  # (N,) in [0, 1]
    colour: torch.Tensor  # (3,) in [0, 1]
    aliased: bool = False


def curve(gen: torch.Generator, y: float, x: float, heading: float, length: float,
          curl: float = 0.0, wiggle: float = 0.0) -> torch.Tensor:
    """(N, 2) points of a smooth curve from (y, x): the heading turns by `curl` radians over the whole
    length and sways by up to `wiggle` radians (a sine of random period)."""
    steps = max(2, int(length / SPACING))
    t = torch.linspace(0, 1, steps)
    period = uniform(gen, 0.3, 1.5)
    phase = uniform(gen, 0, 2 * math.pi)
    angle = heading + curl * t + wiggle * torch.sin(2 * math.pi * t / period + phase)
    dy, dx = torch.sin(angle) * SPACING, torch.cos(angle) * SPACING
    return torch.stack([y + torch.cumsum(dy, 0) - dy[0], x + torch.cumsum(dx, 0) - dx[0]], dim=1)


def box_overlap(distance: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Share of a 1-px box covered by a band `width` wide whose centre is `distance` from the box's."""
    return ((distance + width / 2).clamp(max=0.5) - (distance - width / 2).clamp(min=-0.5)).clamp(0, 1)


def coverage(strand: Strand, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(flat pixel indices, coverage) of one strand: each touched pixel once, coverage in (0, 1]."""
    points = strand.points
    if strand.aliased:
        cells = points.floor().long()
        value = strand.opacity
    else:
        reach = int(math.ceil(float(strand.width.max()) / 2 + 0.75))
        offsets = torch.arange(-reach, reach + 1)
        oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
        base = points.floor().long()
        cells = (base[:, None, :] + torch.stack([oy.flatten(), ox.flatten()], dim=1)[None]).reshape(-1, 2)
        centre = cells.float() + 0.5
        repeat = oy.numel()
        distance = (centre - points.repeat_interleave(repeat, 0)).norm(dim=1)
        value = box_overlap(distance, strand.width.repeat_interleave(repeat)) * strand.opacity.repeat_interleave(repeat)
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < h) & (cells[:, 1] >= 0) & (cells[:, 1] < w) & (value > 0)
    index = cells[inside, 0] * w + cells[inside, 1]
    value = value[inside]
    if index.numel() == 0:
        return index, value
    unique, inverse = torch.unique(index, return_inverse=True)
    best = torch.zeros(len(unique)).scatter_reduce_(0, inverse, value, "amax", include_self=False)
    return unique, best


def composite_strands(strands: List[Strand], alpha: torch.Tensor, colour: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Strands drawn `over` a layer (alpha (1, H, W), colour (3, H, W)), in order; the new layer."""
    _, h, w = alpha.shape
    a = alpha.reshape(-1).clone()
    premultiplied = (colour * alpha).reshape(3, -1).clone()
    for strand in strands:
        index, value = coverage(strand, h, w)
        if index.numel() == 0:
            continue
        premultiplied[:, index] = value * strand.colour[:, None] + (1 - value) * premultiplied[:, index]
        a[index] = value + (1 - value) * a[index]
    colour_out = torch.where(a > 1e-6, premultiplied / a.clamp(min=1e-6), colour.reshape(3, -1))
    return a.reshape(1, h, w).clamp(0, 1), colour_out.reshape(3, h, w).clamp(0, 1)


def draw_on_picture(strands: List[Strand], picture: torch.Tensor) -> torch.Tensor:
    """(3, H, W) picture with the strands painted into it (lines that belong to the background)."""
    cover, colour = composite_strands(strands, torch.zeros(1, *picture.shape[1:]), picture)
    return cover * colour + (1 - cover) * picture
