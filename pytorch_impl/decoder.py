"""The U-Net-style decoder: upsample, concatenate the skip, 3x3 conv, four times.

Channels 256 -> 128 -> 64 -> 48 -> out; the last conv has a bias and no BN/ReLU.
Concatenation order is always [upsampled, skip]; "upsample" is bilinear with half-pixel centres.
"""
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of `x` to the spatial size of `like` (align_corners=False, no antialias)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    def __init__(self, channels: Sequence[int], feature_channels: Sequence[int]):
        super().__init__()
        self.conv1 = nn.Conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor, x1: torch.Tensor,
                x0: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(torch.cat([upsample_to(x4, x3), x3], dim=1))))
        x = self.relu(self.bn2(self.conv2(torch.cat([upsample_to(x, x2), x2], dim=1))))
        x = self.relu(self.bn3(self.conv3(torch.cat([upsample_to(x, x1), x1], dim=1))))
        return self.conv4(torch.cat([upsample_to(x, x0), x0], dim=1))
