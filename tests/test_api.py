"""The Python API: the README's example runs as written, after `siammask demo`, on the video the
demo generates, with the shipped weights; and load_tracker takes what the commands take."""
from __future__ import annotations

import re

import numpy as np
import pytest

import siammask
from siammask.api import DEFAULT_WEIGHTS
from siammask.config import load_hp
from siammask.errors import UserError
from siammask.evaluation.regions import box_iou
from siammask.commands.demo import DEMO_INPUT, DEMO_OUT, write_demo_input

from package_layout import ROOT

needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
FRAMES = 20  # the demo's video, shortened: the same object on the same first frame


def readme_example() -> str:
    """The one Python code block of the README's 'Python API' section."""
    section = ROOT.joinpath("README.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.slow
@needs_weights
def test_readme_example_tracks_the_demos_video(tmp_path, monkeypatch, capsys):
    truth = write_demo_input(tmp_path / DEMO_OUT, FRAMES)[1]  # what `siammask demo` leaves behind
    code = readme_example()
    assert f'open_source("{DEMO_OUT}/{DEMO_INPUT}")' in code
    box = tuple(float(v) for v in re.search(r"tracker\.init\(frame, \[\(([^)]*)\)\]", code).group(1).split(","))
    assert np.allclose(box, truth[0].box, atol=1.0)  # the README's box is the demo's object
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == FRAMES - 1
    boxes = []
    for number, line in enumerate(lines, 1):
        index, target, rest = line.split(" ", 2)
        assert (int(index), int(target)) == (number, 0)
        boxes.append([float(v) for v in rest[rest.index("[") + 1:rest.index("]")].split(",")])
    ious = box_iou(np.array(boxes), np.array([f.box for f in truth[1:]]))
    assert ious.mean() > 0.7, ious
    last = namespace["results"][0]
    assert last.mask.shape == truth[0].mask.shape and last.mask.dtype == bool and not last.lost


@needs_weights
def test_load_tracker_defaults_and_keywords():
    tracker = siammask.load_tracker()
    assert (tracker.engine.name, tracker.engine.variant) == ("onnxruntime", "nano")  # auto on a CPU
    assert tracker.cfg == load_hp("nano")  # what the shipped checkpoint records
    assert siammask.load_tracker(DEFAULT_WEIGHTS, hp="vot").cfg == load_hp("vot")
    with pytest.raises(UserError, match="unknown engine 'nope'"):
        siammask.load_tracker(engine="nope")
    with pytest.raises(TypeError):
        siammask.load_tracker(DEFAULT_WEIGHTS, "nano")  # options are keywords only
