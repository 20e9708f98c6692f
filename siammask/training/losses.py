"""SiamMask's losses: anchor cross-entropy, weighted smooth-L1 on boxes, logistic loss on masks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model import SearchOutput, TrackingNet
from ..variants import SIAMMASK_GEOMETRY, Geometry

WINDOW = 127   # mask window side in search-crop pixels


def cls_loss(cls: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of the positive and the negative anchors' cross-entropy (ignored: -1)."""
    b = cls.shape[0]
    logp = F.log_softmax(cls.reshape(b, 2, -1).float(), dim=1)
    parts = []
    for value, channel in ((1, 1), (0, 0)):
        sel = labels == value
        parts.append(-logp[:, channel][sel].mean() if sel.any() else cls.sum() * 0)
    return 0.5 * parts[0] + 0.5 * parts[1]


def loc_loss(loc: torch.Tensor, deltas: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 on the 4 deltas of each anchor, weighted 1/num_pos on positives, summed per crop."""
    b = loc.shape[0]
    diff = F.smooth_l1_loss(loc.reshape(b, 4, -1).float(), deltas, reduction="none", beta=1 / 9).sum(1)
    return (diff * weight).sum() / b


def mask_windows(search_mask: torch.Tensor, idx: torch.Tensor,
                 geometry: Geometry = SIAMMASK_GEOMETRY) -> torch.Tensor:
    """(K,127,127) targets in {-1, 1} for K (batch, y, x) positions; outside the crop is background.
    The window of cell (y, x) starts at (stride*x - pad, stride*y - pad), pad = base_size/2 * stride
    (SiamMask: 8x - 32; nano: 16x - 48), as the tracker's mask_window."""
    stride, pad = geometry.stride, geometry.base_size * geometry.stride // 2
    padded = F.pad(search_mask * 2 - 1, [pad] * 4, value=-1.0)
    return torch.stack([padded[b, 0, stride * y:stride * y + WINDOW, stride * x:stride * x + WINDOW]
                        for b, y, x in idx.tolist()])


@dataclass
class MaskLoss:
    loss: torch.Tensor
    iou: float        # mean IoU of predicted vs target masks at the trained positions
    positions: int


def mask_loss(model: TrackingNet, out: SearchOutput, search_mask: torch.Tensor, mask_weight: torch.Tensor,
              max_positions: int, generator: torch.Generator, use_refine: bool,
              geometry: Geometry = SIAMMASK_GEOMETRY) -> MaskLoss:
    """Logistic loss at (a random subset of) the positions with a positive anchor and a mask."""
    idx = mask_weight.nonzero()
    if len(idx) == 0:
        return MaskLoss(out.mask_corr.sum() * 0, float("nan"), 0)
    if len(idx) > max_positions:
        idx = idx[torch.randperm(len(idx), generator=generator)[:max_positions]]
    target = mask_windows(search_mask, idx, geometry)
    b, yx = idx[:, 0], idx[:, 1:]
    if use_refine:
        logits = model.refine(out.p0[b], out.p1[b], out.p2[b], out.mask_corr[b], yx)
    else:
        vec = out.mask_corr[b, :, yx[:, 0], yx[:, 1]]
        coarse = model.mask_head.head(vec[:, :, None, None]).reshape(-1, 1, 63, 63)
        logits = F.interpolate(coarse, size=(WINDOW, WINDOW), mode="bilinear", align_corners=False)[:, 0]
    logits = logits.float()
    loss = F.soft_margin_loss(logits.flatten(1), target.flatten(1))
    with torch.no_grad():
        pred, truth = logits > 0, target > 0
        inter = (pred & truth).flatten(1).sum(1).float()
        union = (pred | truth).flatten(1).sum(1).float().clamp(min=1)
    return MaskLoss(loss, float((inter / union).mean()), len(idx))
