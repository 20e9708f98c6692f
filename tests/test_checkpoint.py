"""The strict checkpoint loader: key map, every file layout the official releases and training runs
use, and one-line UserErrors for every way a file can be wrong.

Full checkpoints are ~90 MB, so the session fixtures `sharp_checkpoint` / `base_checkpoint` (our
format, seeded random weights) are written once; the other layouts are derived from their state
dicts, and the error cases use shape-only copies (stride-0 tensors, ~100 kB on disk)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from reference import REFERENCE
from siammask.checkpoint import (FORMAT, FORMAT_VERSION, load_checkpoint, official_to_ours,
                                 ours_to_official, save_checkpoint)
from siammask.errors import UserError
from siammask.model import SiamMask


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sharp_ours(sharp_checkpoint) -> dict[str, torch.Tensor]:
    """The weights in the sharp fixture, our key names (the expected values of every load)."""
    return torch.load(sharp_checkpoint, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def base_ours(base_checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(base_checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def _official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {ours_to_official(k): v for k, v in state.items()}


def _ours_format(state: dict[str, torch.Tensor], variant: str, version: int = FORMAT_VERSION) -> dict:
    return {"format": FORMAT, "format_version": version, "variant": variant, "config": {},
            "state_dict": state}


def _shape_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same keys, shapes and dtypes with every tensor a stride-0 view of one zero, so that
    torch.save writes ~100 kB instead of 90 MB. For the error paths, which fail on
    key names and shapes before any weight is copied."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}


def _assert_same_weights(model: SiamMask, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key


def _user_error(path, variant=None) -> str:
    """Load, expect a UserError, check it is one line with no chained traceback, return its text."""
    with pytest.raises(UserError) as info:
        load_checkpoint(path, variant=variant)
    message = str(info.value)
    assert message and "\n" not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


# --------------------------------------------------------------------------------------------
# key map
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant, count", [("sharp", 356), ("base", 324)])
def test_key_map_round_trip(variant, count):
    keys = list(SiamMask(variant).state_dict())
    assert len(keys) == count
    assert SiamMask(variant).mask_size == (127 if variant == "sharp" else 63)   # table: mask out size
    official = [ours_to_official(k) for k in keys]
    assert len(set(official)) == count                      # no two keys collapse
    assert [official_to_ours(k) for k in official] == keys
    # 53 BatchNorm layers each carry num_batches_tracked (reference section 1)
    assert sum(k.endswith("num_batches_tracked") for k in official) == 53


def test_official_names_are_the_released_ones():
    # literally as listed in schema_sharp.tsv (indices 84, 262, 264, 322, 348)
    assert ours_to_official("trunk.layer2.0.downsample.0.weight") == "features.features.layer2.0.downsample.0.weight"
    assert ours_to_official("adjust.bn.running_var") == "features.downsample.downsample.1.running_var"
    assert ours_to_official("cls_head.kernel.0.weight") == "rpn_model.cls.conv_kernel.0.weight"
    assert ours_to_official("mask_head.head.3.weight") == "mask_model.mask.head.3.weight"
    assert ours_to_official("refine.deconv.weight") == "refine_model.deconv.weight"
    assert official_to_ours("features.features.conv1.weight") == "trunk.conv1.weight"
    assert official_to_ours("rpn_model.loc.conv_search.1.running_mean") == "loc_head.search.1.running_mean"
    assert official_to_ours("something.else") is None
    with pytest.raises(KeyError):
        ours_to_official("nonsense.weight")


def test_unusual_shapes_of_the_official_layout():
    # reference section 1: 3x3 shortcuts, the 3969-channel mask head, the 15x15/stride-15 deconv
    official = _official(SiamMask("sharp").state_dict())
    assert tuple(official["features.features.layer2.0.downsample.0.weight"].shape) == (512, 256, 3, 3)
    assert tuple(official["features.features.layer3.0.downsample.0.weight"].shape) == (1024, 512, 3, 3)
    assert tuple(official["mask_model.mask.head.3.weight"].shape) == (3969, 256, 1, 1)
    assert tuple(official["refine_model.deconv.weight"].shape) == (256, 32, 15, 15)
    # 21,482,052 parameter scalars (reference section 1)
    assert sum(p.numel() for p in SiamMask("sharp").parameters()) == 21_482_052


@pytest.mark.skipif(not (REFERENCE / "schema_sharp.tsv").is_file(), reason="../shared/reference absent")
@pytest.mark.parametrize("variant", ["sharp", "base"])
def test_official_layout_matches_schema(variant):
    rows = [line.split("\t") for line in (REFERENCE / f"schema_{variant}.tsv").read_text().splitlines()[1:]]
    official = _official(SiamMask(variant).state_dict())
    assert [r[1] for r in rows] == list(official)            # same keys, same order
    for _, key, _, shape, dtype, _ in rows:
        dims = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
        assert list(official[key].shape) == dims, key
        assert str(official[key].dtype) == f"torch.{dtype}", key


# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------

def _training_checkpoint(state: dict[str, torch.Tensor], prefix: str) -> dict:
    return {"epoch": 20, "arch": "Custom", "best_acc": 0.61,
            "anchor_cfg": {"stride": 8, "ratios": [0.33, 0.5, 1, 2, 3], "scales": [8]},
            "optimizer": {"state": {0: {"momentum_buffer": torch.ones(3, 3)}, 1: {"momentum_buffer": torch.zeros(7)}},
                          "param_groups": [{"lr": 0.001, "momentum": 0.9, "params": [0, 1]}]},
            "state_dict": {prefix + k: v for k, v in _official(state).items()}}


# (variant, layout): every layout is covered for both variants between them; each case writes and
# reads a ~90 MB file, so the combinations are not all multiplied out.
@pytest.mark.parametrize("variant, layout", [
    ("sharp", "ours"), ("sharp", "official"), ("sharp", "nested_module"),
    ("base", "official"), ("base", "nested"), ("base", "module"),
])
def test_every_layout_loads_identical_weights(variant, layout, tmp_path, request):
    source = request.getfixturevalue(f"{variant}_checkpoint")
    expected = request.getfixturevalue(f"{variant}_ours")
    path = tmp_path / f"{layout}.pth"
    if layout == "ours":
        path = source
    elif layout == "official":
        model = SiamMask(variant)
        model.load_state_dict(expected)
        save_checkpoint(model, path, official_layout=True)
        saved = torch.load(path, weights_only=True)
        assert list(saved) == list(_official(expected))        # a plain official state dict
    elif layout == "nested":
        torch.save(_training_checkpoint(expected, ""), path)
    elif layout == "module":
        torch.save({"module." + k: v for k, v in _official(expected).items()}, path)
    else:
        torch.save(_training_checkpoint(expected, "module."), path)
    loaded = load_checkpoint(path)                               # variant inferred
    assert loaded.variant == variant
    assert loaded.model.variant == variant
    assert loaded.source == ("siammask" if layout == "ours" else "official")
    # our format carries the config it was saved with (conftest: {"hp": "davis"}) plus the variant
    assert loaded.config == ({"hp": "davis", "variant": "sharp"} if layout == "ours" else {})
    _assert_same_weights(loaded.model, expected)


@pytest.mark.slow
def test_loaded_model_is_in_eval_mode_and_runs(sharp_checkpoint, sharp_ours):
    loaded = load_checkpoint(sharp_checkpoint, variant="sharp")   # the right variant, named
    model = loaded.model
    assert loaded.variant == "sharp"
    assert not model.training
    assert all(not m.training for m in model.modules())
    z = torch.zeros(1, 3, 127, 127)
    with torch.no_grad():
        feats = model.template(z)
        out = model.track(torch.zeros(1, 3, 255, 255), feats)
        logits = model.mask_logits(out, torch.tensor([[12, 12]]))
        # eval mode: BatchNorm uses the stored running statistics, so a sample's output does not
        # depend on the rest of the batch (in training mode the batch statistics would mix them)
        pair = model.template(torch.cat([z, torch.full_like(z, 100.0)]))
    assert tuple(feats.cls.shape) == (1, 256, 5, 5)
    assert tuple(out.cls.shape) == (1, 10, 25, 25)
    assert tuple(out.loc.shape) == (1, 20, 25, 25)
    assert tuple(out.mask_corr.shape) == (1, 256, 25, 25)
    assert tuple(logits.shape) == (1, 127, 127)
    assert torch.isfinite(out.cls).all() and torch.isfinite(out.loc).all() and torch.isfinite(logits).all()
    assert torch.allclose(pair.cls[0], feats.cls[0], atol=1e-5)
    assert not torch.allclose(pair.cls[1], feats.cls[0], atol=1e-5)
    # loading did not leave running statistics of this forward pass in the weights
    assert torch.equal(model.state_dict()["adjust.bn.running_mean"], sharp_ours["adjust.bn.running_mean"])


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "SiamMask_DAVIS.pth"
    message = _user_error(path)
    assert "not found" in message and "SiamMask_DAVIS.pth" in message
    # a directory is not a checkpoint file either
    assert "not found" in _user_error(tmp_path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint\n")
    message = _user_error(path)
    assert "notes.pth" in message and "not a readable PyTorch checkpoint" in message


@pytest.mark.parametrize("content", [b"hello this is not a checkpoint\n", b"abc"])
def test_text_file_that_looks_like_pickle_opcodes(tmp_path, content):
    # b"h" is pickle's BINGET (memo lookup -> KeyError 101), b"a" is APPEND (pop from empty stack)
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    assert "not a readable PyTorch checkpoint" in _user_error(path)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_bytes(tmp_path, seed):
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    message = _user_error(path)
    assert "random.pth" in message and "not a readable PyTorch checkpoint" in message


def test_random_bytes_seed_17(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(17).bytes(4096))    # starts with b"s\xcc..."
    assert "not a readable PyTorch checkpoint" in _user_error(path)


def test_truncated_checkpoint(tmp_path, sharp_checkpoint):
    data = sharp_checkpoint.read_bytes()
    path = tmp_path / "half.pth"
    path.write_bytes(data[:len(data) // 2])
    message = _user_error(path)
    assert "half.pth" in message and "truncated or corrupt" in message
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "truncated or corrupt" in _user_error(empty)


def test_zip_bomb_is_refused_before_unpacking(tmp_path):
    """A real torch.save archive of a 256 MiB tensor, deflated to well under 1 MiB: before, torch.load
    unpacked all of it (2 GiB of tensor in 2 MB took 2.5 GB of memory) before any check."""
    import zipfile
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(64 << 20)}, plain)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    plain.unlink()
    assert bomb.stat().st_size < 1 << 20
    message = _user_error(bomb)
    assert message.startswith(f"'{bomb}' declares 256 MiB of contents in 0.") and "not a checkpoint" in message


@pytest.mark.parametrize("obj", [{"epoch": 3, "arch": "Custom"}, {}, [1, 2, 3], {"state_dict": {"a": 1}},
                                 {"a": torch.zeros(2), "b": 3}])
def test_no_tensors(tmp_path, obj):
    path = tmp_path / "meta.pth"
    torch.save(obj, path)
    message = _user_error(path)
    assert "no state dict of tensors" in message and "meta.pth" in message


def test_wrong_shape(tmp_path, sharp_ours):
    state = _shape_only(sharp_ours)
    key = "trunk.layer2.0.downsample.0.weight"
    state[key] = state[key].transpose(0, 1).contiguous()         # (256, 512, 3, 3)
    path = tmp_path / "transposed.pth"
    torch.save(_ours_format(state, "sharp"), path)
    message = _user_error(path)
    assert "wrong shapes" in message and key in message
    assert "(256, 512, 3, 3) vs (512, 256, 3, 3)" in message
    assert "missing" not in message and "unexpected" not in message


def test_base_loaded_as_sharp(base_checkpoint):
    message = _user_error(base_checkpoint, variant="sharp")
    assert "--variant base" in message and "base.pth" in message


def test_sharp_loaded_as_base(sharp_checkpoint):
    message = _user_error(sharp_checkpoint, variant="base")
    assert "--variant sharp" in message and "sharp.pth" in message


def test_official_base_loaded_as_sharp(tmp_path, base_ours):
    path = tmp_path / "base_official.pth"
    torch.save(_official(_shape_only(base_ours)), path)
    assert "--variant base" in _user_error(path, variant="sharp")


def test_unknown_variant(sharp_checkpoint):
    message = _user_error(sharp_checkpoint, variant="large")
    assert "unknown variant 'large'" in message and "sharp" in message and "base" in message


def test_unexpected_key(tmp_path, base_ours):
    state = _shape_only(base_ours)
    state["trunk.layer9.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(_ours_format(state, "base"), path)
    message = _user_error(path)
    assert "1 unexpected keys" in message and "trunk.layer9.weight" in message
    assert "missing" not in message


def test_unexpected_official_key_without_mapping(tmp_path, base_ours):
    state = _official(_shape_only(base_ours))
    state["module_extra.scale"] = torch.ones(1)
    path = tmp_path / "extra_official.pth"
    torch.save(state, path)
    message = _user_error(path)
    assert "unexpected" in message and "module_extra.scale" in message


def test_missing_key(tmp_path, base_ours):
    state = _shape_only(base_ours)
    del state["loc_head.head.3.bias"]
    path = tmp_path / "removed.pth"
    torch.save(_ours_format(state, "base"), path)
    message = _user_error(path)
    assert "1 missing keys" in message and "loc_head.head.3.bias" in message
    assert "unexpected" not in message


def test_many_missing_keys_are_summarised(tmp_path, base_ours):
    state = {k: v for k, v in _shape_only(base_ours).items() if not k.startswith("mask_head.")}
    path = tmp_path / "no_mask_head.pth"
    torch.save(_ours_format(state, "base"), path)
    message = _user_error(path)
    # the mask head has kernel (conv + 5 BN entries), search (same), head (conv, 5 BN, conv w+b): 6+6+8 = 20
    assert "20 missing keys" in message and "and 17 more" in message


def test_missing_refine_key(tmp_path, sharp_ours):
    state = _shape_only(sharp_ours)
    del state["refine.post2.bias"]
    path = tmp_path / "removed_refine.pth"
    torch.save(_ours_format(state, "sharp"), path)
    message = _user_error(path)
    assert "missing" in message and "refine.post2.bias" in message


def test_future_format_version(tmp_path):
    path = tmp_path / "future.pth"
    torch.save(_ours_format({"trunk.conv1.weight": torch.zeros(1)}, "sharp", version=FORMAT_VERSION + 1), path)
    message = _user_error(path)
    assert f"version {FORMAT_VERSION + 1}" in message and "upgrade" in message and "future.pth" in message
