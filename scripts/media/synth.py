"""Generated media: frame pairs and short clips from the synthetic matting set, and a video writer
for test files (any size, rotation tag, codec). Used by `bgmv2 bench`, the bundled sample's script
and the tests; nothing is downloaded.
"""
import math
from fractions import Fraction
from typing import Dict, List, Tuple

import numpy as np


def to_uint8(x) -> np.ndarray:
    """(C, H, W) float tensor in [0, 1] -> (H, W, C) uint8 (or (H, W) for one channel)."""
    array = (x.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[2] == 1 else np.ascontiguousarray(array)


def synthetic_pair(height: int, width: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """One sample of `SyntheticMattingSet` as uint8 pictures: src, bgr (RGB), pha (grey), fgr (RGB)."""
    from bgmv2.data.synthetic import SyntheticMattingSet
    sample = SyntheticMattingSet(1, height, width, seed=seed)[0]
    return {name: to_uint8(value) for name, value in sample.items()}


def synthetic_clip(frames: int, height: int, width: int, seed: int = 0, noise: float = 2.0
                   ) -> Tuple[List[np.ndarray], np.ndarray]:
    """`frames` RGB frames of a subject moving over a static background, and that background.

    The subject (foreground and alpha of one synthetic sample) sways left and right; each frame gets
    a little sensor noise, so frames differ as in real footage.
    """
    pair = synthetic_pair(height, width, seed)
    bgr = pair["bgr"].astype(np.float32)
    fgr, pha = pair["fgr"].astype(np.float32), pair["pha"].astype(np.float32)[..., None] / 255
    rng = np.random.default_rng(seed)
    clip = []
    for t in range(frames):
        shift = int(round(0.08 * width * math.sin(2 * math.pi * t / max(frames, 8))))
        f, a = np.roll(fgr, shift, axis=1), np.roll(pha, shift, axis=1)
        frame = f * a + bgr * (1 - a) + rng.normal(0, noise, bgr.shape).astype(np.float32)
        clip.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return clip, pair["bgr"]


def write_video(path, frames: List[np.ndarray], fps=25, rotation: int = 0, codec: str = "libx264",
                pix_fmt: str = None, crf: int = 18, preset: str = "veryfast") -> None:
    """Write RGB frames as a video; `rotation` (counter-clockwise degrees) goes into the display matrix,
    so a player turns the stored frames by it (the frames are stored as given)."""
    import av
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
        stream = container.add_stream(codec, rate=Fraction(fps), options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
