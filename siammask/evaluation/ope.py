"""One-pass evaluation (OTB, UAV123): success and precision curves from per-frame boxes.

Frames whose ground truth is missing (NaN, UAV123's out-of-view frames) or empty are left out.
The first frame counts, with the given box as its result, as in the OTB toolkit.
"""
from __future__ import annotations

import numpy as np

from .regions import box_centers, box_iou

OVERLAP_THRESHOLDS = np.linspace(0.0, 1.0, 21)          # success: IoU > t, t = 0, 0.05, ..., 1
PIXEL_THRESHOLDS = np.arange(0, 51, dtype=np.float64)   # precision: centre error <= t px
NORM_THRESHOLDS = np.arange(0, 51) / 100                # normalised precision: error / gt size <= t
PRECISION_AT = 20        # px: the precision reported in tables
NORM_PRECISION_AT = 0.2  # the normalised precision reported (pysot's convention; LaSOT reports the AUC)


def frame_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, centre error (px) and size-normalised centre error of the frames with a visible target."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    valid = np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    pred, gt = pred[valid], gt[valid]
    delta = box_centers(pred) - box_centers(gt)
    return {"iou": box_iou(pred, gt), "center_error": np.hypot(delta[:, 0], delta[:, 1]),
            "norm_error": np.hypot(delta[:, 0] / gt[:, 2], delta[:, 1] / gt[:, 3])}


def success_curve(iou: np.ndarray) -> np.ndarray:
    """Fraction of frames with IoU above each of OVERLAP_THRESHOLDS; its mean is the AUC."""
    iou = np.asarray(iou, np.float64)
    return np.array([np.mean(iou > t) for t in OVERLAP_THRESHOLDS]) if iou.size else np.full(21, np.nan)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of frames whose centre error is within each threshold."""
    errors = np.asarray(errors, np.float64)
    return np.array([np.mean(errors <= t) for t in thresholds]) if errors.size else np.full(len(thresholds), np.nan)


def curves(errors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The three curves of one sequence."""
    return {"success": success_curve(errors["iou"]),
            "precision": precision_curve(errors["center_error"], PIXEL_THRESHOLDS),
            "norm_precision": precision_curve(errors["norm_error"], NORM_THRESHOLDS)}


def scores(curve: dict[str, np.ndarray]) -> dict[str, float]:
    """Table numbers from curves: success AUC, precision at 20 px, normalised precision at 0.2."""
    return {"auc": float(np.mean(curve["success"])),
            "precision": float(curve["precision"][int(PRECISION_AT)]),
            "norm_precision": float(curve["norm_precision"][int(round(NORM_PRECISION_AT * 100))])}
