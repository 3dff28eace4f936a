"""A matting set rich in thin strands, with the strands' pixels known: for training fine detail and
for measuring it.

Each sample: a soft-edged body (sometimes none) with hair growing out of its edge, loose strands and
crossing bundles, 0.5 to 3 px wide, curved, over busy backgrounds (photographs, textures, and thin
lines that belong to the background, so they are in the background shot too). Besides `src`, `bgr`,
`pha`, `fgr` a sample has `strands`: 1 on the pixels whose alpha the strands raise by 0.1 or more.
Deterministic by (seed, index), like `SyntheticMattingSet`, whose samples it leaves untouched.

Recipes: `mixed` (the variety above, for training and held-out figures) and `flyaways` (photographs,
one soft body, twelve 1-px strands at 60 % opacity: the hidden composites issue 21 describes).
"""
import math
from typing import Dict, List

import torch
from torch.nn import functional as F

from .background_shot import background_shot, sensor_noise, uniform
from .strand_drawing import Strand, composite_strands, curve, draw_on_picture
from .synthetic import photo_crop, procedural_texture, soft_edge, star_shape

RECIPES = ("mixed", "flyaways")
STRAND_GAIN = 0.1  # a pixel belongs to the strands when they raise its alpha by this much
SALT = 1 << 40  # keeps these generators' seeds apart from SyntheticMattingSet's


def pick(gen: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (), generator=gen))


def strand_width(gen: torch.Generator) -> float:
    r = uniform(gen, 0, 1)
    if r < 0.15:
        return uniform(gen, 0.5, 1.0)
    if r < 0.55:
        return 1.0
    return uniform(gen, 1.0, 2.0) if r < 0.8 else uniform(gen, 2.0, 3.0)


def strand_colour(gen: torch.Generator, near: torch.Tensor) -> torch.Tensor:
    """Like the body's colour at the root, a hair tone, or any colour."""
    r = uniform(gen, 0, 1)
    if r < 0.35:
        return (near + 0.15 * (torch.rand(3, generator=gen) - 0.5)).clamp(0, 1)
    if r < 0.7:
        tone = torch.tensor([0.35, 0.22, 0.12]) * uniform(gen, 0.2, 2.6)
        return (tone + 0.05 * torch.rand(3, generator=gen)).clamp(0, 1)
    return torch.rand(3, generator=gen)


def make_strand(gen, y, x, heading, length, width, opacity, colour, aliased=False, taper=True) -> Strand:
    points = curve(gen, y, x, heading, length, curl=uniform(gen, -3, 3), wiggle=uniform(gen, 0, 0.4))
    n = len(points)
    fade = torch.ones(n)
    if taper and uniform(gen, 0, 1) < 0.4:
        fade = torch.linspace(1, uniform(gen, 0.3, 1.0), n)
    widths = width * fade if not aliased else torch.ones(n)
    return Strand(points, widths.clamp(min=0.3), opacity * fade, colour, aliased)


def edge_points(alpha: torch.Tensor) -> torch.Tensor:
    """(N, 2) pixels on the body's edge (alpha between 0.3 and 0.7)."""
    return ((alpha > 0.3) & (alpha < 0.7)).nonzero().float()


def grown(gen, alpha, colour, count: int, min_side: int, width=None, opacity=None, aliased=None) -> List[Strand]:
    """Strands growing out of the body's edge, heading away from its centre."""
    edge = edge_points(alpha)
    if not len(edge) or count == 0:
        return []
    centre = alpha.nonzero().float().mean(dim=0)
    strands = []
    for _ in range(count):
        y, x = edge[pick(gen, len(edge))].tolist()
        heading = math.atan2(y - centre[0], x - centre[1]) + uniform(gen, -0.9, 0.9)
        w = width if width is not None else strand_width(gen)
        o = opacity if opacity is not None else (0.6 if uniform(gen, 0, 1) < 0.25 else uniform(gen, 0.3, 1.0))
        flat = aliased if aliased is not None else (w == 1.0 and uniform(gen, 0, 1) < 0.3)
        near = colour[:, int(y), int(x)]
        strands.append(make_strand(gen, y + 0.5, x + 0.5, heading, uniform(gen, 0.05, 0.45) * min_side, w, o,
                                   strand_colour(gen, near), flat))
    return strands


def loose(gen, h: int, w: int, count: int) -> List[Strand]:
    """Strands anywhere in the frame, some in crossing bundles."""
    strands = []
    for _ in range(count):
        y, x = uniform(gen, 0, h), uniform(gen, 0, w)
        heading, length = uniform(gen, 0, 2 * math.pi), uniform(gen, 0.1, 0.6) * min(h, w)
        colour = strand_colour(gen, torch.rand(3, generator=gen))
        members = 1 if uniform(gen, 0, 1) < 0.6 else 2 + pick(gen, 6)
        for _ in range(members):
            width = strand_width(gen)
            strands.append(make_strand(gen, y + uniform(gen, -4, 4), x + uniform(gen, -4, 4),
                                       heading + uniform(gen, -0.3, 0.3), length * uniform(gen, 0.7, 1.0),
                                       width, uniform(gen, 0.3, 1.0), colour, width == 1.0 and uniform(gen, 0, 1) < 0.3))
    return strands


def busy_background(gen, h: int, w: int) -> torch.Tensor:
    picture = photo_crop(gen, h, w) if uniform(gen, 0, 1) < 0.8 else procedural_texture(gen, h, w)
    if uniform(gen, 0, 1) < 0.4:  # thin lines that belong to the background (wires, branches, hair on a coat)
        lines = [make_strand(gen, uniform(gen, 0, h), uniform(gen, 0, w), uniform(gen, 0, 2 * math.pi),
                             uniform(gen, 0.1, 0.8) * min(h, w), strand_width(gen), uniform(gen, 0.5, 1.0),
                             torch.rand(3, generator=gen)) for _ in range(2 + pick(gen, 14))]
        picture = draw_on_picture(lines, picture)
    return picture


def body(gen, h: int, w: int, edge: float) -> torch.Tensor:
    """(1, H, W) alpha of a soft-edged body, `edge` px of ramp."""
    field = star_shape(gen, h, w, size=uniform(gen, 0.12, 0.35))
    for _ in range(pick(gen, 3)):
        field = torch.maximum(field, star_shape(gen, h, w, size=uniform(gen, 0.06, 0.2)))
    return soft_edge(field, edge)[None]


def soft_shadow(background: torch.Tensor, alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The background darkened by a blurred, offset copy of alpha (worked out at quarter resolution)."""
    _, h, w = background.shape
    small = F.avg_pool2d(alpha[None], 4, ceil_mode=True)
    dy, dx = int(uniform(gen, -0.05, 0.15) * small.shape[-2]), int(uniform(gen, -0.15, 0.15) * small.shape[-1])
    small = torch.roll(small, shifts=(dy, dx), dims=(2, 3))
    radius = max(1, int(uniform(gen, 0.01, 0.04) * max(small.shape[-2:])))
    small = F.avg_pool2d(small, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    shadow = F.interpolate(small, (h, w), mode="bilinear", align_corners=False)[0]
    return background * (1 - uniform(gen, 0.0, 0.35) * shadow)


def strand_sample(gen: torch.Generator, h: int, w: int, recipe: str = "mixed") -> Dict[str, torch.Tensor]:
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe!r}; choose one of {', '.join(RECIPES)}")
    flyaways = recipe == "flyaways"
    background = photo_crop(gen, h, w) if flyaways else busy_background(gen, h, w)
    colour = photo_crop(gen, h, w) if uniform(gen, 0, 1) < 0.6 else procedural_texture(gen, h, w)
    has_body = flyaways or uniform(gen, 0, 1) < 0.9
    alpha = body(gen, h, w, uniform(gen, 4.0, 16.0) if flyaways else uniform(gen, 1.0, 12.0)) if has_body \
        else torch.zeros(1, h, w)
    if flyaways:
        strands = grown(gen, alpha[0], colour, 12, min(h, w), width=1.0, opacity=0.6,
                        aliased=uniform(gen, 0, 1) < 0.5)
    else:
        strands = grown(gen, alpha[0], colour, pick(gen, 41), min(h, w)) + loose(gen, h, w, pick(gen, 6))
    pha, fgr = composite_strands(strands, alpha, colour)
    behind = soft_shadow(background, pha, gen)
    src = sensor_noise(pha * fgr + (1 - pha) * behind, gen, uniform(gen, 0.0, 0.02))
    strand_pixels = (pha - alpha >= STRAND_GAIN).float()
    return {"src": src, "bgr": background_shot(background, gen), "pha": pha, "fgr": fgr, "strands": strand_pixels}


class StrandMattingSet(torch.utils.data.Dataset):
    """`length` samples of (height, width) by `recipe`; sample i depends only on (seed, i)."""

    def __init__(self, length: int, height: int, width: int, seed: int = 0, recipe: str = "mixed"):
        if recipe not in RECIPES:
            raise ValueError(f"recipe={recipe!r}; choose one of {', '.join(RECIPES)}")
        self.length, self.height, self.width, self.seed, self.recipe = length, height, width, seed, recipe

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        salt = SALT * (1 + RECIPES.index(self.recipe))
        gen = torch.Generator().manual_seed(salt + self.seed * 1_000_003 + index)
        return strand_sample(gen, self.height, self.width, self.recipe)
