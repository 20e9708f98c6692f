"""Long-term sequences: the OTB / UAV123 layout (SEQ/img/*.jpg, 1-based SEQ/groundtruth_rect.txt) or
the VOT layout (SEQ/groundtruth.txt, 0-based; polygons taken as their axis-aligned boxes), both
with NaN rows where the target is absent, read by data/layouts as the other benchmarks are."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.layouts.images import real_dir, subfolders
from ...data.layouts.regions import region_box
from ...data.layouts.sequences import vot_sequences
from ...errors import UserError
from .common import BoxSequence
from .otb import load_otb


def load_lt(root: Path) -> list[BoxSequence]:
    """VOT layout when ROOT has list.txt or SEQ/groundtruth.txt folders, else OTB / UAV123."""
    folder = real_dir(root)
    if (folder / "list.txt").is_file() or any((folder / n / "groundtruth.txt").is_file() for n in subfolders(folder)):
        return [_vot_boxes(seq.name, seq.frames, seq.regions, seq.source) for seq in vot_sequences(folder)]
    return load_otb(folder)


def _vot_boxes(name: str, frames: tuple[Path, ...], regions: tuple[np.ndarray, ...], source: Path) -> BoxSequence:
    boxes = [region_box(r) for r in regions]
    if boxes[0] is None:
        raise UserError(f"{source}:1: the first frame has no box, so the tracker cannot start")
    return BoxSequence(name, frames, np.array([[np.nan] * 4 if b is None else b for b in boxes], np.float64))
