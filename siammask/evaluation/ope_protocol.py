"""OTB / UAV123 one-pass evaluation: start from the first box, never re-initialise, score every frame."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import ope
from .data import BoxSequence
from .labels import write_result_mask
from .plots import bar_plot, curve_plot
from .report import Column
from .timing import TimedTracker

COLUMNS = (Column("auc", "Success AUC"), Column("precision", "Prec@20px"),
           Column("norm_precision", "Norm. prec@0.2"))


def run(tracker: TimedTracker, seq: BoxSequence, frames: Iterable[np.ndarray], masks: Path | None) -> dict:
    """Track the whole sequence from its first box; the record keeps every frame's box and errors."""
    boxes = []
    states = None
    for index, frame in enumerate(frames):
        if states is None:
            states = tracker.init(frame, [seq.boxes[0]])
            boxes.append([float(v) for v in seq.boxes[0]])
            continue
        states, (result,) = tracker.step(frame, states)
        boxes.append(list(result.box))
        if masks is not None:
            write_result_mask(masks / f"{seq.frames[index].stem}.png", result.mask, frame.shape[:2])
    errors = ope.frame_errors(np.array(boxes), seq.boxes)
    return {"metrics": ope.scores(ope.curves(errors)),
            "detail": {"boxes": boxes, **{k: v.tolist() for k, v in errors.items()}}}


def overall(records: list[dict]) -> dict:
    """Curves averaged over sequences (each sequence weighs the same, as in the OTB toolkit)."""
    per_sequence = [ope.curves({k: np.array(r["detail"][k], np.float64) for k in ("iou", "center_error", "norm_error")})
                    for r in records]
    mean = {k: np.nanmean([c[k] for c in per_sequence], axis=0) for k in ("success", "precision", "norm_precision")}
    return {**ope.scores(mean), **{f"{k}_curve": v.tolist() for k, v in mean.items()}}


def plot(records: list[dict], summary: dict, out: Path) -> list[Path]:
    """Success and precision curves of the whole dataset and per-sequence AUC / precision bars."""
    return [
        curve_plot(out / "success.png", ope.OVERLAP_THRESHOLDS, {f"AUC {summary['auc']:.3f}": summary["success_curve"]},
                   "overlap threshold", "success rate", "Success plot (one-pass)"),
        curve_plot(out / "precision.png", ope.PIXEL_THRESHOLDS,
                   {f"@20px {summary['precision']:.3f}": summary["precision_curve"]},
                   "location error threshold (px)", "precision", "Precision plot (one-pass)"),
        bar_plot(out / "sequences.png", [r["name"] for r in records],
                 {"success AUC": [r["metrics"]["auc"] for r in records],
                  "precision@20px": [r["metrics"]["precision"] for r in records]}, "score", "Per sequence"),
    ]
