"""Deterministic inputs that look like real use, shared by the tests: a textured background (smooth
noise and stripes), a soft-edged foreground with a hole and thin hair-like strands, and a background
shot that differs as real ones do (exposure, white balance, noise, a one-pixel shift), so the coarse
error map has structure and `sampling` / `thresholding` choose cells as they do on footage. numpy only;
float32 NCHW in [0, 1]; seeded. (The toolkit's own checks use `bgmv2.converters.probes`.)
"""
import numpy as np

DEFAULT_SIZE = (288, 512)  # 9,216 cells of 4x4: more than the HD preset's 5,000 samples


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    coarse = rng.random((cells + 1, cells + 1))
    ys, xs = np.linspace(0, cells, height), np.linspace(0, cells, width)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def alpha_matte(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
    ry, rx = height * rng.uniform(0.2, 0.3), width * rng.uniform(0.15, 0.25)
    d = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    alpha = np.clip((1.0 - d) * max(ry, rx) / 3.0, 0, 1)
    hole = np.sqrt(((y - cy) / (ry * 0.25)) ** 2 + ((x - cx) / (rx * 0.2)) ** 2)
    alpha *= np.clip(hole - 0.6, 0, 1)
    for _ in range(6):
        phase, freq, amp = rng.uniform(0, 6.3), rng.uniform(1, 4) / width, rng.uniform(0.05, 0.2) * height
        curve = cy - ry + amp * np.sin(2 * np.pi * freq * x + phase) - rng.uniform(0, 0.2) * height
        strand = np.clip(1.0 - np.abs(y - curve) / rng.uniform(0.6, 1.2), 0, 1) * (np.abs(x - cx) < rx * 1.2)
        alpha = np.maximum(alpha, strand * rng.uniform(0.5, 1.0))
    return alpha


def probe_pair(batch: int, height: int, width: int, seed: int = 0):
    """(src, bgr) float32 (B, 3, H, W) in [0, 1]."""
    rng = np.random.default_rng(seed)
    srcs, bgrs = [], []
    for _ in range(batch):
        background = np.stack([smooth_noise(rng, height + 2, width + 2, 6) for _ in range(3)])
        stripes = 0.15 * np.sin(np.arange(width + 2) / rng.uniform(2, 6))[None, None, :]
        background = np.clip(0.2 + 0.6 * background + stripes, 0, 1)
        colour = rng.uniform(0.1, 0.9, size=(3, 1, 1))
        foreground = np.clip(colour + 0.25 * (smooth_noise(rng, height, width, 10)[None] - 0.5), 0, 1)
        alpha = alpha_matte(rng, height, width)[None]
        srcs.append(alpha * foreground + (1 - alpha) * background[:, 1:-1, 1:-1])
        gain = rng.uniform(0.95, 1.05, size=(3, 1, 1))
        bgrs.append(np.clip(background[:, 1:-1, 2:] * gain + 0.01 * rng.standard_normal((3, height, width)), 0, 1))
    return np.stack(srcs).astype(np.float32), np.stack(bgrs).astype(np.float32)
