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
    """Heads for B search crops: cls (B,10,25,25), loc (B,20,25,25), the mask correlation
    (B,256,25,25) before its 1x1 head, and the trunk maps p0, p1, p2 that refine crops from."""

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
