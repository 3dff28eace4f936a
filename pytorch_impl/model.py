"""MattingBase and MattingRefine, with the official constructor arguments, defaults and outputs."""
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .aspp import ASPP
from .decoder import Decoder
from .inputs import check_backbone_scale, check_divisible_by_4, check_pair, check_scaled_size
from bgmv2.knobs import check_knob, check_knobs
from .mobilenet import MobileNetV2Encoder
from .refiner import Refiner
from .resnet import ResNetEncoder

BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
# Output channels of the decoder: alpha, foreground residual (3), error, hidden (32).
OUT_CHANNELS = 1 + 3 + 1 + 32


class Base(nn.Module):
    """Encoder (backbone) + ASPP + decoder: 6 input channels to 37 at the input resolution."""

    def __init__(self, backbone: str, in_channels: int = 6, out_channels: int = OUT_CHANNELS):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone={backbone!r} is not supported; choose one of {', '.join(BACKBONES)}")
        self.backbone_name = backbone
        if backbone == "mobilenetv2":
            self.backbone = MobileNetV2Encoder(in_channels)
            self.aspp = ASPP(320, (3, 6, 9))
            self.decoder = Decoder([256, 128, 64, 48, out_channels], [32, 24, 16, in_channels])
        else:
            self.backbone = ResNetEncoder(in_channels, variant=backbone)
            self.aspp = ASPP(2048, (3, 6, 9))
            self.decoder = Decoder([256, 128, 64, 48, out_channels], [512, 256, 64, in_channels])

    def run_network(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_after_stem(x, self.backbone.stem(x))

    def run_after_stem(self, x: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """`run_network` from the input and the backbone's stem output (the split lets the fast backend
        run the stem in float32 and the rest in bf16)."""
        x4, x3, x2, x1, x0 = self.backbone.stages(x, x1)
        return self.decoder(self.aspp(x4), x3, x2, x1, x0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_network(x)


class MattingBase(Base):
    """The base network alone: `(pha, fgr, err, hid)` at the input resolution."""

    def __init__(self, backbone: str):
        super().__init__(backbone, in_channels=6, out_channels=OUT_CHANNELS)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        check_pair(src, bgr, self.decoder.conv4.weight)
        return base_outputs(src, self.run_network(torch.cat([src, bgr], dim=1)))


class MattingRefine(MattingBase):
    """Base network at `backbone_scale`, then the refiner at full resolution.

    Returns `(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)`: alpha and foreground at full resolution,
    the coarse alpha, foreground and error at `backbone_scale`, and the 0/1 map of refined 4x4 cells.
    The arguments and defaults are the official ones; `refine_static_shapes` (not in upstream) picks
    the data-independent `sampling` path with identical results (see `refiner.py`).
    """

    def __init__(self, backbone: str, backbone_scale: float = 1 / 4, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1,
                 refine_kernel_size: int = 3, refine_prevent_oversampling: bool = True,
                 refine_patch_crop_method: str = "unfold", refine_patch_replace_method: str = "scatter_nd",
                 refine_static_shapes: bool = False):
        check_knobs(dict(backbone_scale=backbone_scale, refine_mode=refine_mode,
                         refine_sample_pixels=refine_sample_pixels, refine_threshold=refine_threshold,
                         refine_kernel_size=refine_kernel_size, refine_prevent_oversampling=refine_prevent_oversampling,
                         refine_patch_crop_method=refine_patch_crop_method,
                         refine_patch_replace_method=refine_patch_replace_method,
                         refine_static_shapes=refine_static_shapes))  # before anything is built
        super().__init__(backbone)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size,
                               refine_prevent_oversampling, refine_patch_crop_method,
                               refine_patch_replace_method, refine_static_shapes)

    def __setattr__(self, name: str, value) -> None:
        if name == "backbone_scale":  # settable after construction, as upstream allows
            value = float(check_knob("backbone_scale", value))
        super().__setattr__(name, value)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        src_sm, bgr_sm = self.small_inputs(src, bgr)
        pha_sm, fgr_sm, err_sm, hid_sm = coarse_outputs(self.run_network(torch.cat([src_sm, bgr_sm], dim=1)))
        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        return refined_outputs(src, src_sm, pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)

    def small_inputs(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The inputs checked, and resized to `backbone_scale` for the base network."""
        check_pair(src, bgr, self.decoder.conv4.weight)
        check_divisible_by_4(src)
        check_backbone_scale(self.backbone_scale)
        check_scaled_size(src, self.backbone_scale)
        src_sm = F.interpolate(src, scale_factor=self.backbone_scale, mode="bilinear",
                               align_corners=False, recompute_scale_factor=True)
        bgr_sm = F.interpolate(bgr, scale_factor=self.backbone_scale, mode="bilinear",
                               align_corners=False, recompute_scale_factor=True)
        return src_sm, bgr_sm


def coarse_outputs(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The base network's 37 channels as (alpha clamped, foreground residual, error clamped, hidden ReLU)."""
    return x[:, 0:1].clamp(0.0, 1.0), x[:, 1:4], x[:, 4:5].clamp(0.0, 1.0), x[:, 5:].relu()


def base_outputs(src: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MattingBase's `(pha, fgr, err, hid)` from the base network's output at the input resolution."""
    pha, fgr, err, hid = coarse_outputs(x)
    return pha, (fgr + src).clamp_(0.0, 1.0), err, hid


def refined_outputs(src: torch.Tensor, src_sm: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                    pha_sm: torch.Tensor, fgr_sm: torch.Tensor, err_sm: torch.Tensor, ref_sm: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MattingRefine's six outputs from the refiner's (pha, fgr residual, ref) and the coarse ones."""
    return (pha.clamp(0.0, 1.0), (fgr + src).clamp_(0.0, 1.0), pha_sm, (src_sm + fgr_sm).clamp_(0.0, 1.0),
            err_sm, ref_sm)
