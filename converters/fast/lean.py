"""The refiner restated for speed on CPUs: the same selection and layers, far less data moved.

Eager `Refiner` (faithful to upstream) resizes whole maps and pads whole frames before it cuts the
patches: at 1280x720 the 36-channel half-resolution resize, the padding and the crops cost about as
much as the patch convolutions. `LeanRefiner` computes only the windows the patches need:

- the 8x8 half-resolution window of `cat(hid, pha, fgr)` for each selected cell is the 2x bilinear
  upsampling of just the 5x5 block of quarter-resolution pixels it reads (backbone_scale 1/4; other
  scales resize the whole map, as eager does);
- the windows of `cat(src, bgr)` (half and full resolution) are gathered without padding the frame;
  pixels outside the image are zeroed afterwards in the few windows that cross an edge;
- BatchNorm is folded into the convolutions; windows stay channels-last, the convolutions' layout.

The selection (top-k with the same tie-break, or thresholding), the cell order, the layers and the
final replacement are `Refiner`'s own. The numbers differ from eager only by float rounding (the
interpolation sums in another order): within 1e-5 in alpha, about 1e-6 with the shipped model. `full` mode runs `Refiner`'s dense path.
`LeanMatting` runs a MattingRefine (or MattingBase) with this refiner and a replaceable base network
(`network`: the 6-channel small input -> 37 channels), which the fast backend runs in bf16 or in
OpenVINO.
"""
import copy
from typing import Callable, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval


def windows(x: torch.Tensor, b: torch.Tensor, top: torch.Tensor, left: torch.Tensor, window: int) -> torch.Tensor:
    """(N, window, window, C): the window at (top[n], left[n]) of image b[n] of `x` (B, H, W, C), without
    padding the whole image: positions outside it hold the nearest edge pixel (`zero_outside` clears them)."""
    _, height, width, _ = x.shape
    offsets = torch.arange(window, device=x.device)
    rows = (top.view(-1, 1) + offsets).clamp_(0, height - 1)
    cols = (left.view(-1, 1) + offsets).clamp_(0, width - 1)
    return x[b.view(-1, 1, 1), rows.unsqueeze(2), cols.unsqueeze(1)]


def zero_outside(p: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero the pixels of the windows `p` (N, window, window, C) at (top, left) that lie outside a
    height x width image (the eager crop's zero padding); only windows crossing an edge are touched."""
    window = p.shape[1]
    crossing = ((top < 0) | (left < 0) | (top + window > height) | (left + window > width)).nonzero().squeeze(1)
    if crossing.numel():
        offsets = torch.arange(window, device=p.device)
        rows, cols = top[crossing].view(-1, 1) + offsets, left[crossing].view(-1, 1) + offsets
        inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1)
        p[crossing] = p[crossing] * inside.unsqueeze(3).to(p.dtype)
    return p


def doubled_windows(x: torch.Tensor, b: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                    window: int) -> torch.Tensor:
    """`windows` of the bilinear 2x upsampling of `x` (B, h, w, C), computed for the windows only: each
    window's block of input pixels (edge-replicated, as F.interpolate clamps) is upsampled by 2 on its own
    and cropped. Output o reads input o / 2 - 0.25: for a window starting at output t of parity
    p = t % 2, a block from input floor(t / 2) - 1 + p serves it with its upsampled outputs 2 - p
    onwards, never the block's own edge outputs (the only ones its edge clamping changes). Every `top`
    must have one parity, every `left` too (the refiner's windows start at 2y - 3 * margin)."""
    batch, h, w, channels = x.shape
    parity_y, parity_x = int(top[0]) % 2, int(left[0]) % 2
    span = (window + 4 - min(parity_y, parity_x)) // 2
    pad = span  # blocks start from 3 pixels before the image (window 8 at output -3) to 2 after
    padded = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad), mode="replicate").permute(0, 2, 3, 1)
    hp, wp = h + 2 * pad, w + 2 * pad
    # rows of `span` pixels as single items: one block row is one contiguous read
    segments = padded.contiguous().as_strided((batch, hp, wp - span + 1, span * channels),
                                              (hp * wp * channels, wp * channels, channels, 1))
    first_y = torch.div(top, 2, rounding_mode="floor") - 1 + parity_y + pad
    first_x = torch.div(left, 2, rounding_mode="floor") - 1 + parity_x + pad
    rows = first_y.view(-1, 1) + torch.arange(span, device=x.device)
    block = segments[b.view(-1, 1), rows, first_x.view(-1, 1)].view(-1, span, span, channels)
    up = F.interpolate(block.permute(0, 3, 1, 2), scale_factor=2, mode="bilinear", align_corners=False)
    up = up.permute(0, 2, 3, 1)  # (N, 2 * span, 2 * span, C)
    shift_y, shift_x = 2 - parity_y, 2 - parity_x
    return up[:, shift_y:shift_y + window, shift_x:shift_x + window]


def folded(conv: nn.Conv2d, bn: Optional[nn.BatchNorm2d]) -> nn.Conv2d:
    """A copy of `conv` with the eval-mode `bn` folded in, channels-last."""
    conv = fuse_conv_bn_eval(conv, bn) if bn is not None else copy.deepcopy(conv)
    return conv.to(memory_format=torch.channels_last)


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
            from_coarse = doubled_windows(coarse, b, top, left, window)
        else:
            resized = F.interpolate(coarse.permute(0, 3, 1, 2), half, mode="bilinear", align_corners=False)
            from_coarse = windows(resized.permute(0, 2, 3, 1), b, top, left, window)
        images_half = torch.cat([F.interpolate(src.permute(0, 3, 1, 2), half, mode="bilinear", align_corners=False),
                                 F.interpolate(bgr.permute(0, 3, 1, 2), half, mode="bilinear", align_corners=False)],
                                dim=1).permute(0, 2, 3, 1)
        p = zero_outside(torch.cat([from_coarse, windows(images_half, b, top, left, window)], dim=3),
                         top, left, *half)
        p = F.relu(self.conv1(p.permute(0, 3, 1, 2)))
        p = F.relu(self.conv2(p))
        p = F.interpolate(p, (full, full), mode="nearest")
        top, left = 4 * y - 2 * m, 4 * x - 2 * m
        q = torch.cat([windows(src, b, top, left, full), windows(bgr, b, top, left, full)], dim=3)
        q = zero_outside(q, top, left, H, W)
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
        from bgmv2.pytorch_impl.inputs import check_pair
        from bgmv2.pytorch_impl.model import base_outputs, coarse_outputs, refined_outputs
        model = self.model
        if self.refiner is None:
            check_pair(src, bgr, model.decoder.conv4.weight)
            return base_outputs(src, self.network(torch.cat([src, bgr], dim=1)).float())
        src_sm, bgr_sm = model.small_inputs(src, bgr)
        pha_sm, fgr_sm, err_sm, hid_sm = coarse_outputs(self.network(torch.cat([src_sm, bgr_sm], dim=1)).float())
        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        return refined_outputs(src, src_sm, pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)
