"""Long-term tracking measures: the target may leave the picture or be hidden, and the tracker must
say so and find it again.

Tracking precision, recall and F-score as in the VOT long-term challenge (Lukezic et al., "Now you
see me: evaluating performance in long-term visual tracking", 2018; VOT2018-LT and later, and
vot-toolkit's longterm analysis):

* Every frame the tracker reports a box with a confidence (ours: `presence`), or no box at all (a
  frame it flags `lost`). At a threshold t, the boxes reported with confidence >= t count.
* A counted box's overlap is its IoU with the ground truth, both clipped to the frame; 0 where the
  target is absent.
* Pr(t) = mean overlap of the counted boxes (1 when none counts); Re(t) = sum of those overlaps /
  the number of frames where the target is visible; F(t) = 2 Pr Re / (Pr + Re).
* Thresholds: +inf, the distinct confidences (at most RESOLUTION - 2 of them, evenly spaced in rank
  when there are more, as the toolkit samples them), -inf. A data set's curves are the mean of its
  sequences' curves at the thresholds of all its confidences; F-score = max over thresholds of
  F, with Pr and Re reported at that threshold.
* The first frame (the given box) is not scored.

Absence handling, beyond the toolkit: the share of absent frames flagged lost, the share of visible
frames flagged lost, and for each absence (a run of frames where the target is absent) the delay
from the target's return (its first visible frame after the run) to re-acquisition (the first frame
from there with a reported box of IoU >= REACQUIRE_IOU): 0 when found on the return frame; "missed"
when not re-acquired within MISSED_AFTER frames of the return; "ended" when the sequence ends
sooner; an absence lasting to the end of the sequence has no return and is not listed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regions import box_iou

RESOLUTION = 100
REACQUIRE_IOU = 0.5
MISSED_AFTER = 30   # frames after the return by which re-acquisition must happen


@dataclass(frozen=True)
class Absence:
    """One run of absent frames and what happened on the target's return; frame numbers count
    from 1 as image files and ground-truth lines do."""

    first: int                 # first absent frame
    last: int                  # last absent frame
    delay: int | None          # frames from the return to re-acquisition; None if missed or ended
    outcome: str               # "reacquired", "missed" or "ended"

    @property
    def shown(self) -> str:
        return str(self.delay) if self.outcome == "reacquired" else self.outcome


def frame_overlaps(reported: np.ndarray, truth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Per frame: IoU of the reported x,y,w,h box with the ground truth, both clipped to the frame
    of `size` (width, height); 0 where the target is absent (NaN truth); NaN where no box is
    reported (NaN row)."""
    reported, truth = np.asarray(reported, np.float64), np.asarray(truth, np.float64)
    iou = box_iou(_clip(np.nan_to_num(reported), size), _clip(np.nan_to_num(truth), size))
    iou[~visible_rows(truth)] = 0.0
    iou[~np.all(np.isfinite(reported), axis=1)] = np.nan
    return iou


def visible_rows(truth: np.ndarray) -> np.ndarray:
    """Frames where the target is visible: a finite ground-truth box of positive size."""
    truth = np.asarray(truth, np.float64)
    return np.all(np.isfinite(truth), axis=1) & (np.nan_to_num(truth[:, 2]) > 0) & (np.nan_to_num(truth[:, 3]) > 0)


def thresholds(confidences: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """Descending thresholds: +inf, the distinct finite confidences (at most resolution - 2, evenly
    spaced in rank), -inf."""
    values = np.unique(np.asarray(confidences, np.float64)[np.isfinite(confidences)])[::-1]
    if len(values) > resolution - 2:
        values = values[np.round(np.linspace(0, len(values) - 1, resolution - 2)).astype(int)]
    return np.concatenate([[np.inf], values, [-np.inf]])


def pr_curve(overlaps: np.ndarray, confidence: np.ndarray, visible: np.ndarray,
             levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tracking precision and recall at each threshold of `levels` for the scored frames of one
    sequence: `overlaps` from frame_overlaps (NaN: no box reported), the reported confidence, and
    whether the target is visible."""
    overlaps, confidence = np.asarray(overlaps, np.float64), np.asarray(confidence, np.float64)
    reported = np.isfinite(overlaps) & ~np.isnan(confidence)
    counted = reported[None, :] & (np.nan_to_num(confidence, nan=-np.inf)[None, :] >= np.asarray(levels)[:, None])
    sums = (counted * np.nan_to_num(overlaps)[None, :]).sum(axis=1)
    counts = counted.sum(axis=1)
    precision = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
    n_visible = int(np.sum(visible))
    recall = sums / n_visible if n_visible else np.full(len(levels), np.nan)
    return precision, recall


def best_f(precision: np.ndarray, recall: np.ndarray) -> tuple[float, float, float]:
    """(F, Pr, Re) at the threshold of the highest F = 2 Pr Re / (Pr + Re); NaN when the recall
    is undefined (no visible frame to score)."""
    precision, recall = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    if np.all(np.isnan(recall)):
        return float("nan"), float("nan"), float("nan")
    total = precision + recall
    f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    best = int(np.nanargmax(f))
    return float(f[best]), float(precision[best]), float(recall[best])


def lost_shares(lost: np.ndarray, visible: np.ndarray) -> tuple[float, float]:
    """(share of absent frames flagged lost, share of visible frames flagged lost); NaN when there
    are none of that kind."""
    lost, visible = np.asarray(lost, bool), np.asarray(visible, bool)
    absent_lost = float(np.mean(lost[~visible])) if np.any(~visible) else float("nan")
    visible_lost = float(np.mean(lost[visible])) if np.any(visible) else float("nan")
    return absent_lost, visible_lost


def absences(visible: np.ndarray, overlaps: np.ndarray, window: int = MISSED_AFTER) -> list[Absence]:
    """Each run of absent frames of a whole sequence (frame 0 included, where the target is
    visible) followed by a return, with its re-acquisition delay."""
    visible = np.asarray(visible, bool)
    found = np.nan_to_num(np.asarray(overlaps, np.float64), nan=0.0) >= REACQUIRE_IOU
    out = []
    t = 0
    while t < len(visible):
        if visible[t]:
            t += 1
            continue
        start = t
        while t < len(visible) and not visible[t]:
            t += 1
        if t == len(visible):
            break  # absent to the end: no return to measure
        hits = np.flatnonzero((found & visible)[t:t + window + 1])
        if hits.size:
            out.append(Absence(start + 1, t, int(hits[0]), "reacquired"))
        else:
            out.append(Absence(start + 1, t, None, "missed" if t + window < len(visible) else "ended"))
    return out


def _clip(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """x,y,w,h boxes cut to [0, width] x [0, height] (a box outside becomes empty)."""
    x0 = np.clip(boxes[:, 0], 0, size[0])
    y0 = np.clip(boxes[:, 1], 0, size[1])
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, size[0])
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, size[1])
    return np.stack([x0, y0, np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)], axis=1)
