"""The refiner: recomputes alpha and foreground at full resolution, only where the coarse error is high.

The same contract as `pytorch_impl/refiner.py`, in NHWC:

Selection, on the grid of 4x4-pixel cells (H/4 x W/4), from `err_q` = bilinear resize of the coarse
error to that grid (skipped when it is already there, as in PyTorch):
- `sampling`: per image, the k = min(sample_pixels // 16, cells) cells of largest error, ties at the
  k-th value broken by the lower row-major index (`top_k`'s documented rule, which PyTorch mirrors).
  With `prevent_oversampling`, chosen cells whose error is 0 are dropped again.
- `thresholding`: the cells with `err_q > threshold`.
- `full`: every cell, computed densely (equal to `thresholding` with threshold -1).
`ref` is the 0/1 map of selected cells (B, H/4, W/4, 1); patches are processed in row-major (b, y, x).

Refining cell (y, x):
1. Cut the 8x8 window at top-left (2y - 3, 2x - 3) from the half-resolution bilinear resize of
   `cat(hid, pha, fgr, src, bgr)`, zeros outside the image; conv1, bn1, ReLU, conv2, bn2, ReLU (-> 4x4).
2. Nearest-neighbour resize to 8x8, concatenate the 8x8 window of full-resolution `cat(src, bgr)`
   at top-left (4y - 2, 4x - 2); conv3, bn3, ReLU, conv4 (-> 4x4: alpha, foreground residual).
3. The full-resolution output starts as the bilinear upsampling of `cat(pha, fgr)`; each refined
   4x4 patch overwrites the block at (4y, 4x).
With kernel size 1 the windows have no margin (2x2 at half and 4x4 at full resolution).

Shapes: by default the selected cells are found with `nonzero` (data-dependent count). With
`static_shapes=True`, `sampling` refines exactly k cells per image taken straight from top-k; cells
that `prevent_oversampling` drops keep their coarse value. Same numbers, shapes fixed ahead of time
(TFLite, TF.js, XLA).

Crop and replace methods: the PyTorch names (`unfold`, `gather`, `roi_align`; `scatter_nd`,
`scatter_element`) are accepted and checked, and all run the same TensorFlow implementation (a
gather of flat pixel indices; a `scatter_nd` update of whole 4x4 cells): in PyTorch they are
alternatives with identical results, here there is one fast path.

The knobs may be changed after construction; a `tf.function` trace reads them when it is traced, so
trace again (a new `tf.function`) after changing one.
"""
import keras
from keras import ops

from .layers import BatchNorm2d, conv2d, pad_spatial
from .resize import resize_bilinear, upsample_nearest_2x

from bgmv2.knobs import CROP_METHODS, KERNEL_SIZES, MODES, REPLACE_METHODS, check_kernel_size, check_knob

# The knobs settable after construction, by attribute name; `knobs.check_knob` checks and converts
# them under their model argument names ("refine_" + attribute).
KNOB_ATTRIBUTES = ("mode", "sample_pixels", "threshold", "prevent_oversampling", "patch_crop_method",
                   "patch_replace_method", "static_shapes")


def select_by_threshold(err, threshold: float):
    """0/1 map of the cells whose error exceeds `threshold`."""
    return ops.cast(err > threshold, err.dtype)


def chosen_cells(flat, k):
    """Flat indices (B, k) of the k largest entries of `flat` (B, N) in increasing order, ties at the
    k-th value taken in increasing index: `top_k`'s documented rule (PyTorch's `chosen_cells` builds
    the same rule from float32 keys). Integer indices only: no float64."""
    return ops.sort(ops.top_k(flat, k, sorted=True)[1], axis=1)


def top_k_cells(err, k: int, prevent_oversampling: bool):
    """Flat cell indices (B, k') of the k' = min(k, cells) largest errors per image, in increasing
    order, and which of them to keep (error > 0 with `prevent_oversampling`). k must be positive."""
    b, h, w, _ = ops.shape(err)
    flat = ops.reshape(err, (b, h * w))
    k = ops.minimum(k, h * w) if not isinstance(h * w, int) else min(k, h * w)
    cells = chosen_cells(flat, k)
    if prevent_oversampling:
        keep = ops.take_along_axis(flat, cells, axis=1) > 0
    else:
        keep = ops.ones_like(cells, dtype="bool")
    return cells, keep


def select_top_k(err, k: int, prevent_oversampling: bool):
    """0/1 map of the k cells of largest error per image; ties broken by lower row-major index."""
    if k <= 0:
        return ops.zeros_like(err)
    b, h, w, _ = ops.shape(err)
    cells, keep = top_k_cells(err, k, prevent_oversampling)
    rows = ops.broadcast_to(ops.arange(b, dtype="int32")[:, None], ops.shape(cells))
    indices = ops.stack([ops.reshape(rows, (-1,)), ops.reshape(cells, (-1,))], axis=1)
    ref = ops.scatter(indices, ops.cast(ops.reshape(keep, (-1,)), err.dtype), (b, h * w))
    return ops.reshape(ref, (b, h, w, 1))


def crop_patch(x, b, y, i, size: int, padding: int):
    """(N, window, window, C) windows of NHWC `x` at (y * size - padding, i * size - padding), zeros
    outside, with window = size + 2 * padding: one gather of flat pixel indices."""
    x = pad_spatial(x, padding)
    _, height, width, channels = ops.shape(x)
    window = size + 2 * padding
    offsets = ops.arange(window, dtype="int32")
    in_patch = offsets[:, None] * width + offsets[None, :]
    corner = (b * height + y * size) * width + i * size
    flat = ops.reshape(corner, (-1, 1, 1)) + in_patch[None]
    pixels = ops.take(ops.reshape(x, (-1, channels)), ops.reshape(flat, (-1,)), axis=0)
    return ops.reshape(pixels, (-1, window, window, channels))


def replace_patch(x, patches, b, y, i):
    """Write the (N, 4, 4, C) `patches` into NHWC `x` at (4y, 4i): a scatter of whole cells."""
    batch, height, width, channels = ops.shape(x)
    cells = ops.transpose(ops.reshape(x, (batch, height // 4, 4, width // 4, 4, channels)), (0, 1, 3, 2, 4, 5))
    cells = ops.scatter_update(cells, ops.stack([b, y, i], axis=1), ops.cast(patches, x.dtype))
    return ops.reshape(ops.transpose(cells, (0, 1, 3, 2, 4, 5)), (batch, height, width, channels))


class Refiner(keras.layers.Layer):
    def __init__(self, mode: str = "sampling", sample_pixels: int = 80_000, threshold: float = 0.1,
                 kernel_size: int = 3, prevent_oversampling: bool = True,
                 patch_crop_method: str = "unfold", patch_replace_method: str = "scatter_nd",
                 static_shapes: bool = False, **kwargs):
        super().__init__(**kwargs)
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
        self.conv1 = conv2d(channels[0] + 6 + 4, channels[1], kernel_size, bias=False)
        self.bn1 = BatchNorm2d(channels[1])
        self.conv2 = conv2d(channels[1], channels[2], kernel_size, bias=False)
        self.bn2 = BatchNorm2d(channels[2])
        self.conv3 = conv2d(channels[2] + 6, channels[3], kernel_size, bias=False)
        self.bn3 = BatchNorm2d(channels[3])
        self.conv4 = conv2d(channels[3], channels[4], kernel_size, bias=True)

    def __setattr__(self, name: str, value) -> None:
        # Knobs may be changed after construction (as upstream allows): check and convert them here,
        # so a bad value fails now, with its name.
        if name in KNOB_ATTRIBUTES:
            value = check_knob("refine_" + name, value)
            if name == "threshold":
                value = float(value)
        super().__setattr__(name, value)

    def call(self, src, bgr, pha, fgr, err, hid):
        """Full-resolution (pha, fgr residual, ref) from the coarse outputs; pha and fgr unclamped."""
        _, height, width, _ = ops.shape(src)
        src_bgr = ops.concatenate([src, bgr], axis=-1)
        if self.mode == "full":
            return self.refine_everywhere(src_bgr, pha, fgr, hid)

        err = resize_bilinear(err, height // 4, width // 4)  # returns err itself when already there
        out = resize_bilinear(ops.concatenate([pha, fgr], axis=-1), height, width)
        if self.mode == "sampling" and self.static_shapes:
            return self.refine_top_k_static(src_bgr, pha, fgr, err, hid, out)
        ref = self.select_refinement_regions(err)
        b, y, x = ops.nonzero(ref[..., 0])  # row-major (b, y, x); may be empty, which every op handles
        patches = self.refine_patches(src_bgr, pha, fgr, hid, b, y, x)
        out = replace_patch(out, patches, b, y, x)
        return out[..., :1], out[..., 1:], ref

    def refine_top_k_static(self, src_bgr, pha, fgr, err, hid, out):
        """`sampling` with shapes that do not depend on the data: always k patches per image."""
        batch, h, w, _ = ops.shape(err)
        k = self.sample_pixels // 16
        if k <= 0:
            return out[..., :1], out[..., 1:], ops.zeros_like(err)
        cells, keep = top_k_cells(err, k, self.prevent_oversampling)
        b = ops.reshape(ops.broadcast_to(ops.arange(batch, dtype="int32")[:, None], ops.shape(cells)), (-1,))
        cells = ops.reshape(cells, (-1,))
        y = cells // w
        x = cells - y * w
        patches = ops.cast(self.refine_patches(src_bgr, pha, fgr, hid, b, y, x), out.dtype)
        coarse = crop_patch(out, b, y, x, 4, 0)
        patches = ops.where(ops.reshape(keep, (-1, 1, 1, 1)), patches, coarse)
        out = replace_patch(out, patches, b, y, x)
        indices = ops.stack([b, cells], axis=1)
        ref = ops.scatter(indices, ops.cast(ops.reshape(keep, (-1,)), err.dtype), (batch, h * w))
        return out[..., :1], out[..., 1:], ops.reshape(ref, (batch, h, w, 1))

    def select_refinement_regions(self, err):
        """0/1 map (B, H/4, W/4, 1) of the cells to refine, from the quarter-resolution error."""
        if self.mode == "sampling":
            return select_top_k(err, self.sample_pixels // 16, self.prevent_oversampling)
        return select_by_threshold(err, self.threshold)

    def refine_patches(self, src_bgr, pha, fgr, hid, b, y, x):
        """(N, 4, 4, 4) refined alpha + foreground residual for the cells (b, y, x).

        One extra patch (cell (0, 0, 0)) is computed and dropped: TensorFlow's oneDNN convolution
        returns its input unchanged for an empty batch, so N = 0 would fail the next layer.
        """
        _, height, width, _ = ops.shape(src_bgr)
        margin = self.kernel_size // 2  # 1 for 3x3 kernels: two convs consume 2 pixels each side
        b, y, x = (ops.pad(ops.cast(v, "int32"), [[0, 1]]) for v in (b, y, x))
        p = crop_patch(self.half_resolution(src_bgr, pha, fgr, hid), b, y, x, 2, 3 * margin)
        p = ops.relu(self.bn1(self.conv1(p)))
        p = ops.relu(self.bn2(self.conv2(p)))
        p = upsample_nearest_2x(p)
        q = ops.cast(crop_patch(src_bgr, b, y, x, 4, 2 * margin), p.dtype)
        p = ops.relu(self.bn3(self.conv3(ops.concatenate([p, q], axis=-1))))
        return self.conv4(p)[:-1]

    def half_resolution(self, src_bgr, pha, fgr, hid):
        """conv1's input everywhere: `cat(hid, pha, fgr)` and `cat(src, bgr)` resized to (H/2, W/2)."""
        _, height, width, _ = ops.shape(src_bgr)
        coarse = resize_bilinear(ops.concatenate([hid, pha, fgr], axis=-1), height // 2, width // 2)
        fine = resize_bilinear(src_bgr, height // 2, width // 2)
        return ops.concatenate([coarse, ops.cast(fine, coarse.dtype)], axis=-1)

    def refine_everywhere(self, src_bgr, pha, fgr, hid):
        """`full` mode: the same layers run densely over the whole image."""
        batch, height, width, _ = ops.shape(src_bgr)
        margin = self.kernel_size // 2
        x = pad_spatial(self.half_resolution(src_bgr, pha, fgr, hid), 3 * margin)
        x = ops.relu(self.bn1(self.conv1(x)))
        x = ops.relu(self.bn2(self.conv2(x)))
        x = upsample_nearest_2x(x)  # (H/2 + 2) * 2 = H + 4 with margin, H without
        y = ops.cast(pad_spatial(src_bgr, 2 * margin), x.dtype)
        x = ops.relu(self.bn3(self.conv3(ops.concatenate([x, y], axis=-1))))
        x = self.conv4(x)
        ref = ops.ones((batch, height // 4, width // 4, 1), dtype=src_bgr.dtype)
        return x[..., :1], x[..., 1:], ref
