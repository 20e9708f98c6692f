"""`siammask track` end to end inside the test process, so the fast lane (`-m "not slow"`) still
covers the command a user runs first: the shipped weights on generated frames, JSON lines and mask
PNGs checked against the frames' truth. (tests/test_cli.py runs the command as processes, slow.)"""
from __future__ import annotations

import dataclasses
import json
import logging

import cv2
import numpy as np
import pytest

from siammask.api import DEFAULT_WEIGHTS, load_tracker
from siammask.cli import main
from siammask.evaluation.regions import box_iou
from siammask.evaluation.segmentation import jaccard
from siammask.synthetic import make_sequence, write_image_folder, write_video
from siammask.tracker import Tracker


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
def test_track_with_the_shipped_weights_follows_a_generated_object(tmp_path):
    frames = make_sequence(num_frames=10, size=(320, 240), seed=4)
    folder = write_image_folder(frames, tmp_path / "frames")
    box = ",".join(str(round(v)) for v in frames[0].box)
    out, masks = tmp_path / "out.jsonl", tmp_path / "masks"
    # torch: the auto engine's one-time export is the slow lane's (tests/test_engine_auto.py)
    assert main(["track", str(folder), "--box", box, "--engine", "torch", "--json", str(out),
                 "--masks", str(masks), "-q"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(10)) and {r["target"] for r in records} == {0}
    ious = box_iou(np.array([r["box"] for r in records[1:]]), np.array([f.box for f in frames[1:]]))
    assert ious.mean() > 0.7, ious
    pngs = sorted(masks.rglob("*.png"))
    assert len(pngs) == 9  # one per tracked frame; frame 0 has the given box, no mask
    overlap = [jaccard(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0, f.mask) for p, f in zip(pngs, frames[1:])]
    assert np.mean(overlap) > 0.8, overlap


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
def test_without_opencvs_contrib_modules_masks_are_unrefined_not_an_error(monkeypatch, caplog):
    """The plain opencv-python build lacks cv2.ximgproc: the guided mask refinement of the nano
    preset is skipped with one warning, and the masks are those of a config without it."""
    frames = make_sequence(num_frames=3, size=(320, 240), seed=4)
    refined = load_tracker(engine="torch")
    assert refined.guide and refined.cfg.mask_guide_radius > 0
    plain = Tracker(refined.engine, dataclasses.replace(refined.cfg, mask_guide_radius=0.0))
    monkeypatch.delattr(cv2, "ximgproc")
    with caplog.at_level(logging.WARNING, logger="siammask.tracker"):
        degraded = Tracker(refined.engine, refined.cfg)
    assert not degraded.guide and "cv2.ximgproc" in caplog.text
    start = plain.init(frames[0].image, [frames[0].box])
    (_, (ours,)), (_, (want,)) = degraded.step(frames[1].image, start), plain.step(frames[1].image, start)
    assert np.array_equal(ours.mask, want.mask) and ours.mask.any() and ours.box == want.box


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
def test_progress_on_a_video_file_shows_its_total(tmp_path, capsys):
    frames = make_sequence(num_frames=8, size=(320, 240), seed=4)
    video = write_video(frames, tmp_path / "clip.avi", fps=25.0)
    box = ",".join(str(round(v)) for v in frames[0].box)
    assert main(["track", str(video), "--box", box, "--engine", "torch"]) == 0
    err = capsys.readouterr().err
    assert "8/8" in err and "100%" in err, err  # a bar with its end, not a bare count of frames
