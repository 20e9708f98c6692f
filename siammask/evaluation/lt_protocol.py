"""Long-term evaluation: one pass from the first box, never re-initialised, every frame scored by
the measures of lt.py (VOT-LT tracking precision, recall and F-score with `presence` as the
confidence; absent and visible frames flagged lost; re-acquisition delay after each absence).

A frame the tracker flags `lost` reports no box (its `box`, the last confident one, is not scored).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import lt
from .data import BoxSequence
from .labels import write_result_mask
from .plots import bar_plot, curve_plot
from .report import Column
from .timing import TimedTracker

COLUMNS = (Column("f_score", "LT F-score"), Column("precision", "LT precision"), Column("recall", "LT recall"),
           Column("absent_lost", "absent flagged lost"), Column("visible_lost", "visible flagged lost"),
           Column("returns", "re-acquired after (frames)"))


def run(tracker: TimedTracker, seq: BoxSequence, frames: Iterable[np.ndarray], masks: Path | None) -> dict:
    """Track the whole sequence from its first box; the record keeps what every frame reported."""
    reported: list[list[float] | None] = []
    presence: list[float | None] = []
    lost: list[bool] = []
    found: list[bool] = []
    states, size = None, (0, 0)
    for index, frame in enumerate(frames):
        if states is None:
            states, size = tracker.init(frame, [seq.boxes[0]]), (frame.shape[1], frame.shape[0])
            reported.append([float(v) for v in seq.boxes[0]])
            presence.append(None)
            lost.append(False)
            found.append(False)
            continue
        states, (result,) = tracker.step(frame, states)
        reported.append(None if result.lost else [float(v) for v in result.box])
        presence.append(float(result.presence))
        lost.append(bool(result.lost))
        found.append(bool(result.found))
        if masks is not None:
            write_result_mask(masks / f"{seq.frames[index].stem}.png", result.mask, frame.shape[:2])
    boxes = np.array([[np.nan] * 4 if b is None else b for b in reported], np.float64)
    overlaps = lt.frame_overlaps(boxes, seq.boxes, size)
    detail = {"boxes": reported, "presence": presence, "lost": lost, "found": found,
              "visible": lt.visible_rows(seq.boxes).tolist(), "overlap": overlaps.tolist()}
    return {"metrics": metrics(detail), "detail": detail}


def overall(records: list[dict]) -> dict:
    """Precision and recall curves averaged over sequences at the thresholds of all their
    confidences (JSON null at the ends of `thresholds` stands for +inf and -inf), F at the best
    of them; lost shares over all frames of their kind; every absence, named by its sequence."""
    scored = [_scored(r["detail"]) for r in records]
    levels = lt.thresholds(np.concatenate([s["confidence"] for s in scored]))
    curves = [lt.pr_curve(s["overlap"], s["confidence"], s["visible"], levels) for s in scored]
    precision = np.nanmean([c[0] for c in curves], axis=0)
    recall = np.nanmean([c[1] for c in curves], axis=0)
    f, best_precision, best_recall = lt.best_f(precision, recall)
    gone = [(r["name"], a) for r in records for a in _absences(r["detail"])]
    done = [a.delay for _, a in gone if a.delay is not None]
    return {"f_score": f, "precision": best_precision, "recall": best_recall, **_lost_shares(scored),
            "returns": f"{len(done)} of {len(gone)}" + (f", max {max(done)}" if done else ""),
            "absences": [{"sequence": name, **_absence_record(a)} for name, a in gone],
            "thresholds": levels.tolist(), "precision_curve": precision.tolist(), "recall_curve": recall.tolist()}


def plot(records: list[dict], summary: dict, out: Path) -> list[Path]:
    """The averaged precision-recall curve and per-sequence F-score and lost-flag bars."""
    recall, precision = np.array(summary["recall_curve"], np.float64), np.array(summary["precision_curve"], np.float64)
    order = np.argsort(recall, kind="stable")
    return [
        curve_plot(out / "precision_recall.png", recall[order], {f"F {_show(summary['f_score'])}": precision[order]},
                   "tracking recall", "tracking precision", "Long-term precision/recall"),
        bar_plot(out / "sequences.png", [r["name"] for r in records],
                 {"F-score": [r["metrics"]["f_score"] for r in records],
                  "absent flagged lost": [r["metrics"]["absent_lost"] for r in records],
                  "visible flagged lost": [r["metrics"]["visible_lost"] for r in records]}, "share", "Per sequence"),
    ]


def metrics(detail: dict) -> dict:
    """One sequence's measures: F-score (with its precision and recall) at the thresholds of its
    own confidences, lost shares, and its absences."""
    scored = _scored(detail)
    levels = lt.thresholds(scored["confidence"])
    f, precision, recall = lt.best_f(*lt.pr_curve(scored["overlap"], scored["confidence"], scored["visible"], levels))
    gone = _absences(detail)
    return {"f_score": f, "precision": precision, "recall": recall, **_lost_shares([scored]),
            "returns": ", ".join(a.shown for a in gone) or "–", "absences": [_absence_record(a) for a in gone]}


def _lost_shares(scored: list[dict[str, np.ndarray]]) -> dict:
    visible = np.concatenate([s["visible"] for s in scored])
    absent_lost, visible_lost = lt.lost_shares(np.concatenate([s["lost"] for s in scored]), visible)
    return {"absent_lost": absent_lost, "visible_lost": visible_lost, "absent_frames": int(np.sum(~visible))}


def _absences(detail: dict) -> list[lt.Absence]:
    return lt.absences(np.array(detail["visible"], bool), _floats(detail["overlap"]))


def _absence_record(absence: lt.Absence) -> dict:
    return {"first": absence.first, "last": absence.last, "delay": absence.delay, "outcome": absence.outcome}


def _scored(detail: dict) -> dict[str, np.ndarray]:
    """The frames after the first as arrays; a lost frame's confidence is NaN (it reports no box)."""
    lost = np.array(detail["lost"][1:], bool)
    confidence = _floats(detail["presence"][1:])
    confidence[lost] = np.nan
    return {"overlap": _floats(detail["overlap"][1:]), "confidence": confidence,
            "visible": np.array(detail["visible"][1:], bool), "lost": lost}


def _floats(values: list) -> np.ndarray:
    """JSON numbers with null as NaN."""
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _show(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
