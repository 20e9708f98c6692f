"""What every tracking network offers the engines: per-target kernels, search heads, a mask per position.

The networks are stateless: template(z) -> TemplateFeatures (computed once per target), track(x,
features) -> SearchOutput, mask_logits(out, positions). Many targets are a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backend import TemplateFeatures  # the core's (torch-free): what the engines pass the tracker


@dataclass
class SearchOutput:
    """Heads for B search crops on the variant's NxN score map (Geometry.score_size): cls (B,2K,N,N),
    loc (B,4K,N,N) for K anchors per cell, the mask correlation (B,hidden,N,N), and the trunk maps
    p0, p1, p2 that refine crops from. ResNet-style variants (sharp, base, lite, lite-base): K=5,
    N=25; nano: K=1 (a point per cell), N=15, and loc holds distances to the box's sides."""

    cls: torch.Tensor
    loc: torch.Tensor
    mask_corr: torch.Tensor
    p0: torch.Tensor
    p1: torch.Tensor
    p2: torch.Tensor


class TrackingNet(nn.Module):
    """Base of the variants' networks (SiamMask, NanoSiamMask); `variant` and `mask_size` name what it is."""

    variant: str
    mask_size: int

    def template(self, z: torch.Tensor) -> TemplateFeatures:
        raise NotImplementedError

    def track(self, x: torch.Tensor, t: TemplateFeatures) -> SearchOutput:
        raise NotImplementedError

    def mask_logits(self, out: SearchOutput, pos_yx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
