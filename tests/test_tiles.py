"""Re-detection windows (siammask.geometry.tiles): exact centres, full cover, nearest first, wrap."""
from __future__ import annotations

import numpy as np
import pytest

from siammask.geometry.tiles import grid_reach, scan_batch, scan_centres


def test_grid_reach_of_the_nano_and_sharp_grids():
    # nano: 15 cells at stride 16 in a 255 crop; sharp: 25 cells at stride 8
    assert grid_reach(255.0, 15, 16, 255) == pytest.approx(224.0)
    assert grid_reach(510.0, 25, 8, 255) == pytest.approx(384.0)


def test_centres_cover_the_frame_evenly():
    centres = scan_centres((1000, 300), np.array([0.0, 0.0]), 250.0)
    xs, ys = sorted(set(centres[:, 0])), sorted(set(centres[:, 1]))
    assert xs == pytest.approx([125, 375, 625, 875])          # 4 grids of 250 span 0..1000 exactly
    assert ys == pytest.approx([125, 175])                    # 300 needs 2: spread from 125 to 175
    assert len(centres) == 8
    # every pixel is inside some window's grid
    grid = np.stack(np.meshgrid(np.arange(0, 1000, 7), np.arange(0, 300, 7)), -1).reshape(-1, 2)
    inside = (np.abs(grid[:, None, :] - centres[None]) <= 125).all(-1).any(1)
    assert inside.all()


def test_small_frame_gets_one_centred_window():
    np.testing.assert_array_equal(scan_centres((100, 80), np.array([3.0, 4.0]), 250.0), [[50.0, 40.0]])


def test_nearest_first_with_row_major_ties():
    centres = scan_centres((300, 300), np.array([150.0, 150.0]), 100.0)
    assert centres[0].tolist() == [150.0, 150.0]
    np.testing.assert_allclose(centres[1:5], [[150, 50], [50, 150], [250, 150], [150, 250]])
    corner = scan_centres((300, 300), np.array([299.0, 0.0]), 100.0)
    assert corner[0].tolist() == [250.0, 50.0]


def test_scan_batches_walk_outwards_and_wrap():
    centres = np.arange(10, dtype=float)[:, None].repeat(2, 1)
    assert scan_batch(centres, 1, 4)[:, 0].tolist() == [0, 1, 2, 3]
    assert scan_batch(centres, 2, 4)[:, 0].tolist() == [4, 5, 6, 7]
    assert scan_batch(centres, 3, 4)[:, 0].tolist() == [8, 9, 0, 1]
    assert scan_batch(centres, 7, 20)[:, 0].tolist() == list(range(10))  # fewer than asked: all of them
