"""DAVIS region similarity J and boundary accuracy F per frame, and their mean / recall / decay.

Definitions follow the DAVIS benchmark (Perazzi et al. 2016, Pont-Tuset et al. 2017):
J is the IoU of the masks (1 when both are empty). F is the F-measure of boundary precision and
recall, where a boundary pixel matches if the other boundary lies within bound_th = 0.008 of the
image diagonal (a disk dilation). Boundary pixels are those that differ from their right, lower or
lower-right neighbour. Recall is the fraction of frames above 0.5; decay is the mean over the first
quarter of the frames minus the mean over the last quarter.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

BOUND_TH = 0.008
RECALL_TH = 0.5


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks; two empty masks agree perfectly."""
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """Pixels whose value differs from the right, lower or lower-right neighbour (outside counts as equal)."""
    mask = np.asarray(mask, bool)
    right, below, diagonal = mask.copy(), mask.copy(), mask.copy()
    right[:, :-1] = mask[:, 1:]
    below[:-1, :] = mask[1:, :]
    diagonal[:-1, :-1] = mask[1:, 1:]
    return (mask ^ right) | (mask ^ below) | (mask ^ diagonal)


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure with a tolerance of ceil(bound_th * diagonal) pixels."""
    radius = math.ceil(bound_th * math.hypot(*gt.shape[:2]))
    disk = _disk(radius)
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    gt_near = cv2.dilate(gt_b.astype(np.uint8), disk).astype(bool)
    pred_near = cv2.dilate(pred_b.astype(np.uint8), disk).astype(bool)
    precision = (pred_b & gt_near).sum() / n_pred
    recall = (gt_b & pred_near).sum() / n_gt
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def statistics(values: list[float]) -> dict[str, float]:
    """mean, recall (fraction > 0.5) and decay (first quarter minus last quarter) of per-frame values."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"mean": float("nan"), "recall": float("nan"), "decay": float("nan")}
    quarters = [part for part in np.array_split(values, 4) if part.size]  # fewer parts when < 4 frames
    return {"mean": float(values.mean()), "recall": float(np.mean(values > RECALL_TH)),
            "decay": float(quarters[0].mean() - quarters[-1].mean())}


def _disk(radius: int) -> np.ndarray:
    """Structuring element of the pixels within `radius` of the centre."""
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (xs * xs + ys * ys <= radius * radius).astype(np.uint8)
