"""`matte(model, src, bgr)`: the model on images of any size, 8-bit or float, single or batched (NHWC)."""
from typing import Tuple

from keras import ops


def as_batch(name: str, x):
    """(H, W, 3) or (B, H, W, 3) float in [0, 1]; uint8 is divided by 255."""
    x = ops.convert_to_tensor(x)
    if len(x.shape) == 3:
        x = x[None]
    if x.dtype == "uint8":
        x = ops.cast(x, "float32") / 255.0
    return x


def pad_edge(x, pad_h: int, pad_w: int):
    """Pad NHWC `x` on the bottom and right by repeating the last row and column."""
    if pad_h:
        x = ops.concatenate([x, ops.repeat(x[:, -1:], pad_h, axis=1)], axis=1)
    if pad_w:
        x = ops.concatenate([x, ops.repeat(x[:, :, -1:], pad_w, axis=2)], axis=2)
    return x


def pad_to_multiple_of_4(x):
    """Pad NHWC `x` on the bottom and right to a multiple of 4 by repeating the last row and column,
    for sizes known only when a graph runs: a gather of clamped row and column indices (no float
    arithmetic, builtin ops in TFLite)."""
    _, height, width, _ = ops.shape(x)
    rows = ops.minimum(ops.arange((height + 3) // 4 * 4, dtype="int32"), height - 1)
    columns = ops.minimum(ops.arange((width + 3) // 4 * 4, dtype="int32"), width - 1)
    return ops.take(ops.take(x, rows, axis=1), columns, axis=2)


def crop_if_full(x, padded_h, padded_w, height, width):
    """`x[:, :height, :width]` where `x` has the padded frame's size (sizes known only at run time);
    coarse outputs are returned whole."""
    _, h, w, _ = ops.shape(x)
    return x[:, :ops.where(h == padded_h, height, h), :ops.where(w == padded_w, width, w)]


def matte(model, src, bgr) -> Tuple:
    """Run `model` (base or refine) on inputs of any height and width; returns its outputs (tensors).

    The inputs are padded on the bottom and right to a multiple of 4 by repeating the edge pixels, and
    every output at the padded full resolution is cropped back; the coarse outputs of `MattingRefine`
    stay as the model computed them (on the padded frame). Works inside a `tf.function` traced with
    unknown height and width too (the padding is then part of the graph: SavedModel, TFLite).
    """
    src, bgr = as_batch("src", src), as_batch("bgr", bgr)
    if len(src.shape) != 4 or len(bgr.shape) != 4:
        raise ValueError(f"src and bgr must be (H, W, 3) or (B, H, W, 3); "
                         f"got {tuple(src.shape)} and {tuple(bgr.shape)}")
    if tuple(src.shape) != tuple(bgr.shape):
        raise ValueError(f"src and bgr must have the same shape; got {tuple(src.shape)} and {tuple(bgr.shape)}. "
                         "Resize the background shot to the source frame.")
    if src.shape[1] is None or src.shape[2] is None:  # traced with unknown size: pad and crop in the graph
        _, height, width, _ = ops.shape(src)
        src, bgr = pad_to_multiple_of_4(src), pad_to_multiple_of_4(bgr)
        _, padded_h, padded_w, _ = ops.shape(src)
        outputs = model(src, bgr)
        return tuple(crop_if_full(o, padded_h, padded_w, height, width) for o in outputs)
    height, width = int(src.shape[1]), int(src.shape[2])
    pad_h, pad_w = -height % 4, -width % 4
    src, bgr = pad_edge(src, pad_h, pad_w), pad_edge(bgr, pad_h, pad_w)
    outputs = model(src, bgr)
    full = tuple(src.shape[1:3])
    return tuple(o[:, :height, :width] if tuple(o.shape[1:3]) == full else o for o in outputs)
