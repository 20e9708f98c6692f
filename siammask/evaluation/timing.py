"""Speed as the tables report it: wall time of each tracker step (all targets of a frame at once),
frame decoding and metric computation excluded."""
from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..tracker import TrackResult


class SteppingTracker(Protocol):
    """What the protocols run: siammask.tracker.Tracker, or an OpenCV baseline (baselines.py)."""

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[Any]: ...

    def step(self, frame: np.ndarray, states: Sequence[Any]) -> tuple[list[Any], list[TrackResult]]: ...


class TimedTracker:
    """A tracker that records how long every step took."""

    def __init__(self, tracker: SteppingTracker) -> None:
        self.tracker = tracker
        self.step_ms: list[float] = []

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[Any]:
        return self.tracker.init(frame, boxes)

    def step(self, frame: np.ndarray, states: Sequence[Any]) -> tuple[list[Any], list[TrackResult]]:
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


def cpu_name() -> str:
    """The processor's model name (as lscpu shows it), to say which machine a timing comes from."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
