"""Preprocess: cut every target's search crop from its own stream's frame, as one batch.

Together with infer.py and postprocess.py this is Tracker.step split at its stage boundaries and
widened to many frames, so one engine call covers all targets of all streams;
tests/test_pipeline_units.py checks the three together against Tracker.step."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from siammask.config import TrackerConfig
from siammask.geometry.crop import crop_and_resize, search_scale, to_chw_float
from siammask.tracker import TargetState


@dataclass(frozen=True)
class SearchBatch:
    crops: np.ndarray            # (B,3,S,S) float32 search crops
    sides: list[float]           # crop side in frame pixels, per target
    scales: list[np.float64]     # crop pixels per frame pixel, per target


def search_batch(cfg: TrackerConfig, jobs: Sequence[tuple[np.ndarray, TargetState]]) -> SearchBatch:
    """One crop per (frame, target) pair."""
    regions = [search_scale(s.size, cfg.exemplar_size, cfg.instance_size, cfg.context_amount) for _, s in jobs]
    sides = [float(round(s_x)) for s_x, _ in regions]
    crops = [crop_and_resize(frame, s.pos, side, cfg.instance_size, s.avg_color)
             for (frame, s), side in zip(jobs, sides)]
    return SearchBatch(to_chw_float(crops), sides, [scale for _, scale in regions])
