"""Input checks with messages that say what is wrong and how to fix it (`pytorch_impl/inputs.py`, in NHWC).

They read static shapes and dtypes, so they run eagerly and while a `tf.function` is traced; a
dimension unknown at trace time is checked when the graph runs (`tf_ops.assert_runtime_shapes`).
Float inputs of any precision are accepted and cast to the model's compute dtype, as every Keras
layer does (PyTorch instead requires the weights' dtype outside autocast).
"""
import math
from typing import Optional, Sequence, Tuple

import keras
import numpy as np

from bgmv2.contract import value_problem
from bgmv2.knobs import check_backbone_scale  # noqa: F401 - the knob rule, checked with the inputs
from .tf_ops import known_values


def static_shape(x) -> Optional[Tuple[Optional[int], ...]]:
    """The shape as far as it is known (None for unknown dimensions), or None for unknown rank."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    if getattr(shape, "rank", 0) is None:  # tf.TensorShape of unknown rank
        return None
    return tuple(None if d is None else int(d) for d in shape)


def dtype_name(x) -> str:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    return keras.backend.standardize_dtype(dtype)


def shape_text(shape: Sequence[Optional[int]]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def check_image(name: str, x) -> None:
    shape = static_shape(x)
    if shape is None:
        return
    if len(shape) != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor (batch, height, width, 3); got {len(shape)}-D with shape "
            f"{shape_text(shape)}. For a single image add the batch dimension: {name}[None].")
    if shape[3] != 3:
        raise ValueError(
            f"{name} must have 3 channels (RGB) in the last dimension (NHWC); got shape {shape_text(shape)}. "
            f"For channels-first (NCHW) data use tf.transpose({name}, (0, 2, 3, 1)); "
            f"for RGBA drop alpha with {name}[..., :3].")
    dtype = dtype_name(x)
    if not dtype.startswith(("float", "bfloat")):
        raise TypeError(
            f"{name} has dtype {dtype}; the model takes floating-point RGB in [0, 1]. "
            f"Convert 8-bit images with tf.cast({name}, tf.float32) / 255.")


def check_pair(src, bgr) -> None:
    """Validate `src` and `bgr`, and against each other, before Keras casts them."""
    check_image("src", src)
    check_image("bgr", bgr)
    src_shape, bgr_shape = static_shape(src), static_shape(bgr)
    if src_shape is not None and bgr_shape is not None and any(
            a is not None and b is not None and a != b for a, b in zip(src_shape, bgr_shape)):
        raise ValueError(
            f"src and bgr must have the same shape; got src {shape_text(src_shape)} and bgr "
            f"{shape_text(bgr_shape)}. Resize the background shot to the source frame (same batch, "
            "height and width).")
    if dtype_name(src) != dtype_name(bgr):
        raise TypeError(f"src is {dtype_name(src)} but bgr is {dtype_name(bgr)}; give both the same dtype.")
    for name, x in (("src", src), ("bgr", bgr)):
        values = known_values(x)
        if values is not None:
            check_values(name, values)


def check_values(name: str, x: np.ndarray) -> None:
    """NaN / infinite values, and values far outside [0, 1] (0-255 or normalised images), with the fix;
    the messages of `bgmv2.pytorch_impl.inputs.check_values`. Values within 0.25 of [0, 1] pass (resampling
    overshoot, noise); beyond that the scale is wrong: a 0-255 image has pixels of 2/255 or more, a
    mean/std-normalised one has black at -2.1. Checked where the values are known (eager calls)."""
    if x.size == 0:
        return
    problem = value_problem(name, float(np.min(x)), float(np.max(x)), True)  # NaN propagates to both
    if problem:
        raise ValueError(problem)


def check_divisible_by_4(height: Optional[int], width: Optional[int]) -> None:
    if height is None or width is None:
        return
    if height % 4 != 0 or width % 4 != 0:
        raise ValueError(
            f"height and width must be divisible by 4; got {height}x{width}. Pad the images, or call "
            "tensorflow_impl.matte(model, src, bgr), which pads to a multiple of 4 and crops the outputs back.")


def check_scaled_size(height: Optional[int], width: Optional[int], scale: float) -> None:
    if height is None or width is None:
        return
    h = int(math.floor(height * scale))
    w = int(math.floor(width * scale))
    if h < 1 or w < 1:
        raise ValueError(
            f"a {height}x{width} image at backbone_scale {scale} gives the backbone a {h}x{w} input; "
            "use a larger image or a larger backbone_scale (at most 0.5).")
