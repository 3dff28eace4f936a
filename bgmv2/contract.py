"""The I/O contract every model, file and runtime keeps: the names of the inputs and outputs, and the
one rule for input values, with the message for each way an input breaks it.

`pytorch_impl` (eagerly and inside TorchScript), `tensorflow_impl` and every runner of
`bgmv2.converters` (ONNX Runtime, OpenVINO, LiteRT, TensorFlow, the browser, ...) ask here, so a NaN,
a 0-255 picture or a channels-last array gets the same answer whatever runs it. Imports nothing but the
standard library: the functions that take plain values are TorchScript-compatible (scripted models call them).
"""
import math
from typing import List

INPUTS = ("src", "bgr")
OUTPUTS_REFINE = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
OUTPUTS_BASE = ("pha", "fgr", "err", "hid")


def shape_text(shape: List[int]) -> str:
    return "(" + ", ".join([str(d) for d in shape]) + ")"


def rank_problem(name: str, shape: List[int], numpy: bool) -> str:
    """'' for (batch, 3, height, width); else what is wrong with the layout and how to fix it."""
    if len(shape) != 4:
        add = name + "[None]" if numpy else name + ".unsqueeze(0)"
        return (name + " must be a 4-D " + ("array" if numpy else "tensor") + " (batch, 3, height, width); got "
                + str(len(shape)) + "-D with shape " + shape_text(shape)
                + ". For a single image add the batch dimension: " + add + ".")
    if shape[1] != 3:
        permute = name + ".transpose(0, 3, 1, 2)" if numpy else name + ".permute(0, 3, 1, 2)"
        return (name + " must have 3 channels (RGB) in dimension 1 (NCHW); got shape " + shape_text(shape)
                + ". For channels-last (NHWC) data use " + permute + "; for RGBA drop alpha with " + name + "[:, :3].")
    return ""


def dtype_problem(name: str, dtype: str, floating: bool, numpy: bool) -> str:
    """'' for floating-point inputs; else the message for integer (8-bit) pictures."""
    if floating:
        return ""
    fix = name + ".astype(np.float32) / 255" if numpy else name + ".float() / 255"
    return (name + " has dtype " + dtype + "; the model takes floating-point RGB in [0, 1]. "
            "Convert 8-bit images with " + fix + ".")


def decimal_text(value: float) -> str:
    """`value` rounded to 3 decimals, as text that Python and TorchScript spell alike ('255.0', '-2.118')."""
    if abs(value) >= 1e12:
        return str(value)
    thousandths = int(round(abs(value) * 1000))
    digits = str(thousandths % 1000 + 1000)[1:]
    while len(digits) > 1 and digits[-1] == "0":
        digits = digits[:-1]
    return ("-" if value < 0 and thousandths > 0 else "") + str(thousandths // 1000) + "." + digits


def empty_problem(name: str, shape: List[int]) -> str:
    """'' when every dimension holds something; else the message (an empty batch, a 0x0 picture)."""
    if len(shape) == 4 and (shape[0] == 0 or shape[2] == 0 or shape[3] == 0):
        return (name + " is empty (shape " + shape_text(shape) + "); give at least one picture (batch 1 or more) "
                "of at least 1x1 pixels.")
    return ""


def value_problem(name: str, lo: float, hi: float, numpy: bool) -> str:
    """'' when the smallest and largest values `lo`, `hi` are those of RGB in [0, 1]; else what is
    wrong (NaN, infinity, 0-255 or normalised values) and the fix. NaN anywhere makes `lo` or `hi` NaN.
    Values within 0.25 of [0, 1] pass (resampling overshoot, noise); beyond that the scale is wrong: a
    0-255 image has pixels of 2/255 or more, a mean/std-normalised one has black at -2.1."""
    if math.isnan(lo) or math.isnan(hi):
        fix = "np.clip(np.nan_to_num(" + name + "), 0, 1)" if numpy else "torch.nan_to_num(" + name + ").clamp(0, 1)"
        return (name + " contains NaN (not-a-number) values; the model takes RGB in [0, 1]. Find where they come "
                "from (a division by zero, a failed decode) or replace them: " + fix + ".")
    if math.isinf(lo) or math.isinf(hi):
        fix = "np.clip(" + name + ", 0, 1)" if numpy else name + ".clamp(0, 1)"
        return name + " contains infinite values; the model takes RGB in [0, 1]. Clamp it: " + fix + "."
    if lo < -0.25 or hi > 1.25:  # literals: TorchScript reads no module globals
        if lo >= -0.25:
            fix = "For 0-255 values divide by 255: " + name + " / 255."
        else:
            fix = "Not mean/std-normalised values: undo the normalisation (x * std + mean)."
        return (name + " has values from " + decimal_text(lo) + " to " + decimal_text(hi)
                + "; the model takes RGB in [0, 1]. " + fix)
    return ""


def pair_problem(src_shape: List[int], bgr_shape: List[int]) -> str:
    """'' when src and bgr have the same shape; else the message."""
    if src_shape == bgr_shape:
        return ""
    return ("src and bgr must have the same shape; got src " + shape_text(src_shape) + " and bgr "
            + shape_text(bgr_shape) + ". Resize the background shot to the source frame (same batch, height and width).")