"""Calibration inputs for int8: the crops and intermediate maps the tracker really feeds each graph.

A float32 engine tracks one target through real frames (or, when none are given, a synthetic
sequence) behind a recorder that keeps every engine call's inputs as graph feeds. Each tracked
frame also contributes a template crop at the tracked box, so the template graph sees more than
the first frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

import numpy as np

from siammask.backend import Engine, TrackHeads
from siammask.config import TrackerConfig
from siammask.synthetic import make_sequence
from siammask.tracker import Tracker
from siammask.video import track_frames

Feeds = dict[str, np.ndarray]
DEFAULT_FRAMES = 12


class _Recorder:
    """Forwards to a numpy-features engine (ONNX Runtime) and keeps the inputs of every call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.variant, self.mask_size = engine.name, engine.variant, engine.mask_size
        self.feeds: dict[str, list[Feeds]] = {"template": [], "search": [], "mask": []}

    def template(self, z: np.ndarray):
        self.feeds["template"].append({"z": z})
        return self.engine.template(z)

    def concat(self, parts):
        return self.engine.concat(parts)

    def appearance(self, features) -> np.ndarray:
        return self.engine.appearance(features)

    def track(self, x: np.ndarray, features) -> TrackHeads:
        self.feeds["search"].append({"x": x, "k_cls": features.cls, "k_loc": features.loc,
                                     "k_mask": features.mask})
        return self.engine.track(x, features)

    def mask(self, heads: TrackHeads, pos_yx: np.ndarray) -> np.ndarray:
        self.feeds["mask"].append({**heads.context, "pos_yx": np.asarray(pos_yx, np.int64)})
        return self.engine.mask(heads, pos_yx)


def synthetic_clip(num_frames: int = DEFAULT_FRAMES) -> tuple[list[np.ndarray], tuple[float, ...]]:
    """Frames and first box of a synthetic sequence, for when no calibration frames are given."""
    seq = make_sequence(num_frames=num_frames, size=(640, 360), seed=11)
    return [f.image for f in seq], seq[0].box


def collect_feeds(engine: Engine, config: TrackerConfig, frames: Sequence[np.ndarray],
                  box: Sequence[float], limit: int = DEFAULT_FRAMES) -> dict[str, list[Feeds]]:
    """Track `box` through the first `limit` frames; per graph, the list of feeds it received
    (mask feeds hold every map the search graph gave: the mask graph takes those it reads)."""
    recorder = _Recorder(engine)
    tracker = Tracker(recorder, config)
    for step in islice(track_frames(frames, tracker, [box]), limit):
        if step.index > 0:
            tracker.init(step.frame, [step.results[0].box])
    return recorder.feeds
