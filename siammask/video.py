"""Track targets through a stream of frames and hand each result to the sinks (JSON, video, masks)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .tracker import Tracker, TrackResult, start_result


@dataclass(frozen=True)
class FrameResults:
    """All targets' results for one frame; frame 0 holds the given boxes (no mask, score 1)."""

    index: int
    frame: np.ndarray
    results: list[TrackResult]


def track_frames(frames: Iterable[np.ndarray], tracker: Tracker,
                 boxes: Sequence[Sequence[float]]) -> Iterator[FrameResults]:
    """Init on the first frame, then step every later frame for all targets at once."""
    states = None
    for index, frame in enumerate(frames):
        if states is None:
            states = tracker.init(frame, boxes)
            yield FrameResults(0, frame, [start_result(s) for s in states])
            continue
        states, results = tracker.step(frame, states)
        yield FrameResults(index, frame, results)

