"""Long-term evaluation: the VOT-LT measures and re-acquisition delays on hand-worked cases, the
layouts' NaN rows, and `siammask eval --dataset lt` on a synthetic disappearance."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from siammask.cli import main
from siammask.evaluation import lt, lt_protocol
from siammask.evaluation.data import BoxSequence, load_lt
from siammask.evaluation.regions import box_polygon
from siammask.evaluation.timing import TimedTracker
from siammask.tracker import TrackResult

T, F = True, False


def _detail(visible, lost, presence, overlap):
    return {"visible": visible, "lost": lost, "presence": presence, "overlap": overlap}


# Frame 0 is the given box (not scored). Frames 1-2 tracked, 3 a box on an empty scene, 4-5 lost
# while absent, 6 still lost after the return, 7 re-acquired (IoU 0.7), 8 drifting.
CASE = _detail(visible=[T, T, T, F, F, F, T, T, T],
               lost=[F, F, F, F, T, T, T, F, F],
               presence=[None, 0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.6, 0.4],
               overlap=[1.0, 0.8, 0.6, 0.0, None, None, None, 0.7, 0.2])


def test_thresholds_are_the_distinct_confidences_between_infinities():
    assert lt.thresholds(np.array([0.2, 0.9, np.nan, 0.5, 0.9])).tolist() == [math.inf, 0.9, 0.5, 0.2, -math.inf]
    # more than resolution - 2 = 3 distinct values: ranks 0, round(4.5) = 4 and 9 of 0.9 .. 0.0
    assert lt.thresholds(np.arange(10) / 10, resolution=5) == pytest.approx([math.inf, 0.9, 0.5, 0.0, -math.inf])


def test_precision_recall_and_f_of_a_hand_worked_sequence():
    # Reported boxes (lost frames report none): frame 1 (0.9, IoU .8), 2 (0.8, .6), 3 (0.7, 0: target
    # absent), 7 (0.6, .7), 8 (0.4, .2); 5 visible frames (1, 2, 6, 7, 8).
    # t=0.9: Pr .8, Re .16; t=0.8: Pr .7, Re .28, F .4; t=0.7: Pr 1.4/3, Re .28, F .35;
    # t=0.6: Pr 2.1/4 = .525, Re .42, F = 2*.525*.42/.945 = 7/15; t=0.4 and -inf: Pr = Re = F = .46.
    scored = {k: v[1:] for k, v in CASE.items()}
    levels = lt.thresholds(np.array([0.9, 0.8, 0.7, np.nan, np.nan, np.nan, 0.6, 0.4]))
    precision, recall = lt.pr_curve(np.array(scored["overlap"], float), np.array(
        [0.9, 0.8, 0.7, np.nan, np.nan, np.nan, 0.6, 0.4]), np.array(scored["visible"]), levels)
    assert precision == pytest.approx([1, 0.8, 0.7, 1.4 / 3, 0.525, 0.46, 0.46])
    assert recall == pytest.approx([0, 0.16, 0.28, 0.28, 0.42, 0.46, 0.46])
    assert lt.best_f(precision, recall) == pytest.approx((7 / 15, 0.525, 0.42))
    metrics = lt_protocol.metrics(CASE)
    assert metrics["f_score"] == pytest.approx(7 / 15)
    assert (metrics["precision"], metrics["recall"]) == pytest.approx((0.525, 0.42))
    assert metrics["absent_lost"] == pytest.approx(2 / 3)   # frames 4 and 5 of 3, 4, 5
    assert metrics["visible_lost"] == pytest.approx(1 / 5)  # frame 6 of 1, 2, 6, 7, 8
    assert metrics["absent_frames"] == 3
    assert metrics["absences"] == [{"first": 4, "last": 6, "delay": 1, "outcome": "reacquired"}]  # 1-based
    assert metrics["returns"] == "1"


def test_overall_averages_the_sequences_curves_not_their_f_scores():
    # A: frames 1 (0.9, IoU 1), 2 (0.5, .5), both visible. B: frame 1 absent (0.7, 0), frame 2 (0.3, IoU 1).
    # Thresholds inf, .9, .7, .5, .3, -inf. A: Pr 1,1,1,.75,.75,.75; Re 0,.5,.5,.75,.75,.75.
    # B: Pr 1,1,0,0,.5,.5; Re 0,0,0,0,1,1. Mean at .3: Pr .625, Re .875, F = 35/48, the best.
    a = _detail([T, T, T], [F, F, F], [None, 0.9, 0.5], [1.0, 1.0, 0.5])
    b = _detail([T, F, T], [F, F, F], [None, 0.7, 0.3], [1.0, 0.0, 1.0])
    records = [{"name": n, "detail": d, "metrics": lt_protocol.metrics(d)} for n, d in (("A", a), ("B", b))]
    assert records[0]["metrics"]["f_score"] == pytest.approx(0.75)   # alone: Pr = Re = .75 at .5
    assert records[1]["metrics"]["f_score"] == pytest.approx(2 / 3)  # alone: Pr .5, Re 1 at .3
    summary = lt_protocol.overall(records)
    assert (summary["f_score"], summary["precision"], summary["recall"]) == pytest.approx((35 / 48, 0.625, 0.875))
    assert summary["precision_curve"] == pytest.approx([1, 1, 0.5, 0.375, 0.625, 0.625])
    assert summary["recall_curve"] == pytest.approx([0, 0.25, 0.25, 0.375, 0.875, 0.875])
    assert summary["absent_lost"] == 0.0 and summary["visible_lost"] == 0.0
    assert summary["returns"] == "1 of 1, max 0"  # B's target is found on its return frame
    assert summary["absences"] == [{"sequence": "B", "first": 2, "last": 2, "delay": 0, "outcome": "reacquired"}]
    assert lt_protocol.overall([{"name": "C", "detail": CASE}])["f_score"] == pytest.approx(7 / 15)
    # Shares pool the frames: 2 of CASE's 3 absent frames and none of B's 1 are flagged lost, 2 of 4
    # (not the mean of 2/3 and 0); 1 of CASE's 5 visible frames and none of B's 1 (frame 0 unscored).
    pooled = lt_protocol.overall([{"name": "C", "detail": CASE}, {"name": "B", "detail": b}])
    assert (pooled["absent_lost"], pooled["visible_lost"], pooled["absent_frames"]) == pytest.approx((0.5, 1 / 6, 4))
    assert pooled["returns"] == "2 of 2, max 1"


def test_reacquisition_delays_missed_and_ended():
    v = [T, F, F, T, T, F, T, T, T, T, T, F, T, T, T, T, T, F, T, T]
    o = [1, 0, 0, .3, .6, 0, .2, .4, .1, .9, .1, 0, 0, 0, 0, 0, .8, 0, .1, .2]
    got = [(a.first, a.last, a.shown) for a in lt.absences(np.array(v), np.array(o, float), window=3)]
    assert got == [(2, 3, "1"),        # returns at frame 4 (IoU .3), found at 5
                   (6, 6, "3"),        # returns at 7, found at 10: the last frame of the window counts
                   (12, 12, "missed"),  # returns at 13; IoU .8 only at 17, 4 frames later
                   (18, 18, "ended")]  # returns at 19; the sequence ends before 3 more frames
    assert lt.absences(np.array([T, T, F, F]), np.zeros(4)) == []  # absent to the end: no return
    returns_at_2 = [T, F] + [T] * 40
    for found_at, shown in ((32, "30"), (33, "missed")):  # MISSED_AFTER = 30 frames after the return
        overlaps = np.zeros(42)
        overlaps[found_at] = 0.5
        assert [a.shown for a in lt.absences(np.array(returns_at_2), overlaps)] == [shown]


def test_frame_overlaps_clip_to_the_frame_and_mark_absent_and_unreported():
    truth = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]], float)
    reported = np.array([[-10, 0, 20, 10], [5, 5, 10, 10], [np.nan] * 4], float)
    overlaps = lt.frame_overlaps(reported, truth, (100, 50))
    assert overlaps[:2].tolist() == [1.0, 0.0] and np.isnan(overlaps[2])  # (-10..10) is (0..10) in the frame


class _Scripted:
    """Reports the ground truth shifted by 2 px, lost on the frames in `lost`; counts frames by steps."""

    def __init__(self, boxes: np.ndarray, lost: set[int]) -> None:
        self.boxes, self.lost, self.frame = boxes, lost, 0

    def init(self, frame, boxes):
        return ["state"]

    def step(self, frame, states):
        self.frame += 1
        box = tuple(float(v) for v in np.nan_to_num(self.boxes[self.frame], nan=5.0) + [2, 0, 0, 0])
        lost = self.frame in self.lost
        return states, [TrackResult(box, box_polygon(box), 0.9, 0.1 if lost else 0.9, lost, None, (0, 0))]


def test_run_reports_no_box_on_lost_frames(tmp_path):
    boxes = np.array([[10, 10, 20, 20]] * 6, float)
    boxes[2:4] = np.nan
    seq = BoxSequence("toy", tuple(Path(f"{i}.jpg") for i in range(6)), boxes)
    frames = [np.zeros((60, 80, 3), np.uint8)] * 6
    record = lt_protocol.run(TimedTracker(_Scripted(boxes, {3, 4})), seq, frames, tmp_path)
    detail = record["detail"]
    assert [b is None for b in detail["boxes"]] == [F, F, F, T, T, F]
    assert detail["overlap"][:3] == pytest.approx([1.0, 18 / 22, 0.0]) and np.isnan(detail["overlap"][3:5]).all()
    assert detail["presence"] == [None, 0.9, 0.9, 0.1, 0.1, 0.9] and detail["visible"] == [T, T, F, F, T, T]
    assert record["metrics"]["absent_lost"] == 0.5 and record["metrics"]["visible_lost"] == pytest.approx(1 / 3)
    assert record["metrics"]["absences"] == [{"first": 3, "last": 4, "delay": 1, "outcome": "reacquired"}]
    from PIL import Image
    masks = sorted(tmp_path.iterdir())  # a result without a mask (lost) is written empty, not skipped
    assert [p.name for p in masks] == [f"{i}.png" for i in range(1, 6)]
    assert all(np.asarray(Image.open(p)).shape == (60, 80) and not np.asarray(Image.open(p)).any() for p in masks)


# --- layouts: NaN rows, and rows that are neither numbers nor NaN ---------------------------------------

def _otb_sequence(folder: Path, rows: list[str], size=(64, 48)) -> Path:
    import cv2
    (folder / "img").mkdir(parents=True)
    for i in range(len(rows)):
        cv2.imwrite(str(folder / "img" / f"{i + 1:04d}.jpg"), np.full((size[1], size[0], 3), 40 * i % 255, np.uint8))
    (folder / "groundtruth_rect.txt").write_text("\n".join(rows) + "\n")
    return folder


def _vot_sequence(folder: Path, rows: list[str]) -> Path:
    import cv2
    folder.mkdir(parents=True)
    for i in range(len(rows)):
        cv2.imwrite(str(folder / f"{i + 1:08d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    (folder / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return folder


def test_lt_reads_both_layouts_with_nan_rows(tmp_path):
    _otb_sequence(tmp_path / "otb" / "walk", ["11,21,30,20", "NaN,NaN,NaN,NaN", "13,23,30,20"])
    _vot_sequence(tmp_path / "vot" / "bike", ["10,12,30,20", "nan,nan,nan,nan", "14,10,44,16,34,40,4,34"])
    [walk] = load_lt(tmp_path / "otb")
    assert walk.boxes[0].tolist() == [10, 20, 30, 20] and np.isnan(walk.boxes[1]).all()  # 1-based to 0-based
    [bike] = load_lt(tmp_path / "vot")
    assert bike.boxes[0].tolist() == [10, 12, 30, 20] and np.isnan(bike.boxes[1]).all()
    assert bike.boxes[2].tolist() == [4, 10, 40, 30]  # a polygon's axis-aligned box


@pytest.mark.parametrize("layout,row,message", [
    ("otb", "1,NaN,3,4", "groundtruth_rect.txt:2: '1,nan,3,4' mixes numbers with NaN or infinity; "
                         "a row is all numbers, or NaN,NaN,NaN,NaN where the target is absent"),
    ("otb", "1,2,inf,4", "groundtruth_rect.txt:2: '1,2,inf,4' mixes numbers with NaN or infinity"),
    ("otb", "NaN,NaN,NaN", "groundtruth_rect.txt:2: expected 4 numbers x,y,w,h, got 3"),
    ("otb", "gone", "groundtruth_rect.txt:2: cannot read 'gone' as numbers"),
    ("vot", "nan,nan,nan,nan,nan,nan,nan,1", "groundtruth.txt:2: 'nan,nan,nan,nan,nan,nan,nan,1' mixes numbers"),
])
def test_a_row_neither_numbers_nor_nan_is_one_line_naming_file_and_line(tmp_path, capsys, layout, row, message):
    rows = ["11,21,30,20", row, "13,23,30,20"]
    if layout == "otb":
        _otb_sequence(tmp_path / "data" / "walk", rows)
    else:
        _vot_sequence(tmp_path / "data" / "bike", rows)
    assert main(["eval", "--dataset", "lt", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                 "--baseline", "csrt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("siammask: error: ")


def test_dataset_build_skips_absent_frames(tmp_path):
    _otb_sequence(tmp_path / "data" / "walk", ["11,11,30,20", "NaN,NaN,NaN,NaN", "13,13,30,20"])
    assert main(["dataset", "build", "--format", "otb", "--root", str(tmp_path / "data"), "--out",
                 str(tmp_path / "built"), "--crop-size", "127", "--quiet"]) == 0
    [track] = json.loads((tmp_path / "built" / "index.json").read_text())["tracks"]
    assert [f["frame"] for f in track["frames"]] == [0, 2]


# --- the command end to end, on a synthetic disappearance -----------------------------------------------

def _by_definition(detail: dict) -> float:
    """VOT-LT F-score of one sequence straight from the definition, frame by frame (frame 0 unscored)."""
    frames = range(1, len(detail["lost"]))
    reported = [t for t in frames if not detail["lost"][t]]
    n_visible = sum(detail["visible"][t] for t in frames)
    best = 0.0
    for level in {detail["presence"][t] for t in reported}:
        counted = [detail["overlap"][t] for t in reported if detail["presence"][t] >= level]
        precision, recall = sum(counted) / len(counted), sum(counted) / n_visible
        if precision + recall:
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


@pytest.fixture(scope="module")
def cut_sequence(tmp_path_factory) -> Path:
    """70 frames of a moving blob; frames 15-24 cut to another scene (`siammask dataset occlude`)."""
    import cv2

    from siammask.data.layouts.regions import write_otb_boxes
    from siammask.synthetic import make_sequence
    root = tmp_path_factory.mktemp("lt")
    for name, seq in (("src", make_sequence(num_frames=70, size=(160, 120), seed=5)),
                      ("other", make_sequence(num_frames=10, size=(160, 120), seed=9))):
        (root / name / "img").mkdir(parents=True)
        for i, frame in enumerate(seq, start=1):
            cv2.imwrite(str(root / name / "img" / f"{i:04d}.png"), frame.image)
        write_otb_boxes(root / name / "groundtruth_rect.txt", np.array([f.box for f in seq]))
    assert main(["dataset", "occlude", "--root", str(root / "src"), "--out", str(root / "lt" / "blob"),
                 "--start", "15", "--length", "10", "--mode", "cut", "--other", str(root / "other"), "--quiet"]) == 0
    return root / "lt"


@pytest.mark.slow
@pytest.mark.parametrize("tracker", [[], ["--baseline", "csrt"]], ids=["siammask", "csrt"])
def test_eval_lt_end_to_end_on_a_cut_away(cut_sequence, tmp_path, capsys, tracker):
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "lt", "--root", str(cut_sequence), "--out", str(out), "--quiet", *tracker]) == 0
    results = json.loads((out / "results.json").read_text())
    [row] = results["sequences"]
    detail = json.loads((out / "sequences" / "blob.json").read_text())["detail"]
    assert results["dataset"] == "lt" and row["frames"] == 70 and row["speed"]["steps"] == 69
    assert detail["visible"] == [True] * 14 + [False] * 10 + [True] * 46
    assert row["metrics"]["absent_frames"] == 10
    assert [a["first"] for a in row["metrics"]["absences"]] == [15] and row["metrics"]["absences"][0]["last"] == 24
    # Before the cut both trackers follow the blob; during it a reported box overlaps nothing.
    assert min(detail["overlap"][1:14]) >= 0.5
    assert all(o == 0.0 for o, lost in zip(detail["overlap"][14:24], detail["lost"][14:24]) if not lost)
    assert all((b is None) == lost and (o is None) == lost
               for b, o, lost in zip(detail["boxes"], detail["overlap"], detail["lost"]))
    assert row["metrics"]["f_score"] == pytest.approx(_by_definition(detail))
    assert results["overall"]["f_score"] == pytest.approx(row["metrics"]["f_score"])  # one sequence: same curve
    assert results["overall"]["absent_lost"] == row["metrics"]["absent_lost"] == sum(detail["lost"][14:24]) / 10
    table = (out / "results.md").read_text()
    assert "| blob |" in table and "LT F-score" in table and "re-acquired after (frames)" in table
    assert (out / "precision_recall.png").read_bytes()[:4] == b"\x89PNG"
    assert "| blob |" in capsys.readouterr().out
