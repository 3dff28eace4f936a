"""Resampling with PyTorch's CPU arithmetic, in keras.ops, for static or unknown (traced) sizes.

`resize_bilinear` is `F.interpolate(mode="bilinear", align_corners=False)` without antialias:
scale = float32(in) / out; real = max(scale * (dst + 0.5) - 0.5, 0); i0 = min(floor(real), in - 1);
i1 = min(i0 + 1, in - 1); l1 = clamp(real - i0, 0, 1); l0 = 1 - l1; interpolate along W first
(a * l0 + b * l1), then along H. `tf.image.resize` computes `a + (b - a) * l` instead, which differs
in the last bit and can move ties (e.g. at a clamped error of exactly 1) in the refiner's selection.
PyTorch itself runs one of several kernels (some with fused multiply-adds) depending on sizes, so
results agree with it to about 1 ulp rather than bit for bit.
"""
import math
from fractions import Fraction
from functools import lru_cache
from typing import Tuple

import numpy as np
from keras import ops


def linear_weights(in_size, out_size):
    """(i0, i1, l0, l1) for each output index along one axis; sizes may be ints or scalar tensors.

    Known sizes are computed in numpy (the same float32 operations, bit for bit, without a dozen
    eager TensorFlow ops per axis); sizes unknown until run time, in the graph.
    """
    if isinstance(in_size, int) and isinstance(out_size, int):
        return linear_weights_numpy(in_size, out_size)
    scale = ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
    dst = ops.cast(ops.arange(out_size, dtype="int32"), "float32")
    real = ops.maximum(scale * (dst + 0.5) - 0.5, 0.0)
    i0 = ops.minimum(ops.cast(ops.floor(real), "int32"), in_size - 1)
    l1 = ops.clip(real - ops.cast(i0, "float32"), 0.0, 1.0)
    i1 = ops.minimum(i0 + 1, in_size - 1)
    return i0, i1, 1.0 - l1, l1


def linear_weights_numpy(in_size: int, out_size: int):
    """`linear_weights` for sizes known ahead (numpy arrays)."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    real = np.maximum(scale * (np.arange(out_size, dtype=f32) + f32(0.5)) - f32(0.5), f32(0))
    i0 = np.minimum(np.floor(real).astype(np.int32), in_size - 1)
    l1 = np.clip(real - i0.astype(f32), f32(0), f32(1))
    return i0, np.minimum(i0 + 1, in_size - 1), f32(1) - l1, l1


def resize_bilinear(x, height, width):
    """Bilinear resize of NHWC `x` to (height, width), half-pixel centres, no antialias."""
    _, in_h, in_w, _ = ops.shape(x)
    if all(isinstance(d, int) for d in (in_h, in_w, height, width)) and (in_h, in_w) == (height, width):
        return x  # scale 1: PyTorch copies (and the weights below would give the same values)
    h0, h1, lh0, lh1 = linear_weights(in_h, height)
    w0, w1, lw0, lw1 = linear_weights(in_w, width)
    dtype = x.dtype
    lw0 = ops.reshape(ops.cast(lw0, dtype), (1, 1, -1, 1))
    lw1 = ops.reshape(ops.cast(lw1, dtype), (1, 1, -1, 1))
    lh0 = ops.reshape(ops.cast(lh0, dtype), (1, -1, 1, 1))
    lh1 = ops.reshape(ops.cast(lh1, dtype), (1, -1, 1, 1))
    t = ops.take(x, w0, axis=2) * lw0 + ops.take(x, w1, axis=2) * lw1
    return ops.take(t, h0, axis=1) * lh0 + ops.take(t, h1, axis=1) * lh1


def resize_like(x, like):
    """Bilinear resize of `x` to the spatial size of `like` (the decoder's "up")."""
    _, height, width, _ = ops.shape(like)
    return resize_bilinear(x, height, width)


def upsample_nearest_2x(x):
    """Nearest-neighbour resize to exactly twice the size: PyTorch's floor(dst * in / out) = dst // 2."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


# Graph sizes up to this are checked when a scale's fraction is chosen (int32: size * num stays < 2**31).
MAX_GRAPH_SIZE = 1 << 16
MAX_DENOMINATOR = 1 << 12


@lru_cache(maxsize=64)
def scale_fraction(scale: float) -> Tuple[int, int]:
    """(num, den), the simplest fraction for which the integer (size * num) // den equals PyTorch's
    floor(size * scale) (computed in double) for every size from 1 to `MAX_GRAPH_SIZE`.

    Graphs compute the backbone's input size with it: integers only, no float64 (TFLite, TF.js and
    accelerators lack it), and bit-exact with PyTorch. 0.25 -> 1/4, 0.125 -> 1/8, 0.3 -> 3/10.
    ValueError for a scale no fraction with a denominator up to 4096 reproduces.
    """
    sizes = np.arange(1, MAX_GRAPH_SIZE + 1, dtype=np.int64)
    expected = np.floor(sizes.astype(np.float64) * scale).astype(np.int64)
    for bound in (16, 256, MAX_DENOMINATOR):
        fraction = Fraction(scale).limit_denominator(bound)
        num, den = fraction.numerator, fraction.denominator
        if np.array_equal(sizes * num // den, expected):
            return num, den
    raise ValueError(f"backbone_scale={scale!r} has no fraction num/den (den <= {MAX_DENOMINATOR}) that gives "
                     "PyTorch's backbone sizes in integer arithmetic; use a simple fraction such as 0.25, 0.125 or 0.3.")


def scaled_size(size, scale: float):
    """floor(size * scale) as PyTorch computes it (in double) for `scale_factor` resizes.

    A known size is computed in Python (exactly PyTorch's double arithmetic); a size known only at
    run time in int32 as (size * num) // den with `scale_fraction(scale)`, never in float64.
    """
    if isinstance(size, int):
        return int(math.floor(size * scale))
    num, den = scale_fraction(float(scale))
    return (ops.cast(size, "int32") * num) // den
