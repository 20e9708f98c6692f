"""VOT supervised (baseline) experiment: re-initialise SKIP_AFTER frames after every failure.

A failure is a frame whose predicted region (the tracker's rotated box) has zero overlap with the
ground truth, both cut to the image. The tracker starts from the axis-aligned box with the ground
truth polygon's area. A frame whose ground truth is a NaN row (the target absent, as VOT-LT marks it)
is neither scored nor a failure.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import eao
from .data import RegionSequence
from .labels import write_result_mask
from .plots import bar_plot, curve_plot
from .regions import area_preserving_box, polygon_area, region_overlap
from .report import Column
from .timing import TimedTracker

COLUMNS = (Column("accuracy", "Accuracy"), Column("failures", "Failures"), Column("eao", "EAO"))


def run(tracker: TimedTracker, seq: RegionSequence, frames: Iterable[np.ndarray], masks: Path | None) -> dict:
    """One supervised run; the record keeps per-frame overlaps, offsets from initialisation and segments."""
    overlaps: list[float | None] = []   # None: initialisation or skipped frame
    since_init: list[int] = []
    polygons: list[list[float] | None] = []
    segments: list[dict] = []
    states, next_init, init_at, current = None, 0, 0, []
    for index, frame in enumerate(frames):
        if states is None:
            polygons.append(None)
            overlaps.append(None)
            since_init.append(-1)
            if index >= next_init and polygon_area(seq.polygons[index]) > 0:
                states = tracker.init(frame, [area_preserving_box(seq.polygons[index])])
                init_at, current, since_init[-1] = index, [], 0
            continue
        states, (result,) = tracker.step(frame, states)
        polygons.append(result.polygon.reshape(-1).tolist())
        since_init.append(index - init_at)
        if masks is not None:
            write_result_mask(masks / f"{seq.frames[index].stem}.png", result.mask, frame.shape[:2])
        if not np.all(np.isfinite(seq.polygons[index])):  # a NaN row: the target is absent, nothing to score
            overlaps.append(None)
            continue
        overlap = region_overlap(seq.polygons[index], result.polygon, (frame.shape[1], frame.shape[0]))
        current.append(overlap)
        overlaps.append(overlap)
        if overlap <= 0:
            segments.append({"overlaps": current, "failed": True})
            states, next_init = None, index + eao.SKIP_AFTER
    if states is not None:
        segments.append({"overlaps": current, "failed": False})
    failures = sum(s["failed"] for s in segments)
    return {"metrics": {"accuracy": eao.accuracy(overlaps, since_init), "failures": failures},
            "detail": {"overlaps": overlaps, "since_init": since_init, "polygons": polygons, "segments": segments}}


def overall(records: list[dict], interval: tuple[int, int] = eao.VOT2016_INTERVAL) -> dict:
    """Accuracy weighted by sequence length (as vot-toolkit), total failures, EAO over all segments."""
    segments = [eao.Segment(tuple(s["overlaps"]), s["failed"]) for r in records for s in r["detail"]["segments"]]
    longest = max((len(s.overlaps) for s in segments), default=0)
    curve = eao.eao_curve(segments, max(interval[1], longest))
    scored = [(r["metrics"]["accuracy"], r["frames"]) for r in records if r["metrics"]["accuracy"] is not None]
    weight = sum(n for _, n in scored)
    return {"accuracy": sum(a * n for a, n in scored) / weight if weight else None,
            "failures": sum(r["metrics"]["failures"] for r in records),
            "eao": eao.eao_score(curve, interval), "eao_interval": list(interval), "eao_curve": curve.tolist()}


def plot(records: list[dict], summary: dict, out: Path) -> list[Path]:
    """The EAO curve with its averaging interval, and per-sequence accuracy bars."""
    curve = summary["eao_curve"]
    return [
        curve_plot(out / "eao.png", np.arange(len(curve)), {f"EAO {_show(summary['eao'])}": curve},
                   "sequence length Ns (frames)", "expected average overlap", "EAO curve",
                   span=tuple(summary["eao_interval"])),
        bar_plot(out / "sequences.png", [f"{r['name']} ({r['metrics']['failures']} fail.)" for r in records],
                 {"accuracy": [r["metrics"]["accuracy"] for r in records]}, "accuracy", "Per sequence"),
    ]


def _show(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
