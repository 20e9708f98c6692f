"""The library's front door: `load_tracker` turns weights (a checkpoint or an export directory),
a back end and a hyper-parameter preset into a ready Tracker.

The commands translate their options into these calls and the serving pipeline calls them in its
inference process, so there is one way of loading a model. Above the export layer: a graph back end
on a .pth checkpoint is exported on the fly."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from .config import DEFAULT_HP, TrackerConfig, load_hp
from .engines.names import AUTO
from .engines.registry import auto_engine, build_engine
from .engines.sidecar import SIDECAR, read_sidecar
from .errors import UserError
from .export.runtime import exported_graphs
from .extras import require
from .tracker import Tracker

if TYPE_CHECKING:  # reading a checkpoint needs torch, imported only when one is read
    from .checkpoint import LoadedCheckpoint

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pth"
# The default weights' verified ONNX graphs and their sidecar, built into the wheel (setup.py) so that
# tracking with them needs no torch; a source checkout has none and exports the .pth on first use.
DEFAULT_GRAPHS = WEIGHTS_DIR / "default-onnx"


def weights_path(weights: str | Path | None = None) -> Path:
    """`weights`, or the shipped default weights when there are any."""
    if weights:
        return Path(weights)
    if not DEFAULT_WEIGHTS.is_file():
        raise UserError("no weights given and this installation ships no default weights; "
                        "pass --weights SiamMask_DAVIS.pth (or another SiamMask checkpoint)")
    return DEFAULT_WEIGHTS


def load_model(weights: str | Path | None = None, variant: str | None = None,
               hp: str | None = None) -> tuple["LoadedCheckpoint", str]:
    """Checkpoint -> (loaded checkpoint, hyper-parameters: `hp`, else what the checkpoint records,
    else the variant's default preset)."""
    path = weights_path(weights)
    require("torch", f"reading the checkpoint '{path}'")
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, variant)
    return ckpt, hp or ckpt.config.get("hp") or DEFAULT_HP[ckpt.variant]


def load_tracker(weights: str | Path | None = None, *, variant: str | None = None, hp: str | None = None,
                 engine: str = AUTO, device: str = "cpu", precision: str | None = None,
                 redetect: bool | None = None) -> Tracker:
    """A Tracker on `weights`: an official or siammask .pth checkpoint, an export directory made by
    `siammask export`, or (None) the shipped default weights.

    variant: None means as the checkpoint says. hp: a preset name (siammask.config.HP_PRESETS) or a
    YAML file; None means as the checkpoint or export records, else the variant's default. engine:
    auto (engines/registry.py: onnxruntime for nano on a CPU, else torch), torch, torch-compile,
    onnxruntime or tensorrt. precision: fp32, bf16, fp16 or int8; None means
    fp32, or what an export directory holds. redetect: search frame-wide for a lost target (True)
    or only report it lost (False); None means as the hyper-parameters say. Every problem with what
    was given is a one-line UserError."""
    path = shipped_graphs(weights, engine, device, precision) or weights_path(weights)
    if path.is_dir():
        info = read_sidecar(path, check_files=False)  # the engine checks the files themselves
        if variant and variant != info.variant:
            raise UserError(f"'{path}' holds an export of the {info.variant} model, but --variant "
                            f"{variant} was asked for")
        return Tracker(build_engine(engine, path, device, precision), _with_redetect(load_hp(hp or info.hp), redetect))
    ckpt, hp = load_model(path, variant, hp)
    return Tracker(build_engine(engine, ckpt.model, device, precision, export=exported_graphs),
                   _with_redetect(load_hp(hp), redetect))


def shipped_graphs(weights: str | Path | None, engine: str, device: str, precision: str | None) -> Path | None:
    """The default weights' prebuilt graphs (DEFAULT_GRAPHS) where they give what the .pth would: no
    weights given, the wheel ships them, and the options ask for ONNX Runtime in float32, by name or
    through the rule `auto` applies to the .pth's model (the graphs' variant); None otherwise."""
    if weights or engine not in ("onnxruntime", AUTO) or not (DEFAULT_GRAPHS / SIDECAR).is_file() \
            or precision not in (None, "fp32"):
        return None  # a back end that never reads them does not depend on their sidecar either
    if engine == "onnxruntime":
        return DEFAULT_GRAPHS
    variant = read_sidecar(DEFAULT_GRAPHS, check_files=False).variant  # the .pth's, read without torch
    return DEFAULT_GRAPHS if auto_engine(variant, device, precision) == "onnxruntime" else None


def _with_redetect(config: TrackerConfig, redetect: bool | None) -> TrackerConfig:
    return config if redetect is None else dataclasses.replace(config, redetect=redetect)
