"""From raw head outputs to the chosen box: softmax, decode, scale/ratio penalty, cosine window."""
from __future__ import annotations

import numpy as np


def fg_scores(cls: np.ndarray) -> np.ndarray:
    """(2A,S,S) logits (bg for anchors 0..A-1, fg A..2A-1; A=1 anchor-free) -> (A*S*S,) foreground
    probability, float32."""
    logits = cls.reshape(2, -1).astype(np.float32)
    top = logits.max(axis=0)
    e = np.exp(logits - top)
    return (e[1] / (e[0] + e[1])).astype(np.float32)


def decode(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(20,S,S) deltas (channel k*5+a) + anchors -> (4, N) float32 [cx, cy, w, h] in crop pixels."""
    d = loc.reshape(4, -1).astype(np.float32).copy()
    d[0] = d[0] * anchors[:, 2] + anchors[:, 0]
    d[1] = d[1] * anchors[:, 3] + anchors[:, 1]
    d[2] = np.exp(d[2]) * anchors[:, 2]
    d[3] = np.exp(d[3]) * anchors[:, 3]
    return d


def decode_points(loc: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(4,S,S) distances (left, top, right, bottom) from each cell's point -> (4, N) float32
    [cx, cy, w, h] in crop pixels (anchor-free heads)."""
    d = loc.reshape(4, -1).astype(np.float32)
    x0, y0 = points[:, 0] - d[0], points[:, 1] - d[1]
    x1, y1 = points[:, 0] + d[2], points[:, 1] + d[3]
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]).astype(np.float32)


def cosine_window(score_size: int, num_anchors: int) -> np.ndarray:
    """Hanning window over the map, repeated per anchor (float64), favouring small motion."""
    return np.tile(np.outer(np.hanning(score_size), np.hanning(score_size)).ravel(), num_anchors)


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _padded_side(w, h):
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def size_penalty(boxes: np.ndarray, target_wh_in_crop: np.ndarray, penalty_k: float) -> np.ndarray:
    """exp(-(r_c * s_c - 1) * k): penalises change of scale and aspect ratio against the target."""
    s_c = _change(_padded_side(boxes[2], boxes[3]) / _padded_side(target_wh_in_crop[0], target_wh_in_crop[1]))
    r_c = _change((target_wh_in_crop[0] / target_wh_in_crop[1]) / (boxes[2] / boxes[3]))
    return np.exp(-(r_c * s_c - 1) * penalty_k)


def pick_best(score: np.ndarray, penalty: np.ndarray, window: np.ndarray,
              window_influence: float) -> int:
    """Index of the first maximum of the penalised, windowed score."""
    pscore = penalty * score
    pscore = pscore * (1 - window_influence) + window * window_influence
    return int(np.argmax(pscore))


def top_peaks(values: np.ndarray, num_anchors: int, score_size: int, count: int, radius: int = 2) -> list[int]:
    """Indices of up to `count` maxima of an (A*S*S,) score, strongest first, each at least
    radius+1 cells (in y or x, over every anchor) from the ones before it: a few distinct places to
    look at, not one blob counted many times. Non-finite values are never picked."""
    grid = np.where(np.isfinite(values), values, -np.inf).reshape(num_anchors, score_size, score_size).copy()
    picked = []
    for _ in range(count):
        best = int(np.argmax(grid))
        a, y, x = np.unravel_index(best, grid.shape)
        if not np.isfinite(grid[a, y, x]):
            break
        picked.append(best)
        grid[:, max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1] = -np.inf
    return picked
