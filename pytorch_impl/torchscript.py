"""TorchScript export: the production wrapper whose knobs can be set after `torch.jit.load`.

The official production TorchScript files wrap `MattingRefine` as `self.model` and hoist
`backbone_scale`, `refine_mode`, `refine_sample_pixels`, `refine_threshold` and
`refine_prevent_oversampling` to the top level; `forward` copies them into the model on every call.
This wrapper has the same layout (state dict keys `model.*`), so files made here behave like those.
"""
from typing import Tuple

import torch
from torch import nn

from .model import MattingBase, MattingRefine


class MattingRefineProduction(nn.Module):
    backbone_scale: float
    refine_mode: str
    refine_sample_pixels: int
    refine_threshold: float
    refine_prevent_oversampling: bool

    def __init__(self, model: MattingRefine):
        super().__init__()
        self.model = model
        self.backbone_scale = float(model.backbone_scale)
        self.refine_mode = model.refiner.mode
        self.refine_sample_pixels = int(model.refiner.sample_pixels)
        self.refine_threshold = float(model.refiner.threshold)
        self.refine_prevent_oversampling = bool(model.refiner.prevent_oversampling)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.model.backbone_scale = self.backbone_scale
        self.model.refiner.mode = self.refine_mode
        self.model.refiner.sample_pixels = self.refine_sample_pixels
        self.model.refiner.threshold = self.refine_threshold
        self.model.refiner.prevent_oversampling = self.refine_prevent_oversampling
        return self.model(src, bgr)


def script_model(model: nn.Module) -> torch.jit.ScriptModule:
    """Script a model for deployment: `MattingRefine` inside the production wrapper, `MattingBase` as is.

    The scripted module keeps the model's device and dtype (call `.half()` / `.to(torch.bfloat16)`
    before or after scripting).
    """
    if isinstance(model, MattingRefine):
        return torch.jit.script(MattingRefineProduction(model).eval())
    if isinstance(model, MattingBase):
        return torch.jit.script(model.eval())
    raise TypeError(f"script_model takes a MattingBase or MattingRefine, not {type(model).__name__}")
