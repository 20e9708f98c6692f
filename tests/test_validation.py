"""The validation layer (siammask/validate.py, config ranges, weights), in process: exact refusals for
the inputs that broke `track` and `serve`, and hypothesis fuzzing of boxes, requests and hp values
whose accepted values are run through a real (lite, random-weight) tracker."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from siammask.api import load_tracker
from siammask.checkpoint import load_checkpoint, save_checkpoint
from siammask.config import TrackerConfig, from_dict, load_hp
from siammask.engines.torch_engine import TorchEngine
from siammask.errors import UserError
from siammask.io.results import JsonlWriter, result_record
from siammask.model import SiamMask
from siammask.pipeline.config import PipelineConfig, StreamConfig, check_config
from siammask.pipeline.control import parse_request
from siammask.pipeline.endpoints import OWNER_FILE, RUN_PREFIX, RunDir, private_dir, process_id
from siammask.synthetic import make_sequence
from siammask.tracker import Tracker
from siammask.validate import MAX_JSON_BYTES, box_in_frame, box_text, json_object

from pipeline_support import lite_checkpoint

FRAME_WH = (160, 120)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRACK_FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def sequence():
    return make_sequence(num_frames=3, size=FRAME_WH, seed=3)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    weights = lite_checkpoint(tmp_path_factory.mktemp("lite") / "lite.pth")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_tracker(weights)
    torch.set_num_threads(threads)


def track_finite(tracker: Tracker, sequence, box) -> list[dict]:
    """init + two steps; every record must be JSON without NaN (the writers refuse it)."""
    states = tracker.init(sequence[0].image, [box])
    records = []
    for index, item in enumerate(sequence[1:], 1):
        states, results = tracker.step(item.image, states)
        for r in results:
            rec = result_record(index, r)
            json.dumps(rec, allow_nan=False)
            records.append(rec)
    return records


# --- boxes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("box, message", [
    ([10, 10, 0.01, 0.01], "smaller than 2 px"),             # issue 14 item 3: ZeroDivisionError in paste_matrix
    ([10, 10, 0.1, 0.1], "smaller than 2 px"),               # item 6
    ([10, 10, 1e5, 1e5], "larger than the 160x120 frame"),   # item 6: a 120 GB crop
    ([10, 10, 1e6, 1e6], "larger than the 160x120 frame"),   # item 4: 12 TB
    ([10, 10, 1e20, 1e20], "larger than the 160x120 frame"),
    ([10, 10, 1e308, 1e308], "larger than the 160x120 frame"),
    ([int("1" * 400), 1, 50, 50], "non-finite"),             # item 1: OverflowError in math.isfinite
    ([10, 10, float("nan"), 5], "non-finite"),
    ([10, 10, True, 5], "4 numbers"),
    ([10, 10, "5", 5], "4 numbers"),
    ("1234", "4 numbers"),
    ([500, 500, 10, 10], "outside the 160x120 frame"),
    ([10, 10, 0, 10], "zero or negative"),
])
def test_boxes_that_broke_the_tracker_are_refused(box, message):
    with pytest.raises(UserError, match=message) as info:
        box_in_frame(box, FRAME_WH)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_smallest_and_largest_accepted_boxes_track(tracker, sequence):
    for box in ([40, 30, 2, 2], [0, 0, 160, 120], [-100, -60, 160, 120]):
        assert box_in_frame(box, FRAME_WH) == tuple(float(v) for v in box)
        assert len(track_finite(tracker, sequence, box)) == 2


@FUZZ
@given(st.text(max_size=40))
@example("1,2,3")
@example("10,10,1e400,5")
@example("nan,1,2,3")
@example(",,,")
def test_fuzz_box_text_is_four_checked_numbers_or_one_line(text):
    """What `track --box`, `serve --box` and `ctl add-target` parse: never any other exception."""
    try:
        box = box_text(text)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert all(math.isfinite(v) for v in box) and min(box[2:]) >= 2


number = st.one_of(st.floats(width=64), st.integers(min_value=-10**400, max_value=10**400),
                   st.floats(min_value=-200, max_value=200))


@TRACK_FUZZ
@given(st.tuples(number, number, number, number))
@example((10, 10, 0.01, 0.01))
@example((0, 0, 1e6, 1e6))
@example((159, 119, 2, 2))
def test_fuzz_boxes_the_checks_accept_track_to_finite_results(tracker, sequence, box):
    try:
        checked = box_in_frame(box, FRAME_WH)
    except UserError:
        return
    for rec in track_finite(tracker, sequence, checked):
        assert all(math.isfinite(v) for v in rec["box"] + rec["polygon"] + [rec["score"]])


# --- control requests -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, message", [
    (b'{"cmd":"add_target","stream":"0","box":[' + b"1" * 400 + b',1,50,50]}', "non-finite"),  # item 1
    (b"[" * 1500 + b"]" * 1500, "nests deeper"),                                                 # item 2
    (b'{"cmd": "list", "x": ' + b"[" * 100 + b"]" * 100 + b"}", "nests deeper"),
    (b'{"cmd": "remove_target", "stream": "a", "target": 1' + b"0" * 5000 + b"}", "not JSON"),  # int digit limit
    (b'{"cmd": "add_target", "stream": "a", "box": [NaN, 1, 2, 3]}', "not JSON"),
    (b'{"cmd": "add_target", "stream": "a", "box": [1, 1, Infinity, 3]}', "not JSON"),
    (b'{"cmd": "remove_target", "stream": "a", "target": -1}', "target must be an id"),
    (b'{"cmd": "list"}' + b" " * MAX_JSON_BYTES, "over the limit"),
    (b'"\\"' * 30000, "over the limit"),
    (b"\xff\xfe", "not JSON"),
])
def test_hostile_requests_are_one_line_refusals(raw, message):
    with pytest.raises(UserError, match=message) as info:
        parse_request(raw)
    assert "\n" not in str(info.value)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_raw_bytes_only_ever_raise_user_error(raw):
    try:
        parse_request(raw)
    except UserError:
        pass


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=20))
def test_fuzz_any_json_only_ever_raises_user_error(value):
    try:
        json_object(json.dumps(value).encode())
        parse_request(json.dumps(value).encode())
    except UserError:
        pass


# --- hyper-parameters -----------------------------------------------------------------------------

REQUIRED = {"penalty_k": 0.04, "window_influence": 0.4, "lr": 1.0, "seg_thr": 0.35}


@pytest.mark.parametrize("change, message", [
    ({"instance_size": 0}, "instance_size must be in \\[32, 2048\\], got 0"),   # item 7
    ({"total_stride": 16}, "unknown key.*total_stride"),   # the variant's, not a hyper-parameter
    ({"lr": float("nan")}, "lr: expected a finite number, got nan"),
    ({"lr": 1.5}, "lr must be in \\[0, 1\\], got 1.5"),
    ({"seg_thr": float("inf")}, "seg_thr: expected a finite number"),
    ({"instance_size": 127}, "must be larger than exemplar_size"),
    ({"context_amount": -0.5}, "context_amount must be in \\[0, 4\\], got -0.5"),
])
def test_hp_values_outside_their_range_are_refused(change, message):
    with pytest.raises(UserError, match=message) as info:
        from_dict(TrackerConfig, {**REQUIRED, **change}, "mine.yaml")
    assert str(info.value).startswith("mine.yaml: ") and "\n" not in str(info.value)


def test_hp_nan_in_a_yaml_file_is_refused(tmp_path):
    path = tmp_path / "nan.yaml"
    path.write_text("penalty_k: 0.04\nwindow_influence: 0.4\nlr: .nan\nseg_thr: 0.35\n")
    with pytest.raises(UserError, match="lr: expected a finite number"):
        load_hp(str(path))


hp_value = st.one_of(st.floats(), st.integers(min_value=-10**6, max_value=10**6), st.booleans(), st.none(),
                     st.text(max_size=4), st.lists(st.floats(min_value=-10, max_value=200), max_size=10))
HP_FIELDS = [f.name for f in dataclasses.fields(TrackerConfig)]


@FUZZ
@given(st.dictionaries(st.sampled_from(HP_FIELDS), hp_value, max_size=6))
def test_fuzz_hp_files_give_a_working_config_or_one_line(tracker, change):
    """Whatever an hp file holds: a UserError, or a config a Tracker can be built from."""
    try:
        cfg = from_dict(TrackerConfig, {**REQUIRED, **change})
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    built = Tracker(tracker.engine, cfg)
    assert np.isfinite(built.grid).all() and np.isfinite(built.window).all()


USER_HP = ["penalty_k", "window_influence", "lr", "seg_thr", "lost_threshold", "context_amount"]


@TRACK_FUZZ
@given(st.dictionaries(st.sampled_from(USER_HP), st.one_of(st.floats(), st.integers(-5, 5)), max_size=4))
@example({"lr": float("nan")})
@example({"context_amount": 0.0, "penalty_k": 1.0})
def test_fuzz_accepted_hp_values_track_to_finite_results(tracker, sequence, change):
    try:
        cfg = from_dict(TrackerConfig, {**REQUIRED, **change})
    except UserError:
        return
    fuzzed = Tracker(tracker.engine, cfg)
    records = track_finite(fuzzed, sequence, sequence[0].box)
    lost = False
    for rec in records:  # lost below lost_threshold, in view again at found_threshold (hysteresis)
        assert 0.0 <= rec["presence"] <= 1.0
        lost = rec["presence"] < (cfg.found_threshold if lost else cfg.lost_threshold)
        assert rec["lost"] == lost


def test_pipeline_values_from_the_command_line_are_range_checked(synthetic_video):
    """apply_cli builds the config with dataclasses.replace, past from_dict: check_config checks again."""
    base = PipelineConfig(streams=(StreamConfig("a", str(synthetic_video)),), metrics_port=0)
    for change, message in (({"queue_size": 0}, "queue_size must be in"), ({"log_interval_s": -1.0}, "log_interval_s"),
                            ({"streams": (StreamConfig("a", str(synthetic_video), fps=-5.0),)}, "fps must be in"),
                            ({"streams": (StreamConfig("a", str(synthetic_video), boxes=((10.0, 10.0, 0.01, 0.01),)),)},
                             "smaller than 2 px"),
                            ({"streams": (StreamConfig("a", str(synthetic_video), boxes=((500.0, 500.0, 10.0, 10.0),)),)},
                             "outside the 160x120 frame"),
                            ({"streams": (StreamConfig("a\ud800", str(synthetic_video)),)}, "printable")):
        with pytest.raises(UserError, match=message):
            check_config(dataclasses.replace(base, **change))
    check_config(base)


# --- weights and outputs ---------------------------------------------------------------------------

def _nan_model() -> SiamMask:
    torch.manual_seed(0)
    model = SiamMask("lite").eval()
    with torch.no_grad():
        for p in model.cls_head.parameters():
            p.fill_(float("nan"))
    return model


def test_weights_with_nan_are_refused_by_name(tmp_path):
    path = save_checkpoint(_nan_model(), tmp_path / "diverged.pth")
    with pytest.raises(UserError, match="'.*diverged.pth' holds NaN or infinite weights in .* tensors "
                                        r"\(cls_head\.") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_non_finite_network_output_is_a_lost_target_not_nan(sequence):
    """Past the weights check (an export, an fp16 overflow): the target stays where it was, lost."""
    tracker = Tracker(TorchEngine(_nan_model(), "cpu", "fp32"), load_hp("davis"))
    box = sequence[0].box
    records = track_finite(tracker, sequence, box)
    for rec in records:
        assert rec["score"] == 0.0 and rec["lost"] is True
        assert rec["box"] == pytest.approx([float(v) for v in box], abs=1e-9)  # no step taken (sizes >= 10 px)


def test_jsonl_refuses_nan_and_appends_after_a_restart(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path) as first:
        first.write({"frame": 0})
        with pytest.raises(ValueError):
            first.write({"frame": 1, "score": float("nan")})
    with JsonlWriter(path, append=True) as again:
        again.write({"frame": 1})
    assert path.read_text() == '{"frame": 0}\n{"frame": 1}\n'


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux /dev/full")
def test_jsonl_on_a_full_disk_is_one_user_error():
    with JsonlWriter("/dev/full") as writer:
        with pytest.raises(UserError, match="cannot write results '/dev/full': No space left on device"):
            writer.write({"frame": 0})


# --- leftovers ---------------------------------------------------------------------------------------

def test_run_folders_of_dead_serves_are_removed_at_start(monkeypatch):
    tmp = Path(tempfile.mkdtemp(prefix="rundirs-", dir="/tmp"))  # short: RunDir wants ipc-sized paths
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    base = private_dir()  # run folders live in the user's private folder
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        stale = base / f"{RUN_PREFIX}stale"
        (stale / "metrics").mkdir(parents=True)
        (stale / OWNER_FILE).write_text(f"{int(dead.stdout)} 12345")
        alive = base / f"{RUN_PREFIX}alive"
        alive.mkdir()
        (alive / OWNER_FILE).write_text(process_id(os.getpid()))
        reused = base / f"{RUN_PREFIX}reused"  # our pid, but another start time: a pid the kernel reused
        reused.mkdir()
        (reused / OWNER_FILE).write_text(f"{os.getpid()} 1")
        run = RunDir()
        assert run.path.parent == base
        assert sorted(p.name for p in base.iterdir()) == sorted([alive.name, run.path.name])
        run.remove()
    finally:
        shutil.rmtree(tmp)
