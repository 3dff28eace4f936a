"""Input checks with messages that say what is wrong and how to fix it (TorchScript-compatible)."""
import math
from typing import List

import torch

from bgmv2.knobs import check_backbone_scale  # noqa: F401 - the knob rule, checked with the inputs


def shape_text(shape: List[int]) -> str:
    return "(" + ", ".join([str(d) for d in shape]) + ")"


def dtype_text(dtype: torch.dtype) -> str:
    """Name of a dtype; TorchScript prints dtypes as numbers, so spell out the common ones."""
    names = [(torch.float32, "torch.float32"), (torch.float16, "torch.float16"),
             (torch.bfloat16, "torch.bfloat16"), (torch.float64, "torch.float64"),
             (torch.uint8, "torch.uint8"), (torch.int8, "torch.int8"), (torch.int16, "torch.int16"),
             (torch.int32, "torch.int32"), (torch.int64, "torch.int64"), (torch.bool, "torch.bool")]
    for candidate, name in names:
        if dtype == candidate:
            return name
    return "an unusual dtype"


def check_image(name: str, x: torch.Tensor) -> None:
    shape = shape_text(x.shape)
    if x.dim() != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor (batch, 3, height, width); got {x.dim()}-D with shape {shape}. "
            f"For a single image add the batch dimension: {name}.unsqueeze(0).")
    if x.shape[1] != 3:
        raise ValueError(
            f"{name} must have 3 channels (RGB) in dimension 1 (NCHW); got shape {shape}. "
            f"For channels-last (NHWC) data use {name}.permute(0, 3, 1, 2); for RGBA drop alpha with {name}[:, :3].")
    if x.numel() == 0:
        raise ValueError(
            f"{name} is empty (shape {shape}); give at least one picture (batch 1 or more) of at least 1x1 pixels.")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {dtype_text(x.dtype)}; the model takes floating-point RGB in [0, 1]. "
            f"Convert 8-bit images with {name}.float() / 255.")


def check_pair(src: torch.Tensor, bgr: torch.Tensor, weight: torch.Tensor) -> None:
    """Validate `src` and `bgr` against each other and against the model's weights."""
    check_image("src", src)
    check_image("bgr", bgr)
    if src.shape != bgr.shape:
        raise ValueError(
            f"src and bgr must have the same shape; got src {shape_text(src.shape)} and bgr {shape_text(bgr.shape)}. "
            "Resize the background shot to the source frame (same batch, height and width).")
    if src.dtype != bgr.dtype:
        raise TypeError(f"src is {dtype_text(src.dtype)} but bgr is {dtype_text(bgr.dtype)}; give both the same dtype.")
    if src.device != bgr.device:
        raise ValueError(f"src is on {src.device} but bgr is on {bgr.device}; move both to the same device.")
    if src.device != weight.device:
        raise ValueError(
            f"the inputs are on {src.device} but the model is on {weight.device}; "
            f"move one of them: model.to('{src.device}') or src.to('{weight.device}').")
    # Scripted code cannot see CPU autocast safely (torch.is_autocast_cpu_enabled crashes under
    # TorchScript in torch 2.13), so scripted models leave this mismatch to PyTorch's own error.
    if not torch.jit.is_scripting():
        check_weight_dtype(src, weight)
        if not symbolic():
            check_values("src", src)
            check_values("bgr", bgr)
    else:
        check_values("src", src)
        check_values("bgr", bgr)


def check_values(name: str, x: torch.Tensor) -> None:
    """NaN / infinite values, and values far outside [0, 1] (0-255 or normalised images), with the fix.
    One pass over the tensor (aminmax; NaN propagates to both ends). Values within 0.25 of [0, 1] pass
    (resampling overshoot, noise); beyond that the scale is wrong: a 0-255 image has pixels of 2/255
    or more, a mean/std-normalised one has black at -2.1."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        x = x.permute(0, 2, 3, 1)  # the same values, contiguous: aminmax would copy a channels-last tensor first
    lo_hi = torch.aminmax(x)
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(
            f"{name} contains NaN (not-a-number) values; the model takes RGB in [0, 1]. Find where they come from "
            f"(a division by zero, a failed decode) or replace them: torch.nan_to_num({name}).clamp(0, 1).")
    if math.isinf(lo) or math.isinf(hi):
        raise ValueError(f"{name} contains infinite values; the model takes RGB in [0, 1]. Clamp it: {name}.clamp(0, 1).")
    if lo < -0.25 or hi > 1.25:
        shown = (torch.stack([lo_hi[0], lo_hi[1]]).double() * 1000).round() / 1000
        if lo >= -0.25:
            fix = f"For 0-255 values divide by 255: {name} / 255."
        else:
            fix = "Not mean/std-normalised values: undo the normalisation (x * std + mean)."
        raise ValueError(f"{name} has values from {float(shown[0])} to {float(shown[1])}; the model takes RGB in "
                         f"[0, 1]. " + fix)


@torch.jit.unused
def symbolic() -> bool:
    """True while torch.compile, torch.export or the tracer runs the model, or a CUDA graph is being
    captured: the input values are not known then (and reading them would break the graph or the
    capture), so `check_values` is left out."""
    return (torch.jit.is_tracing() or torch.compiler.is_compiling()
            or (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()))


@torch.jit.unused
def check_weight_dtype(src: torch.Tensor, weight: torch.Tensor) -> None:
    if src.dtype != weight.dtype and not torch.is_autocast_enabled(src.device.type):
        raise TypeError(
            f"the inputs are {dtype_text(src.dtype)} but the model's weights are {dtype_text(weight.dtype)}; "
            f"convert one of them (model.to({dtype_text(src.dtype)}) or src.to({dtype_text(weight.dtype)})), "
            "or run under torch.autocast.")


def check_divisible_by_4(src: torch.Tensor) -> None:
    H, W = src.shape[2], src.shape[3]
    if H % 4 != 0 or W % 4 != 0:
        raise ValueError(
            f"height and width must be divisible by 4; got {H}x{W}. Pad the images, or call "
            "bgmv2.pytorch_impl.matte(model, src, bgr), which pads to a multiple of 4 and crops the outputs back.")


def check_scaled_size(src: torch.Tensor, scale: float) -> None:
    H, W = src.shape[2], src.shape[3]
    h = int(math.floor(H * scale))
    w = int(math.floor(W * scale))
    if h < 1 or w < 1:
        raise ValueError(
            f"a {H}x{W} image at backbone_scale {scale} gives the backbone a {h}x{w} input; "
            "use a larger image or a larger backbone_scale (at most 0.5).")
