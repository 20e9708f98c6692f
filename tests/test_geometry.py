"""Exact-number tests of the pure numpy geometry: crops, anchors, scoring, mask paste-back, polygons.

Expected values are computed by hand (the arithmetic is in the comments) or by small, deliberately
naive reference implementations written here (whole-frame padding for crops, per-pixel OpenCV 4
fixed-point bilinear sampling for the paste-back)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from siammask.geometry.anchors import anchor_shapes, generate_anchors
from siammask.geometry.crop import (context_side, crop_and_resize, crop_origin, search_scale,
                                    template_side, to_chw_float)
from siammask.geometry.masks import (Pasted, box_corners, guided_refine, mask_polygon, mask_window, paste_back,
                                     paste_matrix)
from siammask.geometry.scoring import cosine_window, decode, fg_scores, pick_best, size_penalty

RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)
SCALES = (8.0,)


# --------------------------------------------------------------------------------------------
# crop.py: sides, scale, origin
# --------------------------------------------------------------------------------------------

def test_context_side_tennis_box():
    # w=165, h=255: pad = 0.5*(165+255) = 210; (165+210)*(255+210) = 375*465 = 174375
    side = context_side(np.array([165.0, 255.0]))
    assert side == math.sqrt(174375.0)          # 417.58232...
    assert 417.58 < side < 417.59
    assert isinstance(side, np.float64)


def test_context_side_other_context_amount():
    # context 0.25: pad = 0.25*(30+10) = 10; (30+10)*(10+10) = 800
    assert context_side(np.array([30.0, 10.0]), context=0.25) == math.sqrt(800.0)


def test_template_side_rounds():
    # sqrt(174375) = 417.58 -> 418
    assert template_side(np.array([165.0, 255.0])) == 418.0
    # w=h=10: pad = 10, side = sqrt(20*20) = 20 exactly
    assert template_side(np.array([10.0, 10.0])) == 20.0


def test_template_side_half_to_even():
    # w=h=6.25: pad = 6.25, side = sqrt(12.5*12.5) = 12.5 exactly -> half-to-even 12 (not 13)
    assert context_side(np.array([6.25, 6.25])) == 12.5
    assert template_side(np.array([6.25, 6.25])) == 12.0
    # w=h=6.75: side = 13.5 exactly -> 14 (even); w=h=7.25: side 14.5 -> 14 (even)
    assert template_side(np.array([6.75, 6.75])) == 14.0
    assert template_side(np.array([7.25, 7.25])) == 14.0


def test_search_scale_tennis_box():
    s_z = math.sqrt(174375.0)
    s_x, scale = search_scale(np.array([165.0, 255.0], np.float32))
    # scale = 127 / s_z = 127 / 417.5823 = 0.30413
    assert scale == pytest.approx(127.0 / s_z, rel=1e-15)
    assert 0.3041 < scale < 0.3042
    # s_x = s_z + 2 * ((255-127)/2) / scale = s_z + 128 * s_z / 127 = s_z * 255 / 127 = 838.4527
    assert s_x == pytest.approx(s_z * 255.0 / 127.0, rel=1e-12)
    assert 838.45 < s_x < 838.46
    assert round(s_x) == 838


def test_search_scale_square_box():
    # w=h=50: side = sqrt(100*100) = 100; scale = 127/100 = 1.27; s_x = 100 + 128/1.27 = 200.7874
    s_x, scale = search_scale(np.array([50.0, 50.0]))
    assert scale == 1.27
    assert s_x == pytest.approx(100.0 + 128.0 / 1.27, rel=1e-15)


@pytest.mark.parametrize("center, side, expected", [
    ((100.0, 50.0), 418.0, (-110, -160)),   # c = 209.5: round(-109.5) = -110, round(-159.5) = -160 (even)
    ((100.5, 50.0), 300.0, (-50, -100)),    # c = 150.5: round(-50.0) = -50, round(-100.5) = -100 (even)
    ((101.0, 51.0), 300.0, (-50, -100)),    # c = 150.5: round(-49.5) = -50 (even), round(-99.5) = -100 (even)
    ((10.0, 10.0), 4.0, (8, 8)),            # c = 2.5: round(7.5) = 8 (half to even)
    ((10.0, 10.0), 6.0, (6, 6)),            # c = 3.5: round(6.5) = 6 (half to even)
    ((10.25, 9.75), 5.0, (7, 7)),           # c = 3: round(7.25) = 7, round(6.75) = 7
])
def test_crop_origin(center, side, expected):
    assert crop_origin(np.array(center), side) == expected


# --------------------------------------------------------------------------------------------
# crop.py: crop_and_resize
# --------------------------------------------------------------------------------------------

FILL = np.array([10.9, 20.5, 255.7])        # the average colour, a float
FILL_U8 = np.array([10, 20, 255], np.uint8)  # truncated, not rounded (20.5 -> 20, 255.7 -> 255)


def _frame(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """Random BGR frame whose red channel stays below 200, so no pixel equals the fill colour."""
    rng = np.random.default_rng(seed)
    im = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    im[..., 2] %= 200
    return im


def reference_crop(im: np.ndarray, pos, sz: int, out_size: int, avg) -> np.ndarray:
    """The original's method: pad the whole frame on the sides the crop leaves, then slice."""
    h, w = im.shape[:2]
    c = (sz + 1) / 2
    xmin = round(pos[0] - c)
    xmax = xmin + sz - 1
    ymin = round(pos[1] - c)
    ymax = ymin + sz - 1
    left, top = max(0, -xmin), max(0, -ymin)
    right, bottom = max(0, xmax - w + 1), max(0, ymax - h + 1)
    big = np.empty((h + top + bottom, w + left + right, 3), np.uint8)
    big[...] = np.asarray(avg).astype(np.uint8)
    big[top:top + h, left:left + w] = im
    patch = big[ymin + top:ymax + top + 1, xmin + left:xmax + left + 1]
    assert patch.shape == (sz, sz, 3)
    if sz != out_size:
        patch = cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    return patch


def test_crop_inside_equals_slice():
    im = _frame()
    # side 21 around (40, 30): c = 11, origin (29, 19), so columns 29..49 and rows 19..39
    crop = crop_and_resize(im, np.array([40.0, 30.0]), 21.0, 21, FILL)
    assert crop.shape == (21, 21, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, im[19:40, 29:50])
    assert crop.flags["C_CONTIGUOUS"]


def test_crop_inside_with_resize_is_inter_linear():
    im = _frame()
    crop = crop_and_resize(im, np.array([40.0, 30.0]), 21.0, 50, FILL)
    np.testing.assert_array_equal(crop, cv2.resize(im[19:40, 29:50], (50, 50), interpolation=cv2.INTER_LINEAR))
    # and not another interpolation (would be a different image for random pixels)
    assert not np.array_equal(crop, cv2.resize(im[19:40, 29:50], (50, 50), interpolation=cv2.INTER_AREA))


def test_crop_touching_all_four_borders_needs_no_fill():
    im = _frame(h=21, w=21)
    # side 21 around (11, 11): c = 11, origin (0, 0): exactly the whole 21x21 frame, no fill
    crop = crop_and_resize(im, np.array([11.0, 11.0]), 21.0, 21, FILL)
    np.testing.assert_array_equal(crop, im)
    # around (10, 10): origin (-1, -1): one fill row and column on top/left, frame[0:20, 0:20] after
    crop = crop_and_resize(im, np.array([10.0, 10.0]), 21.0, 21, FILL)
    assert (crop[0] == FILL_U8).all() and (crop[:, 0] == FILL_U8).all()
    np.testing.assert_array_equal(crop[1:, 1:], im[:20, :20])


# Frame 60 rows x 80 columns, side 21 (c = 11). For each centre: the part of the crop that lies in
# the frame (crop rows r0:r1, cols c0:c1) and the frame pixels it must hold. Everything else is fill.
@pytest.mark.parametrize("center, crop_part, frame_part", [
    ((5, 5), (6, 21, 6, 21), (0, 15, 0, 15)),        # top-left: origin (-6, -6)
    ((75, 5), (6, 21, 0, 16), (0, 15, 64, 80)),      # top-right: origin (64, -6), cols 64..79 inside
    ((5, 55), (0, 16, 6, 21), (44, 60, 0, 15)),      # bottom-left: origin (-6, 44), rows 44..59 inside
    ((75, 55), (0, 16, 0, 16), (44, 60, 64, 80)),    # bottom-right: origin (64, 44)
    ((40, 5), (6, 21, 0, 21), (0, 15, 29, 50)),      # top edge: origin (29, -6)
    ((40, 55), (0, 16, 0, 21), (44, 60, 29, 50)),    # bottom edge: origin (29, 44)
    ((5, 30), (0, 21, 6, 21), (19, 40, 0, 15)),      # left edge: origin (-6, 19)
    ((75, 30), (0, 21, 0, 16), (19, 40, 64, 80)),    # right edge: origin (64, 19)
    ((-9.5, 30), (0, 21, 20, 21), (19, 40, 0, 1)),   # origin round(-20.5) = -20: only column 0 inside
])
def test_crop_near_borders_and_corners(center, crop_part, frame_part):
    im = _frame()
    crop = crop_and_resize(im, np.array(center, np.float64), 21.0, 21, FILL)
    expected = np.empty((21, 21, 3), np.uint8)
    expected[...] = FILL_U8
    r0, r1, c0, c1 = crop_part
    f0, f1, g0, g1 = frame_part
    expected[r0:r1, c0:c1] = im[f0:f1, g0:g1]
    np.testing.assert_array_equal(crop, expected)
    # the padded part holds exactly the truncated fill colour
    outside = np.ones((21, 21), bool)
    outside[r0:r1, c0:c1] = False
    assert outside.sum() == 21 * 21 - (r1 - r0) * (c1 - c0)
    assert (crop[outside] == FILL_U8).all()


@pytest.mark.parametrize("center", [(200.0, 30.0), (-50.0, -50.0), (40.0, 90.0), (40.0, -11.0)])
def test_crop_entirely_outside_is_all_fill(center):
    # (40, -11): origin y = round(-11 - 11) = -22, rows -22..-2: all above the frame
    crop = crop_and_resize(_frame(), np.array(center), 21.0, 21, FILL)
    assert crop.shape == (21, 21, 3)
    assert (crop == FILL_U8).all()
    crop = crop_and_resize(_frame(), np.array(center), 21.0, 8, FILL)
    assert (crop == FILL_U8).all()


def test_crop_matches_whole_frame_padding_reference():
    rng = np.random.default_rng(1234)
    sides_seen = set()
    for trial in range(300):
        h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        im = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        side = int(rng.integers(1, 120))
        sides_seen.add(side % 2)
        # centres on the half-pixel grid or arbitrary, inside and far outside the frame
        if trial % 2:
            center = np.array([rng.integers(-2 * side, 2 * w + side), rng.integers(-2 * side, 2 * h + side)]) / 2.0
        else:
            center = rng.uniform([-side, -side], [w + side, h + side])
        out_size = side if trial % 3 == 0 else int(rng.integers(5, 130))
        fill = rng.uniform(0, 256, 3)
        got = crop_and_resize(im, center, float(side), out_size, fill)
        want = reference_crop(im, center, side, out_size, fill)
        assert got.shape == (out_size, out_size, 3)
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}: {h}x{w} {center} side {side}")
    assert sides_seen == {0, 1}


def test_crop_template_and_search_sizes_of_tennis_box():
    # 127 and 255 outputs from the tracker's sides 418 and 838 on a 360x480 frame
    im = _frame(360, 480, seed=5)
    pos = np.array([300 + 165 / 2, 110 + 255 / 2])   # (382.5, 237.5)
    for side, out in ((418.0, 127), (838.0, 255)):
        got = crop_and_resize(im, pos, side, out, FILL)
        np.testing.assert_array_equal(got, reference_crop(im, pos, int(side), out, FILL))


def test_to_chw_float():
    a = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)    # H=2, W=3, C=3
    out = to_chw_float([a, 255 - a])
    assert out.shape == (2, 3, 2, 3) and out.dtype == np.float32
    # out[b, c, y, x] = a[y, x, c]; a[1, 2, 0] = (1*3 + 2)*3 + 0 = 15
    assert out[0, 0, 1, 2] == 15.0
    assert out[1, 0, 1, 2] == 240.0
    np.testing.assert_array_equal(out[0], a.transpose(2, 0, 1).astype(np.float32))
    with pytest.raises(ValueError, match="a crop of shape"):
        to_chw_float([a, a[:, :, 0]])  # one channel: an error, not planes left unwritten


# --------------------------------------------------------------------------------------------
# anchors.py
# --------------------------------------------------------------------------------------------

def test_anchor_shapes_integer_truncation():
    # r=0.33: ws = int(sqrt(64/0.33)) = int(13.93) = 13, hs = int(13*0.33) = int(4.29) = 4 -> (104, 32)
    # r=0.5 : ws = int(11.31) = 11, hs = int(5.5) = 5 -> (88, 40); r=1: (64, 64)
    # r=2   : ws = int(5.66) = 5, hs = 10 -> (40, 80); r=3: ws = int(4.62) = 4, hs = 12 -> (32, 96)
    shapes = anchor_shapes(8, RATIOS, SCALES)
    assert shapes.dtype == np.float32
    assert shapes.tolist() == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]


def test_generate_anchors_layout():
    anchors = generate_anchors(8, RATIOS, SCALES, 25)
    assert anchors.shape == (3125, 4) and anchors.dtype == np.float32
    shapes = [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]
    for a, (w, h) in enumerate(shapes):
        for y in range(25):
            for x in range(25):
                assert anchors[a * 625 + y * 25 + x].tolist() == [-96 + 8 * x, -96 + 8 * y, w, h]
    # spot checks: index 0 is (-96, -96) of anchor 0; index 2*625 + 12*25 + 12 = 1562 is the centre
    assert anchors[0].tolist() == [-96, -96, 104, 32]
    assert anchors[1562].tolist() == [0, 0, 64, 64]
    # index 3124 = 4*625 + 24*25 + 24: (+96, +96) of anchor 4
    assert anchors[3124].tolist() == [96, 96, 32, 96]


# --------------------------------------------------------------------------------------------
# scoring.py
# --------------------------------------------------------------------------------------------

def test_fg_scores_softmax_values():
    cls = np.zeros((10, 25, 25), np.float32)
    scores = fg_scores(cls)
    assert scores.shape == (3125,) and scores.dtype == np.float32
    assert (scores == 0.5).all()                      # bg = fg = 0 -> 1/2
    cls[7, 3, 20] = math.log(3)                       # fg of anchor 2 at (y=3, x=20): e^ln3/(1+e^ln3) = 3/4
    cls[1, 0, 0] = math.log(3)                        # bg of anchor 1 at (0, 0): 1/(3+1) = 1/4
    cls[9, 24, 24] = 1000.0                           # huge logit: 1, no overflow
    cls[4, 24, 0] = 1000.0                            # huge bg: 0
    scores = fg_scores(cls)
    assert scores[2 * 625 + 3 * 25 + 20] == pytest.approx(0.75, abs=1e-7)     # index 1345
    assert scores[1 * 625 + 0 * 25 + 0] == pytest.approx(0.25, abs=1e-7)      # index 625
    assert scores[4 * 625 + 24 * 25 + 24] == 1.0                              # index 3124
    assert scores[4 * 625 + 24 * 25 + 0] == 0.0                               # index 3100
    changed = {1345, 625, 3124, 3100}
    assert all(scores[i] == 0.5 for i in range(3125) if i not in changed)


def test_fg_scores_channel_layout():
    # a fg logit in channel 5+a at (y, x) moves exactly flat index a*625 + y*25 + x
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, y, x = (int(v) for v in rng.integers(0, [5, 25, 25]))
        cls = np.zeros((10, 25, 25), np.float32)
        cls[5 + a, y, x] = 2.0
        scores = fg_scores(cls)
        assert int(np.argmax(scores)) == a * 625 + y * 25 + x
        assert np.count_nonzero(scores != 0.5) == 1


def test_decode_hand_computed():
    anchors = generate_anchors(8, RATIOS, SCALES, 25)
    loc = np.zeros((20, 25, 25), np.float32)
    # anchor 2 (64x64) at y=3, x=20: flat index 1345, anchor centre (-96+160, -96+24) = (64, -72)
    loc[0 * 5 + 2, 3, 20] = 0.5              # dx
    loc[1 * 5 + 2, 3, 20] = -0.25            # dy
    loc[2 * 5 + 2, 3, 20] = math.log(2.0)    # dw
    loc[3 * 5 + 2, 3, 20] = math.log(0.5)    # dh
    boxes = decode(loc, anchors)
    assert boxes.shape == (4, 3125) and boxes.dtype == np.float32
    # cx = 0.5*64 + 64 = 96; cy = -0.25*64 - 72 = -88; w = 2*64 = 128; h = 0.5*64 = 32
    np.testing.assert_allclose(boxes[:, 1345], [96.0, -88.0, 128.0, 32.0], rtol=1e-6)
    # zero deltas elsewhere give the anchors back exactly (exp(0) = 1)
    rest = np.arange(3125) != 1345
    np.testing.assert_array_equal(boxes[:, rest], anchors[rest].T)
    # the input is not modified
    assert loc[2, 3, 20] == 0.5


def test_decode_uses_anchor_width_and_height_separately():
    anchors = generate_anchors(8, RATIOS, SCALES, 25)
    loc = np.zeros((20, 25, 25), np.float32)
    # anchor 0 (104x32) at y=0, x=0 (centre (-96, -96)): dx=1, dy=1 -> cx = 104-96 = 8, cy = 32-96 = -64
    loc[0, 0, 0] = 1.0
    loc[5, 0, 0] = 1.0
    boxes = decode(loc, anchors)
    assert boxes[:, 0].tolist() == [8.0, -64.0, 104.0, 32.0]


def test_cosine_window():
    win = cosine_window(25, 5)
    assert win.shape == (3125,) and win.dtype == np.float64
    hann = np.hanning(25)   # 0.5 - 0.5*cos(2*pi*i/24)
    # centre of every anchor: hann[12]^2 = (0.5 - 0.5*cos(pi))^2 = 1
    for a in range(5):
        assert win[a * 625 + 12 * 25 + 12] == pytest.approx(1.0, abs=1e-15)
    # border rows/columns are 0 (hann[0] = 0.5 - 0.5 = 0)
    assert win[0] == 0.0 and win[24] == 0.0 and win[600] == 0.0
    # (y=6, x=6): hann[6] = 0.5 - 0.5*cos(pi/2) = 0.5, squared 0.25
    assert win[6 * 25 + 6] == pytest.approx(0.25, abs=1e-15)
    # (y=6, x=12) of anchor 3: 0.5 * 1 = 0.5
    assert win[3 * 625 + 6 * 25 + 12] == pytest.approx(0.5, abs=1e-15)
    np.testing.assert_array_equal(win[:625], np.outer(hann, hann).ravel())
    for a in range(1, 5):
        np.testing.assert_array_equal(win[a * 625:(a + 1) * 625], win[:625])


def _boxes(*wh):
    """(4, N) boxes centred at 0 with the given (w, h)."""
    wh = np.array(wh, np.float64)
    return np.stack([np.zeros(len(wh)), np.zeros(len(wh)), wh[:, 0], wh[:, 1]])


def test_size_penalty_hand_computed():
    k = 0.04
    target = np.array([64.0, 64.0])
    pen = size_penalty(_boxes((64, 64), (128, 128), (32, 32), (128, 32)), target, k)
    # same size: s_c = r_c = 1 -> exp(0) = 1
    assert pen[0] == 1.0
    # 2x: sz(128,128) = sqrt(256*256) = 256 vs sz(64,64) = 128: s_c = 2, r_c = 1 -> exp(-(2-1)*0.04)
    assert pen[1] == pytest.approx(math.exp(-0.04), rel=1e-14)
    # 0.5x: s_c = max(0.5, 2) = 2 -> the same penalty
    assert pen[2] == pytest.approx(math.exp(-0.04), rel=1e-14)
    # (128, 32): p = 80, sz = sqrt(208*112) = sqrt(23296) = 152.63; s_c = 152.63/128 = 1.19243;
    # r_c = change((64/64) / (128/32)) = change(0.25) = 4 -> exp(-(4*1.19243 - 1)*0.04) = exp(-0.15079) = 0.86003
    expected = math.exp(-(4 * math.sqrt(23296.0) / 128.0 - 1) * 0.04)
    assert pen[3] == pytest.approx(expected, rel=1e-14)
    assert 0.8600 < pen[3] < 0.8601


def test_size_penalty_non_square_target():
    # target (40, 80), box (80, 160) (2x): s_c = 2, r_c = change(0.5/0.5) = 1 -> exp(-(2-1)*0.1)
    pen = size_penalty(_boxes((80, 160), (40, 80)), np.array([40.0, 80.0]), 0.1)
    assert pen[0] == pytest.approx(math.exp(-0.1), rel=1e-14)
    assert pen[1] == 1.0


def test_pick_best_first_maximum_on_ties():
    ones, zeros = np.ones(5), np.zeros(5)
    assert pick_best(np.array([0.2, 0.9, 0.9, 0.1, 0.9]), ones, zeros, 0.0) == 1
    # a tie created by the window: pscore = [0.4*0.5, 0.2*0.5 + 0.2*0.5] = [0.2, 0.2] -> 0
    assert pick_best(np.array([0.4, 0.2]), np.ones(2), np.array([0.0, 0.2]), 0.5) == 0
    # all equal -> index 0
    assert pick_best(np.full(3125, 0.7), np.ones(3125), np.zeros(3125), 0.0) == 0


def test_pick_best_window_and_penalty_matter():
    # without window: argmax of score = 1; with wi = 0.5: [0.5*0.5 + 1*0.5, 0.6*0.5 + 0] = [0.75, 0.3] -> 0
    assert pick_best(np.array([0.5, 0.6]), np.ones(2), np.array([1.0, 0.0]), 0.0) == 1
    assert pick_best(np.array([0.5, 0.6]), np.ones(2), np.array([1.0, 0.0]), 0.5) == 0
    # penalty: [0.5*1, 0.6*0.5] = [0.5, 0.3] -> 0
    assert pick_best(np.array([0.5, 0.6]), np.array([1.0, 0.5]), np.zeros(2), 0.0) == 0


# --------------------------------------------------------------------------------------------
# masks.py
# --------------------------------------------------------------------------------------------

def test_mask_window_hand_computed():
    # crop side 510 -> s = 510/255 = 2; grid (y=4, x=6): x = 100 + (6-4)*8*2 = 132, y = 50 + 0 = 50,
    # side = 2*127 = 254
    assert mask_window((100.0, 50.0), 510.0, (4, 6)) == (132.0, 50.0, 254.0)
    # crop side 255 -> s = 1; grid (y=0, x=24): x = -10 + 20*8 = 150, y = 7 + (-4)*8 = -25
    assert mask_window((-10.0, 7.0), 255.0, (0, 24)) == (150.0, -25.0, 127.0)


def test_paste_matrix_hand_computed():
    # window (132, 50, 254), mask 127, frame 640x480: k = 127/254 = 0.5;
    # back = (-132*0.5, -50*0.5, 640*0.5, 480*0.5) = (-66, -25, 320, 240)
    # a = 639/320 = 1.996875, b = 479/240 = 1.9958333; shifts -a*(-66) = 131.79375, -b*(-25) = 49.895833
    m = paste_matrix((132.0, 50.0, 254.0), 127, (640, 480))
    assert m.shape == (2, 3) and m.dtype == np.float64
    np.testing.assert_array_equal(m, [[639 / 320, 0.0, 639 / 320 * 66], [0.0, 479 / 240, 479 / 240 * 25]])
    assert m[0, 0] == 1.996875 and m[0, 2] == 131.79375


def test_paste_matrix_base_mask_size():
    # window (0, 0, 126), mask 63 (base): k = 0.5; back = (0, 0, 50, 40) for a 100x80 frame;
    # a = 99/50 = 1.98, b = 79/40 = 1.975, no shift
    m = paste_matrix((0.0, 0.0, 126.0), 63, (100, 80))
    np.testing.assert_array_equal(m, [[1.98, 0.0, 0.0], [0.0, 1.975, 0.0]])


def ocv4_warp_affine(src: np.ndarray, matrix: np.ndarray, dsize: tuple[int, int],
                     border: float = -1.0) -> np.ndarray:
    """Per-pixel numpy model of OpenCV 4's warpAffine(INTER_LINEAR, BORDER_CONSTANT) for float images.

    OpenCV 4 inverts the matrix, maps each destination pixel to a source coordinate in 1/32 px using
    10-bit fixed point (X = (round(b1*1024) + round(A11*x*1024) + 16) >> 5, likewise Y), splits it into
    an integer pixel (X >> 5) and a 5-bit fraction (X & 31), and blends the 2x2 neighbours with
    weights (1 - fx/32, fx/32) x (1 - fy/32, fy/32). A sample whose 2x2 neighbourhood lies wholly
    outside the source is the border value; partly outside, the missing neighbours count as it."""
    w, h = dsize
    m = np.asarray(matrix, np.float64).ravel()
    d = m[0] * m[4] - m[1] * m[3]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22, a12, a21 = m[4] * d, m[0] * d, -m[1] * d, -m[3] * d
    b1 = -a11 * m[2] - a12 * m[5]
    b2 = -a21 * m[2] - a22 * m[5]
    ys, xs = np.mgrid[0:h, 0:w]
    x0 = np.rint((a12 * ys + b1) * 1024).astype(np.int64) + 16
    y0 = np.rint((a22 * ys + b2) * 1024).astype(np.int64) + 16
    big_x = (x0 + np.rint(a11 * xs * 1024).astype(np.int64)) >> 5
    big_y = (y0 + np.rint(a21 * xs * 1024).astype(np.int64)) >> 5
    sx, sy = big_x >> 5, big_y >> 5
    fx, fy = (big_x & 31) / 32.0, (big_y & 31) / 32.0
    sh, sw = src.shape

    def at(yy, xx):
        ok = (yy >= 0) & (yy < sh) & (xx >= 0) & (xx < sw)
        return np.where(ok, src[np.clip(yy, 0, sh - 1), np.clip(xx, 0, sw - 1)].astype(np.float64), border)

    out = ((1 - fy) * (1 - fx) * at(sy, sx) + (1 - fy) * fx * at(sy, sx + 1)
           + fy * (1 - fx) * at(sy + 1, sx) + fy * fx * at(sy + 1, sx + 1))
    gone = (sx >= sw) | (sx + 1 < 0) | (sy >= sh) | (sy + 1 < 0)
    return np.where(gone, border, out)


def _smooth_mask(size: int, seed: int = 0) -> np.ndarray:
    """A blob-shaped probability map: sigmoid of a smooth random field, float32."""
    rng = np.random.default_rng(seed)
    small = rng.normal(0, 3, (8, 8)).astype(np.float32)
    field = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2) / size
    return (1 / (1 + np.exp(-(field + 6 - 20 * r)))).astype(np.float32)


def test_ocv4_model_is_close_to_opencv_warp():
    # sanity check of the model above against whatever OpenCV is installed (4: exact, 5: float)
    mask = np.random.default_rng(3).random((16, 16)).astype(np.float32)
    m = paste_matrix((3.3, -2.7, 23.1), 16, (40, 30))
    ours = ocv4_warp_affine(mask, m, (40, 30))
    cv = cv2.warpAffine(mask, m, (40, 30), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=-1)
    assert np.abs(ours - cv).max() < 0.05


@pytest.mark.parametrize("window, size, frame", [
    ((3.3, -2.7, 23.1), 16, (40, 30)),       # partly off the top edge
    ((-5.25, 4.5, 30.7), 16, (33, 41)),      # partly off the left edge
    ((20.6, 18.1, 17.9), 12, (32, 28)),      # past the right and bottom edges
    ((2.0, 3.0, 10.0), 20, (25, 25)),        # shrink (k = 2)
])
def test_paste_back_equals_opencv4_fixed_point_model(window, size, frame):
    mask = np.random.default_rng(size).random((size, size)).astype(np.float32)
    m = paste_matrix(window, size, frame)
    got = paste_back(mask, m, frame).frame(frame)
    assert got.shape == (frame[1], frame[0]) and got.dtype == np.float32
    want = ocv4_warp_affine(mask, m, frame)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # the warp covers only the window: some pixels are -1 (outside), some are mask values
    assert (got == -1).any() and (got >= 0).any()


@pytest.mark.parametrize("window", [(100.0, 100.0, 20.0), (-30.0, 5.0, 20.0), (5.0, -40.5, 30.0)])
def test_paste_back_window_outside_the_frame_is_all_border(window):
    # windows (x, y, side) on a 40x30 frame: (100, 100, 20) past the bottom-right, (-30, 5, 20) covers
    # x = -30..-10 (left of the frame), (5, -40.5, 30) covers y = -40.5..-10.5 (above): all pixels are -1
    mask = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    m = paste_matrix(window, 16, (40, 30))
    got = paste_back(mask, m, (40, 30)).frame((40, 30))
    assert got.shape == (30, 40) and (got == -1).all()
    np.testing.assert_array_equal(got, ocv4_warp_affine(mask, m, (40, 30)))


def test_paste_back_window_larger_than_the_frame():
    # window (-50, -40, 200) around a 40x30 frame: every frame pixel samples the mask, none is -1
    mask = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    m = paste_matrix((-50.0, -40.0, 200.0), 16, (40, 30))
    got = paste_back(mask, m, (40, 30)).frame((40, 30))
    assert (got >= 0).all()
    np.testing.assert_allclose(got, ocv4_warp_affine(mask, m, (40, 30)), rtol=0, atol=1e-6)


def test_paste_back_realistic_frame_against_model_and_opencv():
    # a 127x127 sharp mask, crop side 838 around (382.5, 237.5) on a 480x360 frame, grid (y=9, x=14)
    mask = _smooth_mask(127)
    crop_side = 838.0
    crop_xy = (382.5 - crop_side / 2, 237.5 - crop_side / 2)
    window = mask_window(crop_xy, crop_side, (9, 14))
    m = paste_matrix(window, 127, (480, 360))
    got = paste_back(mask, m, (480, 360)).frame((480, 360))
    np.testing.assert_allclose(got, ocv4_warp_affine(mask, m, (480, 360)), rtol=0, atol=1e-6)
    cv = cv2.warpAffine(mask, m, (480, 360), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=-1)
    assert np.abs(got - cv).max() < 0.05
    fg_got, fg_cv = got > 0.35, cv > 0.35
    assert fg_got.sum() > 1000                      # the blob is really there
    assert (fg_got == fg_cv).mean() > 0.99


@pytest.mark.parametrize("centre", [(382.5, 237.5), (40.0, 300.0)])  # inside; over the left and bottom edges
def test_pasted_part_holds_every_pixel_the_mask_reaches_and_traces_like_the_whole_frame(centre):
    mask = _smooth_mask(127)
    crop_side = 500.0
    window = mask_window((centre[0] - crop_side / 2, centre[1] - crop_side / 2), crop_side, (12, 12))
    m = paste_matrix(window, 127, (480, 360))
    pasted = paste_back(mask, m, (480, 360))
    full = pasted.frame((480, 360))
    np.testing.assert_allclose(full, ocv4_warp_affine(mask, m, (480, 360)), rtol=0, atol=1e-6)
    h, w = pasted.values.shape
    assert h * w < 480 * 360 / 2                       # a part, not the frame
    rows, cols = np.nonzero(full != -1)
    assert pasted.x <= cols.min() and cols.max() < pasted.x + w and pasted.y <= rows.min() and rows.max() < pasted.y + h
    np.testing.assert_array_equal(pasted.above(0.35, (480, 360)), full > 0.35)
    polygon = mask_polygon(pasted.values, 0.35, origin=(pasted.x, pasted.y))
    assert polygon is not None
    np.testing.assert_array_equal(polygon, mask_polygon(full, 0.35))


def test_pasted_covering_grows_with_minus_one_and_keeps_values():
    part = Pasted(5, 4, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert part.covering(5, 4, 8, 6) is part                 # already held
    grown = part.covering(3, 4, 9, 7)
    assert (grown.x, grown.y, grown.values.shape) == (3, 4, (3, 6))
    np.testing.assert_array_equal(grown.frame((12, 10)), part.frame((12, 10)))
    assert (grown.values[:, :2] == -1).all() and (grown.values[2] == -1).all() and (grown.values[:, 5] == -1).all()
    empty = Pasted(0, 0, np.zeros((0, 0), np.float32))      # a window off the frame
    assert not empty.above(-0.5, (12, 10)).any() and (empty.frame((12, 10)) == -1).all()
    far = empty.covering(600, 400, 700, 450)                 # grows to the region alone, not from (0, 0)
    assert (far.x, far.y, far.values.shape) == (600, 400, (50, 100)) and (far.values == -1).all()


def test_paste_back_round_trip_integer_scale_and_shift():
    # forward map x' = 2x + 10, y' = 2y + 20: inverse samples (x'/2 - 5, y'/2 - 10), fractions 0 or 16/32
    mask = np.random.default_rng(7).random((10, 12)).astype(np.float32)   # 10 rows, 12 columns
    m = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, 20.0]])
    frame = paste_back(mask, m, (50, 45)).frame((50, 45))
    # every even pixel of the pasted region is exactly a mask pixel: crop it back
    np.testing.assert_array_equal(frame[20:20 + 2 * 10:2, 10:10 + 2 * 12:2], mask)
    # odd columns inside are the mean of two neighbours: 0.5*m[i, j] + 0.5*m[i, j+1]
    np.testing.assert_allclose(frame[20:40:2, 11:33:2], (mask[:, :-1] + mask[:, 1:]) / 2, atol=1e-7)
    # the last odd column (x' = 33, source x = 11.5) blends the mask with the border value -1
    np.testing.assert_allclose(frame[20:40:2, 33], (mask[:, 11] - 1) / 2, atol=1e-7)
    # so does x' = 9 (source x = -0.5: half of column 0, half border), row y' = 19 likewise
    np.testing.assert_allclose(frame[20:40:2, 9], (mask[:, 0] - 1) / 2, atol=1e-7)
    np.testing.assert_allclose(frame[19, 10:34:2], (mask[0] - 1) / 2, atol=1e-7)
    # outside the window: x' <= 8, y' <= 18, x' >= 34 (source x >= 12), y' >= 40 (source y >= 10)
    assert (frame[:, :9] == -1).all() and (frame[:19] == -1).all()
    assert (frame[:, 34:] == -1).all() and (frame[40:] == -1).all()


def test_paste_back_rejects_rotation():
    with pytest.raises(ValueError, match="axis-aligned"):
        paste_back(np.zeros((4, 4), np.float32), np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.0]]), (8, 8))


def test_box_corners():
    # centre (50, 40), size 20x10: x = 40, y = 35
    np.testing.assert_array_equal(box_corners(50.0, 40.0, 20.0, 10.0),
                                  [[40, 35], [60, 35], [60, 45], [40, 45]])
    # centre (0.5, -1), size 3x4: x = -1, y = -3
    np.testing.assert_array_equal(box_corners(0.5, -1.0, 3.0, 4.0), [[-1, -3], [2, -3], [2, 1], [-1, 1]])


def _nearest_distances(truth: np.ndarray, got: np.ndarray) -> np.ndarray:
    """For each true corner, the distance to the closest returned corner (vertex order is free)."""
    return np.linalg.norm(truth[:, None, :] - got[None, :, :], axis=2).min(axis=1)


@pytest.mark.parametrize("rect", [
    ((80.0, 60.0), (60.0, 30.0), 30.0),
    ((70.0, 50.0), (40.0, 70.0), -20.0),
    ((90.5, 64.5), (80.0, 24.0), 60.0),
])
def test_mask_polygon_rotated_rectangle(rect):
    truth = cv2.boxPoints(rect).astype(np.float64)
    binary = np.zeros((120, 160), np.uint8)
    cv2.fillPoly(binary, [np.round(truth).astype(np.int32)], 1)
    mask = binary.astype(np.float32) * 0.9 + 0.05        # 0.95 inside, 0.05 outside
    poly = mask_polygon(mask, 0.35)
    assert poly.shape == (4, 2) and poly.dtype == np.float64
    assert _nearest_distances(truth, poly).max() < 1.0
    # and the four returned corners are four different true corners
    assert len({int(np.argmin(np.linalg.norm(truth - p, axis=1))) for p in poly}) == 4


def test_mask_polygon_takes_largest_contour():
    mask = np.zeros((100, 160), np.float32)
    mask[10:22, 10:22] = 1.0          # 12x12 block
    mask[50:70, 100:120] = 1.0        # 20x20 block, the largest: pixel centres 100..119, 50..69
    poly = mask_polygon(mask, 0.5)
    got = sorted(map(tuple, np.round(poly, 4).tolist()))
    assert got == [(100.0, 50.0), (100.0, 69.0), (119.0, 50.0), (119.0, 69.0)]


def test_mask_polygon_area_limit_and_threshold():
    mask = np.zeros((60, 60), np.float64)
    assert mask_polygon(mask, 0.3) is None                      # empty
    mask[10:21, 10:21] = 1.0       # 11x11 block: contour through pixel centres, area 10*10 = 100 -> not > 100
    assert mask_polygon(mask, 0.3) is None
    mask[10:21, 10:22] = 1.0       # 11 rows x 12 columns: area 10*11 = 110 > 100
    poly = mask_polygon(mask, 0.3)
    assert sorted(map(tuple, np.round(poly, 4).tolist())) == [(10.0, 10.0), (10.0, 20.0), (21.0, 10.0), (21.0, 20.0)]
    # a smaller min_area accepts the 100-pixel block
    small = np.zeros((60, 60))
    small[10:21, 10:21] = 1.0
    assert mask_polygon(small, 0.3, min_area=99.0) is not None
    # the threshold is strict: values equal to it are background
    big = np.zeros((60, 60))
    big[5:45, 5:45] = 0.35
    assert mask_polygon(big, 0.35) is None
    big[5:45, 5:45] = np.nextafter(0.35, 1.0)
    assert mask_polygon(big, 0.35) is not None


# --- guided mask refinement (hp mask_guide_radius) ---------------------------------------------------

def _edge_scene(width: int = 120, edge: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A frame dark left of column `edge`, bright from it on, and a blurred mask of the bright part
    whose 0.5 crossing is 5 px too far left (what an upsampled network mask looks like)."""
    frame = np.full((80, width, 3), 30, np.uint8)
    frame[:, edge:] = 220
    ramp = 1 / (1 + np.exp(-(np.arange(width) - (edge - 5)) / 4.0))
    return frame, np.tile(ramp, (80, 1)).astype(np.float32)


def _first_column_above_half(prob: np.ndarray) -> set[int]:
    return {int(np.argmax(row > 0.5)) for row in prob}


def test_guided_refine_moves_the_boundary_onto_the_image_edge():
    frame, prob = _edge_scene()
    assert _first_column_above_half(prob) == {46}
    # a 127-pixel mask over a 100 px window at (10, -10): full resolution, radius 10 mask px = 8 frame px
    out = guided_refine(Pasted(0, 0, prob), frame, (10.0, -10.0, 100.0), 127, 10, 0.006).values
    (column,) = _first_column_above_half(out)  # the same in every row
    assert abs(column - 50) <= 1  # from 4 px off to the edge's own pixel pair


def test_guided_refine_at_reduced_resolution_is_within_its_pixel():
    """A window of four times the mask's side is filtered shrunk by 4 (here 25 mask pixels over 100
    frame pixels): the edge is found to within half a coarse pixel."""
    frame, prob = _edge_scene()
    out = guided_refine(Pasted(0, 0, prob), frame, (10.0, -10.0, 100.0), 25, 2, 0.006).values
    (column,) = _first_column_above_half(out)
    assert abs(column - 50) <= 2


def test_guided_refine_touches_only_the_window_and_its_margin():
    frame, _ = _edge_scene()
    prob = np.full((80, 120), -1, np.float32)  # paste_back's "outside the window"
    prob[20:60, 40:80] = 0.8
    # window x 40..80, y 20..60; radius 5 of 40 mask px over 40 frame px: margin 5 px
    out = guided_refine(Pasted(0, 0, prob.copy()), frame, (40.0, 20.0, 40.0), 40, 5, 0.006).values
    changed = out != prob
    rows, cols = np.nonzero(changed)
    assert rows.min() >= 15 and rows.max() < 65 and cols.min() >= 35 and cols.max() < 85
    assert out[15:65, 35:85].min() >= 0 and out[15:65, 35:85].max() <= 1
    assert np.array_equal(out[~changed], prob[~changed])
    # a window wholly outside the frame changes nothing
    assert np.array_equal(guided_refine(Pasted(0, 0, prob.copy()), frame, (500.0, 500.0, 40.0), 40, 5, 0.006).values,
                          prob)
    # a pasted part smaller than the region grows to hold it, with the same values as a whole frame
    part = Pasted(40, 20, prob[20:60, 40:80].copy())
    grown = guided_refine(part, frame, (40.0, 20.0, 40.0), 40, 5, 0.006)
    assert (grown.x, grown.y, grown.values.shape) == (35, 15, (50, 50))
    np.testing.assert_array_equal(grown.frame((120, 80)), out)
    # in place where the pasted part covers the region: no copy per step
    pasted = Pasted(0, 0, prob)
    assert guided_refine(pasted, frame, (40.0, 20.0, 40.0), 40, 5, 0.006) is pasted
