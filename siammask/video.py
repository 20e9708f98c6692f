"""Track targets through a stream of frames and hand each result to the sinks (JSON, video, masks)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .geometry.masks import box_corners
from .tracker import Tracker, TrackResult, state_box


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
            first = [TrackResult(state_box(s), box_corners(*s.pos, *s.size), 1.0, False,
                                 None, (-1, -1)) for s in states]
            yield FrameResults(0, frame, first)
            continue
        states, results = tracker.step(frame, states)
        yield FrameResults(index, frame, results)

