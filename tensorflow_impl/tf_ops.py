"""The only TensorFlow calls outside Keras: checks of sizes that are unknown until the graph runs.

Everything else, including the refiner's data-dependent selection (`ops.nonzero`, `ops.top_k`,
`ops.scatter_update`), is written with `keras.ops`. Keras has no assertion op, so when a
`tf.function` is traced with unknown height and width the input checks that need those sizes become
graph assertions here, with the same messages as the eager checks in `inputs.py`.
"""
import numpy as np
import tensorflow as tf

from .resize import scale_fraction


def known_values(x):
    """`x` as a numpy array when its values are known now (numpy data, or an eager tensor), else None
    (a symbolic tensor while a `tf.function` or a Keras functional model is traced)."""
    if isinstance(x, np.ndarray):
        return x
    if tf.executing_eagerly() and isinstance(x, tf.Tensor) and hasattr(x, "numpy"):
        return x.numpy()
    return None


def assert_runtime_shapes(src, bgr, scale=None):
    """Graph-time versions of `inputs.check_pair`'s shape equality, `check_divisible_by_4` and
    `check_scaled_size`. Returns `src`, made to depend on the checks; it is returned as it is in
    eager mode or with fully known shapes, where `inputs.py` has already checked everything."""
    if tf.executing_eagerly() or (src.shape.is_fully_defined() and bgr.shape.is_fully_defined()):
        return src
    shape = tf.shape(src)
    checks = [
        tf.debugging.assert_equal(shape, tf.shape(bgr), message=(
            "src and bgr must have the same shape. Resize the background shot to the source frame "
            "(same batch, height and width).")),
        tf.debugging.assert_equal(shape[1:3] % 4, 0, message=(
            "height and width must be divisible by 4. Pad the images, or call "
            "tensorflow_impl.matte(model, src, bgr), which pads to a multiple of 4 and crops the outputs back.")),
    ]
    if scale is not None:
        num, den = scale_fraction(float(scale))
        scaled = shape[1:3] * num // den  # integers only: no float64 in the graph
        checks.append(tf.debugging.assert_greater_equal(scaled, 1, message=(
            f"the image at backbone_scale {scale} gives the backbone an empty input; "
            "use a larger image or a larger backbone_scale (at most 0.5).")))
    with tf.control_dependencies(checks):
        return tf.identity(src)
