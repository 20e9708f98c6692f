"""Semi-supervised video object segmentation (DAVIS, YouTube-VOS): each object starts from the
bounding box of its first mask; all objects are tracked as one batch per frame.

Predicted masks are merged into one label image per frame (where two overlap, the object with the
higher tracker score wins), and J / F are measured per object on that label image, as the DAVIS
2017 toolkit measures submitted results. The first frame of each object reports its given mask.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.formats.records import mask_box
from ..data.layouts.labels import read_label_png
from ..errors import UserError
from . import segmentation
from .data import MaskSequence
from .labels import write_labels
from .plots import bar_plot
from .report import Column
from .timing import TimedTracker

METRICS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")
COLUMNS = (Column("JF_mean", "J&F"), *(Column(k, k.replace("_", " ")) for k in METRICS))


def run(tracker: TimedTracker, seq: MaskSequence, frames: Iterable[np.ndarray], masks: Path | None) -> dict:
    """Track every object from its start frame; the record keeps per-object, per-frame J and F."""
    states: dict[int, Any] = {}  # the tracker's own per-target state
    scores_of = {obj: {"frames": [], "J": [], "F": []} for obj in seq.starts}
    for index, frame in enumerate(frames):
        gt = read_label_png(seq.annotations[index], seq.binary).ids if index in seq.annotations else None
        predicted: dict[int, tuple[np.ndarray, float]] = {}
        if states:
            new_states, results = tracker.step(frame, list(states.values()))
            states = dict(zip(states, new_states))
            predicted = {obj: (r.mask, r.score) for obj, r in zip(states, results) if r.mask is not None}  # lost: none
        starting = [obj for obj, start in seq.starts.items() if start == index]
        if starting:
            given = {obj: gt == obj for obj in starting}
            boxes = [_mask_box(given[obj], seq.name, obj, seq.frames[index].name) for obj in starting]
            states.update(zip(starting, tracker.init(frame, boxes)))
            predicted.update({obj: (given[obj], np.inf) for obj in starting})
        labels = _merge(predicted, frame.shape[:2])
        if masks is not None:
            write_labels(masks / f"{seq.frames[index].stem}.png", labels, seq.binary)
        if gt is not None and index in seq.scored:
            for obj, start in seq.starts.items():
                if start < index:
                    scores_of[obj]["frames"].append(index)
                    scores_of[obj]["J"].append(segmentation.jaccard(labels == obj, gt == obj))
                    scores_of[obj]["F"].append(segmentation.boundary_f(labels == obj, gt == obj))
    objects = {str(obj): s for obj, s in scores_of.items()}
    return {"metrics": _average([_object_metrics(s) for s in objects.values()]), "detail": {"objects": objects}}


def overall(records: list[dict]) -> dict:
    """Means over all objects of all sequences (a sequence with three objects counts three times)."""
    return _average([_object_metrics(s) for r in records for s in r["detail"]["objects"].values()])


def plot(records: list[dict], summary: dict, out: Path) -> list[Path]:
    """J mean and F mean per sequence."""
    return [bar_plot(out / "sequences.png", [r["name"] for r in records],
                     {"J mean": [r["metrics"]["J_mean"] for r in records],
                      "F mean": [r["metrics"]["F_mean"] for r in records]}, "score", "Per sequence")]


def _mask_box(mask: np.ndarray, name: str, obj: int, frame: str) -> tuple[float, float, float, float]:
    box = mask_box(mask)
    if box is None:
        raise UserError(f"sequence '{name}': object {obj} has no pixels in its first annotation ({frame})")
    return box


def _merge(predicted: dict[int, tuple[np.ndarray, float]], shape: tuple[int, int]) -> np.ndarray:
    """One label per pixel: the object with the highest score among those whose mask covers it."""
    labels = np.zeros(shape, np.uint8)
    best = np.full(shape, -np.inf)
    for obj, (mask, score) in predicted.items():
        wins = mask & (score > best)
        labels[wins], best[wins] = obj, score
    return labels


def _object_metrics(scores: dict) -> dict[str, float]:
    j, f = segmentation.statistics(scores["J"]), segmentation.statistics(scores["F"])
    return {**{f"J_{k}": v for k, v in j.items()}, **{f"F_{k}": v for k, v in f.items()}}


def _average(per_object: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over objects that have scored frames, and J&F = (J mean + F mean) / 2."""
    means = {}
    for key in METRICS:
        values = [m[key] for m in per_object if np.isfinite(m[key])]
        means[key] = float(np.mean(values)) if values else float("nan")
    return {"JF_mean": (means["J_mean"] + means["F_mean"]) / 2, **means}
