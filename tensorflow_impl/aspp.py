"""Atrous Spatial Pyramid Pooling (DeepLabV3), as the official network uses it on the x4 features."""
from typing import Sequence

import keras
from keras import ops

from .layers import BatchNorm2d, Sequential, conv2d, relu
from .resize import resize_bilinear


class ASPPConv(Sequential):
    """3x3 conv with dilation = padding = rate, BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, rate: int, **kwargs):
        super().__init__([
            conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False),
            BatchNorm2d(out_channels),
            relu(),
        ], **kwargs)


class ASPPPooling(Sequential):
    """Global average pool, 1x1 conv, BN, ReLU, then bilinear back to the input size (a constant map).

    Children: `1` conv, `2` BN (`0` is the parameterless pool), as in the official checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__([
            keras.layers.GlobalAveragePooling2D(keepdims=True),
            conv2d(in_channels, out_channels, 1, bias=False),
            BatchNorm2d(out_channels),
            relu(),
        ], **kwargs)

    def call(self, x):
        _, height, width, _ = ops.shape(x)
        # Bilinear from 1x1 with PyTorch's weights (not a broadcast), so the values match it to the bit.
        return resize_bilinear(super().call(x), height, width)


class ASPP(keras.layers.Layer):
    """Five parallel branches (1x1, three dilated 3x3, image pooling), concatenated and projected."""

    def __init__(self, in_channels: int, rates: Sequence[int] = (3, 6, 9), out_channels: int = 256,
                 **kwargs):
        super().__init__(**kwargs)
        branches = [Sequential([
            conv2d(in_channels, out_channels, 1, bias=False),
            BatchNorm2d(out_channels),
            relu(),
        ])]
        branches += [ASPPConv(in_channels, out_channels, rate) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = Sequential(branches)  # used as a list (PyTorch: nn.ModuleList)
        self.project = Sequential([
            conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            BatchNorm2d(out_channels),
            relu(),
            keras.layers.Dropout(0.5),
        ])

    def call(self, x):
        return self.project(ops.concatenate([conv(x) for conv in self.convs], axis=-1))
