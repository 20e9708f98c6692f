"""The loader for NanoTrack V3 training checkpoints (nanotrackv3.pth, Apache-2.0): trunk and box head.

Such a file is where the 'nano' variant starts training (`init:` in a training config); it holds no
mask branch, so it is not a model to track with. Loading is strict through an explicit key map:
every tensor of the file maps to one of ours (or is listed as unused), every trunk and head tensor
of ours is filled, and shapes agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy._core.multiarray import scalar as _np_scalar

from .errors import UserError
from .keymap import map_prefix
from .model.nano import NANO_BLOCKS, NanoSiamMask

# NanoTrack's tracker never runs its neck (its template() and track() feed the backbone's output
# straight to the head, as do its published ONNX graphs), so these weights are left out on purpose.
UNUSED_PREFIXES = ("neck.",)

# Layer indices inside one of their inverted-residual blocks -> our names; with and without the
# 1x1 expansion the same layers sit at different indices.
_EXPANDED = (("conv.0.", "expand.0."), ("conv.1.", "expand.1."), ("conv.3.", "depthwise.0."),
             ("conv.4.", "depthwise.1."), ("conv.5.fc.0.", "se.reduce."), ("conv.5.fc.2.", "se.expand."),
             ("conv.7.", "project.0."), ("conv.8.", "project.1."))
_NOT_EXPANDED = (("conv.0.", "depthwise.0."), ("conv.1.", "depthwise.1."), ("conv.3.fc.0.", "se.reduce."),
                 ("conv.3.fc.2.", "se.expand."), ("conv.4.", "project.0."), ("conv.5.", "project.1."))

_HEAD = (
    ("ban_head.corr_pw_cls.CA_layer.", "head.pw_cls.attention."),
    ("ban_head.corr_pw_reg.CA_layer.", "head.pw_loc.attention."),
    ("ban_head.corr_pw_cls.conv_kernel.", "head.pw_cls.kernel."),
    ("ban_head.corr_pw_cls.conv_search.", "head.pw_cls.search."),
    ("ban_head.corr_pw_cls.conv.", "head.pw_cls.fuse."),
    ("ban_head.corr_pw_reg.conv_kernel.", "head.pw_loc.kernel."),
    ("ban_head.corr_pw_reg.conv_search.", "head.pw_loc.search."),
    ("ban_head.corr_pw_reg.conv.", "head.pw_loc.fuse."),
    ("ban_head.corr_dw_cls.conv_kernel.", "head.dw_cls.kernel."),
    ("ban_head.corr_dw_cls.conv_search.", "head.dw_cls.search."),
    ("ban_head.corr_dw_reg.conv_kernel.", "head.dw_loc.kernel."),
    ("ban_head.corr_dw_reg.conv_search.", "head.dw_loc.search."),
    ("ban_head.down_cls.0.", "head.merge_cls."),
    ("ban_head.down_reg.0.", "head.merge_loc."),
    ("ban_head.cls_tower.", "head.cls_tower."),
    ("ban_head.bbox_tower.", "head.loc_tower."),
    ("ban_head.cls_logits.0.", "head.cls_out."),
    ("ban_head.bbox_pred.0.", "head.loc_out."),
)


def _trunk_map() -> tuple[tuple[str, str], ...]:
    rules = [("backbone.features.0.0.", "trunk.stem.0."), ("backbone.features.0.1.", "trunk.stem.1.")]
    cin = 16
    for i, spec in enumerate(NANO_BLOCKS):
        layout = _NOT_EXPANDED if spec.hidden == cin else _EXPANDED
        rules += [(f"backbone.features.{i + 1}.{theirs}", f"trunk.blocks.{i}.{ours}") for theirs, ours in layout]
        cin = spec.out
    return tuple(rules)


# NanoTrack key prefix -> ours, first match wins.
NANOTRACK_KEY_MAP: tuple[tuple[str, str], ...] = _trunk_map() + _HEAD


def nanotrack_to_ours(key: str) -> str | None:
    """One NanoTrack state-dict key in our names; None when no rule covers it."""
    return map_prefix(key, NANOTRACK_KEY_MAP)


def is_nanotrack(obj: Any) -> bool:
    """A NanoTrack training checkpoint: {'state_dict': {'backbone.features...', 'ban_head...'}, ...}."""
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return isinstance(state, dict) and any(str(k).startswith("ban_head.") for k in state) \
        and any(str(k).startswith("backbone.features.") for k in state)


def nanotrack_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Our trunk.* and head.* tensors from a loaded NanoTrack checkpoint, checked strictly."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj["state_dict"].items()}
    mapped: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state.items():
        if key.startswith(UNUSED_PREFIXES):
            continue
        ours = nanotrack_to_ours(key)
        if ours is None:
            unmapped.append(key)
        else:
            mapped[ours] = value
    expected = {k: v for k, v in NanoSiamMask().state_dict().items() if k.startswith(("trunk.", "head."))}
    missing = [k for k in expected if k not in mapped]
    unexpected = unmapped + [k for k in mapped if k not in expected]
    wrong = [f"{k} {tuple(mapped[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in mapped and mapped[k].shape != v.shape]
    problems = [f"{len(keys)} {what} ({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("keys with wrong shapes", wrong)) if keys]
    if problems:
        raise UserError(f"'{path}' does not fit NanoTrack V3's trunk and head: " + "; ".join(problems))
    return mapped


# The file's optimiser state holds numpy scalars, pickled under numpy 1's module name; allowed for
# the safe (weights-only) unpickler, which refuses everything else.
_NUMPY_SCALARS = [(_np_scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("float64"))]


def _read(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"NanoTrack checkpoint '{path}' not found")
    try:
        with torch.serialization.safe_globals(_NUMPY_SCALARS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage bytes make the unpickler raise almost anything
        raise UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(exc).__name__})") from None


def is_nanotrack_file(path: str | Path) -> bool:
    """Whether `path` reads as a NanoTrack checkpoint (False for anything else, readable or not)."""
    try:
        return is_nanotrack(_read(Path(path)))
    except UserError:
        return False


def load_nanotrack(path: str | Path) -> dict[str, torch.Tensor]:
    """Read nanotrackv3.pth (a plain torch.save of tensors, epoch and optimiser state) strictly."""
    path = Path(path)
    obj = _read(path)
    if not is_nanotrack(obj):
        raise UserError(f"'{path}' is not a NanoTrack checkpoint (no backbone.features.* and ban_head.* tensors)")
    return nanotrack_state(obj, path)
