"""OpenCV's trackers (`siammask eval --baseline`) through the same protocols as ours, on generated
sequences with exact ground truth; TrackerNano also on its real graphs when ../shared has them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from reference import SHARED
from siammask.cli import main
from siammask.data.layouts.labels import read_label_png
from siammask.errors import UserError
from siammask.evaluation import ope_protocol, vot_protocol
from siammask.evaluation.baselines import NANO_FILES, OpenCVTracker, box_mask
from siammask.evaluation.data import BoxSequence, RegionSequence
from siammask.evaluation.labels import write_labels
from siammask.evaluation.regions import box_polygon
from siammask.evaluation.timing import TimedTracker
from siammask.synthetic import make_sequence

NANO_DIR = SHARED / "pretrained" / "nanotrack"
needs_nano = pytest.mark.skipif(not all((NANO_DIR / name).is_file() for name in NANO_FILES),
                                reason="TrackerNano graphs (../shared/pretrained/nanotrack) absent")
# A textured ellipse moving up to ~5 px a frame, growing and shrinking by 15 %: easy for all three.
SEQUENCE = make_sequence(num_frames=30, size=(160, 120), seed=3)
STILL = (8, 85, 28, 28)  # x, y, w, h: a patch of background, the second DAVIS object


def _write_otb(root: Path) -> Path:
    """OTB layout: Seq/img/0001.jpg ... and 1-based x,y,w,h lines."""
    folder = root / "Seq"
    (folder / "img").mkdir(parents=True)
    for i, frame in enumerate(SEQUENCE):
        cv2.imwrite(str(folder / "img" / f"{i + 1:04d}.jpg"), frame.image)
    (folder / "groundtruth_rect.txt").write_text(
        "".join(f"{x + 1:g},{y + 1:g},{w:g},{h:g}\n" for x, y, w, h in (f.box for f in SEQUENCE)))
    return root


def _write_davis(root: Path) -> Path:
    """DAVIS 2017 layout: object 1 the moving ellipse, object 2 a still square of background."""
    images = root / "JPEGImages" / "480p" / "seq"
    images.mkdir(parents=True)
    for i, frame in enumerate(SEQUENCE):
        cv2.imwrite(str(images / f"{i:05d}.jpg"), frame.image)
        labels = box_mask(STILL, frame.mask.shape).astype(np.uint8) * 2
        labels[frame.mask] = 1
        write_labels(root / "Annotations" / "480p" / "seq" / f"{i:05d}.png", labels, binary=False)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("seq\n")
    return root


def _eval(*args: str) -> int:
    return main(["eval", *args, "--quiet"])


@pytest.mark.parametrize("name, least_auc", [("csrt", 0.8), ("kcf", 0.7)])
def test_one_pass_on_a_generated_sequence(tmp_path, name, least_auc):
    out = tmp_path / "out"
    assert _eval("--dataset", "otb", "--root", str(_write_otb(tmp_path / "otb")), "--out", str(out),
                 "--baseline", name, "--save-masks") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["tracker"] == results["settings"]["tracker"] == {"csrt": "OpenCV CSRT", "kcf": "OpenCV KCF"}[name]
    assert results["overall"]["auc"] >= least_auc and results["overall"]["precision"] == 1.0
    record = json.loads((out / "sequences" / "Seq.json").read_text())
    assert min(record["detail"]["iou"][1:]) > 0.6  # frame 0 is the given box; every tracked frame overlaps
    assert all(float(v).is_integer() for box in record["detail"]["boxes"][1:] for v in box)  # OpenCV's int boxes
    assert len(record["step_ms"]) == len(SEQUENCE) - 1  # frame 0 is not a step
    assert (out / "results.md").read_text().startswith(f"# otb results: {results['tracker']}")
    # The saved mask is the box filled, exactly.
    x, y, w, h = (int(v) for v in record["detail"]["boxes"][7])
    assert np.array_equal(read_label_png(out / "masks" / "Seq" / "0008.png").ids > 0, box_mask((x, y, w, h), (120, 160)))


def test_supervised_run_without_failures():
    seq = RegionSequence("seq", tuple(Path(f"{i:08d}.jpg") for i in range(len(SEQUENCE))),
                         tuple(box_polygon(f.box) for f in SEQUENCE))
    record = vot_protocol.run(TimedTracker(OpenCVTracker("kcf")), seq, (f.image for f in SEQUENCE), None)
    assert record["metrics"]["failures"] == 0 and record["metrics"]["accuracy"] > 0.7
    assert [s["failed"] for s in record["detail"]["segments"]] == [False]


def test_davis_two_objects_each_tracked_as_a_filled_box(tmp_path):
    out = tmp_path / "out"
    assert _eval("--dataset", "davis", "--root", str(_write_davis(tmp_path / "davis")), "--out", str(out),
                 "--baseline", "csrt", "--save-masks") == 0
    objects = json.loads((out / "sequences" / "seq.json").read_text())["detail"]["objects"]
    j = {obj: np.mean(s["J"]) for obj, s in objects.items()}
    # The ellipse fills pi/4 of its box, so a box-filled mask scores at most ~0.79 on it.
    assert 0.6 < j["1"] < 0.8 and j["2"] > 0.8
    labels = read_label_png(out / "masks" / "seq" / "00010.png").ids
    for obj in (1, 2):  # each object's pixels form one solid rectangle (where the other does not cover it)
        ys, xs = np.nonzero(labels == obj)
        box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert np.all(labels[box_mask(box, labels.shape)] > 0)


@needs_nano
def test_tracker_nano_one_pass():
    seq = BoxSequence("seq", tuple(Path(f"{i:04d}.jpg") for i in range(len(SEQUENCE))),
                      np.array([f.box for f in SEQUENCE]))
    record = ope_protocol.run(TimedTracker(OpenCVTracker("nano", NANO_DIR)), seq, (f.image for f in SEQUENCE), None)
    assert record["metrics"]["auc"] > 0.8 and min(record["detail"]["iou"]) > 0.7


def _siammask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siammask.cli", *args], capture_output=True, text=True, timeout=120)


def test_missing_nano_graphs_are_one_line_and_exit_2(tmp_path):
    done = _siammask("eval", "--dataset", "otb", "--root", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--baseline", "nano", "--nano-dir", "/nonexistent")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"siammask: error: TrackerNano needs {NANO_FILES[0]} and {NANO_FILES[1]} in "
                                        f"'/nonexistent' (--nano-dir); missing: {', '.join(NANO_FILES)}"]


def test_unreadable_nano_graphs_are_a_user_error(tmp_path):
    for name in NANO_FILES:
        (tmp_path / name).write_bytes(b"not an ONNX graph")
    with pytest.raises(UserError, match="OpenCV cannot load the TrackerNano graphs"):
        OpenCVTracker("nano", tmp_path)


def test_opencv_without_contrib_trackers_is_a_user_error(monkeypatch):
    monkeypatch.delattr(cv2, "TrackerCSRT")
    with pytest.raises(UserError, match="no TrackerCSRT: .* opencv-contrib-python-headless"):
        OpenCVTracker("csrt")


def test_baseline_refuses_model_options_and_stray_nano_dir(tmp_path, capsys):
    root = str(_write_otb(tmp_path / "otb"))
    common = ["--dataset", "otb", "--root", root, "--out", str(tmp_path / "out")]
    assert _eval(*common, "--baseline", "csrt", "--weights", "some.pth", "--engine", "onnxruntime") == 2
    assert capsys.readouterr().err.strip() == ("siammask: error: --baseline runs OpenCV's csrt tracker, which takes "
                                               "no model options (given: --weights, --engine)")
    assert _eval(*common, "--baseline", "kcf", "--nano-dir", str(tmp_path)) == 2
    assert capsys.readouterr().err.strip() == "siammask: error: --nano-dir is for --baseline nano"
    assert _eval(*common, "--nano-dir", str(tmp_path)) == 2
    assert capsys.readouterr().err.strip() == "siammask: error: --nano-dir is for --baseline nano"
    assert not (tmp_path / "out").exists()
    # A run into a folder that holds another tracker's results is refused, not mixed.
    assert _eval(*common, "--baseline", "kcf") == 0
    assert _eval(*common, "--baseline", "csrt") == 2
    assert "other settings (tracker)" in capsys.readouterr().err
