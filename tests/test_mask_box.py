"""hp mask_box (preset nano-vos): the next search crop is scaled towards the size of the target's own
mask; the reported box and the box head's state stay as without it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from siammask.api import DEFAULT_WEIGHTS, load_tracker
from siammask.geometry.crop import search_scale
from siammask.synthetic import make_sequence
from siammask.tracker import TargetState, Tracker, _clamp, _towards_mask, state_box


def _state(size=(40.0, 20.0)) -> TargetState:
    return TargetState(np.array([50.0, 30.0]), np.array(size), np.zeros(3), None)


def test_crop_size_moves_towards_the_masks_tight_box():
    mask = np.zeros((100, 120), bool)
    mask[5:35, 10:70] = True  # tight box 60 x 30
    moved = _towards_mask(_state(), mask, 0.75)
    assert moved.crop_size.tolist() == [0.25 * 40 + 0.75 * 60, 0.25 * 20 + 0.75 * 30]  # 55, 27.5
    assert moved.pos.tolist() == [50.0, 30.0] and moved.size.tolist() == [40.0, 20.0]
    assert moved.scale_size is moved.crop_size
    assert _towards_mask(_state(), mask, 1.0).crop_size.tolist() == [60.0, 30.0]


def test_an_empty_mask_leaves_the_crop_to_the_box_head():
    moved = _towards_mask(_state(), np.zeros((100, 120), bool), 0.75)
    assert moved.crop_size is None and moved.scale_size.tolist() == [40.0, 20.0]


def test_clamp_keeps_both_sizes_in_the_frame():
    state = dataclasses.replace(_state((4.0, 500.0)), crop_size=np.array([900.0, 3.0]))
    clamped = _clamp(state, (320, 240))
    assert clamped.size.tolist() == [10.0, 240.0] and clamped.crop_size.tolist() == [320.0, 10.0]
    assert _clamp(_state(), (320, 240)).crop_size is None


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
def test_the_next_crop_follows_the_mask_and_the_box_does_not():
    frames = make_sequence(num_frames=3, size=(320, 240), seed=4)
    plain = load_tracker(engine="torch")  # the shipped weights, preset nano
    vos = Tracker(plain.engine, dataclasses.replace(plain.cfg, mask_box=0.75))
    start = plain.init(frames[0].image, [frames[0].box])
    (mine,), (result,) = vos.step(frames[1].image, start)
    (theirs,), (reference,) = plain.step(frames[1].image, start)
    # same crop on this first step: same box, same mask; only the carried crop size differs
    assert result.box == reference.box == state_box(theirs)
    assert np.array_equal(result.mask, reference.mask) and result.mask.any()
    assert np.array_equal(mine.size, theirs.size) and np.array_equal(mine.pos, theirs.pos)
    ys, xs = np.nonzero(result.mask)
    tight = np.array([xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], np.float64)
    np.testing.assert_allclose(mine.crop_size, 0.25 * theirs.size + 0.75 * tight, rtol=0, atol=1e-9)
    assert theirs.crop_size is None
    # the next crop is cut at the mask-leaning size
    batch = vos.search_batch([(frames[2].image, mine)])
    assert (batch.sides[0], batch.scales[0]) == (float(round(search_scale(mine.crop_size)[0])),
                                                 search_scale(mine.crop_size)[1])
    assert batch.scales[0] != plain.search_batch([(frames[2].image, theirs)]).scales[0]
