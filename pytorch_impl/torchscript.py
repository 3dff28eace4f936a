"""TorchScript export: the production wrapper whose knobs can be set after `torch.jit.load`.

The official production TorchScript files wrap `MattingRefine` as `self.model` and hoist
`backbone_scale`, `refine_mode`, `refine_sample_pixels`, `refine_threshold` and
`refine_prevent_oversampling` to the top level; `forward` copies them into the model on every call.
This wrapper has the same layout (state dict keys `model.*`), so files made here behave like those.

`any_size` (an attribute too, settable after loading; `bgmv2 convert` writes files with it on):
frames whose height or width is not a multiple of 4 are padded at the bottom and right by repeating
the edge pixels and the full-resolution outputs cropped back, exactly as `matte` and every other
format's graph do. Off (upstream's behaviour, `script_model`'s default), such frames are refused with
the message that names `matte`.
"""
from typing import List, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .model import MattingBase, MattingRefine


def padding_to_4(src: torch.Tensor, bgr: torch.Tensor) -> List[int]:
    """[bottom, right] rows and columns of edge padding that make a well-formed pair a multiple of 4;
    [0, 0] for anything else (the model's own checks then name what is wrong with the inputs)."""
    if src.dim() != 4 or src.shape != bgr.shape or src.shape[1] != 3:
        return [0, 0]
    if not src.is_floating_point() or src.dtype != bgr.dtype:
        return [0, 0]
    return [(4 - src.shape[2] % 4) % 4, (4 - src.shape[3] % 4) % 4]


def pad_edges(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    return F.pad(x, [0, right, 0, bottom], mode="replicate")


class MattingRefineProduction(nn.Module):
    backbone_scale: float
    refine_mode: str
    refine_sample_pixels: int
    refine_threshold: float
    refine_prevent_oversampling: bool
    any_size: bool

    def __init__(self, model: MattingRefine, any_size: bool = False):
        super().__init__()
        self.model = model
        self.backbone_scale = float(model.backbone_scale)
        self.refine_mode = model.refiner.mode
        self.refine_sample_pixels = int(model.refiner.sample_pixels)
        self.refine_threshold = float(model.refiner.threshold)
        self.refine_prevent_oversampling = bool(model.refiner.prevent_oversampling)
        self.any_size = bool(any_size)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.model.backbone_scale = self.backbone_scale
        self.model.refiner.mode = self.refine_mode
        self.model.refiner.sample_pixels = self.refine_sample_pixels
        self.model.refiner.threshold = self.refine_threshold
        self.model.refiner.prevent_oversampling = self.refine_prevent_oversampling
        pad = padding_to_4(src, bgr) if self.any_size else [0, 0]
        if pad[0] == 0 and pad[1] == 0:
            return self.model(src, bgr)
        H, W = src.shape[2], src.shape[3]
        pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = self.model(pad_edges(src, pad[0], pad[1]),
                                                              pad_edges(bgr, pad[0], pad[1]))
        return pha[:, :, :H, :W], fgr[:, :, :H, :W], pha_sm, fgr_sm, err_sm, ref_sm


class MattingBaseAnySize(nn.Module):
    """`MattingBase` (as `self.model`) taking any frame size: padded and every output cropped back."""

    def __init__(self, model: MattingBase):
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, bgr: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        pad = padding_to_4(src, bgr)
        if pad[0] == 0 and pad[1] == 0:
            return self.model(src, bgr)
        H, W = src.shape[2], src.shape[3]
        pha, fgr, err, hid = self.model(pad_edges(src, pad[0], pad[1]), pad_edges(bgr, pad[0], pad[1]))
        return pha[:, :, :H, :W], fgr[:, :, :H, :W], err[:, :, :H, :W], hid[:, :, :H, :W]


def script_model(model: nn.Module, any_size: bool = False) -> torch.jit.ScriptModule:
    """Script a model for deployment: `MattingRefine` inside the production wrapper, `MattingBase` as is
    (inside `MattingBaseAnySize` with `any_size`). `any_size`: pad and crop frames of any size inside
    the module (see the module docstring); default off, as upstream's files.

    The scripted module keeps the model's device and dtype (call `.half()` / `.to(torch.bfloat16)`
    before or after scripting).
    """
    if isinstance(model, MattingRefine):
        return torch.jit.script(MattingRefineProduction(model, any_size).eval())
    if isinstance(model, MattingBase):
        return torch.jit.script((MattingBaseAnySize(model) if any_size else model).eval())
    raise TypeError(f"script_model takes a MattingBase or MattingRefine, not {type(model).__name__}")
