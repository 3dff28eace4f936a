"""Keras layers with PyTorch's semantics: symmetric zero padding, BatchNorm eps 1e-5, indexed containers.

Each weight-bearing layer is built in its constructor (like a PyTorch module, its weights exist before
the first call), so weights can be loaded into a fresh model. The three weight-bearing kinds here are
the only ones `weights.py` has layout rules for.
"""
from typing import Iterable, Optional

import keras
from keras import ops


def pad_spatial(x, padding: int, value: float = 0.0):
    """Pad H and W of an NHWC tensor by `padding` on every side with `value` (PyTorch's conv padding)."""
    if padding == 0:
        return x
    return ops.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]], constant_values=value)


class Sequential(keras.layers.Layer):
    """`nn.Sequential` / `nn.ModuleList`: children reached by index (`seq[1]`), applied in order.

    Unlike `keras.Sequential` it is a plain layer, so its children's index is their name in the tree
    (`features.3.conv.1.0`), exactly as in PyTorch.
    """

    def __init__(self, items: Iterable[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.items = list(items)

    def __getitem__(self, index: int) -> keras.layers.Layer:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def call(self, x):
        for item in self.items:
            x = item(x)
        return x


def keras_padding(kernel_size: int, stride: int, padding: int, dilation: int):
    """(Keras padding mode, explicit padding) that pads like PyTorch's symmetric `padding`.

    With stride 1 and an odd kernel, TF's 'SAME' pads (kernel - 1) * dilation / 2 on every side,
    exactly PyTorch's "same-size" padding, without a padded copy of the input. Strided, it would pad
    asymmetrically (more at the bottom and right), so those layers pad explicitly and run 'valid'.
    Dilated layers pad explicitly too: they run as a sum over kernel taps (see `dilated_taps`).
    """
    if dilation == 1 and stride == 1 and kernel_size % 2 == 1 and padding == (kernel_size - 1) // 2:
        return "same", 0
    return "valid", padding


def dilated_taps(x, kernel_size: int, dilation: int, tap):
    """sum over kernel taps (i, j) of `tap(window, i, j)`, the window shifted by (i, j) * dilation.

    TensorFlow runs a dilated convolution as space-to-batch + convolution + batch-to-space, which
    pads the map up to a multiple of the rate: at ASPP's rate 9 on a 12x20 map that is 7x the work
    (measured 170 ms against 11 ms for this sum, for 2048 -> 256 channels). x is already padded.
    """
    _, height, width, _ = ops.shape(x)
    reach = (kernel_size - 1) * dilation
    out = None
    for i in range(kernel_size):
        for j in range(kernel_size):
            window = x[:, i * dilation:height - reach + i * dilation, j * dilation:width - reach + j * dilation, :]
            out = tap(window, i, j) if out is None else out + tap(window, i, j)
    return out


class TorchPadded:
    """The `call` of `Conv2d` and `DepthwiseConv2d`: PyTorch's padding first, then Keras' convolution,
    or for a dilation > 1 the sum over kernel taps (`dilated_taps`) of the subclass's `tap`."""

    def call(self, inputs):
        x = pad_spatial(inputs, self.torch_padding)
        dilation = self.dilation_rate[0]
        if dilation == 1:
            return super().call(x)
        out = dilated_taps(x, self.kernel_size[0], dilation, self.tap)
        return out + self.bias if self.use_bias else out


class Conv2d(TorchPadded, keras.layers.Conv2D):
    """`nn.Conv2d` (groups=1): symmetric zero padding as PyTorch, see `keras_padding`. Kernel HWIO
    (PyTorch: OIHW)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True, **kwargs):
        if dilation > 1 and stride > 1:
            raise ValueError("strided dilated convolutions are not used here")
        mode, self.torch_padding = keras_padding(kernel_size, stride, padding, dilation)
        super().__init__(out_channels, kernel_size, strides=stride, padding=mode,
                         dilation_rate=dilation, use_bias=bias, **kwargs)
        self.build((None, None, None, in_channels))

    def tap(self, window, i: int, j: int):
        return ops.einsum("bhwc,cd->bhwd", window, self.kernel[i, j])


class DepthwiseConv2d(TorchPadded, keras.layers.DepthwiseConv2D):
    """`nn.Conv2d` with groups = in = out channels. Kernel (kh, kw, C, 1) (PyTorch: (C, 1, kh, kw))."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True, **kwargs):
        if dilation > 1 and stride > 1:
            raise ValueError("strided dilated convolutions are not used here")
        mode, self.torch_padding = keras_padding(kernel_size, stride, padding, dilation)
        super().__init__(kernel_size, strides=stride, padding=mode, depth_multiplier=1,
                         dilation_rate=dilation, use_bias=bias, **kwargs)
        self.build((None, None, None, channels))

    def tap(self, window, i: int, j: int):
        return window * self.kernel[i, j, :, 0]


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
           dilation: int = 1, groups: int = 1, bias: bool = True) -> keras.layers.Layer:
    """The layer for `nn.Conv2d(...)` with these arguments: a convolution or a depthwise one."""
    if groups == 1:
        return Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias)
    if groups == in_channels == out_channels:
        return DepthwiseConv2d(in_channels, kernel_size, stride, padding, dilation, bias)
    raise ValueError(f"grouped convolutions other than depthwise are not used here (groups={groups})")


class BatchNorm2d(keras.layers.BatchNormalization):
    """`nn.BatchNorm2d`: eps 1e-5 (Keras' default is 1e-3), momentum 0.1 in PyTorch's sense.

    Carries `num_batches_tracked` (int64, non-trainable, counted in training calls) so that a PyTorch
    state dict goes through Keras and back tensor for tensor.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, **kwargs):
        super().__init__(axis=-1, epsilon=eps, momentum=1.0 - momentum, **kwargs)
        self.build((None, None, None, num_features))

    def build(self, input_shape):
        super().build(input_shape)
        self.num_batches_tracked = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                                   trainable=False, name="num_batches_tracked")

    def call(self, inputs, training: Optional[bool] = None, mask=None):
        if training and self.trainable:
            self.num_batches_tracked.assign_add(1)
        return super().call(inputs, training=training, mask=mask)


class MaxPool2d(keras.layers.MaxPooling2D):
    """`nn.MaxPool2d(kernel, stride, padding)`: pads with -inf, then pools 'valid'."""

    def __init__(self, kernel_size: int, stride: int, padding: int = 0, **kwargs):
        super().__init__(pool_size=kernel_size, strides=stride, padding="valid", **kwargs)
        self.torch_padding = padding

    def call(self, inputs):
        return super().call(pad_spatial(inputs, self.torch_padding, float("-inf")))


def relu6() -> keras.layers.Layer:
    return keras.layers.ReLU(max_value=6.0)


def relu() -> keras.layers.Layer:
    return keras.layers.ReLU()


def named_children(layer: keras.layers.Layer):
    """(name, child) pairs as PyTorch names them: indices in a `Sequential`, attribute names elsewhere
    (in the order they were assigned, which is PyTorch's registration order)."""
    if isinstance(layer, Sequential):
        return [(str(i), child) for i, child in enumerate(layer.items)]
    return [(name, value) for name, value in vars(layer).items()
            if not name.startswith("_") and isinstance(value, keras.layers.Layer)]


def named_layers(layer: keras.layers.Layer, prefix: str = ""):
    """Every layer of the tree with its PyTorch module path ("" for the root), depth first, in order."""
    yield prefix, layer
    for name, child in named_children(layer):
        yield from named_layers(child, f"{prefix}.{name}" if prefix else name)
