"""The SiamMask network, stateless: template(z) -> features, track(x, features) -> heads.

Nothing about a target is cached on the module: per-target template features are returned
to the caller (computed once per target), and many targets are simply a batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .heads import Adjust, DepthCorrHead
from .refine import Refine, crop_at
from .trunk import LiteTrunk, ResNet50Trunk


@dataclass(frozen=True)
class ModelSpec:
    """What distinguishes the variants: the trunk, the correlation width, and refine or not."""

    trunk: type[nn.Module]
    hidden: int
    refine: bool


# sharp/base: the published ResNet-50 models (official checkpoints). lite/lite-base: ours,
# small enough to train and run fast on a CPU; lite-base is the first training stage of lite.
VARIANT_SPECS: dict[str, ModelSpec] = {
    "sharp": ModelSpec(ResNet50Trunk, 256, True),
    "base": ModelSpec(ResNet50Trunk, 256, False),
    "lite": ModelSpec(LiteTrunk, 64, True),
    "lite-base": ModelSpec(LiteTrunk, 64, False),
}
VARIANTS = tuple(VARIANT_SPECS)


@dataclass
class TemplateFeatures:
    """The three heads' kernels (B,hidden,5,5) for B targets: all the network keeps of a template.
    Torch tensors here; numpy arrays for back ends that run the exported graphs (ONNX Runtime)."""

    cls: torch.Tensor | np.ndarray
    loc: torch.Tensor | np.ndarray
    mask: torch.Tensor | np.ndarray

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


class SiamMask(nn.Module):
    """Trunk + adjust + three depth-wise correlation heads (+ refine for 'sharp' and 'lite')."""

    def __init__(self, variant: str = "sharp") -> None:
        super().__init__()
        if variant not in VARIANT_SPECS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        spec = VARIANT_SPECS[variant]
        self.variant = variant
        self.trunk = spec.trunk()
        channels = spec.trunk.channels
        self.adjust = Adjust(channels[3], spec.hidden)
        self.cls_head = DepthCorrHead(10, spec.hidden)
        self.loc_head = DepthCorrHead(20, spec.hidden)
        self.mask_head = DepthCorrHead(63 * 63, spec.hidden)
        self.refine = Refine(channels[:3], spec.hidden) if spec.refine else None

    @property
    def mask_size(self) -> int:
        """Side of the mask the network predicts in the 127x127 template frame."""
        return 127 if self.refine is not None else 63

    def template(self, z: torch.Tensor) -> TemplateFeatures:
        """(B,3,127,127) raw BGR template crops -> per-target kernels, computed once per target."""
        f = self.adjust(self.trunk(z)[3])
        return TemplateFeatures(self.cls_head.kernel(f), self.loc_head.kernel(f), self.mask_head.kernel(f))

    def track(self, x: torch.Tensor, t: TemplateFeatures) -> SearchOutput:
        """(B,3,255,255) search crops against B targets' kernels. The 3969-channel mask head is
        not run here: only one position per target is ever needed (see mask_logits)."""
        p0, p1, p2, p3 = self.trunk(x)
        f = self.adjust(p3)
        return SearchOutput(self.cls_head(f, t.cls), self.loc_head(f, t.loc),
                            self.mask_head.correlate(f, t.mask), p0, p1, p2)

    def mask_logits(self, out: SearchOutput, pos_yx: torch.Tensor) -> torch.Tensor:
        """Mask logits (B,S,S) at one grid position (y, x) per target: S=127 (sharp), 63 (base)."""
        if self.refine is not None:
            return self.refine(out.p0, out.p1, out.p2, out.mask_corr, pos_yx)
        return self.head_mask(out.mask_corr, pos_yx)

    def head_mask(self, mask_corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        """Without refine: the 3969-channel mask head at one position per target -> (B,63,63)."""
        return self.mask_head.head(crop_at(mask_corr, 0, 1, 1, pos_yx)).reshape(-1, 63, 63)
