"""The U-Net-style decoder: upsample, concatenate the skip, 3x3 conv, four times.

Channels 256 -> 128 -> 64 -> 48 -> out; the last conv has a bias and no BN/ReLU.
Concatenation order is always [upsampled, skip] (channels last); "upsample" is bilinear with
half-pixel centres (`resize.resize_like`).
"""
from typing import Sequence

import keras
from keras import ops

from .layers import BatchNorm2d, conv2d
from .resize import resize_like


class Decoder(keras.layers.Layer):
    def __init__(self, channels: Sequence[int], feature_channels: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.conv1 = conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = BatchNorm2d(channels[1])
        self.conv2 = conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(channels[2])
        self.conv3 = conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = BatchNorm2d(channels[3])
        self.conv4 = conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1, bias=True)

    def call(self, x4, x3, x2, x1, x0):
        x = ops.relu(self.bn1(self.conv1(ops.concatenate([resize_like(x4, x3), x3], axis=-1))))
        x = ops.relu(self.bn2(self.conv2(ops.concatenate([resize_like(x, x2), x2], axis=-1))))
        x = ops.relu(self.bn3(self.conv3(ops.concatenate([resize_like(x, x1), x1], axis=-1))))
        return self.conv4(ops.concatenate([resize_like(x, x0), x0], axis=-1))
