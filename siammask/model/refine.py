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
    """Mask refinement (Pinheiro et al. style: U2-U4 in the original, two levels in nano) at a grid
    position (y, x) of the score map; which trunk maps it reads, where its crops sit on them and how
    wide its branches are is the variant's RefineGeometry. Modules are named by map (v0-v2, h0-h2) and
    by step (post0-post2), as the official checkpoints name them."""

    def __init__(self, trunk_channels: tuple[int, int, int] = (64, 256, 512), hidden: int = 256,
                 geometry: RefineGeometry = SIAMMASK_REFINE) -> None:
        super().__init__()
        self.geometry = geometry
        levels = geometry.levels
        # registered in the official files' order (their state dicts list keys so): v by map, h by
        # step, deconv, post by step
        for level in sorted(levels, key=lambda level: level.map):
            setattr(self, f"v{level.map}", _double_conv(trunk_channels[level.map], level.mid, level.out))
        for level in levels:
            setattr(self, f"h{level.map}", _double_conv(level.out, level.out, level.out))
        self.deconv = nn.ConvTranspose2d(hidden, levels[0].out, geometry.deconv, geometry.deconv)
        for step, level in enumerate(levels):
            after = levels[step + 1].out if step + 1 < len(levels) else 1
            setattr(self, f"post{step}", nn.Conv2d(level.out, after, 3, padding=1))

    def forward(self, p0: torch.Tensor | None, p1: torch.Tensor | None, p2: torch.Tensor | None,
                corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        """Trunk maps of the search crop (None where the geometry reads none), the mask vectors
        (B,hidden,S,S), positions (B,2) -> (B,mask,mask) logits."""
        g, maps = self.geometry, (p0, p1, p2)
        out = self.deconv(crop_at(corr, 0, 1, 1, pos_yx))
        # mode 'nearest' (legacy floor rule), not 'nearest-exact': that is what the weights saw.
        for step, level in enumerate(g.levels):
            crop = crop_at(maps[level.map], level.pad, level.step, level.size, pos_yx)
            mixed = getattr(self, f"h{level.map}")(out) + getattr(self, f"v{level.map}")(crop)
            out = getattr(self, f"post{step}")(F.interpolate(mixed, size=(level.side, level.side), mode="nearest"))
        if g.levels[-1].side != g.mask:
            out = F.interpolate(out, size=(g.mask, g.mask), mode="bilinear", align_corners=False)
        return out[:, 0]
