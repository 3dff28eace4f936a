"""Make a background shot differ from the background behind the subject the way real ones do.

A real clean plate is taken at another moment: the camera moved a little (sub-pixel to a few pixels,
a fraction of a degree), auto exposure and white balance changed, sensor noise is independent, and
the subject's shadow is only in the frame with the subject. All functions take a `torch.Generator`
so a sample is a pure function of its seed.
"""
import math

import torch
from torch.nn import functional as F


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def small_warp(image: torch.Tensor, gen: torch.Generator, shift: float = 2.0, degrees: float = 0.5,
               zoom: float = 0.005) -> torch.Tensor:
    """(3, H, W) image moved by a random similarity transform of a few pixels (border replicated)."""
    _, h, w = image.shape
    angle = math.radians(uniform(gen, -degrees, degrees))
    scale = 1 + uniform(gen, -zoom, zoom)
    tx, ty = uniform(gen, -shift, shift) * 2 / w, uniform(gen, -shift, shift) * 2 / h
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    theta = torch.tensor([[cos, -sin * h / w, tx], [sin * w / h, cos, ty]], dtype=image.dtype)
    grid = F.affine_grid(theta[None], [1, 3, h, w], align_corners=False)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def exposure_and_white_balance(image: torch.Tensor, gen: torch.Generator, gain: float = 0.08,
                               balance: float = 0.04, gamma: float = 0.08) -> torch.Tensor:
    """Global gain, per-channel white-balance gains and a gamma change."""
    g = 1 + uniform(gen, -gain, gain)
    wb = 1 + (torch.rand(3, 1, 1, generator=gen) * 2 - 1) * balance
    power = 1 + uniform(gen, -gamma, gamma)
    return (image.clamp(0, 1) ** power * g * wb).clamp(0, 1)


def sensor_noise(image: torch.Tensor, gen: torch.Generator, sigma: float) -> torch.Tensor:
    return (image + sigma * torch.randn(image.shape, generator=gen)).clamp(0, 1)


def cast_shadow(background: torch.Tensor, alpha: torch.Tensor, gen: torch.Generator,
                strength: float = 0.35) -> torch.Tensor:
    """The background darkened by a soft, offset copy of the subject's alpha (only the src frame has it)."""
    _, h, w = background.shape
    dy, dx = int(uniform(gen, -0.05, 0.15) * h), int(uniform(gen, -0.15, 0.15) * w)
    shadow = torch.roll(alpha, shifts=(dy, dx), dims=(1, 2))
    radius = max(1, int(uniform(gen, 0.01, 0.04) * max(h, w)))
    shadow = F.avg_pool2d(shadow[None], 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)[0]
    return background * (1 - uniform(gen, 0.0, strength) * shadow)


def background_shot(background: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The clean plate a user would capture of `background`: moved, re-exposed, with its own noise."""
    shot = small_warp(background, gen)
    shot = exposure_and_white_balance(shot, gen)
    return sensor_noise(shot, gen, uniform(gen, 0.0, 0.02))
