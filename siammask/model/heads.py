"""Adjust layer and the depth-wise correlation heads (cls, loc, mask)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Adjust(nn.Module):
    """1x1 conv (1024->256 for ResNet-50) + BN; template features are cropped to their central 7x7."""

    def __init__(self, cin: int = 1024, cout: int = 256) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if x.shape[-1] < 20:  # template branch (15x15): keep the centre 7x7
            x = x[:, :, 4:-4, 4:-4]
        return x


def _conv_bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def xcorr_depthwise(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel cross-correlation (no flip): (B,C,H,W) x (B,C,h,w) -> (B,C,H-h+1,W-w+1)."""
    b, c = kernel.shape[:2]
    out = F.conv2d(search.reshape(1, b * c, *search.shape[2:]),
                   kernel.reshape(b * c, 1, *kernel.shape[2:]), groups=b * c)
    return out.reshape(b, c, *out.shape[2:])


class DepthCorrHead(nn.Module):
    """Kernel branch (template), search branch, depth-wise correlation, then a 1x1 head."""

    def __init__(self, out_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.kernel = _conv_bn_relu(hidden)
        self.search = _conv_bn_relu(hidden)
        self.head = nn.Sequential(nn.Conv2d(hidden, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, 1))

    def correlate(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Correlation map before the head; `kernel` is this head's `self.kernel(z)`."""
        return xcorr_depthwise(self.search(x), kernel)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return self.head(self.correlate(x, kernel))
