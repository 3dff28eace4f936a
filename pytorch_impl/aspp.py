"""Atrous Spatial Pyramid Pooling (DeepLabV3), as the official network uses it on the x4 features."""
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class ASPPConv(nn.Sequential):
    """3x3 conv with dilation = padding = rate, BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, rate: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ASPPPooling(nn.Sequential):
    """Global average pool, 1x1 conv, BN, ReLU, then bilinear back to the input size (a constant map).

    Keys: `.1` conv, `.2` BN (`.0` is the parameterless pool), as in the official checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        # Bilinear from 1x1, as upstream, so the values match it to the last bit.
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Five parallel branches (1x1, three dilated 3x3, image pooling), concatenated and projected."""

    def __init__(self, in_channels: int, rates: Sequence[int] = (3, 6, 9), out_channels: int = 256):
        super().__init__()
        branches = [nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )]
        branches += [ASPPConv(in_channels, out_channels, rate) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))
