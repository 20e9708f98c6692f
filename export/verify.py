"""Run an exported graph next to the PyTorch module it came from and fail loudly when they differ."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from siammask.errors import UserError

# Largest allowed max|ours - torch| / max|torch| per output. fp32 differs only by summation order;
# fp16 keeps ~3 significant digits through 50 layers; int8 is judged on real crops, not noise.
TOLERANCES = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.25}


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| relative to the largest magnitude of ref (0 when both are all zero)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = float(np.abs(ref).max())
    diff = float(np.abs(got - ref).max())
    return diff / scale if scale > 0 else diff


def check_outputs(what: str, got: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray],
                  tolerance: float) -> dict[str, float]:
    """Relative error of every output; UserError naming the worst one when any exceeds `tolerance`."""
    errors = {name: relative_error(got[name], ref[name]) for name in ref}
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tolerance:  # also catches NaN
        raise UserError(f"{what}: output '{worst}' differs from PyTorch by {errors[worst]:.3g} (max abs diff "
                        f"relative to max magnitude), tolerance {tolerance:g}; the exported graph is wrong")
    return errors


def torch_outputs(module: nn.Module, feeds: Mapping[str, torch.Tensor],
                  names: Sequence[str]) -> dict[str, np.ndarray]:
    """The reference: the module on the same inputs, float32 numpy by output name."""
    with torch.no_grad():
        out = module(*feeds.values())
    out = out if isinstance(out, tuple) else (out,)
    return {name: t.float().numpy() for name, t in zip(names, out)}


def verify_onnx(path: Path, module: nn.Module, feeds: Mapping[str, torch.Tensor], names: Sequence[str],
                tolerance: float) -> dict[str, float]:
    """ONNX Runtime (CPU) on `path` against `module` on the same inputs."""
    from siammask.engines.onnx_session import open_session

    session = open_session(path, ["CPUExecutionProvider"])
    got = dict(zip(names, session.run(list(names), {k: v.numpy() for k, v in feeds.items()})))
    return check_outputs(f"'{path.name}'", got, torch_outputs(module, feeds, names), tolerance)
