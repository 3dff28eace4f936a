"""The refiner restated for speed on CPUs: the same selection and layers, far less data moved.

Eager `Refiner` (faithful to upstream) resizes whole maps and pads whole frames before it cuts the
patches: at 1280x720 the 36-channel half-resolution resize, the padding and the crops cost about as
much as the patch convolutions. `LeanRefiner` computes only the windows the patches need:

- the 8x8 half-resolution window of `cat(hid, pha, fgr)` and of `cat(src, bgr)` for each selected
  cell is the bilinear resize evaluated at those 64 points: a small gather of the input rows and
  columns they read and two per-patch interpolation matrices (with rows and columns outside the
  image weighted 0, the zero padding of the eager crop);
- the 8x8 full-resolution window of `cat(src, bgr)` is the same with scale 1;
- BatchNorm is folded into the convolutions; windows stay channels-last, the convolutions' layout.

The selection (top-k with the same tie-break, or thresholding), the cell order, the layers and the
final replacement are `Refiner`'s own. The numbers differ from eager only by float rounding (the
interpolation sums in another order): about 1e-6 in alpha. `full` mode runs `Refiner`'s dense path.
`LeanMatting` runs a MattingRefine (or MattingBase) with this refiner and a replaceable base network
(`network`: the 6-channel small input -> 37 channels), which the fast backend runs in bf16 or in
OpenVINO.
"""
import math
from typing import Callable, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval


def windows(x: torch.Tensor, b: torch.Tensor, top: torch.Tensor, left: torch.Tensor, window: int) -> torch.Tensor:
    """(N, window, window, C): the window at (top[n], left[n]) of image b[n] of `x` (B, H, W, C), zeros
    outside the image (the eager crop's zero padding), without padding the whole image."""
    _, height, width, _ = x.shape
    offsets = torch.arange(window, device=x.device)
    rows, cols = top.view(-1, 1) + offsets, left.view(-1, 1) + offsets
    inside = (((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1))
    block = x[b.view(-1, 1, 1), rows.clamp(0, height - 1).unsqueeze(2), cols.clamp(0, width - 1).unsqueeze(1)]
    return block * inside.unsqueeze(3).to(block.dtype)


def doubling_weights(phase: int, window: int, dtype: torch.dtype) -> Tuple[int, torch.Tensor]:
    """The bilinear 2x upsampling (half-pixel centres) along one axis at `window` consecutive outputs
    starting at an output index of parity `phase`: (first, A) with A (window, span) the weights over input
    indices start // 2 + first + 0..span-1. Output o reads input o / 2 - 0.25 (lower and upper neighbour)."""
    source = [(phase + i) / 2 - 0.25 for i in range(window)]
    first = math.floor(source[0])
    span = math.floor(source[-1]) - first + 2
    weights = torch.zeros(window, span, dtype=dtype)
    for i, position in enumerate(source):
        lower = math.floor(position)
        weights[i, lower - first] += 1 - (position - lower)
        weights[i, lower - first + 1] += position - lower
    return first - phase // 2, weights


def doubled_windows(x: torch.Tensor, b: torch.Tensor, top: torch.Tensor, left: torch.Tensor, window: int,
                    phase: int) -> torch.Tensor:
    """`windows` of the bilinear 2x upsampling of `x` (B, h, w, C), computed for the windows only: the
    input rows and columns they read (edge-replicated: F.interpolate clamps there), times a fixed
    weight matrix per axis. Every `top` and `left` must have the parity `phase`."""
    _, h, w, channels = x.shape
    first, weights = doubling_weights(phase, window, x.dtype)
    span = weights.shape[1]
    pad = span + 1  # covers reads from `first` (>= -2 for windows within 3 pixels of the image) onwards
    padded = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad), mode="replicate").permute(0, 2, 3, 1)
    blocks = padded.unfold(1, span, 1).unfold(2, span, 1)  # (B, h', w', C, span, span): views
    block = blocks[b, torch.div(top, 2, rounding_mode="floor") + first + pad,
                   torch.div(left, 2, rounding_mode="floor") + first + pad]  # (N, C, span, span)
    weights = weights.to(x.device)
    out = torch.einsum("ij,ncjk,lk->nilc", weights, block, weights)
    height, width = 2 * h, 2 * w
    offsets = torch.arange(window, device=x.device)
    rows, cols = top.view(-1, 1) + offsets, left.view(-1, 1) + offsets
    inside = (((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1))
    return out * inside.unsqueeze(3).to(out.dtype)


def folded(conv: nn.Conv2d, bn: Optional[nn.BatchNorm2d]) -> nn.Conv2d:
    """A copy of `conv` with the eval-mode `bn` folded in, channels-last."""
    conv = fuse_conv_bn_eval(conv, bn) if bn is not None else _copy(conv)
    return conv.to(memory_format=torch.channels_last)


def _copy(conv: nn.Conv2d) -> nn.Conv2d:
    import copy
    return copy.deepcopy(conv)


class LeanRefiner(nn.Module):
    """`Refiner`'s forward (same arguments and outputs) with the windows computed per patch; eval only."""

    def __init__(self, refiner: nn.Module):
        super().__init__()
        self.refiner = refiner  # the selection rule, knobs and the dense `full` path
        self.conv1 = folded(refiner.conv1, refiner.bn1)
        self.conv2 = folded(refiner.conv2, refiner.bn2)
        self.conv3 = folded(refiner.conv3, refiner.bn3)
        self.conv4 = folded(refiner.conv4, None)
        self.margin = refiner.kernel_size // 2

    def forward(self, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                err: torch.Tensor, hid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        refiner = self.refiner
        refiner.check_knobs()
        H, W = src.shape[2], src.shape[3]
        if refiner.mode == "full":
            return refiner.refine_everywhere(torch.cat([src, bgr], dim=1), pha, fgr, hid)
        if err.shape[2] != H // 4 or err.shape[3] != W // 4:
            err = F.interpolate(err, (H // 4, W // 4), mode="bilinear", align_corners=False)
        out = upsampled(torch.cat([pha, fgr], dim=1), (H, W))
        ref = refiner.select_refinement_regions(err)
        idx = torch.nonzero(ref.squeeze(1))
        if idx.size(0) > 0:
            b, y, x = idx[:, 0], idx[:, 1], idx[:, 2]
            coarse = torch.cat([hid, pha, fgr], dim=1).permute(0, 2, 3, 1)
            patches = self.refine_patches(src.permute(0, 2, 3, 1), bgr.permute(0, 2, 3, 1), coarse, b, y, x)
            out = refiner.replace_patch(out, patches, b, y, x)
        return out[:, :1], out[:, 1:], ref

    def refine_patches(self, src: torch.Tensor, bgr: torch.Tensor, coarse: torch.Tensor, b: torch.Tensor,
                       y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(N, 4, 4, 4) refined alpha + foreground residual for the cells (b, y, x), as Refiner computes
        it; `src`, `bgr` (B, H, W, 3) and `coarse` = cat(hid, pha, fgr) (B, h, w, 36) channels last."""
        H, W = src.shape[1], src.shape[2]
        m = self.margin
        half, window, full = (H // 2, W // 2), 2 + 6 * m, 4 + 4 * m
        top, left = 2 * y - 3 * m, 2 * x - 3 * m
        if 2 * coarse.shape[1] == half[0] and 2 * coarse.shape[2] == half[1]:  # backbone_scale 1/4
            from_coarse = doubled_windows(coarse, b, top, left, window, phase=(3 * m) % 2)
        else:
            resized = F.interpolate(coarse.permute(0, 3, 1, 2), half, mode="bilinear", align_corners=False)
            from_coarse = windows(resized.permute(0, 2, 3, 1), b, top, left, window)
        images_half = torch.cat([F.interpolate(src.permute(0, 3, 1, 2), half, mode="bilinear", align_corners=False),
                                 F.interpolate(bgr.permute(0, 3, 1, 2), half, mode="bilinear", align_corners=False)],
                                dim=1).permute(0, 2, 3, 1)
        p = torch.cat([from_coarse, windows(images_half, b, top, left, window)], dim=3)
        p = F.relu(self.conv1(p.permute(0, 3, 1, 2)))
        p = F.relu(self.conv2(p))
        p = F.interpolate(p, (full, full), mode="nearest")
        top, left = 4 * y - 2 * m, 4 * x - 2 * m
        q = torch.cat([windows(src, b, top, left, full), windows(bgr, b, top, left, full)], dim=3)
        p = F.relu(self.conv3(torch.cat([p, q.permute(0, 3, 1, 2)], dim=1)))
        return self.conv4(p)


def upsampled(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to `size`, contiguous NCHW: the channels resized as a batch of
    one-channel maps (the same numbers; PyTorch's CPU kernel is about 2x faster on one channel)."""
    B, C, h, w = x.shape
    return F.interpolate(x.reshape(B * C, 1, h, w), size, mode="bilinear", align_corners=False).view(B, C, *size)


class LeanMatting(nn.Module):
    """A MattingRefine or MattingBase (eval, float32) with the same outputs, for the fast backend.

    `network(x) -> 37 channels` replaces the base network's `run_network` (defaults to it): the fast
    backend passes a bf16 or OpenVINO version. MattingRefine's refiner is the LeanRefiner."""

    def __init__(self, model: nn.Module, network: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        super().__init__()
        self.model = model
        self.network = network or model.run_network
        refiner = getattr(model, "refiner", None)
        self.refiner = LeanRefiner(refiner) if refiner is not None else None

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        from pytorch_impl.inputs import check_backbone_scale, check_divisible_by_4, check_pair, check_scaled_size
        model = self.model
        check_pair(src, bgr, model.decoder.conv4.weight)
        if self.refiner is None:
            x = self.network(torch.cat([src, bgr], dim=1)).float()
            return (x[:, 0:1].clamp(0.0, 1.0), (x[:, 1:4] + src).clamp_(0.0, 1.0), x[:, 4:5].clamp(0.0, 1.0),
                    x[:, 5:].relu())
        check_divisible_by_4(src)
        check_backbone_scale(model.backbone_scale)
        check_scaled_size(src, model.backbone_scale)
        src_sm = F.interpolate(src, scale_factor=model.backbone_scale, mode="bilinear",
                               align_corners=False, recompute_scale_factor=True)
        bgr_sm = F.interpolate(bgr, scale_factor=model.backbone_scale, mode="bilinear",
                               align_corners=False, recompute_scale_factor=True)
        x = self.network(torch.cat([src_sm, bgr_sm], dim=1)).float()
        pha_sm = x[:, 0:1].clamp(0.0, 1.0)
        fgr_sm = x[:, 1:4]
        err_sm = x[:, 4:5].clamp(0.0, 1.0)
        hid_sm = x[:, 5:].relu()
        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        pha = pha.clamp(0.0, 1.0)
        fgr = (fgr + src).clamp_(0.0, 1.0)
        fgr_sm = (src_sm + fgr_sm).clamp_(0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
