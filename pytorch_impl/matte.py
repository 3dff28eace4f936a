"""`matte(model, src, bgr)`: the model on images of any size, layout and 8-bit or float values."""
from typing import Tuple

import torch
from torch.nn import functional as F

from .inputs import check_image, shape_text


def as_batch(name: str, x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) or (B, 3, H, W) float in [0, 1]; uint8 is divided by 255."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}; use torch.from_numpy(...)")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dtype == torch.uint8:
        x = x.float() / 255
    return x


def matte(model: torch.nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Run `model` (eager or scripted, base or refine) on inputs of any height and width.

    The inputs are padded on the bottom and right to a multiple of 4 by repeating the edge pixels, the
    model runs without autograd, and every output at the padded full resolution is cropped back; the
    coarse outputs of `MattingRefine` stay as the model computed them (on the padded frame).
    """
    given = (tuple(src.shape), tuple(bgr.shape)) if isinstance(src, torch.Tensor) and isinstance(bgr, torch.Tensor) \
        else None
    src, bgr = as_batch("src", src), as_batch("bgr", bgr)
    if src.dim() != 4 or bgr.dim() != 4:
        raise ValueError(f"src and bgr must be (3, H, W) or (B, 3, H, W); got {given[0]} and {given[1]}")
    if src.shape != bgr.shape:
        raise ValueError(f"src and bgr must have the same shape; got {given[0]} and {given[1]}. "
                         "Resize the background shot to the source frame.")
    for name, x, shape in (("src", src, given[0]), ("bgr", bgr, given[1])):
        try:  # here, on the caller's tensors: the model would see (and name) the padded ones
            check_image(name, x)
        except (TypeError, ValueError) as error:
            raise type(error)(str(error).replace(shape_text(list(x.shape)), shape_text(list(shape)))) from None
    H, W = src.shape[-2:]
    pad_h, pad_w = -H % 4, -W % 4
    if pad_h or pad_w:
        src = F.pad(src, (0, pad_w, 0, pad_h), mode="replicate")
        bgr = F.pad(bgr, (0, pad_w, 0, pad_h), mode="replicate")
    with torch.inference_mode():
        outputs = model(src, bgr)
    return tuple(o[..., :H, :W] if o.shape[-2:] == src.shape[-2:] else o for o in outputs)
