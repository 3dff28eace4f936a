"""A synthetic matting training set, generated here, deterministic by seed (no downloads).

Each sample composites a foreground over a background and returns what a user would give the model
(`src`, and a background shot `bgr` that differs the way real ones do) and the ground truth (`pha`,
`fgr`). Foregrounds: star-shaped blobs with soft edges (1 to 8 px), holes, hair-like thin strands and
sometimes motion blur, coloured with photo crops or smooth texture. Backgrounds: crops of the
photographs scikit-image ships (when installed) or procedural texture. The subject casts a soft
shadow in `src` only.

It lives in `converters/` (beside `probe.py`) because both the parity probes and `bgmv2 train` use
it, and the library layers never import `scripts/`. It stays in PyTorch (not numpy): the shipped
model was trained on exactly these samples, and a rewrite would change every one of them.
"""
import math
from functools import lru_cache
from typing import Dict, List

import torch
from torch.nn import functional as F

from .background_shot import background_shot, cast_shadow, sensor_noise, uniform

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "colorwheel", "brick", "grass", "gravel")


@lru_cache(maxsize=1)
def photo_pool() -> List[torch.Tensor]:
    """(3, H, W) float photographs from scikit-image's bundled data; empty without scikit-image."""
    try:
        import skimage.data
    except ImportError:
        return []
    photos = []
    for name in PHOTOS:
        image = torch.from_numpy(getattr(skimage.data, name)()).float() / 255
        if image.dim() == 2:
            image = image[None].expand(3, -1, -1) * torch.tensor([1.0, 0.9, 0.8]).view(3, 1, 1)
        else:
            image = image[..., :3].permute(2, 0, 1)
        photos.append(image.contiguous())
    photos += [image.flip(-1) for image in photos[:2]]
    photos.append(torch.from_numpy(skimage.data.stereo_motorcycle()[0]).float().permute(2, 0, 1) / 255)
    return photos


def smooth_noise(gen: torch.Generator, channels: int, h: int, w: int, cells: int) -> torch.Tensor:
    coarse = torch.rand(1, channels, max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)), generator=gen)
    return F.interpolate(coarse, (h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def procedural_texture(gen: torch.Generator, h: int, w: int) -> torch.Tensor:
    """Colourful multi-octave noise with optional stripes, (3, H, W) in [0, 1]."""
    image = sum(amp * smooth_noise(gen, 3, h, w, cells) for cells, amp in ((3, 0.5), (12, 0.3), (48, 0.2)))
    if uniform(gen, 0, 1) < 0.5:
        angle = uniform(gen, 0, math.pi)
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        period = uniform(gen, 4, 40)
        stripes = torch.sin((x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period)
        image = image + 0.15 * stripes * torch.rand(3, 1, 1, generator=gen)
    return image.clamp(0, 1)


def photo_crop(gen: torch.Generator, h: int, w: int) -> torch.Tensor:
    """A random crop of a random photo, rescaled to (3, H, W); texture when no photos are available."""
    pool = photo_pool()
    if not pool:
        return procedural_texture(gen, h, w)
    photo = pool[int(torch.randint(len(pool), (), generator=gen))]
    _, ph, pw = photo.shape
    scale = uniform(gen, 0.3, 1.0)
    ch, cw = max(8, int(ph * scale)), max(8, int(pw * scale))
    ch, cw = min(ch, ph), min(cw, pw)
    top = int(torch.randint(ph - ch + 1, (), generator=gen))
    left = int(torch.randint(pw - cw + 1, (), generator=gen))
    crop = photo[:, top:top + ch, left:left + cw]
    if uniform(gen, 0, 1) < 0.5:
        crop = crop.flip(-1)
    return F.interpolate(crop[None], (h, w), mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


def star_shape(gen: torch.Generator, h: int, w: int, size: float) -> torch.Tensor:
    """Signed distance-like field (pixels, > 0 inside) of a random star-shaped blob."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cy, cx = uniform(gen, 0.25, 0.75) * h, uniform(gen, 0.25, 0.75) * w
    radius = size * min(h, w) * uniform(gen, 0.6, 1.0)
    dy, dx = y - cy, x - cx
    theta = torch.atan2(dy, dx)
    wobble = 1.0
    for k in range(2, 7):
        wobble = wobble + uniform(gen, 0, 0.25 / k) * torch.sin(k * theta + uniform(gen, 0, 2 * math.pi))
    stretch = uniform(gen, 0.6, 1.4)
    distance = torch.sqrt((dy * stretch) ** 2 + (dx / stretch) ** 2)
    return radius * wobble - distance


def soft_edge(field: torch.Tensor, width: float) -> torch.Tensor:
    """Alpha from a signed distance: a linear ramp `width` pixels wide, smoothed."""
    t = (field / width + 0.5).clamp(0, 1)
    return t * t * (3 - 2 * t)


def hair_strands(gen: torch.Generator, h: int, w: int, inside: torch.Tensor, count: int,
                 supersample: int = 4) -> torch.Tensor:
    """Thin antialiased curves (about 0.25 to 1.25 px wide) growing out of the shape's boundary.

    Drawn on a `supersample`x finer grid (points 1 fine pixel apart, widened by max-pooling to one of
    three widths), then area-averaged down, so coverage is fractional as in real hair.
    """
    boundary = ((inside > 0.3) & (inside < 0.7)).nonzero()
    s = supersample
    widths = (1, 3, 5)  # fine pixels
    canvases = torch.zeros(len(widths), h * s, w * s)
    for _ in range(count if len(boundary) else 0):
        py, px = boundary[int(torch.randint(len(boundary), (), generator=gen))].tolist()
        angle, length = uniform(gen, 0, 2 * math.pi), uniform(gen, 0.05, 0.25) * min(h, w)
        curl = uniform(gen, -3, 3) / max(length, 1)
        width = int(torch.randint(len(widths), (), generator=gen))
        opacity = uniform(gen, 0.4, 1.0)
        steps = max(2, int(length * s))
        heading = angle + curl * torch.linspace(0, length, steps)
        ys = ((py + 0.5) * s + torch.cumsum(torch.sin(heading), 0)).long()
        xs = ((px + 0.5) * s + torch.cumsum(torch.cos(heading), 0)).long()
        keep = (ys >= 0) & (ys < h * s) & (xs >= 0) & (xs < w * s)
        canvas = canvases[width]
        canvas[ys[keep], xs[keep]] = torch.maximum(canvas[ys[keep], xs[keep]], torch.tensor(opacity))
    widened = [F.max_pool2d(canvases[i][None, None], k, stride=1, padding=k // 2)[0, 0] if k > 1 else canvases[i]
               for i, k in enumerate(widths)]
    fine = torch.stack(widened).amax(dim=0)
    return F.avg_pool2d(fine[None, None], s)[0, 0]


def motion_blur(image: torch.Tensor, gen: torch.Generator, length: int) -> torch.Tensor:
    """(C, H, W) blurred along a random direction by a line kernel `length` px long."""
    angle = uniform(gen, 0, math.pi)
    size = 2 * length + 1
    coords = torch.arange(size, dtype=torch.float32) - length
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    kernel = ((1 - across.abs()).clamp(min=0) * (along.abs() <= length)).float()
    kernel = (kernel / kernel.sum()).expand(image.shape[0], 1, size, size)
    return F.conv2d(image[None], kernel, padding=length, groups=image.shape[0])[0]


def subject(gen: torch.Generator, h: int, w: int):
    """(alpha (1, H, W), foreground colour (3, H, W)) of one synthetic subject."""
    field = star_shape(gen, h, w, size=uniform(gen, 0.15, 0.35))
    for _ in range(int(torch.randint(0, 3, (), generator=gen))):
        field = torch.maximum(field, star_shape(gen, h, w, size=uniform(gen, 0.08, 0.2)))
    alpha = soft_edge(field, uniform(gen, 1.0, 8.0))
    if uniform(gen, 0, 1) < 0.5:  # a hole through the subject
        hole = soft_edge(star_shape(gen, h, w, size=uniform(gen, 0.03, 0.08)), uniform(gen, 1.0, 3.0))
        alpha = alpha * (1 - hole)
    count = int(torch.randint(0, 40, (), generator=gen))
    alpha = torch.maximum(alpha, hair_strands(gen, h, w, alpha, count))[None]
    colour = photo_crop(gen, h, w) if uniform(gen, 0, 1) < 0.6 else procedural_texture(gen, h, w)
    if uniform(gen, 0, 1) < 0.25:  # motion blur, premultiplied so colours stay right
        length = int(torch.randint(2, 8, (), generator=gen))
        blurred_alpha = motion_blur(alpha, gen, length)
        colour = (motion_blur(colour * alpha, gen, length) / blurred_alpha.clamp(min=1e-4)).clamp(0, 1)
        alpha = blurred_alpha.clamp(0, 1)
    return alpha, colour


class SyntheticMattingSet(torch.utils.data.Dataset):
    """`length` samples of (height, width); sample i depends only on (seed, i)."""

    def __init__(self, length: int, height: int, width: int, seed: int = 0):
        self.length, self.height, self.width, self.seed = length, height, width, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        h, w = self.height, self.width
        background = photo_crop(gen, h, w) if uniform(gen, 0, 1) < 0.7 else procedural_texture(gen, h, w)
        alpha, colour = subject(gen, h, w)
        behind = cast_shadow(background, alpha, gen)
        src = alpha * colour + (1 - alpha) * behind
        src = sensor_noise(src, gen, uniform(gen, 0.0, 0.02))
        return {"src": src, "bgr": background_shot(background, gen), "pha": alpha, "fgr": colour}
