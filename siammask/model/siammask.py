"""The SiamMask network, stateless: template(z) -> features, track(x, features) -> heads.

Nothing about a target is cached on the module: per-target template features are returned
to the caller (computed once per target), and many targets are simply a batch.
"""
from __future__ import annotations

import torch
from torch import nn

from ..variants import variant_spec
from .heads import Adjust, DepthCorrHead
from .interface import SearchOutput, TemplateFeatures, TrackingNet
from .refine import Refine, crop_at
from .trunk import LiteTrunk, ResNet50Trunk

# The trunks of the 'siammask' architecture by the name the variant registry uses.
TRUNKS: dict[str, type[nn.Module]] = {"resnet50": ResNet50Trunk, "lite": LiteTrunk}


class SiamMask(TrackingNet):
    """Trunk + adjust + three depth-wise correlation heads (+ refine for 'sharp' and 'lite')."""

    def __init__(self, variant: str = "sharp") -> None:
        super().__init__()
        spec = variant_spec(variant)
        if spec.arch != "siammask":
            raise ValueError(f"variant {variant!r} is not a SiamMask (ResNet-style) model; use build_model")
        self.variant = variant
        trunk = TRUNKS[spec.trunk]
        self.trunk = trunk()
        channels = trunk.channels
        self.adjust = Adjust(channels[3], spec.hidden)
        self.cls_head = DepthCorrHead(10, spec.hidden)
        self.loc_head = DepthCorrHead(20, spec.hidden)
        self.mask_head = DepthCorrHead(63 * 63, spec.hidden)
        self.refine = Refine(channels[:3], spec.hidden, spec.refine_geometry) if spec.refine else None

    @property
    def mask_size(self) -> int:
        """Side of the mask the network predicts in the 127x127 template frame."""
        return self.refine.geometry.mask if self.refine is not None else 63

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
        """Mask logits (B,S,S) at one grid position (y, x) per target: S=127 with refine (sharp,
        lite), 63 without (base, lite-base)."""
        if self.refine is not None:
            return self.refine(out.p0, out.p1, out.p2, out.mask_corr, pos_yx)
        return self.head_mask(out.mask_corr, pos_yx)

    def head_mask(self, mask_corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        """Without refine: the 3969-channel mask head at one position per target -> (B,63,63)."""
        return self.mask_head.head(crop_at(mask_corr, 0, 1, 1, pos_yx)).reshape(-1, 63, 63)
