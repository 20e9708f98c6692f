"""The refine module (sharp, lite, nano): upsamples one position's mask with trunk features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..variants import SIAMMASK_REFINE, RefineGeometry


def _double_conv(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, padding=1), nn.ReLU(inplace=True))


def crop_at(feature: torch.Tensor, pad: int, step: int, size: int, pos_yx: torch.Tensor) -> torch.Tensor:
    """Per sample the window [step*y : step*y+size, step*x : step*x+size] of the map zero-padded by
    `pad`, (B,C,size,size). Positions stay tensors (one GatherElements of whole pixels at runtime
    indices, no per-sample Python slicing), so the same code traces into ONNX, compiles without a
    rebuild per position and needs no device-to-host sync; taps in the padding read pixel 0 times 0.
    Only the window is read: no copy of the whole map (a transposed copy of the stride-2 map cost a
    fifth of the nano mask graph)."""
    c, h, w = (int(n) for n in feature.shape[1:])  # fixed by the input size; only the batch is dynamic
    offsets = torch.arange(size, device=pos_yx.device)
    rows = step * pos_yx[:, 0:1] + offsets - pad                               # (B,size)
    cols = step * pos_yx[:, 1:2] + offsets - pad                               # (B,size)
    inside = (((rows >= 0) & (rows < h))[:, :, None]
              & ((cols >= 0) & (cols < w))[:, None, :]).reshape(-1, 1, size * size)  # (B,1,size*size)
    flat = torch.where(inside, (rows[:, :, None] * w + cols[:, None, :]).reshape(-1, 1, size * size), 0)
    picked = torch.gather(feature.reshape(-1, c, h * w), 2, flat.expand(-1, c, -1))
    return (picked * inside.to(feature.dtype)).reshape(-1, c, size, size)


class Refine(nn.Module):
    """Mask refinement U2-U4 (Pinheiro et al. style) at a grid position (y, x) of the score map; where
    its crops sit on the trunk maps is the variant's RefineGeometry."""

    def __init__(self, trunk_channels: tuple[int, int, int] = (64, 256, 512), hidden: int = 256,
                 geometry: RefineGeometry = SIAMMASK_REFINE) -> None:
        super().__init__()
        self.geometry = geometry
        c0, c1, c2 = trunk_channels
        self.v0 = _double_conv(c0, 16, 4)
        self.v1 = _double_conv(c1, 64, 16)
        self.v2 = _double_conv(c2, 128, 32)
        self.h2 = _double_conv(32, 32, 32)
        self.h1 = _double_conv(16, 16, 16)
        self.h0 = _double_conv(4, 4, 4)
        self.deconv = nn.ConvTranspose2d(hidden, 32, geometry.deconv, geometry.deconv)
        self.post0 = nn.Conv2d(32, 16, 3, padding=1)
        self.post1 = nn.Conv2d(16, 4, 3, padding=1)
        self.post2 = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor,
                corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        """Trunk maps of the search crop, the mask vectors (B,hidden,S,S), positions (B,2) -> (B,127,127)."""
        g = self.geometry
        c0, c1, c2 = (crop_at(p, lv.pad, lv.step, lv.size, pos_yx) for p, lv in zip((p0, p1, p2), g.levels))
        out = self.deconv(crop_at(corr, 0, 1, 1, pos_yx))
        # mode 'nearest' (legacy floor rule), not 'nearest-exact': that is what the weights saw.
        for h, v, post, crop, side in zip((self.h2, self.h1, self.h0), (self.v2, self.v1, self.v0),
                                          (self.post0, self.post1, self.post2), (c2, c1, c0), g.upsample):
            out = post(F.interpolate(h(out) + v(crop), size=(side, side), mode="nearest"))
        return out[:, 0]
