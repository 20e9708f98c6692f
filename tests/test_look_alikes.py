"""Look-alikes are searched for when a target is first lost, not at init: on the real nano engine,
a target that is never lost never opens the batched search graph, and what is found later is what
the first frame held (Tracker._with_look_alikes), whatever the caller did with its frame since."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from reference import DATA

from siammask.api import load_tracker
from siammask.data.occlude import occlude
from siammask.engines.sidecar import ONE_CROP
from siammask.synthetic import make_sequence

SPAN = (15, 20)  # the target is absent on frames 15..34
NEVER_LOST = {"template", ONE_CROP, "mask"}  # the sessions a lone tracked target needs


@pytest.fixture(scope="module")
def twin_clip():
    """The synthetic clip with a copy of the target pasted beside it on the first frame (a look-alike
    that passes found_threshold: two are remembered), the target cut out on frames 15..34."""
    seq, other = make_sequence(50, seed=3), make_sequence(50, seed=8)
    frames, boxes = occlude([f.image for f in seq], np.array([f.box for f in seq]), *SPAN, "cut",
                            np.random.default_rng(0), [f.image for f in other])
    frames = [f.copy() for f in frames]
    x, y, w, h = (int(round(v)) for v in boxes[0])
    frames[0][y:y + h, x + 140:x + 140 + w] = frames[0][y:y + h, x:x + w]
    return frames, boxes


def _results(tracker, frames, states):
    out = []
    for frame in frames[1:]:
        states, results = tracker.step(frame, states)
        out.append(results[0])
    return out


@pytest.mark.slow
def test_look_alikes_are_searched_on_the_first_loss_from_the_first_frame(twin_clip):
    frames, boxes = twin_clip
    tracker = load_tracker()  # an engine of its own: which sessions it opened is part of the check
    first = frames[0].copy()
    states = tracker.init(first, [boxes[0]])
    first[:] = 0  # the caller reuses its buffer: the tracker kept its own copy
    assert set(tracker.engine.sessions.opened()) == NEVER_LOST
    for index, frame in enumerate(frames[1:], 1):
        states, results = tracker.step(frame, states)
        if results[0].lost:
            break
        assert set(tracker.engine.sessions.opened()) == NEVER_LOST, index
    assert results[0].lost and SPAN[0] <= index < sum(SPAN)
    assert "search" in tracker.engine.sessions.opened()  # the look-alikes' windows, one batch
    assert states[0].memory.first_frame is None  # searched once; the frame is let go
    later = states[0].memory.look_alikes
    at_init = tracker._with_look_alikes(tracker.init(frames[0], [boxes[0]])[0]).memory.look_alikes
    assert later.shape == (2, states[0].memory.first.shape[0])
    assert np.array_equal(later, at_init)


@pytest.mark.slow
def test_tracking_is_the_same_as_with_the_look_alikes_searched_at_init(twin_clip):
    """What the tracker reports on every frame (box, score, presence, lost, found, mask) does not
    depend on when the look-alikes were searched for: they count only while a target is searched for."""
    frames, boxes = twin_clip
    tracker = load_tracker()
    lazy = _results(tracker, frames, tracker.init(frames[0], [boxes[0]]))
    eager = _results(tracker, frames, [tracker._with_look_alikes(s) for s in tracker.init(frames[0], [boxes[0]])])
    assert sum(r.lost for r in lazy) >= 10 and any(r.found for r in lazy)  # searched, and found again
    for index, (a, b) in enumerate(zip(lazy, eager), 1):
        assert (a.box, a.score, a.presence, a.lost, a.found) == (b.box, b.score, b.presence, b.lost, b.found), index
        assert (a.mask is None) == (b.mask is None) and (a.mask is None or np.array_equal(a.mask, b.mask)), index


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "OTB" / "Crossing").is_dir(), reason="../shared OTB absent")
def test_a_target_never_lost_never_opens_the_batched_search_graph():
    """OTB Crossing, the pedestrian tracked through all 120 frames: the batched search graph stays
    closed (its set-up and working memory were spent at init before: RESULTS.md, issue 22)."""
    root = DATA / "OTB" / "Crossing"
    frames = [cv2.imread(str(p)) for p in sorted((root / "img").glob("*.jpg"))]
    box = np.loadtxt(root / "groundtruth_rect.txt", delimiter=",")[0] - [1, 1, 0, 0]
    tracker = load_tracker()
    results = _results(tracker, frames, tracker.init(frames[0], [box]))
    assert len(results) == 119 and not any(r.lost for r in results)
    assert set(tracker.engine.sessions.opened()) == NEVER_LOST
