"""The three exported graphs (and nano's search graph for one crop) as thin nn.Modules over a loaded
SiamMask: same layers, same weights.

Only the search wiring is restated here, with the export-friendly correlation of static_ops; every
convolution, BatchNorm and upsampling is the model's own module, and the mask graph is the model's
own refine (taking only the trunk maps its geometry reads) or base head, whose position crop
already traces.
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
        self.maps = _maps(model)

    def forward(self, x: torch.Tensor, k_cls: torch.Tensor, k_loc: torch.Tensor,
                k_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        *maps, p3 = m.trunk(x)
        f = m.adjust(p3)
        cls = m.cls_head.head(_correlate(m.cls_head, f, k_cls))
        loc = m.loc_head.head(_correlate(m.loc_head, f, k_loc))
        return (cls, loc, _correlate(m.mask_head, f, k_mask), *(maps[i] for i in self.maps))


class TrackSearchGraph(nn.Module):
    """nano: the model's own track(), whose correlations are already written to export (unrolled taps,
    batched matmul), with the kernels as graph inputs."""

    def __init__(self, model: TrackingNet) -> None:
        super().__init__()
        self.model = model
        self.maps = _maps(model)

    def forward(self, x: torch.Tensor, k_cls: torch.Tensor, k_loc: torch.Tensor,
                k_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.track(x, TemplateFeatures(k_cls, k_loc, k_mask))
        maps = (out.p0, out.p1, out.p2)
        return (out.cls, out.loc, out.mask_corr, *(maps[i] for i in self.maps))


def _maps(model: TrackingNet) -> tuple[int, ...]:
    """Which trunk maps the search graph gives: those its mask graph reads (engines.graph_io.refine_maps)."""
    return model.refine.geometry.maps if model.refine is not None else ()


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


class RefineGraph(nn.Module):
    """sharp, lite, nano: the trunk maps the refine reads (its geometry's, finest first), the mask
    vectors and positions (B,2) int64 -> (B,127,127) logits. Only the maps read are inputs: a traced
    graph drops an unused input, and the names bind by position."""

    def __init__(self, model: TrackingNet) -> None:
        super().__init__()
        self.refine = model.refine
        self.maps = model.refine.geometry.maps

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        maps: list[torch.Tensor | None] = [None, None, None]
        for index, value in zip(self.maps, inputs):
            maps[index] = value
        return self.refine(*maps, inputs[-2], inputs[-1])


def mask_graph(model: TrackingNet) -> nn.Module:
    """The position-dependent mask graph of this variant: the refine module, or the base head."""
    return RefineGraph(model) if model.refine is not None else BaseMaskGraph(model)
