"""Model files laid out as upstream's own export scripts make them (no bgmv2 metadata in either).

- `write_torchscript_production`: the official production TorchScript layout (`torchscript_*_fp32.pth`,
  `*_fp16.pth`): `pytorch_impl.script_model`, i.e. `MattingRefine` wrapped as `self.model` with the knobs
  hoisted to attributes (`backbone_scale`, `refine_mode`, `refine_sample_pixels`, `refine_threshold`,
  `refine_prevent_oversampling`). The knobs are read back from those attributes.

- `write_legacy_onnx`: what upstream's `export_onnx.py` does: `torch.onnx.export` with the
  TorchScript-based exporter (`dynamo=False`), opset 11 or 12, constant folding, dynamic batch, height
  and width on every input and output, MattingRefine built with `refine_patch_crop_method="roi_align"`
  (upstream's default) and `refine_patch_replace_method="scatter_element"`. `pytorch_impl` computes
  the `roi_align` crop as an exact `gather`; the export writes each crop as an ONNX `RoiAlign` node,
  as a file made with torchvision's `roi_align` has: 1x1-pixel bins, one sample per bin, boxes
  shifted by half a pixel so every sample falls on a pixel centre (opset 10-15 `RoiAlign` has no
  half-pixel mode), which makes the bilinear sample the pixel itself: the same exact crop.

  One deviation, and why: in `sampling` mode the legacy exporter cannot export `pytorch_impl`'s
  cell selection as it is. `bgmv2.pytorch_impl.refiner.select_top_k` breaks ties at the k-th error with
  `tied.cumsum(dim=1)` on a *bool* tensor; the legacy exporter writes that as `CumSum` on
  `tensor(bool)`, which ONNX does not define, and ONNX Runtime refuses the file ("Type 'tensor(bool)'
  of input parameter ... of operator (CumSum) ... is invalid"; torch 2.13, opset 12; tested in
  `parity_tests/test_upstream_files.py`). The export therefore runs upstream's own selection (top-k
  indices scattered into a zero map, then `* (err > 0)` for `prevent_oversampling`), as upstream's
  `export_onnx.py` does on upstream's model code. ONNX's TopK breaks ties by the lower index, the rule
  `pytorch_impl` defines, so the same cells are chosen. (Casting `tied` to an integer type before the
  cumsum in `pytorch_impl` makes the unmodified model export too; measured identical outputs.)
  Like upstream's file, k = min(refine_sample_pixels // 16, cells) is fixed at the traced size: the
  file needs at least k cells (upstream's own files fail on smaller inputs too).
"""
import contextlib
import copy
import io
import types
import warnings

OUTPUTS = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
INPUTS = ["src", "bgr"]


def write_torchscript_production(model, path: str) -> None:
    """`model` (MattingRefine, any dtype) as an official-layout production TorchScript file."""
    from bgmv2 import pytorch_impl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytorch_impl.script_model(copy.deepcopy(model).eval()).save(str(path))


def upstream_select_refinement_regions(self, err):
    """Upstream's cell selection: top-k indices scattered into zeros (sampling), or err > threshold."""
    import torch
    if self.mode == "sampling":
        b, _, h, w = err.shape
        flat = err.view(b, -1)
        indices = flat.topk(self.sample_pixels // 16, dim=1, sorted=False).indices
        ref = torch.zeros_like(flat).scatter(1, indices, 1.0)
        if self.prevent_oversampling:
            ref = ref * flat.gt(0).to(flat.dtype)
        return ref.view(b, 1, h, w)
    return err.gt(self.threshold).to(err.dtype)


def roi_align_crop():
    """An autograd Function: exact windows in PyTorch, an ONNX `RoiAlign` node when exported."""
    import torch

    class RoiAlignCrop(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, boxes, batch, window: int):
            steps = torch.arange(window, device=x.device)
            rows = (boxes[:, 1] + 0.5).long()[:, None] + steps
            cols = (boxes[:, 0] + 0.5).long()[:, None] + steps
            return x[batch[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)

        @staticmethod
        def symbolic(g, x, boxes, batch, window: int):
            return g.op("RoiAlign", x, boxes, batch, output_height_i=window, output_width_i=window,
                        sampling_ratio_i=1, spatial_scale_f=1.0, mode_s="avg")

    return RoiAlignCrop


def roi_align_crop_patch(self, x, b, y, i, size: int, padding: int):
    """`Refiner.crop_patch` as RoiAlign boxes: (N, C, size + 2 * padding, same) windows."""
    import torch
    import torch.nn.functional as F
    if padding != 0:
        x = F.pad(x, (padding, padding, padding, padding))
    window = size + 2 * padding
    left = (i * size).to(x.dtype) - 0.5  # bin centres at left + 0.5 + j: pixel centres
    top = (y * size).to(x.dtype) - 0.5
    boxes = torch.stack([left, top, left + window, top + window], dim=1)
    return roi_align_crop().apply(x, boxes, b.long(), window)


def legacy_model(model, crop_method: str = "roi_align", replace_method: str = "scatter_element",
                 upstream_selection: bool = True):
    """A private copy of `model` set up as upstream's export script sets it up."""
    twin = copy.deepcopy(model).eval()
    twin.refiner.patch_crop_method = crop_method
    twin.refiner.patch_replace_method = replace_method
    twin.refiner.static_shapes = False
    if crop_method == "roi_align":
        twin.refiner.crop_patch = types.MethodType(roi_align_crop_patch, twin.refiner)
    if upstream_selection:
        twin.refiner.select_refinement_regions = types.MethodType(upstream_select_refinement_regions, twin.refiner)
    return twin


def write_legacy_onnx(model, path: str, example, opset: int = 12, upstream_selection: bool = True,
                      crop_method: str = "roi_align", replace_method: str = "scatter_element") -> None:
    """Export `model` (MattingRefine) as upstream's `export_onnx.py` does; `example` = (src, bgr) tensors
    of the size to trace at (k in sampling mode is fixed from it, as in upstream's files)."""
    import torch
    twin = legacy_model(model, crop_method, replace_method, upstream_selection)
    dtype = next(twin.parameters()).dtype
    src, bgr = (torch.as_tensor(x).to(dtype) for x in example)
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in INPUTS + OUTPUTS}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(twin, (src, bgr), str(path), dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=INPUTS, output_names=OUTPUTS, dynamic_axes=axes, verbose=False)
