"""Template features as numpy arrays, for back ends that run outside PyTorch (ONNX Runtime)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KernelArrays:
    """The three heads' kernels (B,256,5,5) for B targets; slicing and joining keep the batch axis."""

    cls: np.ndarray
    loc: np.ndarray
    mask: np.ndarray

    def __getitem__(self, index) -> "KernelArrays":
        return KernelArrays(self.cls[index], self.loc[index], self.mask[index])

    @staticmethod
    def cat(parts: Sequence["KernelArrays"]) -> "KernelArrays":
        if len(parts) == 1:
            return parts[0]
        return KernelArrays(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("cls", "loc", "mask")))
