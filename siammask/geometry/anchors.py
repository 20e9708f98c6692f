"""Anchor boxes (SiamMask) or anchor-free points (nano) of the score map, in crop pixels relative to
the search-crop centre."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def anchor_shapes(stride: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """(A, 2) anchor (w, h); integer truncation as the original: ws = int(sqrt(s*s/r)), hs = int(ws*r)."""
    shapes = []
    for r in ratios:
        ws = int(math.sqrt(stride * stride / r))
        hs = int(ws * r)
        shapes += [(ws * s, hs * s) for s in scales]
    return np.array(shapes, np.float32)


def generate_anchors(stride: int, ratios: Sequence[float], scales: Sequence[float],
                     score_size: int) -> np.ndarray:
    """(A*S*S, 4) float32 [cx, cy, w, h], flat index a*S*S + y*S + x, centres -(S//2)*stride + stride*i."""
    shapes = anchor_shapes(stride, ratios, scales)
    offsets = (-(score_size // 2) * stride + stride * np.arange(score_size)).astype(np.float32)
    cy, cx = np.meshgrid(offsets, offsets, indexing="ij")
    per_anchor = [np.stack([cx.ravel(), cy.ravel(), np.full(cx.size, w, np.float32),
                            np.full(cx.size, h, np.float32)], axis=1) for w, h in shapes]
    return np.concatenate(per_anchor).astype(np.float32)


def generate_points(stride: int, score_size: int) -> np.ndarray:
    """(S*S, 2) float32 [x, y] cell centres, flat index y*S + x, -(S//2)*stride + stride*i (anchor-free)."""
    offsets = (-(score_size // 2) * stride + stride * np.arange(score_size)).astype(np.float32)
    y, x = np.meshgrid(offsets, offsets, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1)
