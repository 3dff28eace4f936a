"""The refiner: recomputes alpha and foreground at full resolution, only where the coarse error is high.

What is computed (the contract the TensorFlow refiner mirrors):

Selection, on the grid of 4x4-pixel cells (H/4 x W/4), from `err_q` = bilinear resize of the coarse
error to that grid:
- `sampling`: per image, the k = min(sample_pixels // 16, cells) cells of largest error. Ties at the
  k-th value are broken by the lower row-major index (as TensorFlow's `top_k` does), so the choice is
  deterministic. With `prevent_oversampling`, chosen cells whose error is 0 are dropped again.
- `thresholding`: the cells with `err_q > threshold`.
- `full`: every cell, computed densely (equal to `thresholding` with threshold -1).
`ref` is the 0/1 map of selected cells; patches are processed in row-major order of (b, y, x).

Refining cell (y, x):
1. Cut the 8x8 window at top-left (2y - 3, 2x - 3) from the half-resolution bilinear resize of
   `cat(hid, pha, fgr)` and of `cat(src, bgr)`, zeros outside the image; conv1, bn1, ReLU, conv2,
   bn2, ReLU (8x8 -> 4x4).
2. Nearest-neighbour resize to 8x8, concatenate the 8x8 window of full-resolution `cat(src, bgr)`
   at top-left (4y - 2, 4x - 2); conv3, bn3, ReLU, conv4 (8x8 -> 4x4: alpha, foreground residual).
3. The full-resolution output starts as the bilinear upsampling of `cat(pha, fgr)`; each refined
   4x4 patch overwrites the block at (4y, 4x).
With kernel size 1 the windows have no margin (2x2 at half and 4x4 at full resolution).

Shapes: by default `sampling` refines the selected cells found with `nonzero` (data-dependent
count). With `static_shapes=True` it refines exactly k cells per image, taken straight from top-k,
and cells that `prevent_oversampling` drops keep their coarse value: the same numbers, with shapes
that tracing, `torch.compile` and exporters can fix ahead of time.

Patch crop methods: `unfold` (strided view, fastest in PyTorch) and `gather` (flat pixel indices,
exports to ONNX Gather). `roi_align` is accepted for upstream compatibility and runs the `gather` crop:
upstream used torchvision's RoIAlign with boxes whose samples land exactly on pixel centres, so it is
an exact crop and gives the same numbers; this project does not depend on torchvision.
Patch replace methods: `scatter_nd` (indexed assignment into a patch view) and `scatter_element`
(flat pixel scatter). All methods give identical results.
"""
from typing import List, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from bgmv2.knobs import (CROP_METHODS, KERNEL_SIZES, MODES, REPLACE_METHODS, check_crop_method, check_kernel_size,
                    check_knob, check_mode, check_replace_method, check_sample_pixels, check_threshold)

# The knobs settable after construction, by attribute name; `knobs.check_knob` checks and converts
# them under their model argument names ("refine_" + attribute).
KNOB_ATTRIBUTES = ("mode", "sample_pixels", "threshold", "prevent_oversampling", "patch_crop_method",
                   "patch_replace_method", "static_shapes")


def select_by_threshold(err: torch.Tensor, threshold: float) -> torch.Tensor:
    """0/1 map of the cells whose error exceeds `threshold`."""
    return (err > threshold).to(err.dtype)


def select_top_k(err: torch.Tensor, k: int, prevent_oversampling: bool) -> torch.Tensor:
    """0/1 map of the k cells of largest error per image; ties broken by lower row-major index."""
    b, c, h, w = err.shape
    k = min(k, h * w)
    if k <= 0:
        return torch.zeros_like(err)
    return top_k_map(err, k, prevent_oversampling)


# float32 holds every integer up to 2^24 exactly: cell indices used as float32 keys stay exact up to
# 16,777,216 cells (a 16384 x 16384 frame; 4K has 518,400).
EXACT_INDEX_LIMIT = 2 ** 24


def tie_break_key(flat: torch.Tensor, k: int) -> torch.Tensor:
    """A float32 key (B, N) whose k largest entries are exactly the k cells of largest `flat`, ties at
    the k-th value taken in increasing row-major index: 2^24 above the k-th value, minus the index at
    it, -2^25 below. The tied cells' keys are distinct, so any top-k of the key picks the same set.

    Why so: no float64 (TensorRT, TFLite, OpenVINO and GPUs lack it or run it slowly) and no cumsum
    (Inductor's scan codegen failed on an int64 cumsum at batch > 1); exact for N < 2^24 cells.
    """
    kth = flat.topk(k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    index = torch.arange(flat.shape[1], device=flat.device, dtype=torch.int32).to(torch.float32)
    above = torch.full_like(index, 16777216.0)  # EXACT_INDEX_LIMIT (TorchScript takes no global here)
    below = torch.full_like(index, -33554432.0)
    return torch.where(flat > kth, above, torch.where(flat == kth, -index, below))


def top_k_map(err: torch.Tensor, k: int, prevent_oversampling: bool) -> torch.Tensor:
    """`select_top_k` for a k already within 1..cells (it may be symbolic in `torch.export`)."""
    b, c, h, w = err.shape
    flat = err.reshape(b, h * w)
    key = tie_break_key(flat, k)
    last = key.topk(k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    chosen = key >= last  # the k largest keys: the keys of tied cells are distinct
    if prevent_oversampling:
        chosen = chosen & (flat > 0)
    return chosen.to(err.dtype).reshape(b, c, h, w)


def chosen_cells(err: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices (B, k) of the cells `select_top_k` chooses (before `prevent_oversampling`), in
    increasing order; k within 1..cells (it may be symbolic). Float32 keys only (see `tie_break_key`)."""
    b, c, h, w = err.shape
    key = tie_break_key(err.reshape(b, h * w), k)
    cells = key.topk(k, dim=1, sorted=False).indices
    # Increasing index order: the largest of -index (exact in float32, see EXACT_INDEX_LIMIT).
    negated = -cells.to(torch.int32).to(torch.float32)
    order = negated.topk(k, dim=1, sorted=True).indices
    return cells.gather(1, order)


def top_k_cells(err: torch.Tensor, k: int, prevent_oversampling: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (B, k) of the cells `select_top_k` chooses, in increasing order, and which to keep."""
    b, c, h, w = err.shape
    cells = chosen_cells(err, min(k, h * w))
    if prevent_oversampling:
        keep = err.reshape(b, h * w).gather(1, cells) > 0
    else:
        keep = torch.ones_like(cells, dtype=torch.bool)
    return cells, keep


def pixel_indices(shape: List[int], b: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                  size: int, window: int) -> torch.Tensor:
    """Flat indices into a (B, C, H, W) tensor of the window x window patch at (y * size, x * size)."""
    _, C, H, W = shape
    c = torch.arange(C, device=b.device)
    o = torch.arange(window, device=b.device)
    in_patch = (c * (H * W)).view(C, 1, 1) + (o * W).view(1, window, 1) + o.view(1, 1, window)
    corner = b * (C * H * W) + y * (size * W) + x * size
    return corner.view(-1, 1, 1, 1) + in_patch.view(1, C, window, window)


class Refiner(nn.Module):
    def __init__(self, mode: str = "sampling", sample_pixels: int = 80_000, threshold: float = 0.1,
                 kernel_size: int = 3, prevent_oversampling: bool = True,
                 patch_crop_method: str = "unfold", patch_replace_method: str = "scatter_nd",
                 static_shapes: bool = False):
        super().__init__()
        check_kernel_size(kernel_size)
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.kernel_size = kernel_size
        self.prevent_oversampling = prevent_oversampling
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method
        self.static_shapes = static_shapes

        channels = [32, 24, 16, 12, 4]
        self.conv1 = nn.Conv2d(channels[0] + 6 + 4, channels[1], kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(channels[1], channels[2], kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(channels[2] + 6, channels[3], kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(channels[3], channels[4], kernel_size, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def __setattr__(self, name: str, value) -> None:
        # The knobs may be changed after construction (as upstream allows): check and convert them
        # here, so a bad value fails now with its name and an int threshold still scripts as float.
        if name in KNOB_ATTRIBUTES:
            value = check_knob("refine_" + name, value)
            if name == "threshold":
                value = float(value)
        super().__setattr__(name, value)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                err: torch.Tensor, hid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full-resolution (pha, fgr residual, ref) from the coarse outputs; pha and fgr unclamped."""
        self.check_knobs()
        H, W = src.shape[2], src.shape[3]
        if self.mode == "full":
            return self.refine_everywhere(torch.cat([src, bgr], dim=1), pha, fgr, hid)

        if err.shape[2] != H // 4 or err.shape[3] != W // 4:  # at backbone_scale 1/4 it is already there
            err = F.interpolate(err, (H // 4, W // 4), mode="bilinear", align_corners=False)
        out = F.interpolate(torch.cat([pha, fgr], dim=1), (H, W), mode="bilinear", align_corners=False)
        if self.mode == "sampling" and self.static_shapes:
            return self.refine_top_k_static(src, bgr, pha, fgr, err, hid, out)
        ref = self.select_refinement_regions(err)
        idx = torch.nonzero(ref.squeeze(1))
        if idx.size(0) > 0:
            b, y, x = idx[:, 0], idx[:, 1], idx[:, 2]
            patches = self.refine_patches(src, bgr, pha, fgr, hid, b, y, x)
            out = self.replace_patch(out, patches, b, y, x)
        return out[:, :1], out[:, 1:], ref

    def refine_top_k_static(self, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                            err: torch.Tensor, hid: torch.Tensor, out: torch.Tensor
                            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`sampling` with shapes that do not depend on the data: always k patches per image.

        The k chosen cells come straight from top-k (in row-major order, as `nonzero` would give
        them); cells that `prevent_oversampling` drops are refined too but keep their coarse value,
        so the result equals the data-dependent path exactly while tracing, compiling and exporting
        without `nonzero`.
        """
        B, _, h, w = err.shape
        k = min(self.sample_pixels // 16, h * w)
        if k <= 0:
            return out[:, :1], out[:, 1:], torch.zeros_like(err)
        cells, keep = top_k_cells(err, k, self.prevent_oversampling)
        b = torch.arange(B, device=err.device).repeat_interleave(k)
        cells = cells.reshape(-1)
        y = torch.div(cells, w, rounding_mode="floor")
        x = cells - y * w
        patches = self.refine_patches(src, bgr, pha, fgr, hid, b, y, x)
        coarse = self.crop_patch(out, b, y, x, 4, 0)
        patches = torch.where(keep.reshape(-1, 1, 1, 1), patches.to(out.dtype), coarse)
        out = self.replace_patch(out, patches, b, y, x)
        ref = torch.zeros_like(err).reshape(B, h * w).scatter(1, cells.view(B, k), keep.to(err.dtype))
        return out[:, :1], out[:, 1:], ref.view(B, 1, h, w)

    def check_knobs(self) -> None:
        """Knobs may be set on a scripted model, where __setattr__ does not run: check them here (the
        same rule and messages as `knobs.check_knob`)."""
        check_mode(self.mode)
        check_sample_pixels(self.sample_pixels)
        check_threshold(self.threshold)
        check_crop_method(self.patch_crop_method)
        check_replace_method(self.patch_replace_method)

    def select_refinement_regions(self, err: torch.Tensor) -> torch.Tensor:
        """0/1 map (B, 1, H/4, W/4) of the cells to refine, from the quarter-resolution error."""
        if self.mode == "sampling":
            return select_top_k(err, self.sample_pixels // 16, self.prevent_oversampling)
        return select_by_threshold(err, self.threshold)

    def refine_patches(self, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                       hid: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(N, 4, 4, 4) refined alpha + foreground residual for the cells (b, y, x)."""
        H, W = src.shape[2], src.shape[3]
        margin = self.kernel_size // 2  # 1 for 3x3 kernels: two convs consume 2 pixels each side
        half = (H // 2, W // 2)
        coarse = F.interpolate(torch.cat([hid, pha, fgr], dim=1), half, mode="bilinear", align_corners=False)
        p = torch.cat([
            self.crop_patch(coarse, b, y, x, 2, 3 * margin),
            self.crop_patch(F.interpolate(src, half, mode="bilinear", align_corners=False), b, y, x, 2, 3 * margin),
            self.crop_patch(F.interpolate(bgr, half, mode="bilinear", align_corners=False), b, y, x, 2, 3 * margin),
        ], dim=1)
        p = self.relu(self.bn1(self.conv1(p)))
        p = self.relu(self.bn2(self.conv2(p)))
        p = F.interpolate(p, (4 + 4 * margin, 4 + 4 * margin), mode="nearest")
        q = torch.cat([self.crop_patch(src, b, y, x, 4, 2 * margin),
                       self.crop_patch(bgr, b, y, x, 4, 2 * margin)], dim=1)
        p = self.relu(self.bn3(self.conv3(torch.cat([p, q], dim=1))))
        return self.conv4(p)

    def refine_everywhere(self, src_bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                          hid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`full` mode: the same layers run densely over the whole image."""
        B, H, W = src_bgr.shape[0], src_bgr.shape[2], src_bgr.shape[3]
        margin = self.kernel_size // 2
        x = F.interpolate(torch.cat([hid, pha, fgr], dim=1), (H // 2, W // 2),
                          mode="bilinear", align_corners=False)
        y = F.interpolate(src_bgr, (H // 2, W // 2), mode="bilinear", align_corners=False)
        if margin > 0:
            x = F.pad(x, (3, 3, 3, 3))
            y = F.pad(y, (3, 3, 3, 3))
        x = self.relu(self.bn1(self.conv1(torch.cat([x, y], dim=1))))
        x = self.relu(self.bn2(self.conv2(x)))
        x = F.interpolate(x, (H + 4 * margin, W + 4 * margin), mode="nearest")
        y = F.pad(src_bgr, (2, 2, 2, 2)) if margin > 0 else src_bgr
        x = self.relu(self.bn3(self.conv3(torch.cat([x, y], dim=1))))
        x = self.conv4(x)
        ref = torch.ones((B, 1, H // 4, W // 4), device=src_bgr.device, dtype=src_bgr.dtype)
        return x[:, :1], x[:, 1:], ref

    def crop_patch(self, x: torch.Tensor, b: torch.Tensor, y: torch.Tensor, i: torch.Tensor,
                   size: int, padding: int) -> torch.Tensor:
        """(N, C, size + 2 * padding, same) windows at (y * size - padding, i * size - padding)."""
        if padding != 0:
            x = F.pad(x, (padding, padding, padding, padding))
        window = size + 2 * padding
        if self.patch_crop_method == "unfold":
            windows = x.permute(0, 2, 3, 1).unfold(1, window, size).unfold(2, window, size)
            return windows[b, y, i]
        flat = pixel_indices(x.shape, b, y, i, size, window)
        return x.reshape(-1)[flat.reshape(-1)].view(-1, x.size(1), window, window)

    def replace_patch(self, x: torch.Tensor, patches: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                      i: torch.Tensor) -> torch.Tensor:
        """Write the 4x4 `patches` into `x` (B, C, H, W) at (4y, 4i)."""
        B, C, H, W = x.shape
        if self.patch_replace_method == "scatter_nd":
            cells = x.view(B, C, H // 4, 4, W // 4, 4).permute(0, 2, 4, 1, 3, 5)
            cells[b, y, i] = patches.to(x.dtype)
            return cells.permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        flat = pixel_indices(x.shape, b, y, i, 4, 4)
        return x.reshape(-1).scatter(0, flat.reshape(-1), patches.to(x.dtype).reshape(-1)).view(B, C, H, W)
