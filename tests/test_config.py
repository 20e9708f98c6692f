"""Tracker hyper-parameter presets and the strict YAML loader."""
from __future__ import annotations

import dataclasses

import pytest

from siammask.config import HP_PRESETS, TrackerConfig, from_dict, load_hp, load_yaml
from siammask.errors import UserError
from siammask.variants import VARIANT_SPECS


# Reference README section 3, written out: (penalty_k, window_influence, lr, seg_thr)
TABLE = {
    "davis": (0.04, 0.40, 1.00, 0.35),
    "vot": (0.04, 0.42, 0.25, 0.30),
    "vot18": (0.10, 0.41, 0.32, 0.15),
    "base": (0.09, 0.39, 0.38, 0.30),
    # NanoTrack V3's published tracking settings; seg_thr ours
    "nano": (0.138, 0.455, 0.348, 0.35),
}


def _one_line_error(fn, *args) -> str:
    with pytest.raises(UserError) as info:
        fn(*args)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_presets_are_those_of_the_table():
    assert HP_PRESETS == ("davis", "vot", "vot18", "base", "nano")


def test_the_mask_guide_is_ours_and_on_for_nano_alone():
    """The guided mask refinement (geometry.masks.guided_refine) is off for the official models' presets."""
    assert {name: (load_hp(name).mask_guide_radius, load_hp(name).mask_guide_eps) for name in HP_PRESETS} == {
        **{name: (0.0, 0.006) for name in ("davis", "vot", "vot18", "base")}, "nano": (10.0, 0.006)}


def test_mask_guide_out_of_range(tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("penalty_k: 0.1\nwindow_influence: 0.4\nlr: 0.3\nseg_thr: 0.3\nmask_guide_eps: 0\n")
    message = _one_line_error(load_hp, str(path))
    assert "mask_guide_eps" in message and "(0, 1]" in message


@pytest.mark.parametrize("name", list(TABLE))
def test_preset_values(name):
    cfg = load_hp(name)
    assert isinstance(cfg, TrackerConfig)
    assert (cfg.penalty_k, cfg.window_influence, cfg.lr, cfg.seg_thr) == TABLE[name]
    assert all(type(v) is float for v in (cfg.penalty_k, cfg.window_influence, cfg.lr, cfg.seg_thr))
    # shared by all variants
    assert cfg.exemplar_size == 127 and cfg.instance_size == 255
    assert cfg.context_amount == 0.5


def test_variant_geometry():
    """The score map belongs to the variant: SiamMask 25x25 x 5 anchors at stride 8, nano 15x15 points
    at stride 16 (NanoTrack's output size), each with its mask-window offset."""
    sharp, nano = VARIANT_SPECS["sharp"].geometry, VARIANT_SPECS["nano"].geometry
    # (255 - 127) // 8 + 1 + 8 = 16 + 1 + 8 = 25; 5 ratios x 1 scale = 5
    assert sharp.score_size(127, 255) == 25 and sharp.num_anchors == 5 and not sharp.anchor_free
    assert sharp.ratios == (0.33, 0.5, 1.0, 2.0, 3.0) and sharp.scales == (8.0,)
    # (255 - 127) // 16 + 1 + 6 = 8 + 1 + 6 = 15; one point per cell
    assert nano.score_size(127, 255) == 15 and nano.num_anchors == 1 and nano.anchor_free
    # a larger search crop grows the map: (271 - 127) // 8 + 1 + 8 = 27
    assert sharp.score_size(127, 271) == 27
    assert {v: s.default_hp for v, s in VARIANT_SPECS.items()} == {
        "sharp": "davis", "base": "base", "lite": "davis", "lite-base": "base", "nano": "nano",
        "nano-3level": "nano"}


def test_preset_by_path_equals_preset_by_name(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("penalty_k: 0.04\nwindow_influence: 0.42\nlr: 0.25\nseg_thr: 0.30\n")
    assert load_hp(str(path)) == load_hp("vot")
    yml = tmp_path / "mine.yml"
    yml.write_text(path.read_text())
    assert load_hp(str(yml)) == load_hp("vot")


def test_yaml_overrides_and_coercion(tmp_path):
    path = tmp_path / "custom.yaml"
    # integers are accepted for floats (lr: 1 -> 1.0)
    path.write_text("penalty_k: 0.05\nwindow_influence: 0.3\nlr: 1\nseg_thr: 0.5\ninstance_size: 271\n")
    cfg = load_yaml(TrackerConfig, path)
    assert cfg.lr == 1.0 and type(cfg.lr) is float
    assert cfg.instance_size == 271 and type(cfg.instance_size) is int


def test_geometry_keys_are_not_hyper_parameters(tmp_path):
    """Stride and anchors are the variant's: a preset that sets them is refused, not half-applied."""
    path = tmp_path / "old.yaml"
    path.write_text("penalty_k: 0.05\nwindow_influence: 0.3\nlr: 1\nseg_thr: 0.5\ntotal_stride: 16\n")
    message = _one_line_error(load_hp, str(path))
    assert "unknown key" in message and "total_stride" in message


def test_unknown_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("penalty_k: 0.04\nwindow_influence: 0.4\nlr: 1.0\nseg_thr: 0.35\nwindow_influnce: 0.5\n")
    message = _one_line_error(load_hp, str(path))
    assert "unknown key" in message and "window_influnce" in message and "typo.yaml" in message


def test_wrong_type_string_for_penalty_k(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("penalty_k: 'high'\nwindow_influence: 0.4\nlr: 1.0\nseg_thr: 0.35\n")
    message = _one_line_error(load_hp, str(path))
    assert "penalty_k" in message and "expected float" in message and "'high'" in message


@pytest.mark.parametrize("data, key", [
    ({"penalty_k": True, "window_influence": 0.4, "lr": 1.0, "seg_thr": 0.35}, "penalty_k"),   # bool is not a number
    ({"penalty_k": 0.04, "window_influence": 0.4, "lr": 1.0, "seg_thr": 0.35, "exemplar_size": 127.0}, "exemplar_size"),
    ({"penalty_k": 0.04, "window_influence": 0.4, "lr": 1.0, "seg_thr": 0.35, "ratios": 0.5}, "ratios"),
    ({"penalty_k": 0.04, "window_influence": 0.4, "lr": 1.0, "seg_thr": 0.35, "scales": ["8"]}, "scales"),
])
def test_wrong_types_from_dict(data, key):
    message = _one_line_error(from_dict, TrackerConfig, data)
    assert key in message


def test_missing_required_key(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text("penalty_k: 0.04\nlr: 1.0\nseg_thr: 0.35\n")
    message = _one_line_error(load_hp, str(path))
    assert "window_influence" in message and "missing" in message


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("penalty_k: [0.04\nlr: 1.0\n")
    message = _one_line_error(load_hp, str(path))
    assert "not valid YAML" in message and "broken.yaml" in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 0.04\n- 0.4\n")
    assert "expected a mapping" in _one_line_error(load_hp, str(path))


def test_missing_yaml_file(tmp_path):
    message = _one_line_error(load_hp, str(tmp_path / "nope.yaml"))
    assert "not found" in message and "nope.yaml" in message


def test_unknown_preset():
    message = _one_line_error(load_hp, "davis2017")
    assert "davis2017" in message and "davis, vot, vot18, base" in message


def test_tracker_config_is_frozen():
    cfg = load_hp("davis")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.penalty_k = 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 0.1
    assert cfg.penalty_k == 0.04


def test_exponent_floats_without_a_dot(tmp_path):
    # YAML 1.1 (PyYAML's default) reads 1e-2 as a string; we read it as the float a user meant
    path = tmp_path / "exp.yaml"
    path.write_text("penalty_k: 1e-2\nwindow_influence: 4E-1\nlr: 1\nseg_thr: 0.35\n")
    cfg = load_hp(str(path))
    assert (cfg.penalty_k, cfg.window_influence, cfg.lr) == (0.01, 0.4, 1.0)
