"""What every tracking network offers the engines: per-target kernels, search heads, a mask per position.

The networks are stateless: template(z) -> TemplateFeatures (computed once per target), track(x,
features) -> SearchOutput, mask_logits(out, positions). Many targets are a batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..presence import appearance


@dataclass
class TemplateFeatures:
    """The three heads' kernels (B,hidden,5,5) for B targets: all the network keeps of a template.
    Torch tensors here; numpy arrays for back ends that run the exported graphs (ONNX Runtime)."""

    cls: torch.Tensor | np.ndarray
    loc: torch.Tensor | np.ndarray
    mask: torch.Tensor | np.ndarray

    def appearance(self) -> np.ndarray:
        """(B,D) float32 appearance vectors of the cls and loc kernels (siammask.presence)."""
        return appearance(*(k.float().cpu().numpy() if isinstance(k, torch.Tensor) else k
                            for k in (self.cls, self.loc)))

    def __getitem__(self, index) -> "TemplateFeatures":
        return TemplateFeatures(self.cls[index], self.loc[index], self.mask[index])

    @staticmethod
    def cat(parts: Sequence["TemplateFeatures"]) -> "TemplateFeatures":
        """Targets joined into one batch (a single part is returned as it is)."""
        if len(parts) == 1:
            return parts[0]
        join = torch.cat if isinstance(parts[0].cls, torch.Tensor) else np.concatenate
        return TemplateFeatures(*(join([getattr(p, k) for p in parts]) for k in ("cls", "loc", "mask")))


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
