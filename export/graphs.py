"""The three exported graphs as thin nn.Modules over a loaded SiamMask: same layers, same weights.

Only the wiring is restated here, with the export-friendly correlation and crop of static_ops;
every convolution, BatchNorm and upsampling is the model's own module.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siammask.model import VARIANT_SPECS, SiamMask
from siammask.model.heads import DepthCorrHead

from .static_ops import crop_gather, xcorr_unrolled

# Graph input/output names: the engines bind by these.
TEMPLATE_IO = (("z",), ("k_cls", "k_loc", "k_mask"))
SEARCH_IO = (("x", "k_cls", "k_loc", "k_mask"), ("cls", "loc", "mask_corr", "p0", "p1", "p2"))
REFINE_IO = (("p0", "p1", "p2", "mask_corr", "pos_yx"), ("mask",))
HEAD_MASK_IO = (("mask_corr", "pos_yx"), ("mask",))


def has_refine(variant: str) -> bool:
    """sharp and lite refine a mask from the trunk maps; base and lite-base read the 63x63 mask head."""
    return VARIANT_SPECS[variant].refine


def mask_io(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return REFINE_IO if has_refine(variant) else HEAD_MASK_IO


def mask_size(variant: str) -> int:
    return 127 if has_refine(variant) else 63


class TemplateGraph(nn.Module):
    """z (B,3,127,127) -> the three heads' kernels (B,hidden,5,5)."""

    def __init__(self, model: SiamMask) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = self.model.template(z)
        return t.cls, t.loc, t.mask


def _correlate(head: DepthCorrHead, f: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return xcorr_unrolled(head.search(f), kernel)


class SearchGraph(nn.Module):
    """x (B,3,255,255) + kernels -> cls, loc, mask correlation and the trunk maps refine needs."""

    def __init__(self, model: SiamMask) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, k_cls: torch.Tensor, k_loc: torch.Tensor,
                k_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        p0, p1, p2, p3 = m.trunk(x)
        f = m.adjust(p3)
        cls = m.cls_head.head(_correlate(m.cls_head, f, k_cls))
        loc = m.loc_head.head(_correlate(m.loc_head, f, k_loc))
        return cls, loc, _correlate(m.mask_head, f, k_mask), p0, p1, p2


class RefineGraph(nn.Module):
    """sharp / lite: trunk maps + mask correlation + positions (B,2) int64 -> (B,127,127) logits."""

    def __init__(self, model: SiamMask) -> None:
        super().__init__()
        self.refine = model.refine

    def forward(self, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, corr: torch.Tensor,
                pos_yx: torch.Tensor) -> torch.Tensor:
        r = self.refine
        c0 = crop_gather(p0, 16, 4, 61, pos_yx)
        c1 = crop_gather(p1, 8, 2, 31, pos_yx)
        c2 = crop_gather(p2, 4, 1, 15, pos_yx)
        out = r.deconv(crop_gather(corr, 0, 1, 1, pos_yx))
        out = r.post0(F.interpolate(r.h2(out) + r.v2(c2), size=(31, 31), mode="nearest"))
        out = r.post1(F.interpolate(r.h1(out) + r.v1(c1), size=(61, 61), mode="nearest"))
        out = r.post2(F.interpolate(r.h0(out) + r.v0(c0), size=(127, 127), mode="nearest"))
        return out[:, 0]


class BaseMaskGraph(nn.Module):
    """base / lite-base: mask correlation + positions -> (B,63,63) logits of the 3969-channel head there."""

    def __init__(self, model: SiamMask) -> None:
        super().__init__()
        self.head = model.mask_head.head

    def forward(self, corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        return self.head(crop_gather(corr, 0, 1, 1, pos_yx)).reshape(-1, 63, 63)


def mask_graph(model: SiamMask) -> nn.Module:
    """The position-dependent mask graph of this variant."""
    return RefineGraph(model) if model.refine is not None else BaseMaskGraph(model)
