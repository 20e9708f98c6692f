"""The one checkpoint loader: official SiamMask files and our own, through an explicit key map.

Loading is strict: every parameter and buffer of the model must be filled and nothing may be
left over; a mismatch is reported by name instead of silently running a half-loaded model.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .keymap import map_prefix
from .model import VARIANTS, TrackingNet, build_model
from .nanotrack_checkpoint import is_nanotrack

FORMAT = "siammask-checkpoint"
FORMAT_VERSION = 1
MAX_INFLATION = 2.0  # declared contents over file size a checkpoint may have (torch.save: about 1)

# Official key prefix -> our module path, first match wins.
OFFICIAL_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("features.features.", "trunk."),
    ("features.downsample.downsample.0.", "adjust.conv."),
    ("features.downsample.downsample.1.", "adjust.bn."),
    ("rpn_model.cls.conv_kernel.", "cls_head.kernel."),
    ("rpn_model.cls.conv_search.", "cls_head.search."),
    ("rpn_model.cls.head.", "cls_head.head."),
    ("rpn_model.loc.conv_kernel.", "loc_head.kernel."),
    ("rpn_model.loc.conv_search.", "loc_head.search."),
    ("rpn_model.loc.head.", "loc_head.head."),
    ("mask_model.mask.conv_kernel.", "mask_head.kernel."),
    ("mask_model.mask.conv_search.", "mask_head.search."),
    ("mask_model.mask.head.", "mask_head.head."),
    ("refine_model.", "refine."),
)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A model ready for inference plus what the file said about itself."""

    model: TrackingNet
    variant: str
    source: str  # "official" or "siammask"
    config: dict[str, Any]


def official_to_ours(key: str) -> str | None:
    """Map one official state-dict key to ours; None when no rule covers it."""
    return map_prefix(key, OFFICIAL_KEY_MAP)


def ours_to_official(key: str) -> str:
    """Inverse of official_to_ours, to write checkpoints in the official layout."""
    for old, new in OFFICIAL_KEY_MAP:
        if key.startswith(new):
            return old + key[len(new):]
    raise KeyError(key)


def _check_declared_size(path: Path) -> None:
    """torch.save stores tensors uncompressed, so its archive declares about the bytes it holds. One
    declaring far more (a small file inflating to gigabytes) is refused before anything is unpacked."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip (an old-style checkpoint) or a broken one: torch.load says which
    on_disk = path.stat().st_size
    if declared > MAX_INFLATION * on_disk + (1 << 20):
        raise UserError(f"'{path}' declares {declared / 2**20:.0f} MiB of contents in {on_disk / 2**20:.1f} MiB: "
                        "torch.save does not compress, so it is not a checkpoint; pass a .pth file saved by torch.save")


def _read(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' not found; pass an existing .pth file with --weights")
    _check_declared_size(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage bytes make the unpickler raise almost anything
        kind = "truncated zip archive" if isinstance(exc, (zipfile.BadZipFile, EOFError)) else type(exc).__name__
        raise UserError(f"'{path}' is not a readable PyTorch checkpoint (truncated or corrupt: {kind}); "
                        "pass a .pth file saved by torch.save") from None


def _state_dict_of(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """Unwrap the layouts the official files and training checkpoints use."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("format_version") != FORMAT_VERSION:
            raise UserError(f"'{path}' has checkpoint format version {obj.get('format_version')}, "
                            f"this siammask reads version {FORMAT_VERSION}; upgrade siammask")
        return obj["state_dict"], "siammask", dict(obj.get("config", {}), variant=obj.get("variant"))
    if is_nanotrack(obj):
        raise UserError(f"'{path}' is a NanoTrack training checkpoint: its trunk and box head have no mask "
                        "branch to track with; use it as `init:` of a nano training config "
                        "(configs/train/nano.yaml)")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"'{path}' holds no state dict of tensors; pass a SiamMask checkpoint (.pth)")
    stripped = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    mapped: dict[str, torch.Tensor] = {}
    for key, value in stripped.items():
        ours = official_to_ours(key)
        mapped[ours if ours is not None else f"<unmapped>{key}"] = value
    return mapped, "official", {}


def _summary(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_keys(model: TrackingNet, state: dict[str, torch.Tensor], path: Path, source: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    refine_keys = {k for k in build_model(_with_refine(model.variant)).state_dict() if k.startswith("refine.")}
    if refine_keys and set(missing) == refine_keys and not unexpected:
        raise UserError(f"'{path}' has no refine weights: it is a {_without_refine(model.variant)} checkpoint; "
                        f"use --variant {_without_refine(model.variant)}")
    if refine_keys and set(unexpected) == refine_keys and not missing:
        raise UserError(f"'{path}' has refine weights: it is a {_with_refine(model.variant)} checkpoint; "
                        f"use --variant {_with_refine(model.variant)}")
    # Name keys as the file does, so a user can find them in it.
    shown = (lambda k: ours_to_official(k)) if source == "official" else (lambda k: k)
    missing = [shown(k) for k in missing]
    unexpected = [k.replace("<unmapped>", "") if k.startswith("<unmapped>") else shown(k) for k in unexpected]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_summary(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_summary(unexpected)})")
    wrong = [f"{shown(k)} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if wrong:
        problems.append(f"{len(wrong)} keys with wrong shapes ({_summary(wrong, 2)})")
    if problems:
        raise UserError(f"'{path}' does not fit the {model.variant} model: " + "; ".join(problems))


def _check_finite(state: dict[str, torch.Tensor], path: Path, source: str) -> None:
    """NaN or infinite weights (a diverged training run, a damaged file) would track with NaN scores."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = [ours_to_official(k) if source == "official" else k for k in bad]
        raise UserError(f"'{path}' holds NaN or infinite weights in {len(bad)} tensors ({_summary(shown)}); "
                        "these weights cannot track: use another checkpoint")


# Variants with and without the refine module, in pairs.
_REFINE_PAIRS = {"base": "sharp", "lite-base": "lite"}


def _with_refine(variant: str) -> str:
    return _REFINE_PAIRS.get(variant, variant)


def _without_refine(variant: str) -> str:
    return {v: k for k, v in _REFINE_PAIRS.items()}.get(variant, variant)


def _infer_variant(state: dict[str, torch.Tensor]) -> str:
    """Official files are ResNet-50 models: sharp with refine weights, base without."""
    return "sharp" if any(k.startswith("refine.") for k in state) else "base"


def _saved_layout(variant: str, state: dict[str, torch.Tensor]) -> str:
    """nano weights saved before 2026-12-07 (the file says 'nano') hold the three-level refine, whose
    stride-2 branch (v0) the slimmer one lacks: they load as nano-3level."""
    return "nano-3level" if variant == "nano" and "refine.v0.0.weight" in state else variant


def load_checkpoint(path: str | Path, variant: str | None = None) -> LoadedCheckpoint:
    """Load an official or siammask checkpoint strictly; variant None means 'as the file says'."""
    path = Path(path)
    state, source, config = _state_dict_of(_read(path), path)
    if variant is not None and variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    variant = _saved_layout(variant or config.get("variant") or _infer_variant(state), state)
    model = build_model(variant)
    _check_keys(model, state, path, source)
    _check_finite(state, path, source)
    model.load_state_dict(state, strict=True)
    return LoadedCheckpoint(model.eval(), variant, source, config)


def save_checkpoint(model: TrackingNet, path: str | Path, config: dict[str, Any] | None = None,
                    official_layout: bool = False) -> Path:
    """Write our format (version, variant, config) or, on request, the official plain layout."""
    path = Path(path)
    state = model.state_dict()
    if official_layout:
        torch.save({ours_to_official(k): v for k, v in state.items()}, path)
    else:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "variant": model.variant,
                    "config": dict(config or {}), "state_dict": state}, path)
    return path
