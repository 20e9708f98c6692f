"""ResNet-50 trunk up to layer3, with the original SiamMask's padding and dilation quirks.

The quirks matter: official checkpoints only reproduce the published tracker when every
padding, stride and dilation matches (reference section 2).
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
             dilation: int = 1) -> nn.Sequential:
    """A bias-free conv followed by BatchNorm, indexed .0/.1 like the original `downsample`."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
    )


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block (expansion 4)."""

    def __init__(self, cin: int, planes: int, stride: int, padding: int, dilation: int,
                 shortcut: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=padding,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _layer(cin: int, planes: int, blocks: int, first: dict, rest: dict,
           shortcut: nn.Module) -> nn.Sequential:
    """Block 0 takes `first` conv2 settings and the shortcut; blocks 1.. take `rest`."""
    layers = [Bottleneck(cin, planes, shortcut=shortcut, **first)]
    layers += [Bottleneck(planes * 4, planes, shortcut=None, **rest) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Trunk(nn.Module):
    """Returns (p0, layer1, layer2, layer3); p0 is conv1's output before the max-pool."""

    channels = (64, 256, 512, 1024)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        plain = dict(stride=1, padding=1, dilation=1)
        self.layer1 = _layer(64, 64, 3, plain, plain, _conv_bn(64, 256, 1))
        self.layer2 = _layer(256, 128, 4, dict(stride=2, padding=0, dilation=1), plain,
                             _conv_bn(256, 512, 3, stride=2, padding=0))
        self.layer3 = _layer(512, 256, 6, plain, dict(stride=1, padding=2, dilation=2),
                             _conv_bn(512, 1024, 3, stride=1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p0 = self.relu(self.bn1(self.conv1(x)))
        p1 = self.layer1(self.maxpool(p0))
        p2 = self.layer2(p1)
        p3 = self.layer3(p2)
        return p0, p1, p2, p3


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 shortcut when the width changes."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _conv_bn(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class LiteTrunk(nn.Module):
    """A small trunk with ResNet-50's strides and map sizes (125/63/31/31 for a 255 crop), so the
    same heads, refine and tracker geometry apply; about 1/20 of the compute."""

    channels = (16, 32, 64, 128)

    def __init__(self) -> None:
        super().__init__()
        c0, c1, c2, c3 = self.channels
        self.conv1 = nn.Conv2d(3, c0, 7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = BasicBlock(c0, c1)
        self.layer2 = nn.Sequential(_conv_bn(c1, c2, 3, stride=2, padding=0), nn.ReLU(inplace=True),
                                    BasicBlock(c2, c2))
        self.layer3 = BasicBlock(c2, c3, dilation=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Raw 0..255 pixels as for ResNet-50; the first BN absorbs the scale once trained.
        p0 = self.relu(self.bn1(self.conv1(x)))
        p1 = self.layer1(self.maxpool(p0))
        p2 = self.layer2(p1)
        return p0, p1, p2, self.layer3(p2)
