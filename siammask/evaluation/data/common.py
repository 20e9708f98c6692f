"""What every loader returns; the layouts themselves are read by siammask/data/layouts, as the
training-set builder reads them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BoxSequence:
    """One target given as an axis-aligned box per frame (OTB, UAV123)."""

    name: str
    frames: tuple[Path, ...]
    boxes: np.ndarray  # (N, 4) x, y, w, h in 0-based pixels; NaN rows where the target is not visible


@dataclass(frozen=True)
class RegionSequence:
    """One target given as a polygon per frame (VOT: rotated boxes or 4-value rectangles)."""

    name: str
    frames: tuple[Path, ...]
    polygons: tuple[np.ndarray, ...]  # one (K, 2) array of 0-based corner points per frame


@dataclass(frozen=True)
class MaskSequence:
    """Targets given as label PNGs (DAVIS, YouTube-VOS); masks are read lazily, one frame at a time."""

    name: str
    frames: tuple[Path, ...]
    annotations: dict[int, Path]  # frame index -> label PNG
    starts: dict[int, int]        # object id -> frame index where it is given (its first annotation)
    scored: frozenset[int]        # frame indices on which J and F are measured
    binary: bool                  # True: every id is the one object 1 (DAVIS 2016), see read_label_png

