"""The three exported graphs (and nano's search graph for one crop) as thin nn.Modules over a loaded
SiamMask: same layers, same weights.

Only the search wiring is restated here, with the export-friendly correlation of static_ops; every
convolution, BatchNorm and upsampling is the model's own module, and the mask graph is the model's
own refine (or base head), whose position crop already traces.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from siammask.model import VARIANT_SPECS, TemplateFeatures, TrackingNet
from siammask.model.heads import DepthCorrHead
from siammask.model.nano import DepthCorr

from .static_ops import xcorr_unrolled


class TemplateGraph(nn.Module):
    """z (B,3,127,127) -> the three heads' kernels: (B,hidden,5,5) for the ResNet-style variants;
    nano's cls/loc (B,192,8,8) and mask (B,64,8,8)."""

    def __init__(self, model: TrackingNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = self.model.template(z)
        return t.cls, t.loc, t.mask


def _correlate(head: DepthCorrHead, f: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return xcorr_unrolled(head.search(f), kernel)


class SearchGraph(nn.Module):
    """x (B,3,255,255) + kernels -> cls, loc, mask correlation and the trunk maps refine needs."""

    def __init__(self, model: TrackingNet) -> None:
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


class TrackSearchGraph(nn.Module):
    """nano: the model's own track(), whose correlations are already written to export (unrolled taps,
    batched matmul), with the kernels as graph inputs."""

    def __init__(self, model: TrackingNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, k_cls: torch.Tensor, k_loc: torch.Tensor,
                k_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.track(x, TemplateFeatures(k_cls, k_loc, k_mask))
        return out.cls, out.loc, out.mask_corr, out.p0, out.p1, out.p2


def search_graph(model: TrackingNet) -> nn.Module:
    """The search graph of this variant's architecture."""
    return SearchGraph(model) if VARIANT_SPECS[model.variant].arch == "siammask" else TrackSearchGraph(model)


def one_crop_search_graph(model: TrackingNet) -> nn.Module | None:
    """nano: the search graph for a batch of one crop (one tracked target, the common case), its
    depth-wise correlations grouped convolutions with the kernels as weights (traced for batch 1
    only; the engine runs the batched graph for more crops). On a copy of the model, whose own
    modules keep the batched correlation. None for the other architectures."""
    if VARIANT_SPECS[model.variant].arch != "nano":
        return None
    one = copy.deepcopy(model)
    for module in one.modules():
        if isinstance(module, DepthCorr):
            module.one_crop = True
    return TrackSearchGraph(one)


class BaseMaskGraph(nn.Module):
    """base / lite-base: mask correlation + positions -> (B,63,63) logits of the 3969-channel head there."""

    def __init__(self, model: TrackingNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, corr: torch.Tensor, pos_yx: torch.Tensor) -> torch.Tensor:
        return self.model.head_mask(corr, pos_yx)


def mask_graph(model: TrackingNet) -> nn.Module:
    """The position-dependent mask graph of this variant: the refine module itself (trunk maps +
    mask correlation + positions (B,2) int64 -> (B,127,127) logits), or the base head."""
    return model.refine if model.refine is not None else BaseMaskGraph(model)
