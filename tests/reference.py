"""Access to ../shared/reference (parity fixtures); tests using it skip when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(os.environ.get("SIAMMASK_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"
TENNIS = DATA / "frames" / "tennis"
TENNIS_BOX = (300, 110, 165, 255)

needs_reference = pytest.mark.skipif(not (REFERENCE / "small_tensors.npz").is_file() or not TENNIS.is_dir(),
                                     reason="../shared/reference or tennis frames absent")


def _gain(key: str) -> float:
    return {"rpn_model.loc.head.3.weight": 0.1, "rpn_model.cls.head.3.weight": 0.3}.get(key, 1.0)


def parity_value(key: str, shape: list[int]) -> np.ndarray:
    """The reference's deterministic rule for a float tensor of 2+ dimensions."""
    rng = np.random.default_rng(list(key.encode("utf-8")))
    n = int(np.prod(shape))
    std = np.sqrt(2.0 / (n / shape[0]))
    return ((2 * rng.random(n) - 1) * np.sqrt(3) * std * _gain(key)).astype(np.float32).reshape(shape)


def parity_state_dict(variant: str) -> dict[str, torch.Tensor]:
    """The parity weights in the official key layout, rebuilt from the schema."""
    small = np.load(REFERENCE / "small_tensors.npz")
    state = {}
    for line in (REFERENCE / f"schema_{variant}.tsv").read_text().splitlines()[1:]:
        _, key, _, shape, _, _ = line.split("\t")
        dims = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
        value = parity_value(key, dims) if len(dims) >= 2 else small[key]
        state[key] = torch.from_numpy(np.array(value))
    return state
