"""ResNet-50 / ResNet-101 encoders: torchvision's layer layout (so official key names load), written here.

Output stride 16: `layer4` keeps stride 1 and dilates (first block dilation 1, later blocks 2), as
torchvision's `replace_stride_with_dilation=[False, False, True]`. avg-pool and fc are absent.
"""
from typing import Optional, Tuple

import torch
from torch import nn

BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4 channels), plus shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


def make_layer(in_channels: int, planes: int, blocks: int, stride: int,
               dilation: int, first_dilation: int) -> nn.Sequential:
    """A stage of bottlenecks; the first one carries the stride and the 1x1 `downsample` shortcut."""
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    layers = [Bottleneck(in_channels, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(out_channels, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNetEncoder(nn.Module):
    """Returns (x4, x3, x2, x1, x0) at 1/16, 1/8, 1/4, 1/2, 1/1 of the input resolution."""

    def __init__(self, in_channels: int = 6, variant: str = "resnet101"):
        super().__init__()
        if variant not in BLOCKS:
            raise ValueError(f"unknown ResNet variant {variant!r}; expected one of {sorted(BLOCKS)}")
        n1, n2, n3, n4 = BLOCKS[variant]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = make_layer(64, 64, n1, stride=1, dilation=1, first_dilation=1)
        self.layer2 = make_layer(256, 128, n2, stride=2, dilation=1, first_dilation=1)
        self.layer3 = make_layer(512, 256, n3, stride=2, dilation=1, first_dilation=1)
        self.layer4 = make_layer(1024, 512, n4, stride=1, dilation=2, first_dilation=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Tensor, torch.Tensor]:
        return self.stages(x, self.stem(x))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1, bn1, ReLU: x1, the 1/2-resolution features (see MobileNetV2Encoder.stem)."""
        return self.relu(self.bn1(self.conv1(x)))

    def stages(self, x0: torch.Tensor, x1: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor, torch.Tensor]:
        """(x4, x3, x2, x1, x0) from the input x0 and the stem's output x1."""
        x = self.layer1(self.maxpool(x1))
        x2 = x
        x = self.layer2(x)
        x3 = x
        x = self.layer4(self.layer3(x))
        return x, x3, x2, x1, x0
