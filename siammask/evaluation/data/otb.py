"""OTB and UAV123 (OTB-like copy): SEQ/img/*.jpg and SEQ/groundtruth_rect.txt with 1-based x,y,w,h.

Sequences with several targets (OTB's Jogging, Skating2) have groundtruth_rect.1.txt, .2.txt, ...:
each file becomes its own sequence, SEQ-1, SEQ-2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from .common import BoxSequence, check_count, list_frames, read_rows


def load_otb(root: Path) -> list[BoxSequence]:
    """Every sub-folder of `root` with an img/ folder is a sequence."""
    folders = sorted(p for p in root.iterdir() if (p / "img").is_dir()) if root.is_dir() else []
    if not folders:
        raise UserError(f"no OTB/UAV sequences in '{root}': expected SEQ/img/ and SEQ/groundtruth_rect.txt folders")
    return [seq for folder in folders for seq in _sequences(folder)]


def _sequences(folder: Path) -> list[BoxSequence]:
    frames = list_frames(folder / "img")
    files = sorted(folder.glob("groundtruth_rect.*.txt")) or [folder / "groundtruth_rect.txt"]
    out = []
    for path in files:
        suffix = path.name[len("groundtruth_rect"):-len(".txt")]
        name = folder.name + suffix.replace(".", "-")
        boxes = _boxes(path)
        check_count(name, len(frames), len(boxes), f"lines in {path.name}")
        if not _visible(boxes[0]):
            raise UserError(f"{path}:1: the first frame has no box, so the tracker cannot start")
        out.append(BoxSequence(name, frames, boxes))
    return out


def _boxes(path: Path) -> np.ndarray:
    rows = read_rows(path, "ground truth")
    for number, row in enumerate(rows, start=1):
        if len(row) != 4:
            raise UserError(f"{path}:{number}: expected 4 numbers x,y,w,h, got {len(row)}")
    boxes = np.array(rows, np.float64)
    boxes[:, :2] -= 1.0  # 1-based pixels -> 0-based
    return boxes


def _visible(box: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0)
