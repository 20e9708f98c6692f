"""The synthetic disappearances: which pixels change, what they hold, and NaN rows exactly on the span."""
import numpy as np
import pytest

from siammask.data.occlude import GREY, MODES, RAMP, VIEWS, cover_region, occlude

W, H, N = 160, 120, 12


def _scene(seed: int = 0):
    """N frames of random texture with a still box at (50.5, 40, 20, 30)."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(N)]
    boxes = np.tile([50.5, 40.0, 20.0, 30.0], (N, 1))
    return frames, boxes


def _changed(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the pixels that differ (exclusive ends)."""
    rows, cols = np.nonzero(np.any(a != b, axis=2))
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_cover_region_is_the_box_grown_by_pad_and_rounded_out():
    # margins 0.1 * 20 + 2 = 4 px across, 0.1 * 30 + 2 = 5 px down
    assert cover_region(np.array([50.5, 40, 20, 30]), (W, H)) == (46, 35, 75, 75)
    assert cover_region(np.array([-3, 100, 20, 30]), (W, H)) == (0, 95, 21, 120)  # clipped to the frame


@pytest.mark.parametrize("mode", ["grey", "noise", "patch", "occluder"])
def test_cover_modes_change_exactly_the_cover_region_on_exactly_the_span(mode):
    frames, boxes = _scene()
    other = [np.full((60, 80, 3), 7 * i, np.uint8) for i in range(1, 4)]
    out, new = occlude(frames, boxes, 3, 4, mode, np.random.default_rng(1), other)
    for t in range(N):
        if 3 <= t < 7:
            assert np.all(np.isnan(new[t]))
            assert _changed(frames[t], out[t]) == (46, 35, 75, 75)
            assert np.array_equal(out[t][:35], frames[t][:35]) and np.array_equal(out[t][75:], frames[t][75:])
        else:
            assert np.array_equal(new[t], boxes[t])
            assert out[t] is frames[t]
    block = out[4][35:75, 46:75]
    if mode == "grey":
        assert np.all(block == GREY)
    elif mode == "noise":
        assert block.std() > 50 and not np.array_equal(block, out[5][35:75, 46:75])  # fresh every frame
    elif mode == "occluder":
        assert len(np.unique(block)) == 1 and block[0, 0, 0] in (7, 14, 21)
        assert (int(out[5][40, 50, 0]) - int(block[0, 0, 0])) % 21 == 7  # the next frame of the other scene


def test_patch_copies_background_from_one_place_clear_of_the_target():
    frames, boxes = _scene()
    out, _ = occlude(frames, boxes, 2, 3, "patch", np.random.default_rng(5))
    found = []
    for t in (2, 3, 4):
        block = out[t][35:75, 46:75]
        matches = [(dx, dy) for dy in range(-35, H - 75 + 1) for dx in range(-46, W - 75 + 1)
                   if np.array_equal(frames[t][35 + dy:75 + dy, 46 + dx:75 + dx], block)]
        assert len(matches) == 1
        dx, dy = matches[0]
        assert abs(dx) >= 29 or abs(dy) >= 40  # the source does not overlap the 29x40 cover
        found.append(matches[0])
    assert found[0] == found[1] == found[2]


def test_patch_refuses_a_target_with_no_room_beside_it():
    frames, _ = _scene()
    boxes = np.tile([10.0, 10.0, 140.0, 100.0], (N, 1))
    with pytest.raises(ValueError, match="patch"):
        occlude(frames, boxes, 2, 3, "patch", np.random.default_rng(0))


def test_cut_replaces_whole_frames_by_the_other_scene_resized_then_returns():
    frames, boxes = _scene()
    other = [np.full((60, 80, 3), 10 * i, np.uint8) for i in range(5)]
    out, new = occlude(frames, boxes, 4, 3, "cut", np.random.default_rng(2), other)
    values = [int(out[t][0, 0, 0]) for t in (4, 5, 6)]
    assert all(out[t].shape == (H, W, 3) and len(np.unique(out[t])) == 1 for t in (4, 5, 6))
    assert [(v - values[0]) % 50 for v in values] == [0, 10, 20]  # consecutive frames of the other scene
    assert out[3] is frames[3] and out[7] is frames[7]
    assert np.isnan(new[4:7]).all() and np.isfinite(new[:4]).all() and np.isfinite(new[7:]).all()


def test_already_absent_rows_stay_nan_and_their_frames_untouched():
    frames, boxes = _scene()
    boxes[5] = np.nan
    out, new = occlude(frames, boxes, 4, 3, "grey", np.random.default_rng(0))
    assert np.array_equal(out[5], frames[5]) and np.isnan(new[5]).all()
    assert np.isnan(new).any(axis=1).tolist() == [False] * 4 + [True] * 3 + [False] * 5


def test_exit_pans_the_view_off_the_target_and_back():
    rng = np.random.default_rng(0)
    n, width, height = 20, 200, 100
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]
    boxes = np.tile([20.0, 40.0, 16.0, 20.0], (n, 1))  # near the left edge: the view goes right
    out, new = occlude(frames, boxes, 8, 5, "exit", rng)
    vw, vh = round(VIEWS[0] * width), round(VIEWS[0] * height)
    assert all(f.shape == (vh, vw, 3) for f in out)
    assert np.isnan(new).any(axis=1).tolist() == [False] * 8 + [True] * 5 + [False] * 7
    corners = []
    for t in range(n):  # each output frame is a crop of its input; find where
        hits = [(x, y) for y in range(height - vh + 1) for x in range(width - vw + 1)
                if np.array_equal(frames[t][y:y + vh, x:x + vw][:4, :4], out[t][:4, :4])
                and np.array_equal(frames[t][y:y + vh, x:x + vw], out[t])]
        assert len(hits) == 1
        corners.append(hits[0])
    assert corners[0] == (0, 20)  # follows the target, kept in the frame
    assert all(c == (width - vw, 20) for c in corners[8:13])  # pushed right: x 80..199, clear of x 20..36
    xs = [c[0] for c in corners]
    assert xs[8 - RAMP:8] == sorted(xs[8 - RAMP:8]) and xs[13:13 + RAMP] == sorted(xs[13:13 + RAMP], reverse=True)
    for t in list(range(8 - RAMP, 8)) + list(range(13, 13 + RAMP)):  # panning: clipped, at least half in view
        x0 = 20 - corners[t][0]
        assert new[t][0] == max(0, x0) and new[t][2] == 16 - max(0, -x0) and new[t][2] >= 8
        assert new[t][1] == 20 and new[t][3] == 20
    assert np.array_equal(new[0], [20, 20, 16, 20]) and np.array_equal(new[-1], [20, 20, 16, 20])


def test_exit_takes_a_smaller_view_when_the_largest_cannot_leave_the_target_out():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (100, 200, 3), dtype=np.uint8) for _ in range(N)]
    boxes = np.tile([85.0, 40.0, 10.0, 20.0], (N, 1))  # a 120x60 view always shows it, a 100x50 one can not
    out, new = occlude(frames, boxes, 3, 2, "exit", rng)
    assert {f.shape for f in out} == {(50, 100, 3)}
    assert np.isnan(new).any(axis=1).tolist() == [False] * 3 + [True] * 2 + [False] * 7


def test_exit_refuses_a_target_that_every_view_would_show():
    frames, _ = _scene()
    boxes = np.tile([60.0, 45.0, 40.0, 30.0], (N, 1))  # central: any 96x72 crop overlaps it
    with pytest.raises(ValueError, match="exit"):
        occlude(frames, boxes, 2, 3, "exit", np.random.default_rng(0))


@pytest.mark.parametrize("start,length", [(0, 3), (10, 3), (3, 0)])
def test_spans_that_do_not_fit_or_hide_the_first_frame_are_refused(start, length):
    frames, boxes = _scene()
    with pytest.raises(ValueError, match="span"):
        occlude(frames, boxes, start, length, "grey", np.random.default_rng(0))


def test_same_seed_same_result_and_every_mode_runs():
    frames, boxes = _scene()
    other = [np.zeros((H, W, 3), np.uint8)]
    for mode in MODES:
        a = occlude(frames, boxes[:, :] * [0.3, 0.3, 1, 1], 2, 3, mode, np.random.default_rng(9), other)
        b = occlude(frames, boxes[:, :] * [0.3, 0.3, 1, 1], 2, 3, mode, np.random.default_rng(9), other)
        assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
        assert np.array_equal(a.boxes, b.boxes, equal_nan=True)


# --- siammask dataset occlude --------------------------------------------------------------------------

def _otb_folder(root, frames, boxes):
    """An OTB-layout sequence: img/0001.png... (lossless) and 1-based groundtruth_rect.txt."""
    import cv2

    from siammask.data.layouts.regions import write_otb_boxes
    (root / "img").mkdir(parents=True)
    for i, frame in enumerate(frames, start=1):
        cv2.imwrite(str(root / "img" / f"{i:04d}.png"), frame)
    write_otb_boxes(root / "groundtruth_rect.txt", boxes)
    return root


def test_occlude_command_writes_an_otb_sequence_with_nan_rows_on_the_span(tmp_path, capsys):
    import cv2

    from siammask.cli import main
    from siammask.data.layouts.sequences import otb_sequences
    frames, boxes = _scene()
    frames = [cv2.GaussianBlur(f, (0, 0), 3) for f in frames]  # smooth, so JPEG keeps grey grey
    seq = _otb_folder(tmp_path / "seq", frames, boxes)
    assert main(["dataset", "occlude", "--root", str(seq), "--out", str(tmp_path / "out"),
                 "--start", "4", "--length", "3", "--mode", "grey", "--seed", "1"]) == 0
    assert "absent at frames 4-6" in capsys.readouterr().err
    [back] = otb_sequences(tmp_path / "out")
    assert [p.name for p in back.frames] == [f"{i:04d}.jpg" for i in range(1, N + 1)]
    lines = (tmp_path / "out" / "groundtruth_rect.txt").read_text().splitlines()
    assert lines[0] == "51.5,41,20,30" and lines[3:6] == ["NaN,NaN,NaN,NaN"] * 3 and lines[6] == "51.5,41,20,30"
    assert np.isnan(back.targets[1]).any(axis=1).tolist() == [False] * 3 + [True] * 3 + [False] * 6
    image = cv2.imread(str(back.frames[4]))
    assert np.abs(image[40:70, 51:70].astype(int) - GREY).max() <= 3  # inside the block, away from JPEG ringing


@pytest.mark.parametrize("extra,message", [
    (["--start", "1", "--length", "3", "--mode", "grey"], "--start: '1' is not a whole number >= 2"),
    (["--start", "11", "--length", "3", "--mode", "grey"], "--start 11 --length 3 is not inside frames 2..12"),
    (["--start", "3", "--length", "3", "--mode", "cut"], "--mode cut: mode 'cut' needs frames of another scene"),
    (["--start", "3", "--length", "3", "--mode", "blur"], "invalid choice: 'blur'"),
    (["--start", "3", "--length", "3", "--mode", "grey", "--other", "."],
     "--other is for --mode occluder and cut, not grey"),
])
def test_occlude_command_refuses_bad_spans_and_modes_in_one_line(tmp_path, capsys, extra, message):
    from siammask.cli import main
    seq = _otb_folder(tmp_path / "seq", *_scene())
    with pytest.raises(SystemExit) if "choice" in message or ">=" in message else _no_exit() as exit_info:
        status = main(["dataset", "occlude", "--root", str(seq), "--out", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert message in err
    assert (exit_info.value.code if exit_info else status) == 2
    if exit_info is None:
        assert err.count("\n") == 1 and not (tmp_path / "out").exists()


class _no_exit:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_occlude_command_cut_takes_the_other_folders_frames(tmp_path):
    import cv2

    from siammask.cli import main
    seq = _otb_folder(tmp_path / "seq", *_scene())
    (tmp_path / "other").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "other" / f"{i}.png"), np.full((30, 40, 3), 100 + 50 * i, np.uint8))
    assert main(["dataset", "occlude", "--root", str(seq), "--out", str(tmp_path / "out"), "--start", "2",
                 "--length", "2", "--mode", "cut", "--other", str(tmp_path / "other"), "--quiet"]) == 0
    values = sorted(int(cv2.imread(str(tmp_path / "out" / "img" / f"000{i}.jpg")).mean().round()) for i in (2, 3))
    assert values == [100, 150]
