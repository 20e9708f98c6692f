"""Speed as the tables report it: wall time of each tracker step (all targets of a frame at once),
frame decoding and metric computation excluded."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ..tracker import TargetState, Tracker, TrackResult


class TimedTracker:
    """A Tracker that records how long every step took."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.step_ms: list[float] = []

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[TargetState]:
        return self.tracker.init(frame, boxes)

    def step(self, frame: np.ndarray, states: Sequence[TargetState]) -> tuple[list[TargetState], list[TrackResult]]:
        start = time.perf_counter()
        out = self.tracker.step(frame, states)
        self.step_ms.append((time.perf_counter() - start) * 1000)
        return out


def speed(step_ms: Sequence[float]) -> dict[str, float | int | None]:
    """Median step time (robust to the first, slower steps) and frames per second over all steps."""
    if not step_ms:
        return {"steps": 0, "step_ms_median": None, "fps": None}
    return {"steps": len(step_ms), "step_ms_median": float(np.median(step_ms)),
            "fps": float(1000 * len(step_ms) / np.sum(step_ms))}
