"""Where to look for a lost target: search windows that tile the whole frame, nearest first.

A search crop of side `side` (frame pixels) finds targets whose centre lies on its score grid, a
square of side `reach` around the crop's centre. Windows are laid on a grid of that step so their
grids cover the frame without gaps, then ordered by distance from where the target was last seen:
re-detection looks near first and widens step by step up to the whole frame.
"""
from __future__ import annotations

import math

import numpy as np


def grid_reach(side: float, score_size: int, stride: int, instance_size: int) -> float:
    """Frame pixels between the first and last score-grid cell of a search crop of `side` pixels."""
    return side * (score_size - 1) * stride / instance_size


def scan_centres(frame_wh: tuple[int, int], last_xy: np.ndarray, reach: float) -> np.ndarray:
    """(N,2) window centres whose score grids (squares of side `reach`) cover the frame, nearest to
    `last_xy` first (ties in row-major order). A frame smaller than one grid gets one centred window."""
    axes = []
    for length in frame_wh:
        count = max(1, math.ceil(length / reach))
        # Spread `count` grids evenly so the first starts at 0 and the last ends at `length`.
        first, last = reach / 2, length - reach / 2
        axes.append(np.array([length / 2]) if count == 1 else np.linspace(first, last, count))
    xs, ys = np.meshgrid(axes[0], axes[1])
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
    distance = np.hypot(centres[:, 0] - last_xy[0], centres[:, 1] - last_xy[1])
    return centres[np.argsort(distance, kind="stable")]


def scan_batch(centres: np.ndarray, lost_frames: int, per_frame: int) -> np.ndarray:
    """The windows to search on the `lost_frames`-th lost frame (1-based): the next `per_frame` of
    the nearest-first order, wrapping round once the whole frame has been searched."""
    n = len(centres)
    if per_frame >= n:
        return centres
    start = ((lost_frames - 1) * per_frame) % n
    return centres[(start + np.arange(per_frame)) % n]
