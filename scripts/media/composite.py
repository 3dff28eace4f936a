"""From model outputs to 8-bit pictures: composite (com), alpha (pha), foreground with alpha (fgr),
error map (err, upsampled bilinearly) and refined regions (ref, upsampled nearest).

`com` is `fgr * pha + background * (1 - pha)` over a colour, a picture or a video frame. The
foreground is written as RGBA (colour + alpha), so any compositor can use it.
"""
import re
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from .errors import MediaError

NAMED_COLOURS = {
    "green": (120, 255, 155),  # upstream's composite green
    "white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "blue": (0, 0, 255), "red": (255, 0, 0), "chroma": (0, 177, 64),
}


def parse_colour(text: str) -> Optional[Tuple[int, int, int]]:
    """'green', '#78ff9b', '120,255,155' -> (r, g, b); None when `text` is not a colour (a path, then)."""
    text = text.strip().lower()
    if text in NAMED_COLOURS:
        return NAMED_COLOURS[text]
    if re.fullmatch(r"#[0-9a-f]{6}", text):
        return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
    match = re.fullmatch(r"(\d+)\s*,\s*(\d+)\s*,\s*(\d+)", text)
    if match:
        rgb = tuple(int(v) for v in match.groups())
        if max(rgb) > 255:
            raise MediaError(f"colour {text!r}: components go from 0 to 255")
        return rgb
    import os
    if (text.startswith("#") or re.fullmatch(r"[\d\s,]+", text)) and not os.path.exists(text):
        raise MediaError(f"colour {text!r}: give a name (green, white, black, blue, gray), #rrggbb or R,G,B "
                         "(0 to 255), or a picture file")
    return None


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) float in [0, 1] -> (H, W, C) uint8 numpy, or (H, W) for one channel (rounded).

    Channels-last input (as the runners give) needs no transposing copy: its HWC view is contiguous.
    """
    x = torch.add(HALF.to(x.device), x[0].float(), alpha=255).clamp_(0, 255).to(torch.uint8)
    if x.shape[0] == 1:
        return x[0].cpu().numpy()
    return x.permute(1, 2, 0).contiguous().cpu().numpy()


HALF = torch.tensor(0.5)


def frame_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(frame).to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255)


# Picture type -> the runner outputs it is drawn from, first found (MattingRefine's coarse error map
# err_sm, MattingBase's err; the refined cells ref_sm).
SOURCES = {"com": ("pha", "fgr"), "pha": ("pha",), "fgr": ("fgr",), "err": ("err_sm", "err"), "ref": ("ref_sm",)}


def available(kind: str, outputs) -> bool:
    """Whether picture type `kind` can be drawn from a runner with these output names."""
    sources = SOURCES.get(kind, ())
    return all(name in outputs for name in sources) if kind in ("com",) else any(n in outputs for n in sources)


class Renderer:
    """Turns a runner's outputs (the contract's names) into the requested pictures, on the outputs' device."""

    def __init__(self, types: Sequence[str], colour: Optional[Tuple[int, int, int]] = (120, 255, 155)):
        self.types = tuple(types)
        self.colour = colour
        self._colour_tensor = {}

    def colour_tensor(self, device: torch.device) -> torch.Tensor:
        if device not in self._colour_tensor:
            self._colour_tensor[device] = torch.tensor(self.colour, dtype=torch.float32, device=device).view(1, 3, 1, 1) / 255
        return self._colour_tensor[device]

    def __call__(self, outputs: Dict[str, torch.Tensor], com_frame: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        pha = outputs["pha"].float()
        fgr = outputs["fgr"].float()
        size = pha.shape[-2:]
        pictures = {}
        for kind in self.types:
            if kind == "com":
                bg = self.colour_tensor(pha.device) if com_frame is None else frame_tensor(com_frame, pha.device)
                # planar output: broadcasting the colour along the channel axis is 3x faster there
                planar = torch.empty(fgr.shape, dtype=torch.float32, device=fgr.device)
                pictures[kind] = to_uint8(torch.lerp(bg, fgr, pha, out=planar))
            elif kind == "pha":
                pictures[kind] = to_uint8(pha)
            elif kind == "fgr":
                pictures[kind] = to_uint8(torch.cat([fgr, pha], dim=1))
            elif kind in ("err", "ref"):
                source = next((name for name in SOURCES[kind] if name in outputs), None)
                if source is None:
                    raise MediaError(f"the model has no {kind} output (MattingBase has no refined regions); "
                                     f"leave {kind} out of --output-types")
                x = outputs[source].float()
                if x.shape[-2:] != size:
                    x = F.interpolate(x, size, mode="bilinear" if kind == "err" else "nearest",
                                      **({"align_corners": False} if kind == "err" else {}))
                pictures[kind] = to_uint8(x)
        return pictures


def checkerboard(height: int, width: int, cell: int = 16) -> np.ndarray:
    """A grey checkerboard (H, W, 3) uint8, the usual backdrop for showing transparency."""
    y, x = np.indices((height, width))
    board = np.where(((y // cell) + (x // cell)) % 2 == 0, 200, 150).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def over(rgba: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """RGBA uint8 over an RGB uint8 backdrop of the same size."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    return (rgba[..., :3] * alpha + backdrop * (1 - alpha) + 0.5).astype(np.uint8)
