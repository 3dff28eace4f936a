"""ResNet-50 / ResNet-101 encoders, NHWC: torchvision's layer tree (`layer3.5.conv2`), so weights map one to one.

Output stride 16: `layer4` keeps stride 1 and dilates (first block dilation 1, later blocks 2), as
torchvision's `replace_stride_with_dilation=[False, False, True]`. avg-pool and fc are absent.
"""
from typing import Optional

import keras
from keras import ops

from .layers import BatchNorm2d, MaxPool2d, Sequential, conv2d, relu

BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


class Bottleneck(keras.layers.Layer):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4 channels), plus shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def call(self, x):
        identity = x
        out = ops.relu(self.bn1(self.conv1(x)))
        out = ops.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return ops.relu(out + identity)


def make_layer(in_channels: int, planes: int, blocks: int, stride: int,
               dilation: int, first_dilation: int) -> Sequential:
    """A stage of bottlenecks; the first one carries the stride and the 1x1 `downsample` shortcut."""
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = Sequential([
            conv2d(in_channels, out_channels, 1, stride, bias=False),
            BatchNorm2d(out_channels),
        ])
    layers = [Bottleneck(in_channels, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(out_channels, planes, 1, dilation) for _ in range(1, blocks)]
    return Sequential(layers)


class ResNetEncoder(keras.layers.Layer):
    """Returns (x4, x3, x2, x1, x0) at 1/16, 1/8, 1/4, 1/2, 1/1 of the input resolution."""

    def __init__(self, in_channels: int = 6, variant: str = "resnet101", **kwargs):
        super().__init__(**kwargs)
        if variant not in BLOCKS:
            raise ValueError(f"unknown ResNet variant {variant!r}; expected one of {sorted(BLOCKS)}")
        n1, n2, n3, n4 = BLOCKS[variant]
        self.conv1 = conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.relu = relu()
        self.maxpool = MaxPool2d(3, 2, 1)
        self.layer1 = make_layer(64, 64, n1, stride=1, dilation=1, first_dilation=1)
        self.layer2 = make_layer(256, 128, n2, stride=2, dilation=1, first_dilation=1)
        self.layer3 = make_layer(512, 256, n3, stride=2, dilation=1, first_dilation=1)
        self.layer4 = make_layer(1024, 512, n4, stride=1, dilation=2, first_dilation=1)

    def call(self, x):
        x0 = x
        x = self.relu(self.bn1(self.conv1(x)))
        x1 = x
        x = self.layer1(self.maxpool(x))
        x2 = x
        x = self.layer2(x)
        x3 = x
        x = self.layer4(self.layer3(x))
        return x, x3, x2, x1, x0
