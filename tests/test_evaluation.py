"""`siammask eval`: metrics on hand-computed cases, loaders on generated layouts, the CLI end to end."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from reference import DATA
from siammask.checkpoint import save_checkpoint
from siammask.cli import main
from siammask.data.layouts.labels import read_label_png
from siammask.errors import UserError
from siammask.evaluation import ope, segmentation, vot_protocol
from siammask.evaluation.data import RegionSequence, load_davis, load_otb, load_vot, load_ytbvos
from siammask.evaluation.eao import Segment, accuracy, eao_curve, eao_score
from siammask.evaluation.labels import write_labels
from siammask.evaluation.regions import (area_preserving_box, box_iou, box_polygon, clip_polygon, polygon_area,
                                         region_overlap)
from siammask.evaluation.timing import TimedTracker
from siammask.model import SiamMask
from siammask.synthetic import make_sequence

SQUARE = box_polygon((0.0, 0.0, 2.0, 2.0))
# The same square turned by 45 degrees about its centre (1, 1): corners sqrt(2) from the centre.
DIAMOND = np.array([[1, 1 - math.sqrt(2)], [1 + math.sqrt(2), 1], [1, 1 + math.sqrt(2)], [1 - math.sqrt(2), 1]])


# --- region overlaps -------------------------------------------------------------------------------------------

def test_square_and_itself_turned_45_degrees():
    # The intersection is the regular octagon with inradius 1: area 8 tan(22.5 deg) = 8 (sqrt(2) - 1).
    octagon = 8 * (math.sqrt(2) - 1)
    assert polygon_area(clip_polygon(SQUARE, DIAMOND)) == pytest.approx(octagon)
    # IoU = octagon / (4 + 4 - octagon) simplifies to 1 / sqrt(2).
    assert region_overlap(SQUARE, DIAMOND) == pytest.approx(1 / math.sqrt(2))
    assert region_overlap(DIAMOND, SQUARE) == pytest.approx(1 / math.sqrt(2))


def test_polygon_against_box():
    box = box_polygon((0.0, 0.0, 4.0, 2.0))
    rhombus = np.array([[2.0, 0.0], [4.0, 1.0], [2.0, 2.0], [0.0, 1.0]])  # inside the box, half its area
    assert region_overlap(rhombus, box) == pytest.approx(0.5)
    assert region_overlap(box, box) == pytest.approx(1.0)
    assert region_overlap(box, box_polygon((10.0, 10.0, 1.0, 1.0))) == 0.0


def test_overlap_is_bounded_to_the_image():
    outside_half = box_polygon((-2.0, 0.0, 4.0, 2.0))
    inside = box_polygon((0.0, 0.0, 2.0, 2.0))
    assert region_overlap(outside_half, inside) == pytest.approx(0.5)
    assert region_overlap(outside_half, inside, bounds=(10, 10)) == pytest.approx(1.0)


def test_concave_subject_clipped_by_convex_polygon():
    l_shape = np.array([[0, 0], [3, 0], [3, 1], [1, 1], [1, 3], [0, 3]], np.float64)  # area 5
    assert polygon_area(l_shape) == 5
    assert polygon_area(clip_polygon(l_shape, box_polygon((0.0, 0.0, 2.0, 2.0)))) == pytest.approx(3)
    with pytest.raises(ValueError):
        clip_polygon(SQUARE, l_shape)


def test_box_iou_and_area_preserving_init_box():
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 2, 2]]))[0] == pytest.approx(1 / 7)
    # The 45-degree square's bounding box is 2 sqrt(2) wide; shrunk to the area 4 it is the 2x2 square again.
    assert area_preserving_box(DIAMOND) == pytest.approx((0.0, 0.0, 2.0, 2.0))


# --- VOT: EAO, accuracy, the supervised protocol ----------------------------------------------------------------

TOY_SEGMENTS = [
    Segment((0.8, 0.6, 0.0), failed=True),        # sequence A: fails on its 3rd frame ...
    Segment((0.5, 0.5), failed=False),            # ... restarts and reaches the end 2 frames later
    Segment((1.0, 1.0, 1.0, 1.0), failed=False),  # sequence B: never fails
    Segment((0.4, 0.0), failed=True),             # sequence C: fails on its 2nd frame
]


def test_eao_curve_and_score_by_hand():
    curve = eao_curve(TOY_SEGMENTS, 4)
    # Ns=1: (0.8 + 0.5 + 1 + 0.4) / 4; Ns=2: (0.7 + 0.5 + 1 + 0.2) / 4;
    # Ns=3: A's second segment is too short and left out: (1.4/3 + 1 + 0.4/3) / 3;
    # Ns=4: (1.4/4 + 1 + 0.4/4) / 3. Failed segments count zeros after the failure.
    expected = [0.675, 0.6, (1.4 / 3 + 1 + 0.4 / 3) / 3, (0.35 + 1 + 0.1) / 3]
    assert np.isnan(curve[0])
    assert curve[1:] == pytest.approx(expected)
    assert eao_score(curve, (2, 4)) == pytest.approx((0.6 + 1.6 / 3 + 1.45 / 3) / 3)
    assert eao_score(curve, (1, 1)) == pytest.approx(0.675)


def test_eao_lengths_no_segment_reaches_are_left_out():
    curve = eao_curve([Segment((0.5, 0.5), failed=False)], 5)
    assert curve[1:3] == pytest.approx([0.5, 0.5]) and np.all(np.isnan(curve[3:]))
    assert eao_score(curve, (2, 5)) == pytest.approx(0.5)
    assert np.isnan(eao_score(curve, (3, 5)))


def test_accuracy_leaves_out_burn_in_failures_and_skipped_frames():
    overlaps = [None, 0.1, 0.2, 0.9, 0.0, None, None, 0.3, 0.7]
    since_init = [0, 1, 2, 3, 4, -1, 0, 1, 2]
    assert accuracy(overlaps, since_init, burn_in=2) == pytest.approx((0.2 + 0.9 + 0.7) / 3)


@dataclass(frozen=True)
class _Result:
    polygon: np.ndarray
    mask: np.ndarray


class _ScriptedTracker:
    """Predicts the ground truth shifted by `shifts[frame]` pixels, counting frames by step calls."""

    def __init__(self, gt: np.ndarray, shifts: dict[int, float]) -> None:
        self.gt, self.shifts, self.inits = gt, shifts, []

    def init(self, frame, boxes):
        self.inits.append(self.frame_index(frame))
        return ["state"]

    def step(self, frame, states):
        shift = self.shifts.get(self.frame_index(frame), 10.0)
        return states, [_Result(self.gt + [shift, 0.0], np.zeros(frame.shape[:2], bool))]

    @staticmethod
    def frame_index(frame):
        return int(frame[0, 0, 0])


def test_supervised_run_reinitialises_five_frames_after_a_failure():
    gt = box_polygon((10.0, 10.0, 20.0, 20.0))
    n = 25
    seq = RegionSequence("toy", tuple(Path(f"{i:08d}.jpg") for i in range(n)), (gt,) * n)
    frames = [np.full((100, 100, 3), i, np.uint8) for i in range(n)]
    scripted = _ScriptedTracker(gt, {12: 50.0})  # 10 px shift: IoU 1/3; 50 px: no overlap, a failure
    record = vot_protocol.run(TimedTracker(scripted), seq, frames, None)
    assert scripted.inits == [0, 17]
    detail = record["detail"]
    assert [s["failed"] for s in detail["segments"]] == [True, False]
    assert len(detail["segments"][0]["overlaps"]) == 12 and detail["segments"][0]["overlaps"][-1] == 0
    assert len(detail["segments"][1]["overlaps"]) == 7
    assert all(o is None for o in detail["overlaps"][13:18])
    # Only frames 10 and 11 are tracked at least 10 frames after an initialisation without failing.
    assert record["metrics"] == {"accuracy": pytest.approx(1 / 3), "failures": 1}


def test_supervised_run_neither_scores_nor_fails_frames_where_the_target_is_absent():
    gt = box_polygon((10.0, 10.0, 20.0, 20.0))
    n = 15
    absent = np.full((4, 2), np.nan)
    seq = RegionSequence("lt", tuple(Path(f"{i:08d}.jpg") for i in range(n)), (gt,) * 5 + (absent,) * 3 + (gt,) * 7)
    frames = [np.full((100, 100, 3), i, np.uint8) for i in range(n)]
    scripted = _ScriptedTracker(gt, {i: 50.0 for i in range(5, 8)})  # far off while the target is absent
    record = vot_protocol.run(TimedTracker(scripted), seq, frames, None)
    assert scripted.inits == [0] and record["metrics"]["failures"] == 0
    assert record["detail"]["overlaps"][5:8] == [None] * 3
    assert len(record["detail"]["segments"][0]["overlaps"]) == 11  # 14 tracked frames, 3 not scored
    assert record["metrics"]["accuracy"] == pytest.approx(1 / 3)  # frames 10-14, each IoU 1/3


# --- DAVIS J and F -----------------------------------------------------------------------------------------------

def _square(shift: int = 0) -> np.ndarray:
    mask = np.zeros((100, 100), bool)
    mask[20:60, 20 + shift:60 + shift] = True
    return mask


def test_j_and_f_of_identical_and_empty_masks():
    empty = np.zeros((100, 100), bool)
    assert segmentation.jaccard(_square(), _square()) == 1.0
    assert segmentation.boundary_f(_square(), _square()) == 1.0
    assert segmentation.jaccard(empty, empty) == 1.0 and segmentation.boundary_f(empty, empty) == 1.0
    assert segmentation.jaccard(empty, _square()) == 0.0 and segmentation.boundary_f(empty, _square()) == 0.0


def test_j_and_f_of_a_square_shifted_by_3_pixels():
    assert segmentation.jaccard(_square(3), _square()) == pytest.approx(37 / 43)
    # Tolerance ceil(0.008 * hypot(100, 100)) = 2 px. Each boundary is the 41x41 ring of 160 pixels at rows
    # 19 and 59 and at columns 19 and 59 (+3 for the shifted one). Of the shifted ring, 40 pixels of the top
    # row, 40 of the bottom row and 4 of its left column (2 next to each of the other's rows) lie within
    # 2 px of the other ring: precision = recall = 84 / 160.
    assert segmentation.boundary_f(_square(3), _square()) == pytest.approx(84 / 160)


def test_mean_recall_decay():
    stats = segmentation.statistics([1, 1, 0.4, 0.2, 0.1, 0, 0, 0])
    assert stats == pytest.approx({"mean": 0.3375, "recall": 0.25, "decay": 1.0})


# --- OTB success and precision -----------------------------------------------------------------------------------

def test_success_and_precision_of_constructed_boxes():
    gt = np.array([[0, 0, 10, 10]] * 4, np.float64)
    gt[3] = np.nan  # an out-of-view frame is not scored
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [30, 0, 10, 10], [0, 0, 10, 10]], np.float64)
    errors = ope.frame_errors(pred, gt)
    assert errors["iou"] == pytest.approx([1, 1 / 3, 0])
    curve = ope.curves(errors)
    # IoU > t holds for 2 of 3 frames for t = 0 .. 0.30 (7 thresholds), 1 of 3 for 0.35 .. 0.95 (13), none at 1.
    assert curve["success"] == pytest.approx([2 / 3] * 7 + [1 / 3] * 13 + [0])
    assert ope.scores(curve) == pytest.approx({"auc": (7 * 2 / 3 + 13 / 3) / 21, "precision": 2 / 3,
                                               "norm_precision": 1 / 3})  # errors 0, 5, 30 px = 0, .5, 3 sizes


# --- loaders -----------------------------------------------------------------------------------------------------

FRAMES = make_sequence(num_frames=6, size=(64, 48), seed=5)


def _write_frames(folder: Path, names: list[str], frames=FRAMES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, frames):
        cv2.imwrite(str(folder / name), frame.image)


def _otb(root: Path, name: str = "Seq", frames=FRAMES) -> Path:
    _write_frames(root / name / "img", [f"{i + 1:04d}.jpg" for i in range(len(frames))], frames)
    separators = [",", "\t", " ", ", "]
    lines = [separators[i % 4].join(f"{v + (1 if k < 2 else 0):g}" for k, v in enumerate(f.box))
             for i, f in enumerate(frames)]
    (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return root / name / "groundtruth_rect.txt"


def test_otb_loader_reads_1_based_boxes_with_any_separator_and_nan(tmp_path):
    gt = _otb(tmp_path)
    lines = gt.read_text().splitlines()
    lines[4] = "NaN,NaN,NaN,NaN"
    gt.write_text("\n".join(lines) + "\n\n")
    (seq,) = load_otb(tmp_path)
    assert seq.name == "Seq" and len(seq.frames) == 6
    assert seq.boxes[0] == pytest.approx(FRAMES[0].box) and seq.boxes[3] == pytest.approx(FRAMES[3].box)
    assert np.all(np.isnan(seq.boxes[4]))


def test_otb_loader_splits_several_targets(tmp_path):
    gt = _otb(tmp_path, "Jogging")
    gt.rename(gt.with_name("groundtruth_rect.1.txt"))
    (tmp_path / "Jogging" / "groundtruth_rect.2.txt").write_text(gt.with_name("groundtruth_rect.1.txt").read_text())
    assert [s.name for s in load_otb(tmp_path)] == ["Jogging-1", "Jogging-2"]


@pytest.mark.parametrize("edit, message", [
    (lambda gt: gt.unlink(), "not found"),
    (lambda gt: gt.write_text("\n".join(gt.read_text().splitlines()[:5])), "6 frames but 5 lines"),
    (lambda gt: gt.write_text(gt.read_text().replace("\n", "\n1,2,x,4\n", 1)), r"groundtruth_rect.txt:2: cannot read"),
    (lambda gt: gt.write_text(gt.read_text().replace("\n", "\n1,2,3\n", 1)), ":2: expected 4 numbers"),
    (lambda gt: gt.write_text("nan,nan,nan,nan\n" + "\n".join(gt.read_text().splitlines()[1:])), "first frame"),
])
def test_otb_loader_rejects_malformed_ground_truth(tmp_path, edit, message):
    edit(_otb(tmp_path))
    with pytest.raises(UserError, match=message):
        load_otb(tmp_path)


def test_loaders_reject_missing_roots(tmp_path):
    with pytest.raises(UserError, match="no OTB/UAV sequences"):
        load_otb(tmp_path)
    with pytest.raises(UserError, match="no VOT sequences"):
        load_vot(tmp_path)
    with pytest.raises(UserError, match="sequence list"):
        load_davis(tmp_path)
    with pytest.raises(UserError, match="meta.json"):
        load_ytbvos(tmp_path)


def _vot(root: Path) -> Path:
    _write_frames(root / "bag", [f"{i + 1:08d}.jpg" for i in range(6)])
    lines = ["1,2,11,2,11,12,1,12"] * 5 + ["3,4,10,8"]
    (root / "bag" / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    (root / "list.txt").write_text("bag\n")
    return root / "bag" / "groundtruth.txt"


def test_vot_loader_reads_polygons_and_rectangles(tmp_path):
    _vot(tmp_path)
    (seq,) = load_vot(tmp_path)
    assert seq.name == "bag" and len(seq.frames) == 6
    assert seq.polygons[0] == pytest.approx(np.array([[1, 2], [11, 2], [11, 12], [1, 12]]))
    assert seq.polygons[5] == pytest.approx(box_polygon((3, 4, 10, 8)))


def test_vot_loader_rejects_malformed_input(tmp_path):
    gt = _vot(tmp_path)
    gt.write_text(gt.read_text().replace("3,4,10,8", "3,4,10,8,9"))
    with pytest.raises(UserError, match="groundtruth.txt:6: expected 4 values"):
        load_vot(tmp_path)
    _vot(tmp_path)
    (tmp_path / "list.txt").write_text("bag\nball\n")
    with pytest.raises(UserError, match="folder .*ball' not found"):
        load_vot(tmp_path)


def _label_frames(objects: int) -> list[np.ndarray]:
    """Label images: object 1 from FRAMES, object 2 (if any) a fixed square drawn over it."""
    labels = []
    for frame in FRAMES:
        image = frame.mask.astype(np.uint8)
        if objects == 2:
            image[2:10, 2:12] = 2
        labels.append(image)
    return labels


def _davis(root: Path, year: str, objects: int, names=("a", "b"), frames: int = 6) -> None:
    for name in names:
        _write_frames(root / "JPEGImages" / "480p" / name, [f"{i:05d}.jpg" for i in range(frames)])
        for i, labels in enumerate(_label_frames(objects)[:frames]):
            write_labels(root / "Annotations" / "480p" / name / f"{i:05d}.png", labels, binary=year == "2016")
    (root / "ImageSets" / year).mkdir(parents=True)
    (root / "ImageSets" / year / "val.txt").write_text("\n".join(names) + "\n")


def test_davis_2016_loader(tmp_path):
    _davis(tmp_path, "2016", objects=1)
    seqs = load_davis(tmp_path)
    assert [s.name for s in seqs] == ["a", "b"]
    assert seqs[0].binary and seqs[0].starts == {1: 0} and seqs[0].scored == {1, 2, 3, 4}
    assert len(seqs[0].annotations) == 6
    assert np.array_equal(read_label_png(seqs[0].annotations[2]).ids > 0, FRAMES[2].mask)


def test_davis_2017_loader_finds_object_ids(tmp_path):
    _davis(tmp_path, "2017", objects=2)
    seq = load_davis(tmp_path)[0]
    assert not seq.binary and seq.starts == {1: 0, 2: 0}
    assert set(np.unique(read_label_png(seq.annotations[0]).ids)) == {0, 1, 2}


def test_davis_loader_rejects_missing_annotations(tmp_path):
    _davis(tmp_path, "2016", objects=1)
    (tmp_path / "Annotations" / "480p" / "b" / "00003.png").unlink()
    with pytest.raises(UserError, match="'b' has 6 frames but 5 annotations"):
        load_davis(tmp_path)


def _ytbvos(root: Path) -> None:
    names = [f"{5 * i:05d}" for i in range(6)]
    _write_frames(root / "JPEGImages" / "v1", [f"{n}.jpg" for n in names])
    for i, labels in enumerate(_label_frames(objects=2)):
        if i < 2:
            labels[labels == 2] = 0  # object 2 enters on the third frame
        write_labels(root / "Annotations" / "v1" / f"{names[i]}.png", labels, binary=False)
    meta = {"videos": {"v1": {"objects": {"1": {"category": "blob", "frames": names},
                                          "2": {"category": "box", "frames": names[2:]}}}}}
    (root / "meta.json").write_text(json.dumps(meta))


def test_ytbvos_loader_starts_objects_at_their_first_annotation(tmp_path):
    _ytbvos(tmp_path)
    (seq,) = load_ytbvos(tmp_path)
    assert seq.name == "v1" and seq.starts == {1: 0, 2: 2} and seq.scored == set(range(6))


def test_ytbvos_loader_rejects_an_object_without_its_first_annotation(tmp_path):
    _ytbvos(tmp_path)
    (tmp_path / "Annotations" / "v1" / "00010.png").unlink()
    with pytest.raises(UserError, match="object 2 of 'v1' starts at frame '00010'"):
        load_ytbvos(tmp_path)


@pytest.mark.slow
def test_vos_protocol_starts_late_objects_and_scores_each(tmp_path, sharp_checkpoint):
    from siammask.checkpoint import load_checkpoint
    from siammask.config import load_hp
    from siammask.engines.registry import build_engine
    from siammask.evaluation import vos_protocol
    from siammask.tracker import Tracker

    _ytbvos(tmp_path)
    (seq,) = load_ytbvos(tmp_path)
    tracker = Tracker(build_engine("torch", load_checkpoint(sharp_checkpoint).model), load_hp("davis"))
    frames = [cv2.imread(str(p)) for p in seq.frames]
    record = vos_protocol.run(TimedTracker(tracker), seq, frames, tmp_path / "masks")
    objects = record["detail"]["objects"]
    assert objects["1"]["frames"] == [1, 2, 3, 4, 5] and objects["2"]["frames"] == [3, 4, 5]
    assert np.array_equal(read_label_png(tmp_path / "masks" / "00010.png").ids[2:10, 2:12], np.full((8, 10), 2))


@pytest.mark.skipif(not (DATA / "DAVIS").is_dir(), reason="../shared/data absent")
def test_loaders_read_the_shared_benchmark_copies():
    davis = load_davis(DATA / "DAVIS")
    assert len(davis) == 12 and sum(len(s.frames) for s in davis) == 829
    (bag,) = load_vot(DATA / "VOT2016")
    assert bag.name == "bag" and len(bag.frames) == len(bag.polygons) == 196
    (crossing,) = load_otb(DATA / "OTB")
    assert crossing.name == "Crossing" and len(crossing.frames) == 120
    assert crossing.boxes[0] == pytest.approx([204, 150, 17, 50])  # 205,151,17,50 in the 1-based file
    uav = {s.name: len(s.frames) for s in load_otb(DATA / "UAV123_10fps")}
    assert uav == {"person12": 201, "wakeboard7": 67}


# --- vot-toolkit cross-check (only where the toolkit is installed) -------------------------------------------------

def test_eao_and_overlap_agree_with_vot_toolkit():
    supervised = pytest.importorskip("vot.analysis.supervised")
    from vot.region import calculate_overlap
    from vot.region.shapes import Polygon

    rng = np.random.default_rng(0)
    segments = [Segment(tuple(rng.uniform(0.1, 1, rng.integers(1, 40))) + ((0.0,) if failed else ()), failed)
                for failed in rng.random(30) < 0.5]
    # vot-toolkit's runs include the initialisation frame (its overlap is not used) but not the failure frame.
    theirs = supervised.compute_eao_curve([[1.0, *s.overlaps[:-1]] if s.failed else [1.0, *s.overlaps]
                                           for s in segments], [1] * len(segments), [not s.failed for s in segments])
    ours = eao_curve(segments, len(theirs) - 1)
    assert ours[1:] == pytest.approx(np.asarray(theirs[1:], np.float64), abs=1e-5)
    for _ in range(20):
        a = box_polygon(tuple(rng.uniform([0, 0, 20, 20], [60, 60, 80, 80])))
        angle = rng.uniform(0, np.pi)
        b = rng.uniform(30, 70, 2) + (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * rng.uniform(10, 40, 2)) @ \
            np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        vot = calculate_overlap(Polygon([tuple(p) for p in a]), Polygon([tuple(p) for p in b]), bounds=(100, 100))
        assert region_overlap(a, b, (100, 100)) == pytest.approx(vot, abs=0.03)


# --- the command end to end ----------------------------------------------------------------------------------------

def _siammask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siammask.cli", *args], capture_output=True, text=True, timeout=300)


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_eval_otb_end_to_end_and_resume(tmp_path, sharp_checkpoint, capsys):
    root, out = tmp_path / "otb", tmp_path / "out"
    small = make_sequence(num_frames=4, size=(96, 72), seed=7)
    _otb(root, "SeqA", small)
    _otb(root, "SeqB", small[::-1])
    args = ["eval", "--dataset", "otb", "--root", str(root), "--weights", str(sharp_checkpoint),
            "--out", str(out), "--save-masks"]
    first = _siammask(*args)
    assert first.returncode == 0, first.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "otb" and [s["name"] for s in results["sequences"]] == ["SeqA", "SeqB"]
    assert {"auc", "precision", "norm_precision", "success_curve", "frames", "fps"} <= set(results["overall"])
    assert results["overall"]["frames"] == 8 and len(results["overall"]["success_curve"]) == 21
    assert results["sequences"][0]["speed"]["steps"] == 3
    table = (out / "results.md").read_text()
    assert "| SeqA |" in table and "**overall**" in table and "Success AUC" in table and "| SeqA |" in first.stdout
    assert all(_is_png(out / name) for name in ("success.png", "precision.png", "sequences.png"))
    assert sorted(p.name for p in (out / "masks" / "SeqA").iterdir()) == ["0002.png", "0003.png", "0004.png"]
    # Resuming and refusing other settings run in this process: same code path, no second interpreter start.
    record = out / "sequences" / "SeqA.json"
    stamp = record.stat().st_mtime_ns
    assert main(args + ["--quiet"]) == 0
    assert "2 of 2 sequences already done" in capsys.readouterr().err and record.stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["overall"] == results["overall"]
    assert main(args[:-1] + ["--hp", "base"]) == 2
    assert "other settings (hp, save_masks)" in capsys.readouterr().err
    retrained = tmp_path / "retrained.pth"  # other weights written to the same path later
    shutil.copyfile(sharp_checkpoint, retrained)
    other = [str(retrained) if a == str(sharp_checkpoint) else a for a in args]
    assert main(other) == 2
    assert "other settings (weights)" in capsys.readouterr().err  # same bytes, another path
    shutil.rmtree(out)
    assert main(other + ["--quiet"]) == 0
    torch.manual_seed(1)
    save_checkpoint(SiamMask("sharp"), retrained)
    assert main(other) == 2
    assert "other settings (weights_sha256)" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_davis_end_to_end_with_two_objects(tmp_path, sharp_checkpoint):
    root, out = tmp_path / "davis", tmp_path / "out"
    _davis(root, "2017", objects=2, names=("a",), frames=5)
    done = _siammask("eval", "--dataset", "davis", "--root", str(root), "--weights", str(sharp_checkpoint),
                     "--out", str(out), "--save-masks", "--quiet")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["overall"]) >= {"JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"}
    assert 0 <= results["overall"]["J_mean"] <= 1 and results["sequences"][0]["frames"] == 5
    assert "| a |" in (out / "results.md").read_text() and _is_png(out / "sequences.png")
    masks = sorted((out / "masks" / "a").iterdir())
    assert [p.name for p in masks] == [f"{i:05d}.png" for i in range(5)]
    assert Image.open(masks[0]).mode == "P"
    assert np.array_equal(read_label_png(masks[0]).ids, _label_frames(objects=2)[0])  # the first frame is the given one
    assert set(np.unique(read_label_png(masks[3]).ids)) <= {0, 1, 2}
    scored = json.loads((out / "sequences" / "a.json").read_text())["detail"]["objects"]
    assert scored["1"]["frames"] == scored["2"]["frames"] == [1, 2, 3]  # DAVIS skips the last frame


def test_eval_reports_user_mistakes_in_one_line(tmp_path, sharp_checkpoint, capsys):
    from siammask.commands.eval import DATASETS
    from siammask.evaluation.runner import BENCHMARKS

    assert set(DATASETS) == set(BENCHMARKS)
    assert main(["eval", "--dataset", "vot", "--root", str(tmp_path / "nothing"), "--weights", str(sharp_checkpoint),
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a folder")
    with pytest.raises(SystemExit):
        main(["eval", "--dataset", "vot", "--root", str(tmp_path), "--out", str(tmp_path), "--eao-interval", "300,10"])
