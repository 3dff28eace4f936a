"""Parity's inputs beyond the built-in probes (`bgmv2.converters.probes`): the user's own pictures."""
from typing import Optional

import numpy as np

from bgmv2.converters.probes import Probe


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
