"""Training targets on the score map: labels by IoU on SiamMask's 5x25x25 anchors, or by position
inside the box on the nano variant's 15x15 points; box deltas; the positions a mask is trained at.

Everything is in search-crop pixels (255x255, centre 127), the same frame the tracker decodes in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import TrackerConfig
from ..geometry.anchors import generate_anchors, generate_points
from ..variants import Geometry


@dataclass(frozen=True)
class TargetConfig:
    """Thresholds and sample sizes of the anchor labels (SiamMask's defaults)."""

    pos_iou: float = 0.6
    neg_iou: float = 0.3
    num_pos: int = 16
    num_total: int = 64
    num_neg_pair: int = 16  # negatives sampled near the centre for a negative pair


@dataclass(frozen=True)
class AnchorTargets:
    labels: np.ndarray        # (N,) int64: 1 positive, 0 negative, -1 ignored
    deltas: np.ndarray        # (4, N) float32 regression targets
    delta_weight: np.ndarray  # (N,) float32: 1/num_pos on positives
    mask_weight: np.ndarray   # (S, S) float32: 1 where a positive anchor sits and a mask exists


def crop_anchors(cfg: TrackerConfig, geometry: Geometry) -> np.ndarray:
    """(N,4) [cx, cy, w, h] in search-crop pixels: the tracker's anchors shifted to the crop centre."""
    size = geometry.score_size(cfg.exemplar_size, cfg.instance_size)
    anchors = generate_anchors(geometry.stride, geometry.ratios, geometry.scales, size).copy()
    anchors[:, :2] += cfg.instance_size // 2
    return anchors


def crop_points(cfg: TrackerConfig, geometry: Geometry) -> np.ndarray:
    """(S*S,2) [x, y] in search-crop pixels: the anchor-free cells' points shifted to the crop centre."""
    return generate_points(geometry.stride, geometry.score_size(cfg.exemplar_size, cfg.instance_size)) \
        + cfg.instance_size // 2


def iou_with_box(anchors: np.ndarray, box_xywh: np.ndarray) -> np.ndarray:
    """IoU of every [cx, cy, w, h] anchor with one [x, y, w, h] box."""
    ax0, ay0 = anchors[:, 0] - anchors[:, 2] / 2, anchors[:, 1] - anchors[:, 3] / 2
    ax1, ay1 = anchors[:, 0] + anchors[:, 2] / 2, anchors[:, 1] + anchors[:, 3] / 2
    bx0, by0, bw, bh = box_xywh
    iw = np.clip(np.minimum(ax1, bx0 + bw) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by0 + bh) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    return inter / (anchors[:, 2] * anchors[:, 3] + bw * bh - inter)


def box_deltas(anchors: np.ndarray, box_xywh: np.ndarray) -> np.ndarray:
    """(4, N) encode: dx = (cx - acx)/aw, dy = (cy - acy)/ah, dw = log(w/aw), dh = log(h/ah)."""
    x, y, w, h = (float(v) for v in box_xywh)
    cx, cy = x + w / 2, y + h / 2
    return np.stack([(cx - anchors[:, 0]) / anchors[:, 2], (cy - anchors[:, 1]) / anchors[:, 3],
                     np.log(w / anchors[:, 2]), np.log(h / anchors[:, 3])]).astype(np.float32)


def _keep_at_most(labels: np.ndarray, value: int, count: int, rng: np.random.Generator) -> None:
    idx = np.flatnonzero(labels == value)
    if len(idx) > count:
        labels[rng.choice(idx, len(idx) - count, replace=False)] = -1


def anchor_targets(anchors: np.ndarray, box_xywh: np.ndarray | None, score_size: int, has_mask: bool,
                   rng: np.random.Generator, cfg: TargetConfig = TargetConfig()) -> AnchorTargets:
    """Labels, deltas and weights for one search crop; box None means a negative pair."""
    n = len(anchors)
    labels = np.full(n, -1, np.int64)
    mask_weight = np.zeros((score_size, score_size), np.float32)
    if box_xywh is None:
        grid = labels.reshape(-1, score_size, score_size)
        lo, hi = score_size // 2 - 3, score_size // 2 + 4
        grid[:, lo:hi, lo:hi] = 0
        _keep_at_most(labels, 0, cfg.num_neg_pair, rng)
        return AnchorTargets(labels, np.zeros((4, n), np.float32), np.zeros(n, np.float32), mask_weight)
    iou = iou_with_box(anchors, np.asarray(box_xywh, np.float64))
    labels[iou < cfg.neg_iou] = 0
    labels[iou > cfg.pos_iou] = 1
    _keep_at_most(labels, 1, cfg.num_pos, rng)
    num_pos = int((labels == 1).sum())
    _keep_at_most(labels, 0, cfg.num_total - num_pos, rng)
    weight = np.where(labels == 1, 1.0 / max(num_pos, 1), 0.0).astype(np.float32)
    if has_mask:
        mask_weight = (labels.reshape(-1, score_size, score_size) == 1).any(axis=0).astype(np.float32)
    return AnchorTargets(labels, box_deltas(anchors, box_xywh), weight, mask_weight)


def point_targets(points: np.ndarray, box_xywh: np.ndarray | None, score_size: int, has_mask: bool,
                  rng: np.random.Generator, cfg: TargetConfig = TargetConfig()) -> AnchorTargets:
    """Anchor-free labels: positive where a cell's point lies inside the ellipse of half the box's
    half-sides around its centre (and always the cell nearest the centre), negative outside the box's
    own ellipse; deltas are the (l, t, r, b) distances to the box's sides. Masks train at positives."""
    n = len(points)
    labels = np.full(n, -1, np.int64)
    if box_xywh is None:
        near = np.abs(points - points.mean(axis=0)).max(axis=1) <= 3 * (points[1, 0] - points[0, 0])
        labels[near] = 0
        _keep_at_most(labels, 0, cfg.num_neg_pair, rng)
        return AnchorTargets(labels, np.zeros((4, n), np.float32), np.zeros(n, np.float32),
                             np.zeros((score_size, score_size), np.float32))
    x, y, w, h = (float(v) for v in box_xywh)
    cx, cy = x + w / 2, y + h / 2
    r2 = ((points[:, 0] - cx) / (w / 2)) ** 2 + ((points[:, 1] - cy) / (h / 2)) ** 2
    labels[r2 > 1] = 0
    labels[r2 <= 0.25] = 1
    labels[int(np.argmin(r2))] = 1
    _keep_at_most(labels, 1, cfg.num_pos, rng)
    num_pos = int((labels == 1).sum())
    _keep_at_most(labels, 0, cfg.num_total - num_pos, rng)
    deltas = np.stack([points[:, 0] - x, points[:, 1] - y, x + w - points[:, 0], y + h - points[:, 1]])
    weight = np.where(labels == 1, 1.0 / num_pos, 0.0).astype(np.float32)
    mask_weight = (labels == 1).reshape(score_size, score_size).astype(np.float32) if has_mask \
        else np.zeros((score_size, score_size), np.float32)
    return AnchorTargets(labels, deltas.astype(np.float32), weight, mask_weight)
