"""`siammask demo` end to end: generated video, shipped default weights, outputs, and tracking
quality against the generated truth."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from siammask.api import DEFAULT_WEIGHTS
from siammask.commands.demo import DEMO_SEED, DEMO_SIZE
from siammask.io.results import decode_mask
from siammask.synthetic import make_sequence

needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
FRAMES = 60


@pytest.mark.slow
@needs_weights
def test_demo_tracks_the_generated_object(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "siammask.cli", "demo", "--out", str(tmp_path), "--frames",
                           str(FRAMES), "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    truth = make_sequence(num_frames=FRAMES, size=DEMO_SIZE, seed=DEMO_SEED)
    lines = [json.loads(line) for line in (tmp_path / "demo.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(FRAMES))
    ious, box_ious = [], []
    for rec, frame in zip(lines[1:], truth[1:]):
        mask = decode_mask(rec["mask"])
        ious.append(np.logical_and(mask, frame.mask).sum() / max(1, np.logical_or(mask, frame.mask).sum()))
        box_ious.append(_box_iou(rec["box"], frame.box))
    # The shipped weights must really follow the object, not merely run.
    assert np.mean(ious) >= 0.5, np.round(ious, 2)
    assert np.mean(box_ious) >= 0.5, np.round(box_ious, 2)
    video = cv2.VideoCapture(str(tmp_path / "demo.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert "mask IoU against the generated truth" in proc.stderr


def _box_iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


def test_demo_with_a_source_needs_a_box(tmp_path, synthetic_video, sharp_checkpoint):
    proc = subprocess.run([sys.executable, "-m", "siammask.cli", "demo", "--source", str(synthetic_video),
                           "--weights", str(sharp_checkpoint), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["siammask: error: with --source, give the target's first-frame "
                                                "box with --box X,Y,W,H"]
