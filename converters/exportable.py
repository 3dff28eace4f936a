"""An export-friendly twin of `MattingRefine` / `MattingBase`: same weights, same numbers, symbolic shapes.

`pytorch_impl` computes a few sizes with Python arithmetic (`floor(H * backbone_scale)`,
`min(k, cells)`), which `torch.export` specialises to the example input. `Exportable` wraps a
model (a private copy; the caller's model is never changed) and reimplements only that glue with
integer arithmetic on symbolic sizes, reusing the model's own layers, crop, replace and selection
code. The result is one program for any batch, height and width (padded to a multiple of 4 and
cropped inside, as `bgmv2.pytorch_impl.matte`).

Sampling variants (`refine_mode="sampling"` only; `full` is dense and `thresholding` always uses
NonZero, because how many cells pass a threshold depends on the data):

- `static` (default): the k cells of largest error come straight from top-k (`k = min(pixels / 16,
  cells)`), exactly as `MattingRefine(refine_static_shapes=True)` selects them (ties broken by the
  lower cell index); cells `prevent_oversampling` drops are refined and then keep their coarse value.
  Shapes never depend on the data: no NonZero, fast in ONNX Runtime, friendly to graph compilers.
  Costs: the k patches are always computed (upstream computes only the non-zero-error ones, which
  on real footage is nearly always all k). Ties are broken with float32 keys (`bgmv2.pytorch_impl.refiner.
  tie_break_key`): no float64 anywhere. TopK with k = 5000 > 3840 still rules out TensorRT.
- `nonzero`: upstream's graph: a 0/1 map of selected cells, then NonZero and as many patches as
  cells were chosen. Same alpha; data-dependent shapes (slower in ONNX Runtime, not for TensorRT,
  not for TFLite).
- `tensorrt`: static shapes with every TopK's k constant and at most 3840 (TensorRT's limit; the HD
  preset needs k = 5000, 4K 20000): k is split into stages of at most 3840 (5000 = 3840 + 1160);
  each stage takes the top cells of the error map and masks them out for the next. The error map
  is padded with k entries below any error so k never exceeds the candidates (small images); picks
  that are padding or dropped by `prevent_oversampling` are written to a spare row of cells that is
  cut off. No float64, no NonZero. In ONNX Runtime it selects the same cells as `static` (ONNX
  defines TopK ties as lower index first); TensorRT does not specify its tie order, so there only
  cells whose error equals the k-th largest exactly may differ. Costs: ceil(k / 3840) passes over
  the error map instead of one, and one copy of the output for the spare row.

Graph shaping (identical numbers, faster in ONNX Runtime): the refiner's 42-channel half-resolution
windows are cut by one Gather of whole pixels from a channels-last copy, and the input channels of
the convolutions fed by concatenations are zero-padded to a multiple of 16 (`PaddedConv`) so ONNX
Runtime runs them with its blocked NCHWc kernels; upstream's per-value gather was the slowest node.
"""
import copy
import types
from fractions import Fraction
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

from bgmv2.pytorch_impl import MattingBase, MattingRefine
from bgmv2.pytorch_impl.refiner import chosen_cells, select_by_threshold, select_top_k, top_k_map

SAMPLING_VARIANTS = ("static", "nonzero", "tensorrt")
TENSORRT_TOPK_LIMIT = 3840
MIN_SIDE = 8  # smallest height and width the exported programs declare


def sym_min(a, b):
    return torch.sym_min(a, b) if isinstance(a, torch.SymInt) or isinstance(b, torch.SymInt) else min(a, b)


class Exportable(nn.Module):
    """`model`'s forward for `torch.export` / ONNX: same outputs, sizes computed symbolically.

    `sampling_variant`: see the module docstring. `crop_method` / `replace_method`: the refiner's
    patch methods for the export, all with identical numbers: `channel_gather` / `channel_scatter`
    (the default, below: one Gather / ScatterElements with an index per pixel) or the refiner's own
    (`unfold`, `gather`, `scatter_nd`, `scatter_element`). `topk_limit`: the largest TopK of the
    `tensorrt` variant. `channel_multiple`: pad the input channels of the decoder's and refiner's
    convolutions with zeros to a multiple of this (16 for ONNX Runtime: its blocked NCHWc kernels
    need it; the zero channels add exact zeros), see `PaddedConv`.
    """

    def __init__(self, model: nn.Module, sampling_variant: str = "static", crop_method: str = "channel_gather",
                 replace_method: str = "channel_scatter", topk_limit: int = TENSORRT_TOPK_LIMIT,
                 channel_multiple: int = 0):
        super().__init__()
        if not isinstance(model, MattingBase):
            raise TypeError(f"Exportable takes a MattingBase or MattingRefine, not {type(model).__name__}")
        if sampling_variant not in SAMPLING_VARIANTS:
            raise ValueError(f"sampling_variant={sampling_variant!r}; choose one of {', '.join(SAMPLING_VARIANTS)}")
        self.model = copy.deepcopy(model).eval()
        self.refine = isinstance(model, MattingRefine)
        if channel_multiple:
            pad_input_channels(self.model, channel_multiple)
        self.sampling_variant = sampling_variant
        self.topk_limit = int(topk_limit)
        if self.refine:
            refiner = self.model.refiner
            refiner.cells_per_image = None
            self.grouped_ops = crop_method == "channel_gather"
            if crop_method == "channel_gather":
                refiner.crop_patch = types.MethodType(channel_gather_crop, refiner)
                refiner.refine_patches = types.MethodType(refine_patches_channels_last, refiner)
            else:
                refiner.patch_crop_method = crop_method
            if replace_method == "channel_scatter":
                refiner.replace_patch = types.MethodType(channel_scatter_replace, refiner)
            else:
                refiner.patch_replace_method = replace_method
            scale = Fraction(float(self.model.backbone_scale))
            self.scale_num, self.scale_den = scale.numerator, scale.denominator

    # -- any frame size, as pytorch_impl.matte ----------------------------------------------------
    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Any height and width: the frame is padded at the bottom and right to a multiple of 4 by
        repeating its edge pixels, and the full-resolution outputs are cropped back, exactly as
        `bgmv2.pytorch_impl.matte` does (the coarse outputs stay as computed on the padded frame). Without
        this an exported graph given 722 x 1282 would return a shifted matte instead of failing."""
        H, W = src.shape[2], src.shape[3]
        pad_h, pad_w = (4 - H % 4) % 4, (4 - W % 4) % 4  # integers: no float size arithmetic
        src = F.pad(src, (0, pad_w, 0, pad_h), mode="replicate")
        bgr = F.pad(bgr, (0, pad_w, 0, pad_h), mode="replicate")
        outputs = self.forward_padded(src, bgr)
        full = 2 if self.refine else 4  # pha, fgr (MattingBase: every output) are at full resolution
        return tuple(o[:, :, :H, :W] if i < full else o for i, o in enumerate(outputs))

    # -- the base network -------------------------------------------------------------------------
    def forward_padded(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if not self.refine:
            x = self.model.run_network(torch.cat([src, bgr], dim=1))
            return (x[:, 0:1].clamp(0.0, 1.0), (x[:, 1:4] + src).clamp(0.0, 1.0),
                    x[:, 4:5].clamp(0.0, 1.0), x[:, 5:].relu())
        H, W = src.shape[2], src.shape[3]
        # floor(H * scale) exactly, as integers (scale is a binary fraction: 1/4, 1/8, ...).
        h, w = (H * self.scale_num) // self.scale_den, (W * self.scale_num) // self.scale_den
        src_sm = F.interpolate(src, (h, w), mode="bilinear", align_corners=False)
        bgr_sm = F.interpolate(bgr, (h, w), mode="bilinear", align_corners=False)
        x = self.model.run_network(torch.cat([src_sm, bgr_sm], dim=1))
        pha_sm = x[:, 0:1].clamp(0.0, 1.0)
        fgr_sm = x[:, 1:4]
        err_sm = x[:, 4:5].clamp(0.0, 1.0)
        hid_sm = x[:, 5:].relu()
        pha, fgr, ref_sm = self.refiner_forward(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        return (pha.clamp(0.0, 1.0), (fgr + src).clamp(0.0, 1.0), pha_sm, (src_sm + fgr_sm).clamp(0.0, 1.0),
                err_sm, ref_sm)

    # -- the refiner ------------------------------------------------------------------------------
    def refiner_forward(self, src, bgr, pha, fgr, err, hid):
        refiner = self.model.refiner
        H, W = src.shape[2], src.shape[3]
        if refiner.mode == "full":
            return refiner.refine_everywhere(torch.cat([src, bgr], dim=1), pha, fgr, hid)
        if Fraction(self.scale_num, self.scale_den) != Fraction(1, 4):
            # Same as pytorch_impl (which skips the resize when the sizes already agree): a bilinear
            # resize to the same size is the identity.
            err = F.interpolate(err, (H // 4, W // 4), mode="bilinear", align_corners=False)
        out = F.interpolate(torch.cat([pha, fgr], dim=1), (H, W), mode="bilinear", align_corners=False)
        if refiner.mode == "sampling" and self.sampling_variant == "static":
            cells, keep = self.select_cells(err)
            return self.refine_cells(src, bgr, pha, fgr, err, hid, out, cells, keep)
        if refiner.mode == "sampling" and self.sampling_variant == "tensorrt":
            return self.refine_cells_tensorrt(src, bgr, pha, fgr, err, hid, out)
        if refiner.mode == "sampling":
            cells_total = err.shape[2] * err.shape[3]
            ref = select_top_k_symbolic(err, sym_min(refiner.sample_pixels // 16, cells_total),
                                        refiner.prevent_oversampling)
        else:
            ref = select_by_threshold(err, refiner.threshold)
        idx = torch.nonzero(ref.squeeze(1))
        # One spare cell (0, 0, 0) is refined after the chosen ones and dropped: the convolutions then
        # never see an empty batch, which a data-dependent program cannot guard against.
        idx = torch.cat([idx, torch.zeros((1, 3), dtype=idx.dtype, device=idx.device)], dim=0)
        b, y, x = idx[:, 0], idx[:, 1], idx[:, 2]
        patches = refiner.refine_patches(src, bgr, pha, fgr, hid, b, y, x)[:-1]
        out = refiner.replace_patch(out, patches, b[:-1], y[:-1], x[:-1])
        return out[:, :1], out[:, 1:], ref

    def select_cells(self, err: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, k) flat cell indices and which of them to keep, with k = min(pixels / 16, cells)."""
        refiner = self.model.refiner
        B, h, w = err.shape[0], err.shape[2], err.shape[3]
        cells = top_k_cells_symbolic(err, sym_min(refiner.sample_pixels // 16, h * w))
        if refiner.prevent_oversampling:
            keep = err.reshape(B, h * w).gather(1, cells) > 0
        else:
            keep = torch.ones_like(cells, dtype=torch.bool)
        return cells, keep

    def refine_cells(self, src, bgr, pha, fgr, err, hid, out, cells, keep):
        """Refine the k cells of each image; dropped cells keep their coarse value (static shapes)."""
        refiner = self.model.refiner
        B, h, w = err.shape[0], err.shape[2], err.shape[3]
        k = cells.shape[1]
        b = torch.arange(B, device=err.device).view(B, 1).expand(B, k).reshape(-1)
        flat_cells = cells.reshape(-1)
        y = torch.div(flat_cells, w, rounding_mode="floor")
        x = flat_cells - y * w
        grouped = self.grouped_ops
        if grouped:
            refiner.cells_per_image = k  # the patch crops of refine_patches use grouped_crop
        try:
            patches = refiner.refine_patches(src, bgr, pha, fgr, hid, b, y, x)
        finally:
            refiner.cells_per_image = None
        coarse = grouped_crop(out, y, x, k, 4, 0) if grouped else refiner.crop_patch(out, b, y, x, 4, 0)
        patches = torch.where(keep.reshape(-1, 1, 1, 1), patches.to(out.dtype), coarse)
        out = grouped_replace(out, patches, y, x, k) if grouped else refiner.replace_patch(out, patches, b, y, x)
        ref = torch.zeros_like(err).reshape(B, h * w).scatter(1, cells, keep.to(err.dtype))
        return out[:, :1], out[:, 1:], ref.view(B, 1, h, w)


    def refine_cells_tensorrt(self, src, bgr, pha, fgr, err, hid, out):
        """`sampling` for TensorRT: constant TopK sizes (at most `topk_limit` each), no float64.

        The error map gets K = pixels / 16 entries of -2 appended, so there are always K candidates
        and every TopK has a constant k (TensorRT wants K fixed when the engine is built). Picks of
        padding (images with fewer than K cells) and cells `prevent_oversampling` drops are computed
        on cell 0 and written to a spare row of cells below the image, which is cut off afterwards:
        no two patches are ever written to the same cell.
        """
        refiner = self.model.refiner
        B, h, w = err.shape[0], err.shape[2], err.shape[3]
        H = src.shape[2]
        n, K = h * w, refiner.sample_pixels // 16
        flat = err.reshape(B, n)
        padded = torch.cat([flat, torch.full((B, K), -2.0, dtype=flat.dtype, device=flat.device)], dim=1)
        picked = staged_top_k(padded, K, self.topk_limit, masked=-3.0)
        valid = picked < n
        cells = torch.where(valid, picked, torch.zeros_like(picked))
        keep = valid
        if refiner.prevent_oversampling:
            keep = keep & (flat.gather(1, cells) > 0)
        b = torch.arange(B, device=err.device).view(B, 1).expand(B, K).reshape(-1)
        flat_cells = cells.reshape(-1)
        y = torch.div(flat_cells, w, rounding_mode="floor")
        x = flat_cells - y * w
        patches = refiner.refine_patches(src, bgr, pha, fgr, hid, b, y, x)
        y_write = torch.where(keep.reshape(-1), y, torch.full_like(y, h))  # h: the spare row
        spare = F.pad(out, (0, 0, 0, 4))
        spare = refiner.replace_patch(spare, patches, b, y_write, x)
        out = spare[:, :, :H]
        ref = torch.zeros((B, h + 1, w), dtype=err.dtype, device=err.device)
        ref = ref.index_put((b, y_write, x), keep.reshape(-1).to(err.dtype))
        return out[:, :1], out[:, 1:], ref[:, :h].unsqueeze(1)

class PaddedConv(nn.Module):
    """A convolution whose input gets zero channels appended up to `weight.shape[1]` (its weight has
    zeros there): the same numbers, in a shape ONNX Runtime runs with its fast blocked kernels. It
    keeps the parameter names `weight` / `bias`, so the exported initializers keep the PyTorch names
    (`onnx_format.read` drops the zero channels again)."""

    def __init__(self, conv: nn.Conv2d, multiple: int):
        super().__init__()
        padded = -(-conv.in_channels // multiple) * multiple
        self.extra = padded - conv.in_channels
        weight = F.pad(conv.weight.detach(), (0, 0, 0, 0, 0, self.extra))
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = self.weight.shape[1] - x.shape[1]  # 0 when the caller already added the zeros
        if missing:
            zeros = torch.zeros((x.shape[0], missing, x.shape[2], x.shape[3]), dtype=x.dtype, device=x.device)
            x = torch.cat([x, zeros], dim=1)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


def pad_input_channels(model: nn.Module, multiple: int) -> None:
    """Replace the decoder's and refiner's convolutions fed by concatenations (more than `multiple`
    input channels, not a multiple of it) with `PaddedConv`."""
    for name, module in list(model.named_modules()):
        if not name.startswith(("decoder.", "refiner.")) or not isinstance(module, nn.Conv2d):
            continue
        if module.groups == 1 and module.in_channels > multiple and module.in_channels % multiple:
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, PaddedConv(module, multiple))


def refine_patches_channels_last(refiner, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                                 hid: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`Refiner.refine_patches` (same layers, same numbers) with its 42-channel half-resolution windows
    cut in one Gather of whole pixels from a channels-last copy, zeros outside the image by a mask
    instead of a padded copy; the conv1 input gets its zero channels (`PaddedConv`) in the same pass."""
    H, W = src.shape[2], src.shape[3]
    margin = refiner.kernel_size // 2
    half = (H // 2, W // 2)
    parts = [F.interpolate(torch.cat([hid, pha, fgr], dim=1), half, mode="bilinear", align_corners=False),
             F.interpolate(src, half, mode="bilinear", align_corners=False),
             F.interpolate(bgr, half, mode="bilinear", align_corners=False)]
    extra = refiner.conv1.weight.shape[1] - 42
    if extra > 0:
        parts.append(torch.zeros((src.shape[0], extra, half[0], half[1]), dtype=src.dtype, device=src.device))
    p = gather_windows_channels_last(torch.cat(parts, dim=1), b, y, x, 2, 3 * margin)
    p = refiner.relu(refiner.bn1(refiner.conv1(p)))
    p = refiner.relu(refiner.bn2(refiner.conv2(p)))
    p = F.interpolate(p, (4 + 4 * margin, 4 + 4 * margin), mode="nearest")
    k = refiner.cells_per_image
    if k is not None:  # cells grouped by image (static shapes): no copies of the full-resolution inputs
        q = torch.cat([grouped_crop(src, y, x, k, 4, 2 * margin), grouped_crop(bgr, y, x, k, 4, 2 * margin)], dim=1)
    else:
        q = torch.cat([refiner.crop_patch(src, b, y, x, 4, 2 * margin),
                       refiner.crop_patch(bgr, b, y, x, 4, 2 * margin)], dim=1)
    p = refiner.relu(refiner.bn3(refiner.conv3(torch.cat([p, q], dim=1))))
    return refiner.conv4(p)


def window_geometry(y: torch.Tensor, i: torch.Tensor, size: int, padding: int, H: int, W: int):
    """For windows at (y * size - padding, i * size - padding): their side, the row and column of each
    window pixel clamped into the image (N, window), and which pixels lie inside it (N, window, window)."""
    window = size + 2 * padding
    offsets = torch.arange(window, device=y.device)
    rows = (y * size - padding).view(-1, 1) + offsets.view(1, -1)
    cols = (i * size - padding).view(-1, 1) + offsets.view(1, -1)
    inside = ((rows >= 0) & (rows < H)).view(-1, window, 1) & ((cols >= 0) & (cols < W)).view(-1, 1, window)
    return window, rows.clamp(0, H - 1), cols.clamp(0, W - 1), inside


def gather_windows_channels_last(x: torch.Tensor, b: torch.Tensor, y: torch.Tensor, i: torch.Tensor, size: int,
                                 padding: int) -> torch.Tensor:
    """(N, C, window, window) windows of x (B, C, H, W) at (y * size - padding, i * size - padding), zeros
    outside the image, as the refiner's crop gives them: one row Gather from a (B*H*W, C) copy (clamped
    indices), then a 0/1 mask for the pixels outside the image (cheaper than a padded copy)."""
    B, C, H, W = x.shape
    window, rows, cols, inside = window_geometry(y, i, size, padding, H, W)
    index = (b.view(-1, 1, 1) * (H * W) + rows.view(-1, window, 1) * W
             + cols.view(-1, 1, window))
    pixels = torch.clone(x.permute(0, 2, 3, 1), memory_format=torch.contiguous_format).view(B * H * W, C)
    windows = pixels.index_select(0, index.reshape(-1)).view(-1, window, window, C)
    return (windows * inside.unsqueeze(-1).to(x.dtype)).permute(0, 3, 1, 2)


def grouped_crop(x: torch.Tensor, y: torch.Tensor, i: torch.Tensor, k, size: int, padding: int) -> torch.Tensor:
    """The refiner's crop for cells grouped by image (k per image, image-major): one GatherElements per
    image plane on the (B, C, H*W) view, zeros outside the image by a mask; no copy of `x` at all."""
    B, C, H, W = x.shape
    window, rows, cols, inside = window_geometry(y, i, size, padding, H, W)
    index = rows.view(-1, window, 1) * W + cols.view(-1, 1, window)
    index = index.view(B, 1, k * window * window).expand(B, C, k * window * window)
    values = x.reshape(B, C, H * W).gather(2, index) * inside.view(B, 1, -1).to(x.dtype)
    values = torch.clone(values.view(B, C, k, window, window).transpose(1, 2), memory_format=torch.contiguous_format)
    return values.view(B * k, C, window, window)


def grouped_replace(x: torch.Tensor, patches: torch.Tensor, y: torch.Tensor, i: torch.Tensor, k) -> torch.Tensor:
    """The refiner's replace for cells grouped by image: one ScatterElements on the (B, C, H*W) view."""
    B, C, H, W = x.shape
    offsets = torch.arange(4, device=x.device)
    index = ((y * 4 * W + i * 4).view(-1, 1, 1) + (offsets * W).view(1, 4, 1) + offsets.view(1, 1, 4))
    index = index.view(B, 1, k * 16).expand(B, C, k * 16)
    values = torch.clone(patches.to(x.dtype).view(B, k, C, 16).transpose(1, 2), memory_format=torch.contiguous_format)
    return x.reshape(B, C, H * W).scatter(2, index, values.view(B, C, k * 16)).view(B, C, H, W)


def channel_gather_crop(refiner, x: torch.Tensor, b: torch.Tensor, y: torch.Tensor, i: torch.Tensor,
                        size: int, padding: int) -> torch.Tensor:
    """The refiner's crop (same windows, same numbers), shaped for exporters: one Gather along the
    flattened pixels of a (C, B*H*W) view, with an index per pixel rather than per value (upstream's
    `gather` exports to a GatherND with C times more indices, the slowest node in ONNX Runtime)."""
    if padding != 0:
        x = F.pad(x, (padding, padding, padding, padding))
    B, C, H, W = x.shape
    window = size + 2 * padding
    offsets = torch.arange(window, device=x.device)
    corner = b * (H * W) + y * (size * W) + i * size
    index = corner.view(-1, 1, 1) + (offsets * W).view(1, window, 1) + offsets.view(1, 1, window)
    pixels = channels_first(x).view(C, B * H * W).index_select(1, index.reshape(-1))
    return channels_first(pixels.view(C, -1, window, window))


def channel_scatter_replace(refiner, x: torch.Tensor, patches: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                            i: torch.Tensor) -> torch.Tensor:
    """The refiner's replace (4x4 patches written at (4y, 4i)) as one ScatterElements along the
    flattened pixels of a (C, B*H*W) view: no transposes of the full-resolution output."""
    B, C, H, W = x.shape
    offsets = torch.arange(4, device=x.device)
    corner = b * (H * W) + y * (4 * W) + i * 4
    index = (corner.view(-1, 1, 1) + (offsets * W).view(1, 4, 1) + offsets.view(1, 1, 4)).reshape(1, -1)
    values = channels_first(patches.to(x.dtype)).view(C, -1)
    flat = channels_first(x).view(C, B * H * W).scatter(1, index.expand(C, -1), values)
    return channels_first(flat.view(C, B, H, W))


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """x with its first two axes swapped, as a new contiguous tensor (a Transpose in ONNX)."""
    return torch.clone(x.transpose(0, 1), memory_format=torch.contiguous_format)


def select_top_k_symbolic(err: torch.Tensor, k, prevent_oversampling: bool) -> torch.Tensor:
    """`bgmv2.pytorch_impl.refiner.select_top_k` with a k that may be symbolic (already clamped to the cells)."""
    if not isinstance(k, torch.SymInt):
        return select_top_k(err, k, prevent_oversampling)
    return top_k_map(err, k, prevent_oversampling)


def top_k_cells_symbolic(err: torch.Tensor, k) -> torch.Tensor:
    """`bgmv2.pytorch_impl.refiner.top_k_cells` (indices only) for a k that may be symbolic: the chosen cells
    in increasing index order, ties at the k-th error broken by the lower index (float32 keys only)."""
    return chosen_cells(err, k)


def staged_top_k(scores: torch.Tensor, k: int, limit: int, masked: float) -> torch.Tensor:
    """(B, k) indices of the k largest entries of `scores` (B, N >= k), with TopKs of at most `limit`.

    Stage s takes the top min(limit, k - s * limit) entries (constant sizes) and overwrites them with
    `masked` (below every score) so the next stage continues down the same order. With TopK's tie
    rule (lower index first, as ONNX defines it) the union is exactly the top-k set.
    """
    picked = []
    for start in range(0, k, limit):
        indices = scores.topk(min(limit, k - start), dim=1, largest=True, sorted=True).indices
        picked.append(indices)
        if start + limit < k:
            scores = scores.scatter(1, indices, masked)
    return picked[0] if len(picked) == 1 else torch.cat(picked, dim=1)


def example_inputs(batch: int = 2, height: int = 128, width: int = 192, dtype=torch.float32):
    """Inputs for tracing: big enough that every size expression is generic (not 0 or 1)."""
    generator = torch.Generator().manual_seed(0)
    src = torch.rand(batch, 3, height, width, generator=generator).to(dtype)
    bgr = torch.rand(batch, 3, height, width, generator=generator).to(dtype)
    return src, bgr


def dynamic_shapes():
    """Dynamic batch, height and width for both inputs (any height and width: see `Exportable.forward`)."""
    from torch.export import Dim
    batch = Dim("batch", min=1, max=1024)
    height = Dim("height", min=MIN_SIDE, max=16384)
    width = Dim("width", min=MIN_SIDE, max=16384)
    spec = {0: batch, 2: height, 3: width}
    return {"src": spec, "bgr": spec}
