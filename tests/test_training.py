"""Training: exact targets on hand-made boxes, losses, a few iterations that learn, exact resume."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siammask.checkpoint import load_checkpoint, save_checkpoint
from siammask.config import load_hp
from siammask.errors import UserError
from siammask.model import SiamMask, build_model
from siammask.synthetic import make_sequence, write_davis_layout
from siammask.training.config import StageConfig, TrainConfig
from siammask.training.loop import Budget, _build_model, _init_weights, lr_at, train, train_step
from siammask.training.losses import cls_loss, loc_loss, mask_windows
from siammask.training.pairs import DataSource, PairDataset
from siammask.training.targets import anchor_targets, box_deltas, crop_anchors, iou_with_box
from siammask.variants import SIAMMASK_GEOMETRY

ANCHORS = crop_anchors(load_hp("davis"), SIAMMASK_GEOMETRY)


def test_crop_anchors_are_centred_on_the_search_crop():
    # flat index a*625 + y*25 + x; centre 127 + (-96 + 8*i)
    assert ANCHORS.shape == (3125, 4)
    assert ANCHORS[0].tolist() == [31.0, 31.0, 104.0, 32.0]
    assert ANCHORS[2 * 625 + 12 * 25 + 12].tolist() == [127.0, 127.0, 64.0, 64.0]
    assert ANCHORS[4 * 625 + 24 * 25 + 3].tolist() == [31.0 + 24, 223.0, 32.0, 96.0]


def test_iou_and_deltas_by_hand():
    anchors = np.array([[50.0, 50.0, 20.0, 20.0], [60.0, 50.0, 20.0, 20.0], [200.0, 200.0, 10.0, 10.0]])
    box = np.array([40.0, 40.0, 20.0, 20.0])  # the same square as anchor 0
    # anchor 1 overlaps by 10x20 = 200; union 400 + 400 - 200 = 600
    assert np.allclose(iou_with_box(anchors, box), [1.0, 200 / 600, 0.0])
    d = box_deltas(anchors[:2], np.array([45.0, 40.0, 40.0, 10.0]))  # centre (65, 45)
    assert np.allclose(d[:, 0], [15 / 20, -5 / 20, math.log(2.0), math.log(0.5)])
    assert np.allclose(d[:, 1], [5 / 20, -5 / 20, math.log(2.0), math.log(0.5)])


def test_anchor_labels_on_a_box_equal_to_one_anchor():
    # the 64x64 anchor at grid (12, 12) covers [95, 159): IoU 1 with this box
    box = np.array([95.0, 95.0, 64.0, 64.0])
    t = anchor_targets(ANCHORS, box, 25, True, np.random.default_rng(0))
    centre = 2 * 625 + 12 * 25 + 12
    assert t.labels[centre] == 1
    positives = np.flatnonzero(t.labels == 1)
    assert 1 <= len(positives) <= 16 and (t.labels == 0).sum() == 64 - len(positives)
    assert np.all(iou_with_box(ANCHORS[positives], box) > 0.6)
    assert np.allclose(t.delta_weight[positives], 1 / len(positives)) and t.delta_weight.sum() == pytest.approx(1)
    assert np.allclose(t.deltas[:, centre], 0, atol=1e-6)
    assert t.mask_weight[12, 12] == 1 and t.mask_weight.sum() == len({p % 625 for p in positives})


def test_negative_pair_labels_only_the_centre():
    t = anchor_targets(ANCHORS, None, 25, True, np.random.default_rng(1))
    neg = np.flatnonzero(t.labels == 0)
    assert len(neg) == 16 and (t.labels == 1).sum() == 0
    ys, xs = (neg % 625) // 25, neg % 25
    assert ys.min() >= 9 and ys.max() <= 15 and xs.min() >= 9 and xs.max() <= 15
    assert t.mask_weight.sum() == 0 and t.delta_weight.sum() == 0


def test_losses_by_hand():
    labels = torch.tensor([[1, 0, -1] + [-1] * 3122])
    cls = torch.zeros(1, 10, 25, 25)  # equal logits: -log(1/2) for every anchor
    assert cls_loss(cls, labels).item() == pytest.approx(math.log(2))
    deltas = torch.randn(1, 4, 3125)
    weight = torch.zeros(1, 3125)
    weight[0, :4] = 0.25
    assert loc_loss(deltas.reshape(1, 20, 25, 25), deltas, weight).item() == 0.0
    off = deltas.clone()
    off[0, 0, 0] += 1.0  # smooth-L1 with beta 1/9: |d| - beta/2 = 1 - 1/18, weighted 0.25
    assert loc_loss(off.reshape(1, 20, 25, 25), deltas, weight).item() == pytest.approx(0.25 * (1 - 1 / 18), rel=1e-5)


def test_mask_windows_cut_the_window_of_each_position():
    mask = torch.zeros(1, 1, 255, 255)
    mask[0, 0, 100:120, 60:70] = 1
    (w,) = mask_windows(mask, torch.tensor([[0, 12, 12]]))  # window of (12,12): crop pixels 64..190
    assert w.shape == (127, 127)
    # columns 60..69 of the crop are columns -4..5 of the window: 6 inside, column 70 is background
    assert (w == 1).sum() == 20 * 6 and w[100 - 64, 69 - 64] == 1 and w[100 - 64, 70 - 64] == -1
    (corner,) = mask_windows(mask, torch.tensor([[0, 0, 0]]))  # starts at -32: padding is background
    assert corner[0, 0] == -1 and (corner == 1).sum() == 0


def test_lr_schedule():
    stage = StageConfig(epochs=1, iterations=100, batch_size=1, lr=0.01, lr_end=0.001, warmup=10)
    assert lr_at(0, 100, stage) == pytest.approx(0.001)
    assert lr_at(9, 100, stage) == pytest.approx(0.01)
    assert lr_at(100, 100, stage) == pytest.approx(0.001)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """A DAVIS-layout set of generated sequences, built into crops by the real command."""
    root = tmp_path_factory.mktemp("davis")
    write_davis_layout({f"s{i}": make_sequence(num_frames=4, size=(200, 150), seed=40 + i) for i in range(3)}, root)
    out = tmp_path_factory.mktemp("built")
    proc = subprocess.run([sys.executable, "-m", "siammask.cli", "dataset", "build", "--format", "davis",
                           "--root", str(root), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def _config(tiny_set: Path, iterations: int = 4) -> TrainConfig:
    stage = StageConfig(epochs=1, iterations=iterations, batch_size=4, lr=1e-3, lr_end=1e-4, warmup=1)
    refine = StageConfig(epochs=1, iterations=2, batch_size=4, lr=1e-3, lr_end=1e-4, warmup=1, train="refine")
    return TrainConfig(model="lite", datasets=(DataSource(str(tiny_set)),), base=stage, refine=refine, save_every=2)


def test_pairs_are_reproducible_and_consistent(tiny_set):
    data = PairDataset([DataSource(str(tiny_set))], load_hp("davis"), SIAMMASK_GEOMETRY, 8, seed=5)
    a, b = data[3], data[3]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["template"].shape == (3, 127, 127) and a["search"].shape == (3, 255, 255)
    data.epoch = 1
    assert not np.array_equal(data[3]["search"], a["search"])


@pytest.mark.slow
def test_a_few_iterations_lower_every_loss(tiny_set):
    cfg = _config(tiny_set)
    data = PairDataset(list(cfg.datasets), load_hp("davis"), SIAMMASK_GEOMETRY, 8, seed=1, negative=0.0)
    batch = {k: torch.from_numpy(np.stack([data[i][k] for i in range(8)])) for k in data[0]}
    torch.manual_seed(0)
    model = SiamMask("lite-base").train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for i in range(25):
        loss, stats = train_step(model, batch, cfg.base, cfg, torch.Generator().manual_seed(i))
        optim.zero_grad()
        loss.backward()
        optim.step()
        history.append(stats)
    for part in ("cls", "loc", "mask", "loss"):
        assert history[-1][part] < 0.8 * history[0][part], part


@pytest.mark.slow
def test_resume_reproduces_the_same_next_loss(tiny_set, tmp_path):
    cfg = _config(tiny_set)
    full = tmp_path / "full"
    assert train(cfg, full, log=lambda *_: None) == full / "final.pth"
    resumed = tmp_path / "resumed"
    assert train(cfg, resumed, log=lambda *_: None, budget=Budget(iterations=3)) is None
    assert train(cfg, resumed, log=lambda *_: None) == resumed / "final.pth"
    a = [json.loads(line) for line in (full / "log.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 6  # 4 base + 2 refine iterations, none repeated or skipped
    for x, y in zip(a, b):
        assert (x["stage"], x["iteration"]) == (y["stage"], y["iteration"])
        assert x["loss"] == y["loss"], (x, y)
    final = torch.load(resumed / "final.pth", weights_only=True)
    assert final["variant"] == "lite" and final["config"]["hp"] == "davis"


@pytest.mark.slow
def test_changed_config_refuses_to_resume(tiny_set, tmp_path):
    cfg = _config(tiny_set)
    train(cfg, tmp_path, log=lambda *_: None, budget=Budget(iterations=1))
    with pytest.raises(UserError, match="different config"):
        train(_config(tiny_set, iterations=5), tmp_path, log=lambda *_: None)
    shutil.rmtree(tmp_path)


@pytest.mark.slow
def test_init_weights_start_both_stages(tiny_set, tmp_path):
    """init: the base stage starts from the file's weights (its refine module left aside), the
    refine stage from the base result plus the file's refine module; a file of another model is
    a one-line error."""
    torch.manual_seed(3)
    start = SiamMask("lite")
    save_checkpoint(start, tmp_path / "start.pth", {"hp": "davis"})
    cfg = dataclasses.replace(_config(tiny_set), init=str(tmp_path / "start.pth"))
    base = _build_model(cfg, "base", tmp_path)
    want = start.state_dict()
    assert base.variant == "lite-base"
    assert all(torch.equal(v, want[k]) for k, v in base.state_dict().items())
    with torch.no_grad():
        base.adjust.conv.weight.add_(1.0)  # stands for what the base stage learned
    save_checkpoint(base, tmp_path / "base.pth")
    trained = base.state_dict()
    refine = _build_model(cfg, "refine", tmp_path)
    for k, v in refine.state_dict().items():  # the base stage's result, the init file's refine module
        assert torch.equal(v, want[k] if k.startswith("refine.") else trained[k]), k
    fresh = _build_model(_config(tiny_set), "base", tmp_path)
    assert not torch.equal(fresh.state_dict()["adjust.conv.weight"], want["adjust.conv.weight"])

    save_checkpoint(SiamMask("base"), tmp_path / "other.pth")
    with pytest.raises(UserError, match="are a base model, but this config trains 'lite'"):
        _build_model(dataclasses.replace(cfg, init=str(tmp_path / "other.pth")), "base", tmp_path)


def test_a_nano_config_starts_from_earlier_nano_weights_all_but_their_refine(tiny_set, tmp_path):
    """Weights saved as 'nano' with the three-level refine (the default until 2026-12-07) load as
    nano-3level; a nano config started from them takes their trunk, box head and mask branch, and
    its own slimmer refine starts new (seeded)."""
    from siammask.model.nano import NanoSiamMask
    torch.manual_seed(4)
    earlier = NanoSiamMask("nano-3level")
    earlier.variant = "nano"  # as those files name it
    save_checkpoint(earlier, tmp_path / "earlier.pth", {"hp": "nano"})
    assert load_checkpoint(tmp_path / "earlier.pth").variant == "nano-3level"
    stage = StageConfig(epochs=1, iterations=1, batch_size=2, lr=1e-3, lr_end=1e-4, warmup=1, train="mask")
    cfg = TrainConfig(model="nano", datasets=(DataSource(str(tiny_set)),), base=stage, hp="nano",
                      init=str(tmp_path / "earlier.pth"))
    assert not [k for k in _init_weights(cfg) if k.startswith("refine.")]
    model = _build_model(cfg, "base", tmp_path)
    want = earlier.state_dict()
    torch.manual_seed(cfg.seed)
    fresh = build_model("nano").state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh[k] if k.startswith("refine.") else want[k]), k
