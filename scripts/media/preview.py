"""Side-by-side preview: labelled panels of equal height in one picture (RGB uint8)."""
from typing import List, Tuple

import numpy as np

from .composite import checkerboard, over


def as_rgb(picture: np.ndarray) -> np.ndarray:
    """Grey -> RGB; RGBA -> over a checkerboard (so transparency shows); RGB unchanged."""
    if picture.ndim == 2:
        return np.repeat(picture[..., None], 3, axis=2)
    if picture.shape[2] == 4:
        return over(picture, checkerboard(*picture.shape[:2]))
    return picture


def side_by_side(panels: List[Tuple[str, np.ndarray]], height: int = 270, gap: int = 4) -> np.ndarray:
    import cv2
    row = []
    for label, picture in panels:
        picture = as_rgb(picture)
        h, w = picture.shape[:2]
        width = max(1, round(w * height / h))
        panel = np.ascontiguousarray(cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA))
        scale = max(0.4, height / 540)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(panel, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
        cv2.putText(panel, label, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        row += [panel, np.full((height, gap, 3), 255, np.uint8)]
    return np.concatenate(row[:-1], axis=1)
