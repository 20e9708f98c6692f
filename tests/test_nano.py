"""The nano variant: NanoTrack V3's trunk and box head as our own modules (strict key map, parity with
the published ONNX graphs), its anchor-free geometry with exact numbers, and the mask training targets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from siammask.checkpoint import load_checkpoint, save_checkpoint
from siammask.config import load_hp
from siammask.errors import UserError
from siammask.geometry.anchors import generate_points
from siammask.geometry.masks import mask_window
from siammask.geometry.scoring import decode_points
from siammask.model import NanoSiamMask, build_model
from siammask.nanotrack_checkpoint import NANOTRACK_KEY_MAP, UNUSED_PREFIXES, load_nanotrack, nanotrack_to_ours
from siammask.training.losses import mask_windows
from siammask.training.targets import crop_points, point_targets
from siammask.variants import NANO_GEOMETRY

from reference import SHARED

NANO_DIR = SHARED / "pretrained" / "nanotrack"
NANO_PTH = NANO_DIR / "nanotrackv3.pth"
needs_nanotrack = pytest.mark.skipif(not NANO_PTH.is_file(), reason="../shared/pretrained/nanotrack is absent")


def _theirs(ours: str) -> str:
    """Inverse of the key map, to write a NanoTrack-layout file from our weights."""
    for theirs, prefix in NANOTRACK_KEY_MAP:
        if ours.startswith(prefix):
            return theirs + ours[len(prefix):]
    raise KeyError(ours)


def _nanotrack_file(path, drop: str | None = None, extra: str | None = None):
    """A file in NanoTrack's training-checkpoint layout made from seeded random weights of ours."""
    torch.manual_seed(1)
    model = NanoSiamMask().eval()
    state = {_theirs(k): v for k, v in model.state_dict().items() if k.startswith(("trunk.", "head."))}
    state["neck.downsample.0.weight"] = torch.zeros(96, 96, 1, 1)
    if drop:
        state.pop(drop)
    if extra:
        state[extra] = torch.zeros(3)
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {}}, path)
    return model


def test_key_map_round_trip_is_strict(tmp_path):
    model = _nanotrack_file(tmp_path / "nt.pth")
    loaded = load_nanotrack(tmp_path / "nt.pth")
    expected = {k: v for k, v in model.state_dict().items() if k.startswith(("trunk.", "head."))}
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    # the neck is known and skipped; a key the map does not know, or a missing one, is an error
    _nanotrack_file(tmp_path / "extra.pth", extra="ban_head.new_layer.weight")
    with pytest.raises(UserError, match="1 unexpected keys .*ban_head.new_layer.weight"):
        load_nanotrack(tmp_path / "extra.pth")
    _nanotrack_file(tmp_path / "short.pth", drop="backbone.features.9.conv.7.weight")
    with pytest.raises(UserError, match="1 missing keys .*trunk.blocks.8.project.0.weight"):
        load_nanotrack(tmp_path / "short.pth")


def test_key_map_names():
    # without expansion (block 1) the depth-wise conv is their conv.0, with it (block 2) conv.3
    assert nanotrack_to_ours("backbone.features.1.conv.0.weight") == "trunk.blocks.0.depthwise.0.weight"
    assert nanotrack_to_ours("backbone.features.2.conv.3.weight") == "trunk.blocks.1.depthwise.0.weight"
    assert nanotrack_to_ours("backbone.features.4.conv.5.fc.2.bias") == "trunk.blocks.3.se.expand.bias"
    assert nanotrack_to_ours("ban_head.corr_pw_reg.CA_layer.fc1.weight") == "head.pw_loc.attention.fc1.weight"
    assert nanotrack_to_ours("ban_head.bbox_tower.28.weight") == "head.loc_tower.28.weight"
    assert nanotrack_to_ours("neck.downsample.0.weight") is None and UNUSED_PREFIXES == ("neck.",)


def test_a_nanotrack_file_is_no_model_to_track_with(tmp_path):
    _nanotrack_file(tmp_path / "nt.pth")
    with pytest.raises(UserError, match="NanoTrack training checkpoint.*init"):
        load_checkpoint(tmp_path / "nt.pth")


@needs_nanotrack
def test_nanotrackv3_loads_strictly():
    state = load_nanotrack(NANO_PTH)
    model = NanoSiamMask()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert {k.split(".")[0] for k in missing} == {"mask_branch", "refine"}
    assert sum(v.numel() for k, v in state.items() if k.startswith("trunk.") and "running" not in k
               and "num_batches" not in k) == 282_368  # its backbone: trained weights, BN statistics aside


@needs_nanotrack
def test_trunk_and_head_match_nanotrack_v3_onnx_graphs():
    """Our modules with the checkpoint's weights against the published V3 graphs through ONNX Runtime."""
    import onnxruntime as ort

    model = NanoSiamMask().eval()
    model.load_state_dict(load_nanotrack(NANO_PTH), strict=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1, 3, 255, 255)).astype(np.float32)
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    backbone = ort.InferenceSession(str(NANO_DIR / "nanotrackv3_nanotrack_backbone.onnx"))
    head = ort.InferenceSession(str(NANO_DIR / "nanotrackv3_nanotrack_head.onnx"))
    (xf,) = backbone.run(None, {"input": x})
    with torch.no_grad():
        ours_x = model.trunk(torch.from_numpy(x))[3].numpy()
        zf = model.trunk(torch.from_numpy(z))[3].numpy()  # their graph takes 255 crops only
        out = model.track(torch.from_numpy(x), model.template(torch.from_numpy(z)))
    assert xf.shape == (1, 96, 16, 16)
    np.testing.assert_allclose(ours_x, xf, atol=1e-4 * np.abs(xf).max())
    cls, loc = head.run(None, {"input1": zf, "input2": ours_x})
    assert cls.shape == (1, 2, 15, 15) and loc.shape == (1, 4, 15, 15)
    np.testing.assert_allclose(out.cls.numpy(), cls, atol=1e-4 * np.abs(cls).max())
    np.testing.assert_allclose(out.loc.numpy(), loc, atol=1e-4 * np.abs(loc).max())


def test_points_and_decode_exact():
    points = generate_points(16, 15)
    assert points.shape == (225, 2)
    assert points[0].tolist() == [-112, -112] and points[14].tolist() == [112, -112]
    assert points[7 * 15 + 7].tolist() == [0, 0] and points[224].tolist() == [112, 112]
    loc = np.zeros((4, 15, 15), np.float32)
    loc[:, 7, 7] = (10, 20, 30, 40)   # left, top, right, bottom of the centre cell
    loc[:, 0, 14] = (1, 1, 1, 1)
    boxes = decode_points(loc, points)
    assert boxes[:, 7 * 15 + 7].tolist() == [10, 10, 40, 60]     # x0=-10, x1=30 -> cx 10, w 40
    assert boxes[:, 14].tolist() == [112, -112, 2, 2]


def test_mask_window_and_training_windows_agree():
    """Cell (y, x) of the nano map: its mask covers crop pixels 16x - 48 .. 16x + 79, in the tracker
    (mask_window) and in training (mask_windows) alike."""
    x0, y0, side = mask_window((0.0, 0.0), 255.0, (7, 2), 255, 127, NANO_GEOMETRY.stride, NANO_GEOMETRY.base_size)
    assert (x0, y0, side) == (-16.0, 64.0, 127.0)
    search = torch.zeros(1, 1, 255, 255)
    search[0, 0, 64, -16 + 20] = 1   # one pixel at window offset (0, 20)
    (w,) = mask_windows(search, torch.tensor([[0, 7, 2]]), NANO_GEOMETRY)
    assert w.shape == (127, 127) and (w > 0).nonzero().tolist() == [[0, 20]]


def test_point_targets():
    cfg = load_hp("nano")
    points = crop_points(cfg, NANO_GEOMETRY)
    assert points[7 * 15 + 7].tolist() == [127, 127]
    box = np.array([95.0, 79.0, 64.0, 96.0])  # centre (127, 127), 64 x 96
    t = point_targets(points, box, 15, True, np.random.default_rng(0))
    positives = set(map(tuple, np.argwhere(t.labels.reshape(15, 15) == 1).tolist()))
    # inside the half-size ellipse ((x-127)/16)^2 + ((y-127)/24)^2 <= 1: the centre and its 4 neighbours
    assert positives == {(7, 7), (6, 7), (8, 7), (7, 6), (7, 8)}
    assert np.array_equal(t.mask_weight, t.labels.reshape(15, 15) == 1)
    centre = 7 * 15 + 7
    assert t.deltas[:, centre].tolist() == [32, 48, 32, 48]
    # negatives: outside the box's own ellipse, sampled to 64 labels in all
    outside = ((points[:, 0] - 127) / 32) ** 2 + ((points[:, 1] - 127) / 48) ** 2 > 1
    assert (t.labels == 0).sum() == 64 - 5 and outside[t.labels == 0].all()
    # a small target still trains at the cell nearest its centre
    small = point_targets(points, np.array([140.0, 100.0, 8.0, 8.0]), 15, True, np.random.default_rng(0))
    assert np.argwhere(small.labels == 1).ravel().tolist() == [6 * 15 + 8]
    negative = point_targets(points, None, 15, True, np.random.default_rng(0))
    assert not negative.mask_weight.any() and (negative.labels == 1).sum() == 0


def test_nano_checkpoint_round_trip_and_tracker(tmp_path, synthetic_frames):
    torch.manual_seed(0)
    model = build_model("nano").eval()
    path = save_checkpoint(model, tmp_path / "nano.pth", config={"hp": "nano"})
    loaded = load_checkpoint(path)
    assert loaded.variant == "nano" and loaded.config["hp"] == "nano"
    from siammask.engines.registry import build_engine
    from siammask.tracker import Tracker

    tracker = Tracker(build_engine("torch", loaded.model), load_hp("nano"))
    assert tracker.score_size == 15 and tracker.grid.shape == (225, 2) and tracker.window.shape == (225,)
    states = tracker.init(synthetic_frames[0].image, [synthetic_frames[0].box])
    states, results = tracker.step(synthetic_frames[1].image, states)
    (r,) = results
    assert 0 <= r.pos_yx[0] < 15 and 0 <= r.pos_yx[1] < 15
    assert r.mask.shape == synthetic_frames[1].image.shape[:2] and np.isfinite(r.box).all()
