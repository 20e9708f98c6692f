"""The sharp variant's refine module: upsamples one position's mask with trunk features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _double_conv(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, padding=1), nn.ReLU(inplace=True))


def crop_at(feature: torch.Tensor, pad: int, step: int, size: int, pos_yx: torch.Tensor) -> torch.Tensor:
    """Per sample the window [step*y : step*y+size, step*x : step*x+size] of the map zero-padded by
    `pad`, (B,C,size,size). Positions stay tensors (one Gather of whole pixels at runtime indices,
    no per-sample Python slicing), so the same code traces into ONNX, compiles without a rebuild
    per position and needs no device-to-host sync; taps in the padding read pixel 0 times 0."""
    c, h, w = (int(n) for n in feature.shape[1:])  # fixed by the input size; only the batch is dynamic
    offsets = torch.arange(size, device=pos_yx.device)
    rows = step * pos_yx[:, 0:1] + offsets - pad                               # (B,size)
    cols = step * pos_yx[:, 1:2] + offsets - pad                               # (B,size)
    inside = (((rows >= 0) & (rows < h))[:, :, None]
              & ((cols >= 0) & (cols < w))[:, None, :])                        # (B,size,size)
    sample = torch.arange(pos_yx.shape[0], device=pos_yx.device)[:, None, None]  # batch stays dynamic
    flat = torch.where(inside, (sample * h + rows[:, :, None]) * w + cols[:, None, :], 0)
    table = feature.permute(0, 2, 3, 1).reshape(-1, c)                         # (B*h*w, C)
    picked = table[flat.reshape(-1)] * inside.reshape(-1, 1).to(feature.dtype)
    return picked.reshape(-1, size, size, c).permute(0, 3, 1, 2)


class Refine(nn.Module):
    """Mask refinement U2-U4 (Pinheiro et al. style) at a grid position (y, x) of the 25x25 map."""

    def __init__(self, trunk_channels: tuple[int, int, int] = (64, 256, 512), hidden: int = 256) -> None:
        super().__init__()
        c0, c1, c2 = trunk_channels
        self.v0 = _double_conv(c0, 16, 4)
        self.v1 = _double_conv(c1, 64, 16)
        self.v2 = _double_conv(c2, 128, 32)
        self.h2 = _double_conv(32, 32, 32)
        self.h1 = _double_conv(16, 16, 16)
        self.h0 = _double_conv(4, 4, 4)
        self.deconv = nn.ConvTranspose2d(hidden, 32, 15, 15)
        self.post0 = nn.Conv2d(32, 16, 3, padding=1)
        self.post1 = nn.Conv2d(16, 4, 3, padding=1)
        self.post2 = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor,
                corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        """Trunk maps of the search crop, the mask correlation (B,hidden,25,25), positions (B,2) -> (B,127,127)."""
        c0 = crop_at(p0, 16, 4, 61, pos_yx)
        c1 = crop_at(p1, 8, 2, 31, pos_yx)
        c2 = crop_at(p2, 4, 1, 15, pos_yx)
        out = self.deconv(crop_at(corr, 0, 1, 1, pos_yx))
        # mode 'nearest' (legacy floor rule), not 'nearest-exact': that is what the weights saw.
        out = self.post0(F.interpolate(self.h2(out) + self.v2(c2), size=(31, 31), mode="nearest"))
        out = self.post1(F.interpolate(self.h1(out) + self.v1(c1), size=(61, 61), mode="nearest"))
        out = self.post2(F.interpolate(self.h0(out) + self.v0(c0), size=(127, 127), mode="nearest"))
        return out[:, 0]
