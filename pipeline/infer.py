"""Infer: the engine on the whole batch (heads, then masks only at each target's chosen position),
and the anchor choice that moves each target. The only stage that touches the engine."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from siammask.tracker import Tracker, TargetState, _sigmoid

from .preprocess import SearchBatch


@dataclass(frozen=True)
class Picks:
    states: list[TargetState]        # moved, not yet clamped to the frame
    pos_yx: list[tuple[int, int]]    # grid position of the chosen anchor
    scores: list[float]
    probs: np.ndarray                # (B,S,S) mask probabilities at those positions


def infer_batch(tracker: Tracker, batch: SearchBatch, states: Sequence[TargetState]) -> Picks:
    """Engine heads for every crop against its own template, the best anchor, then its mask."""
    engine = tracker.engine
    heads = engine.track(batch.crops, engine.concat([s.features for s in states]))
    picks = [tracker._pick(heads.cls[i], heads.loc[i], s, scale)  # Tracker's own decoding, shared
             for i, (s, scale) in enumerate(zip(states, batch.scales))]
    pos_yx = [yx for _, yx, _ in picks]
    probs = _sigmoid(engine.mask(heads, np.array(pos_yx, np.int64)))
    return Picks([p[0] for p in picks], pos_yx, [p[2] for p in picks], probs)
