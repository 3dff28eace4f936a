"""MobileNetV2 encoder: torchvision's layer layout (so official key names load), written here.

Output stride 16: block 14's depthwise conv keeps stride 1 and blocks 15-17 dilate by 2, as the
official Background Matting V2 encoder does. The 320 -> 1280 head and the classifier are absent.
"""
from typing import List, Tuple

import torch
from torch import nn

# (expand ratio t, output channels c, repeats n, first stride s), torchvision's width-1.0 table.
INVERTED_RESIDUAL_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]

# Indices of `features` whose outputs are the skip connections x1 (1/2), x2 (1/4), x3 (1/8).
SKIP_FEATURES = (1, 3, 6)


class ConvBNReLU6(nn.Sequential):
    """conv -> BatchNorm -> ReLU6; keys `.0` (conv) and `.1` (BN) as in torchvision."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, dilation: int = 1):
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1, linear), with a residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                 dilation: int = 1):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2Encoder(nn.Module):
    """Returns (x4, x3, x2, x1, x0) at 1/16, 1/8, 1/4, 1/2, 1/1 of the input resolution."""

    def __init__(self, in_channels: int = 6):
        super().__init__()
        layers: List[nn.Module] = [ConvBNReLU6(in_channels, 32, stride=2)]
        channels = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            for i in range(n):
                index = len(layers)
                stride = s if i == 0 else 1
                dilation = 1
                if index == 14:
                    stride = 1  # keep output stride 16
                if index >= 15:
                    dilation = 2
                layers.append(InvertedResidual(channels, c, stride, t, dilation))
                channels = c
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Tensor, torch.Tensor]:
        return self.stages(x, self.stem(x))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The first two layers: x1, the 1/2-resolution features (kept in float32 by the fast backend,
        where the input image's rounding to bf16 would cost most of the matte's accuracy)."""
        return self.features[1](self.features[0](x))

    def stages(self, x0: torch.Tensor, x1: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor, torch.Tensor]:
        """(x4, x3, x2, x1, x0) from the input x0 and the stem's output x1."""
        x = x1
        x2 = x1
        x3 = x1
        for i, layer in enumerate(self.features):
            if i >= 2:
                x = layer(x)
                if i == 3:
                    x2 = x
                elif i == 6:
                    x3 = x
        return x, x3, x2, x1, x0
